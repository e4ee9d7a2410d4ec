package bqavro

import (
	"bytes"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("bad rational " + s)
	}
	return r
}

func TestRecordJSON(t *testing.T) {
	ts := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	tests := []struct {
		name, avro string
		value      any
		want       string
	}{
		{"bool", `"boolean"`, true, `true`},
		{"int", `"int"`, int32(-2147483648), `-2147483648`},
		{"long max", `"long"`, int64(math.MaxInt64), `9223372036854775807`},
		{"long min", `"long"`, int64(math.MinInt64), `-9223372036854775808`},
		{"double", `"double"`, 0.1, `0.1`},
		{"double tiny", `"double"`, 5e-324, `5e-324`},
		{"float widened", `"float"`, float32(1.1), `1.100000023841858`},
		{"+Inf", `"double"`, math.Inf(1), `"Infinity"`},
		{"-Inf", `"float"`, float32(math.Inf(-1)), `"-Infinity"`},
		{"string 4-byte UTF-8", `"string"`, "a😀\"\\\n", `"a😀\"\\\u000a"`},
		{"bytes raw", `"bytes"`, []byte{0, 0xff, '"', 'a', 0x7f}, "\"\\u0000\xff\\\"a\x7f\""},
		{"empty bytes", `"bytes"`, []byte{}, `""`},
		{"enum", `{"type":"enum","name":"e","symbols":["A"]}`, "A", `"A"`},
		{"fixed", `{"type":"fixed","name":"x","size":2}`, []byte{1, 2}, "\"\\u0001\\u0002\""},
		{"uuid", `{"type":"string","logicalType":"uuid"}`, "0d8e5a2c-1b7f-4c2e-9a55-3f1f0b8c6d11", `"0d8e5a2c-1b7f-4c2e-9a55-3f1f0b8c6d11"`},
		{"json", `{"type":"string","sqlType":"JSON"}`, `{"a":[true,null,"x"]}`, `{"a":[true,null,"x"]}`},
		{"null", `["null","long"]`, nil, `null`},
		{"union", `["null","long"]`, map[string]any{"long": int64(7)}, `7`},
		{"numeric 38 digits", `{"type":"bytes","logicalType":"decimal","precision":38,"scale":9}`,
			rat("-99999999999999999999999999999.999999999"), `"-99999999999999999999999999999.999999999"`},
		{"numeric keeps scale", `{"type":"bytes","logicalType":"decimal","precision":10,"scale":3}`, rat("1.5"), `"1.500"`},
		{"numeric scale 0", `{"type":"bytes","logicalType":"decimal","precision":10,"scale":0}`, rat("-42"), `"-42"`},
		{"bignumeric", `{"type":"fixed","name":"d","size":32,"logicalType":"decimal","precision":76,"scale":38}`,
			rat("-99999999999999999999999999999999999999.99999999999999999999999999999999999999"),
			`"-99999999999999999999999999999999999999.99999999999999999999999999999999999999"`},
		{"date", `{"type":"int","logicalType":"date"}`, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), `"0001-01-01"`},
		{"date max", `{"type":"int","logicalType":"date"}`, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), `"9999-12-31"`},
		{"time-micros", `{"type":"long","logicalType":"time-micros"}`, 23*time.Hour + 59*time.Minute + 59*time.Second + 999999*time.Microsecond, `"23:59:59.999999"`},
		{"time-millis", `{"type":"int","logicalType":"time-millis"}`, 1500 * time.Millisecond, `"00:00:01.500000"`},
		{"timestamp-micros", `{"type":"long","logicalType":"timestamp-micros"}`, ts, `"2024-02-29T23:59:58.123456Z"`},
		{"timestamp zone", `{"type":"long","logicalType":"timestamp-millis"}`, ts.In(time.FixedZone("x", 3600)), `"2024-02-29T23:59:58.123456Z"`},
		{"timestamp before epoch", `{"type":"long","logicalType":"timestamp-micros"}`, time.UnixMicro(-1).UTC(), `"1969-12-31T23:59:59.999999Z"`},
		{"local-timestamp-micros", `{"type":"long","logicalType":"local-timestamp-micros"}`, ts.UnixMicro(), `"2024-02-29T23:59:58.123456"`},
		{"local-timestamp-millis", `{"type":"long","logicalType":"local-timestamp-millis"}`, int64(1000), `"1970-01-01T00:00:01.000000"`},
		{"datetime string", `{"type":"string","logicalType":"datetime"}`, "2024-01-02T03:04:05.000006", `"2024-01-02T03:04:05.000006"`},
		{"array", `{"type":"array","items":"long"}`, []any{int64(1), int64(-1)}, `[1,-1]`},
		{"null array", `["null",{"type":"array","items":"long"}]`, nil, `[]`},
		{"map sorted", `{"type":"map","values":"int"}`, map[string]any{"b": int32(2), "a": int32(1)},
			`[{"key":"a","value":1},{"key":"b","value":2}]`},
		{"record", `{"type":"record","name":"in","fields":[{"name":"x","type":["null","string"]},{"name":"y","type":"boolean"}]}`,
			map[string]any{"x": map[string]any{"string": "s"}, "y": false}, `{"x":"s","y":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchema(schemaOf(tt.avro))
			if err != nil {
				t.Fatalf("ParseSchema: %v", err)
			}
			got, err := RecordJSON(s, map[string]any{"f": tt.value})
			if err != nil {
				t.Fatalf("RecordJSON: %v", err)
			}
			if want := `{"f":` + tt.want + `}`; string(got) != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestRecordJSONErrors(t *testing.T) {
	tests := []struct {
		name, avro string
		value      any
		wantErr    string
	}{
		{"null for required", `"long"`, nil, "field f: null value"},
		{"wrong Go type", `"long"`, "x", "field f: got string, want int32 or int64"},
		{"invalid UTF-8", `"string"`, "\xff", "field f: string is not valid UTF-8"},
		{"invalid JSON", `{"type":"string","sqlType":"JSON"}`, "{", "not one valid JSON value"},
		{"two JSON values", `{"type":"string","sqlType":"JSON"}`, "{} {}", "not one valid JSON value"},
		{"JSON number", `{"type":"string","sqlType":"JSON"}`, `{"a":[{"b":1}]}`, "numbers become strings"},
		{"NaN", `"double"`, math.NaN(), "field f: NaN cannot be stored"},
		{"negative zero", `"double"`, math.Copysign(0, -1), "field f: -0 cannot be stored"},
		{"JSON null", `{"type":"string","sqlType":"JSON"}`, "null", "field f: a JSON null cannot be stored"},
		{"JSON NUL", `{"type":"string","sqlType":"JSON"}`, `{"a":"\u0000"}`, "field f: JSON holding U+0000"},
		{"timestamp after 2262", `{"type":"long","logicalType":"timestamp-micros"}`, time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC), "field f: TIMESTAMP 2262-04-12T00:00:00Z cannot be stored"},
		{"timestamp before 1677", `{"type":"long","logicalType":"timestamp-micros"}`, time.Date(1677, 9, 21, 0, 0, 0, 0, time.UTC), "field f: TIMESTAMP 1677-09-21T00:00:00Z cannot be stored"},
		{"JSON in a nested record", `{"type":"record","name":"in","fields":[{"name":"j","type":["null",{"type":"string","sqlType":"JSON"}]}]}`, map[string]any{"j": map[string]any{"string": "[]"}}, "field f.j: JSON inside a RECORD"},
		{"decimal over precision", `{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`, rat("100"), "exceeds precision 4"},
		{"decimal over scale", `{"type":"bytes","logicalType":"decimal","precision":4,"scale":1}`, rat("1.25"), "more than 1 fractional digits"},
		{"date out of range", `{"type":"int","logicalType":"date"}`, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "outside BigQuery's range"},
		{"time out of range", `{"type":"long","logicalType":"time-micros"}`, 24 * time.Hour, "outside 00:00:00"},
		{"null in array", `{"type":"array","items":["null","long"]}`, []any{map[string]any{"long": int64(1)}, nil}, "field f[1]: BigQuery arrays cannot hold NULL"},
		{"nested path", `{"type":"map","values":{"type":"record","name":"v","fields":[{"name":"z","type":"int"}]}}`,
			map[string]any{"k": map[string]any{"z": "bad"}}, `field f["k"].z: got string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchema(schemaOf(tt.avro))
			if err != nil {
				t.Fatalf("ParseSchema: %v", err)
			}
			_, err = RecordJSON(s, map[string]any{"f": tt.value})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("RecordJSON error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestConvertOCF checks the native forms goavro actually produces when it
// reads an OCF back: union wrapping, logical types, decimals.
func TestConvertOCF(t *testing.T) {
	schema := `{"type":"record","name":"r","fields":[
		{"name":"ts","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
		{"name":"d","type":{"type":"int","logicalType":"date"}},
		{"name":"t","type":{"type":"long","logicalType":"time-micros"}},
		{"name":"lt","type":{"type":"long","logicalType":"local-timestamp-micros"}},
		{"name":"n","type":["null",{"type":"bytes","logicalType":"decimal","precision":38,"scale":9}]},
		{"name":"u","type":{"type":"string","logicalType":"uuid"}}]}`
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	rec := map[string]any{
		"ts": goavro.Union("long.timestamp-micros", ts),
		"d":  time.Date(2001, 2, 3, 0, 0, 0, 0, time.UTC),
		"t":  time.Microsecond,
		"lt": int64(-1),
		"n":  goavro.Union("bytes.decimal", rat("-1.000000001")),
		"u":  "u-1",
	}
	if err := w.Append([]any{rec, map[string]any{"ts": nil, "d": ts, "t": time.Duration(0), "lt": int64(0), "n": nil, "u": ""}}); err != nil {
		t.Fatal(err)
	}
	_, got, err := ConvertOCF(buf.Bytes())
	if err != nil {
		t.Fatalf("ConvertOCF: %v", err)
	}
	want := `{"ts":"2001-02-03T04:05:06.000007Z","d":"2001-02-03","t":"00:00:00.000001","lt":"1969-12-31T23:59:59.999999","n":"-1.000000001","u":"u-1"}` + "\n" +
		`{"ts":null,"d":"2001-02-03","t":"00:00:00.000000","lt":"1970-01-01T00:00:00.000000","n":null,"u":""}` + "\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, _, err := ConvertOCF([]byte("not an OCF")); err == nil || !strings.Contains(err.Error(), "opening OCF") {
		t.Errorf("ConvertOCF(garbage) error = %v, want an opening error", err)
	}
}
