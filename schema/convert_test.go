package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"github.com/linkedin/goavro/v2"
)

// Test-only types: an enum, a composite with an array attribute and a nested
// composite, and hstore at a non-built-in OID.
var testTypes = mapResolver{
	200001: {OID: 200001, Schema: "public", Name: "hstore", TypeMod: -1},
	200002: {OID: 200002, Schema: "public", Name: "mood", Kind: KindEnum, TypeMod: -1},
	200003: {OID: 200003, Schema: "public", Name: "pair", Kind: KindComposite, TypeMod: -1, Fields: []Field{
		{Name: "a", TypeOID: 23, TypeMod: -1},
		{Name: "B c", TypeOID: 25, TypeMod: -1},
		{Name: "d", TypeOID: 1231, TypeMod: -1}, // numeric[]
	}},
	200004: {OID: 200004, Schema: "public", Name: "_pair", Kind: KindArray, Elem: 200003, TypeMod: -1},
	200005: {OID: 200005, Schema: "public", Name: "outer", Kind: KindComposite, TypeMod: -1, Fields: []Field{
		{Name: "p", TypeOID: 200003, TypeMod: -1},
		{Name: "at", TypeOID: 1184, TypeMod: -1},
	}},
	200006: {OID: 200006, Schema: "public", Name: "posint", Kind: KindDomain, Elem: 23, TypeMod: -1},
	200007: {OID: 200007, Schema: "public", Name: "_hstore", Kind: KindArray, Elem: 200001, TypeMod: -1},
}

var testResolver = Chain(Builtin, testTypes)

type typ struct {
	oid    OID
	typmod int32
}

var (
	tBool        = typ{16, -1}
	tInt2        = typ{21, -1}
	tInt4        = typ{23, -1}
	tInt8        = typ{20, -1}
	tOID         = typ{26, -1}
	tFloat4      = typ{700, -1}
	tFloat8      = typ{701, -1}
	tNumeric     = typ{1700, -1}
	tNum10_2     = typ{1700, numericTypmod(10, 2)}
	tNum40_10    = typ{1700, numericTypmod(40, 10)}
	tNum5_m2     = typ{1700, numericTypmod(5, -2)}
	tNum3_5      = typ{1700, numericTypmod(3, 5)}
	tMoney       = typ{790, -1}
	tText        = typ{25, -1}
	tBpchar      = typ{1042, 9}
	tChar        = typ{18, -1}
	tBytea       = typ{17, -1}
	tUUID        = typ{2950, -1}
	tJSON        = typ{114, -1}
	tJSONB       = typ{3802, -1}
	tXML         = typ{142, -1}
	tDate        = typ{1082, -1}
	tTime        = typ{1083, -1}
	tTimetz      = typ{1266, -1}
	tTimestamp   = typ{1114, -1}
	tTimestamptz = typ{1184, -1}
	tInterval    = typ{1186, -1}
	tInet        = typ{869, -1}
	tBit         = typ{1560, 4}
	tTsvector    = typ{3614, -1}
	tInt4range   = typ{3904, -1}
	tInt4multi   = typ{4451, -1}
	tHstore      = typ{200001, -1}
	tMood        = typ{200002, -1}
	tPair        = typ{200003, -1}
	tPairArr     = typ{200004, -1}
	tOuter       = typ{200005, -1}
	tPosint      = typ{200006, -1}
	tHstoreArr   = typ{200007, -1}
	tInt4Arr     = typ{1007, -1}
	tTextArr     = typ{1009, -1}
	tFloat8Arr   = typ{1022, -1}
	tByteaArr    = typ{1001, -1}
	tTsArr       = typ{1115, -1}
	tJSONBArr    = typ{3807, -1}
	tBoolArr     = typ{1000, -1}
	tNumArr      = typ{1231, numericTypmod(10, 2)}
)

func mustMap(t testing.TB, ty typ) *Mapping {
	t.Helper()
	m, err := MapColumn(Column{Name: "col", TypeOID: ty.oid, TypeMod: ty.typmod}, testResolver)
	if err != nil {
		t.Fatalf("MapColumn(%d, %d): %v", ty.oid, ty.typmod, err)
	}
	return m
}

var (
	digits40   = "1234567890123456789012345678901234567890"
	digits1000 = strings.Repeat("9", 1000) + "." + strings.Repeat("1", 50)
)

// convertCases are Postgres text values as pgoutput sends them (with
// SessionSettings) and the canonical form they must keep through Avro and
// BigQuery, or the dead-letter reason they must produce.
var convertCases = []struct {
	name  string
	typ   typ
	text  *string // nil: NULL
	canon string  // canonical form; empty when dead-lettered
	dead  string  // substring of the dead-letter reason
}{
	{"bool true", tBool, p("t"), `"true"`, ""},
	{"bool false", tBool, p("f"), `"false"`, ""},
	{"bool NULL", tBool, nil, `null`, ""},
	{"int2 min", tInt2, p("-32768"), `"-32768"`, ""},
	{"int4 max", tInt4, p("2147483647"), `"2147483647"`, ""},
	{"int8 min", tInt8, p("-9223372036854775808"), `"-9223372036854775808"`, ""},
	{"int8 max", tInt8, p("9223372036854775807"), `"9223372036854775807"`, ""},
	{"oid max", tOID, p("4294967295"), `"4294967295"`, ""},
	{"float4 tenth", tFloat4, p("0.1"), `"0.1"`, ""},
	{"float4 large", tFloat4, p("1.2345679e+08"), `"1.2345679e+08"`, ""},
	{"float4 NaN", tFloat4, p("NaN"), `"NaN"`, ""},
	{"float8 max", tFloat8, p("1.7976931348623157e+308"), `"1.7976931348623157e+308"`, ""},
	{"float8 denormal", tFloat8, p("5e-324"), `"5e-324"`, ""},
	{"float8 -Infinity", tFloat8, p("-Infinity"), `"-Infinity"`, ""},
	{"float8 Infinity", tFloat8, p("Infinity"), `"Infinity"`, ""},
	{"float8 -0", tFloat8, p("-0"), `"-0"`, ""},
	{"numeric 1000 digits", tNumeric, p(digits1000), `"` + digits1000 + `"`, ""},
	{"numeric NaN", tNumeric, p("NaN"), `"NaN"`, ""},
	{"numeric Infinity", tNumeric, p("-Infinity"), `"-Infinity"`, ""},
	{"numeric display scale kept", tNumeric, p("1.50"), `"1.50"`, ""},
	{"numeric(10,2)", tNum10_2, p("-12345678.90"), `"-12345678.90"`, ""},
	{"numeric(10,2) zero", tNum10_2, p("0.00"), `"0.00"`, ""},
	{"numeric(10,2) NaN", tNum10_2, p("NaN"), "", "NaN cannot be stored in BigQuery NUMERIC"},
	{"numeric(40,10) 40 digits", tNum40_10, p("123456789012345678901234567890.1234567890"), `"123456789012345678901234567890.1234567890"`, ""},
	{"numeric(40,10) too many digits", tNum40_10, p(digits40 + ".5"), "", "more than 40 digits"},
	{"numeric(40,10) too many fractional digits", tNum40_10, p("1.12345678901"), "", "more than 10 fractional digits"},
	{"numeric(5,-2)", tNum5_m2, p("1234500"), `"1234500"`, ""},
	{"numeric(3,5)", tNum3_5, p("0.00123"), `"0.00123"`, ""},
	{"money", tMoney, p("-$1,234.56"), `"-1234.56"`, ""},
	{"money max", tMoney, p("$92,233,720,368,547,758.07"), `"92233720368547758.07"`, ""},
	{"money other locale", tMoney, p("1.234,56 €"), "", "lc_monetary=C"},
	{"text empty", tText, p(""), `""`, ""},
	{"text 4-byte UTF-8", tText, p("emoji 😀 𝄞"), `"emoji 😀 𝄞"`, ""},
	{"text control chars", tText, p("a\tb\nc\"d\\"), `"a\tb\nc\"d\\"`, ""},
	{"text invalid UTF-8", tText, p("\xff\xfe"), "", "UTF-8"},
	{"bpchar padding kept", tBpchar, p("ab   "), `"ab   "`, ""},
	{"char high byte", tChar, p(`\303`), `"\\303"`, ""},
	{"bytea zero bytes", tBytea, p(`\x0000ff`), `"\\x0000ff"`, ""},
	{"bytea empty", tBytea, p(`\x`), `"\\x"`, ""},
	{"uuid", tUUID, p("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, ""},
	{"json", tJSON, p(`{"b": [1, 2.5, "x"], "a": null}`), `"{\"a\":null,\"b\":[1,2.5,\"x\"]}"`, ""},
	{"json duplicate key", tJSON, p(`{"a": 1, "a": 2}`), "", `key "a" twice`},
	{"jsonb big int", tJSONB, p(`{"n": 18446744073709551615}`), `"{\"n\":18446744073709551615}"`, ""},
	{"jsonb inexact number", tJSONB, p(`{"n": 12345678901234567890123}`), "", "not held exactly"},
	{"jsonb long decimal", tJSONB, p(`[0.10000000000000001]`), "", "not held exactly"},
	{"jsonb 4-byte UTF-8", tJSONB, p(`"😀"`), `"\"😀\""`, ""},
	{"xml", tXML, p("<a>b</a>"), `"<a>b</a>"`, ""},
	{"date min", tDate, p("0001-01-01"), `"0001-01-01"`, ""},
	{"date max", tDate, p("9999-12-31"), `"9999-12-31"`, ""},
	{"date before epoch", tDate, p("1969-12-31"), `"1969-12-31"`, ""},
	{"date BC", tDate, p("0001-12-31 BC"), "", "BC dates"},
	{"date year 10000", tDate, p("10000-01-01"), "", "past 9999"},
	{"date infinity", tDate, p("infinity"), "", "infinity"},
	{"time", tTime, p("13:14:15.123456"), `"13:14:15.123456"`, ""},
	{"time midnight", tTime, p("00:00:00"), `"00:00:00.000000"`, ""},
	{"time 24:00", tTime, p("24:00:00"), "", "24:00:00"},
	{"timetz", tTimetz, p("12:34:56.789+05:30"), `"12:34:56.789+05:30"`, ""},
	{"timestamp", tTimestamp, p("2024-02-29 23:59:59.999999"), `"2024-02-29T23:59:59.999999"`, ""},
	{"timestamp min", tTimestamp, p("0001-01-01 00:00:00"), `"0001-01-01T00:00:00.000000"`, ""},
	{"timestamp max", tTimestamp, p("9999-12-31 23:59:59.999999"), `"9999-12-31T23:59:59.999999"`, ""},
	{"timestamp -infinity", tTimestamp, p("-infinity"), "", "-infinity"},
	{"timestamp BC", tTimestamp, p("4713-11-24 00:00:00 BC"), "", "BC dates"},
	{"timestamp year 10000", tTimestamp, p("10000-01-01 00:00:00"), "", "past 9999"},
	{"timestamptz UTC", tTimestamptz, p("2024-01-02 03:04:05.5+00"), `"2024-01-02T03:04:05.500000Z"`, ""},
	{"timestamptz offset", tTimestamptz, p("2024-01-02 03:04:05+05:30"), `"2024-01-01T21:34:05.000000Z"`, ""},
	{"timestamptz before 0001 in UTC", tTimestamptz, p("0001-01-01 00:30:00+01"), "", "outside 0001-01-01..9999-12-31 UTC"},
	{"timestamptz infinity", tTimestamptz, p("infinity"), "", "infinity"},
	{"interval", tInterval, p("1 year 2 mons 3 days 04:05:06.7"), `"P1Y2M3DT4H5M6.7S"`, ""},
	{"interval mixed signs", tInterval, p("-1 days +02:00:00"), `"P-1DT2H"`, ""},
	{"interval negative seconds", tInterval, p("-00:00:01.5"), `"PT-1.5S"`, ""},
	{"interval zero", tInterval, p("00:00:00"), `"PT0S"`, ""},
	{"interval infinity", tInterval, p("infinity"), `"infinity"`, ""},
	{"inet", tInet, p("192.168.0.1/24"), `"192.168.0.1/24"`, ""},
	{"bit", tBit, p("0101"), `"0101"`, ""},
	{"tsvector", tTsvector, p("'a':1 'b':2"), `"'a':1 'b':2"`, ""},
	{"int4range", tInt4range, p("[1,5)"), `"[1,5)"`, ""},
	{"int4range empty", tInt4range, p("empty"), `"empty"`, ""},
	{"int4multirange", tInt4multi, p("{[1,3),[5,7)}"), `"{[1,3),[5,7)}"`, ""},
	{"hstore", tHstore, p(`"a"=>NULL, "b"=>"2", "k \"q\\"=>"v"`), `"{\"a\":null,\"b\":\"2\",\"k \\\"q\\\\\":\"v\"}"`, ""},
	{"enum", tMood, p("happy"), `"happy"`, ""},
	{"domain", tPosint, p("42"), `"42"`, ""},
	{"composite", tPair, p(`(1,"x ""y""\\z","{1.5,NULL}")`), `{"a":"1","B c":"x \"y\"\\z","d":["1.5",null]}`, ""},
	{"composite all NULL", tPair, p(`(,,)`), `{"a":null,"B c":null,"d":null}`, ""},
	{"composite nested", tOuter, p(`("(2,,{})","2024-01-02 03:04:05+00")`), `{"p":{"a":"2","B c":null,"d":[]},"at":"2024-01-02T03:04:05.000000Z"}`, ""},
	{"composite nested dead-letter", tOuter, p(`(,infinity)`), "", "infinity"},
	{"array empty", tInt4Arr, p("{}"), `[]`, ""},
	{"array NULL", tInt4Arr, nil, `null`, ""},
	{"array with NULLs", tInt4Arr, p("{1,NULL,3}"), `["1",null,"3"]`, ""},
	{"array 2-D", tInt4Arr, p("{{1,2},{3,4}}"), `[["1","2"],["3","4"]]`, ""},
	{"array lower bound", tInt4Arr, p("[0:1]={5,6}"), "", "lower bound 0"},
	{"text array quoting", tTextArr, p(`{"a b","NULL",NULL,"","\""}`), `["a b","NULL",null,"","\""]`, ""},
	{"float8 array", tFloat8Arr, p("{1e+300,NaN,-0,0.1}"), `["1e+300","NaN","-0","0.1"]`, ""},
	{"bytea array", tByteaArr, p(`{"\\x00ff"}`), `["\\x00ff"]`, ""},
	{"timestamp array infinity", tTsArr, p(`{infinity,"2024-01-02 03:04:05"}`), `["infinity","2024-01-02T03:04:05.000000"]`, ""},
	{"jsonb array", tJSONBArr, p(`{"[1, 2]","{\"a\": 1}"}`), `["[1,2]","{\"a\":1}"]`, ""},
	{"jsonb array 2-D", tJSONBArr, p(`{{"[1]","2"}}`), `[["[1]","2"]]`, ""},
	{"bool array", tBoolArr, p("{t,f,NULL}"), `["true","false",null]`, ""},
	{"numeric(10,2) array", tNumArr, p("{1.50,-2.00}"), `["1.50","-2.00"]`, ""},
	{"composite array", tPairArr, p(`{"(1,\"q,\",)",NULL}`), `[{"a":"1","B c":"q,","d":null},null]`, ""},
	{"hstore array", tHstoreArr, p(`{"\"a\"=>\"1\""}`), `["{\"a\":\"1\"}"]`, ""},
}

func p(s string) *string { return &s }

func bytesOf(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

func TestConvert(t *testing.T) {
	for _, tc := range convertCases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustMap(t, tc.typ)
			text := bytesOf(tc.text)
			native, err := m.Convert(text)
			if tc.dead != "" {
				var dl *DeadLetterError
				if !errors.As(err, &dl) {
					t.Fatalf("Convert(%q) = %v, %v; want a DeadLetterError", text, native, err)
				}
				if !strings.Contains(dl.Reason, tc.dead) || dl.Value != string(text) || !strings.HasPrefix(dl.Column, "col") {
					t.Errorf("Convert(%q): dead-letter %+v, want reason containing %q", text, dl, tc.dead)
				}
				return
			}
			if err != nil {
				t.Fatalf("Convert(%q): %v", text, err)
			}
			canon, err := m.Canonical(text)
			if err != nil || canon != tc.canon {
				t.Errorf("Canonical(%q) = %s, %v; want %s", text, canon, err, tc.canon)
			}
			// Through Avro binary and back.
			decoded := avroRoundTrip(t, m, native)
			if got, err := m.CanonicalAvro(decoded); err != nil || got != tc.canon {
				t.Errorf("CanonicalAvro(round trip of %q) = %s, %v; want %s", text, got, err, tc.canon)
			}
			if got, err := m.CanonicalAvro(native); err != nil || got != tc.canon {
				t.Errorf("CanonicalAvro(Convert(%q)) = %s, %v; want %s", text, got, err, tc.canon)
			}
			// As the BigQuery client reads it back.
			bq := bigQueryValue(t, m, decoded)
			if got, err := m.CanonicalBigQuery(bq); err != nil || got != tc.canon {
				t.Errorf("CanonicalBigQuery(%#v) = %s, %v; want %s", bq, got, err, tc.canon)
			}
		})
	}
}

// avroRoundTrip encodes the field value with goavro and decodes it again.
func avroRoundTrip(t *testing.T, m *Mapping, native any) any {
	t.Helper()
	s, err := json.Marshal(map[string]any{"type": "record", "name": "t", "fields": []any{m.AvroField()}})
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(s))
	if err != nil {
		t.Fatalf("goavro.NewCodec(%s): %v", s, err)
	}
	bin, err := codec.BinaryFromNative(nil, map[string]any{m.Name: native})
	if err != nil {
		t.Fatalf("BinaryFromNative(%#v): %v", native, err)
	}
	back, rest, err := codec.NativeFromBinary(bin)
	if err != nil || len(rest) != 0 {
		t.Fatalf("NativeFromBinary: %v (%d bytes left)", err, len(rest))
	}
	return back.(map[string]any)[m.Name]
}

// bigQueryValue is what the BigQuery Go client returns for the Avro value,
// following BigQuery's Avro conversion with useAvroLogicalTypes; JSON is
// re-serialized with numbers held as INT64, UINT64 or FLOAT64, as BigQuery
// stores them.
func bigQueryValue(t *testing.T, m *Mapping, v any) bigquery.Value {
	t.Helper()
	if u, ok := v.(map[string]any); ok && len(u) == 1 {
		if inner, ok := u[m.unionName]; ok {
			v = inner
		}
	}
	if v == nil {
		return nil
	}
	switch m.BigQuery.Type {
	case bigquery.IntegerFieldType:
		switch n := v.(type) {
		case int32:
			return int64(n)
		case int64:
			return n
		}
	case bigquery.FloatFieldType:
		switch f := v.(type) {
		case float32:
			return float64(f)
		case float64:
			return f
		}
	case bigquery.DateFieldType:
		return civil.DateOf(v.(time.Time))
	case bigquery.TimeFieldType:
		d := v.(time.Duration)
		return civil.TimeOf(time.Unix(0, 0).UTC().Add(d))
	case bigquery.DateTimeFieldType:
		return civil.DateTimeOf(time.UnixMicro(v.(int64)).UTC())
	case bigquery.TimestampFieldType:
		return v.(time.Time)
	case bigquery.NumericFieldType, bigquery.BigNumericFieldType:
		return v.(*big.Rat)
	case bigquery.JSONFieldType:
		return bigQueryJSON(t, v.(string))
	case bigquery.RecordFieldType:
		rec := v.(map[string]any)
		out := make([]bigquery.Value, len(m.fields))
		for i, f := range m.fields {
			out[i] = bigQueryValue(t, f, rec[f.Name])
		}
		return out
	}
	return v
}

func bigQueryJSON(t *testing.T, s string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("BigQuery JSON %q: %v", s, err)
	}
	var norm func(any) any
	norm = func(v any) any {
		switch v := v.(type) {
		case json.Number:
			if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				return v
			}
			if _, err := strconv.ParseUint(string(v), 10, 64); err == nil {
				return v
			}
			f, _ := strconv.ParseFloat(string(v), 64)
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		case []any:
			for i := range v {
				v[i] = norm(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = norm(v[k])
			}
		}
		return v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(norm(v)); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}

func TestConvertNatives(t *testing.T) {
	rat := func(s string) *big.Rat { r, _ := new(big.Rat).SetString(s); return r }
	cases := []struct {
		typ  typ
		text string
		want any
	}{
		{tInt4, "-5", int32(-5)},
		{tInt8, "5", int64(5)},
		{tFloat4, "0.1", float32(0.1)},
		{tNum10_2, "1.50", rat("1.5")},
		{tMoney, "$0.01", rat("0.01")},
		{tBytea, `\x00ff00`, []byte{0, 0xff, 0}},
		{tDate, "1970-01-02", int32(1)},
		{tDate, "1969-12-31", int32(-1)},
		{tTime, "00:00:01.5", int64(1500000)},
		{tTimestamp, "1970-01-01 00:00:01", int64(1000000)},
		{tTimestamptz, "1970-01-01 01:00:00+01", int64(0)},
		{tTimestamptz, "0001-01-01 00:00:00+00", int64(-62135596800000000)},
		{tText, "x", "x"},
		{tInt4Arr, "{{1,NULL},{3,4}}", "[[1,null],[3,4]]"},
		{tTextArr, `{"a\"b"}`, `["a\"b"]`},
		{tFloat8Arr, "{NaN,1.5}", `["NaN",1.5]`},
	}
	for _, tc := range cases {
		m := mustMap(t, tc.typ)
		got, err := m.Convert([]byte(tc.text))
		if err != nil {
			t.Errorf("%s Convert(%q): %v", m.PG, tc.text, err)
			continue
		}
		v := got.(map[string]any)[m.unionName]
		if r, ok := tc.want.(*big.Rat); ok {
			if gr, ok := v.(*big.Rat); !ok || gr.Cmp(r) != 0 {
				t.Errorf("%s Convert(%q) = %#v, want %v", m.PG, tc.text, v, r)
			}
			continue
		}
		if b, ok := tc.want.([]byte); ok {
			if gb, ok := v.([]byte); !ok || !bytes.Equal(gb, b) {
				t.Errorf("%s Convert(%q) = %#v, want %#v", m.PG, tc.text, v, b)
			}
			continue
		}
		if v != tc.want {
			t.Errorf("%s Convert(%q) = %#v, want %#v", m.PG, tc.text, v, tc.want)
		}
	}
}

func TestMapColumn(t *testing.T) {
	cases := []struct {
		typ  typ
		pg   string
		bq   bigquery.FieldType
		avro string
	}{
		{tNumeric, "numeric", bigquery.StringFieldType, `"string"`},
		{tNum10_2, "numeric(10,2)", bigquery.NumericFieldType, `{"logicalType":"decimal","precision":10,"scale":2,"type":"bytes"}`},
		{typ{1700, numericTypmod(38, 9)}, "numeric(38,9)", bigquery.NumericFieldType, `{"logicalType":"decimal","precision":38,"scale":9,"type":"bytes"}`},
		{typ{1700, numericTypmod(30, 0)}, "numeric(30,0)", bigquery.BigNumericFieldType, `{"logicalType":"decimal","precision":30,"scale":0,"type":"bytes"}`},
		{typ{1700, numericTypmod(20, 10)}, "numeric(20,10)", bigquery.BigNumericFieldType, `{"logicalType":"decimal","precision":20,"scale":10,"type":"bytes"}`},
		{typ{1700, numericTypmod(76, 38)}, "numeric(76,38)", bigquery.BigNumericFieldType, `{"logicalType":"decimal","precision":76,"scale":38,"type":"bytes"}`},
		{typ{1700, numericTypmod(39, 0)}, "numeric(39,0)", bigquery.StringFieldType, `"string"`},
		{typ{1700, numericTypmod(50, 40)}, "numeric(50,40)", bigquery.StringFieldType, `"string"`},
		{tNum5_m2, "numeric(5,-2)", bigquery.NumericFieldType, `{"logicalType":"decimal","precision":7,"scale":0,"type":"bytes"}`},
		{tTimestamptz, "timestamptz", bigquery.TimestampFieldType, `{"logicalType":"timestamp-micros","type":"long"}`},
		{tTimestamp, "timestamp", bigquery.DateTimeFieldType, `{"logicalType":"local-timestamp-micros","type":"long"}`},
		{tChar, `"char"`, bigquery.StringFieldType, `"string"`},
		{tBpchar, "bpchar(5)", bigquery.StringFieldType, `"string"`},
		{tPosint, "public.posint (domain over int4)", bigquery.IntegerFieldType, `"int"`},
		{tNumArr, "numeric(10,2)[]", bigquery.JSONFieldType, `{"sqlType":"JSON","type":"string"}`},
		{typ{1020, -1}, "box[]", bigquery.StringFieldType, `"string"`},
		{typ{5069, -1}, "xid8", bigquery.StringFieldType, `"string"`},
	}
	for _, tc := range cases {
		m := mustMap(t, tc.typ)
		avro, _ := json.Marshal(m.Avro)
		if m.PG != tc.pg || m.BigQuery.Type != tc.bq || string(avro) != tc.avro {
			t.Errorf("MapColumn(%v) = %s %s %s; want %s %s %s", tc.typ, m.PG, m.BigQuery.Type, avro, tc.pg, tc.bq, tc.avro)
		}
		if !strings.Contains(m.BigQuery.Description, "Postgres col "+tc.pg) {
			t.Errorf("description %q does not name the column and type", m.BigQuery.Description)
		}
	}

	// Composite: RECORD with the attributes' names mapped and kept in the description.
	m := mustMap(t, tPair)
	if m.BigQuery.Type != bigquery.RecordFieldType || len(m.BigQuery.Schema) != 3 {
		t.Fatalf("composite maps to %s with %d fields", m.BigQuery.Type, len(m.BigQuery.Schema))
	}
	if got := m.BigQuery.Schema[1]; got.Name != BigQueryColumnName("B c") || !strings.Contains(got.Description, `"B c"`) {
		t.Errorf("attribute \"B c\" maps to %q described %q", got.Name, got.Description)
	}

	// Per-column override to exact text.
	o, err := MapColumn(Column{Name: "ts", TypeOID: 1114, TypeMod: -1, AsText: true}, testResolver)
	if err != nil || o.BigQuery.Type != bigquery.StringFieldType || !o.Lossless {
		t.Fatalf("AsText: %+v, %v", o, err)
	}
	if v, err := o.Convert([]byte("infinity")); err != nil || v.(map[string]any)["string"] != "infinity" {
		t.Errorf("AsText Convert(infinity) = %v, %v", v, err)
	}

	// Unknown OIDs are an error, not a guess.
	if _, err := MapColumn(Column{Name: "x", TypeOID: 999999, TypeMod: -1}, Builtin); err == nil {
		t.Error("MapColumn with an unknown OID succeeded")
	}
}

func TestFormatIntervalISO(t *testing.T) {
	// Expected texts are Postgres 15's output with IntervalStyle iso_8601.
	cases := []struct {
		months, days int32
		micros       int64
		want         string
	}{
		{0, 0, 0, "PT0S"},
		{14, 3, 4*3600000000 + 5*60000000 + 6700000, "P1Y2M3DT4H5M6.7S"},
		{0, -1, 2 * 3600000000, "P-1DT2H"},
		{-14, 0, 0, "P-1Y-2M"},
		{0, 0, -1500000, "PT-1.5S"},
		{0, 0, -(3600000000 + 1), "PT-1H-0.000001S"},
		{0, 0, 1, "PT0.000001S"},
	}
	for _, tc := range cases {
		if got := formatIntervalISO(tc.months, tc.days, tc.micros); got != tc.want {
			t.Errorf("formatIntervalISO(%d, %d, %d) = %s, want %s", tc.months, tc.days, tc.micros, got, tc.want)
		}
	}
}

func TestJSONNumberExact(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-9223372036854775808": true, "18446744073709551615": true,
		"18446744073709551616": false, "0.1": true, "1.0": true, "1e2": true, "1.5e300": true,
		"1e400": false, "0.10000000000000001": false, "1e-400": false, "3.141592653589793238": false,
	} {
		if got := jsonNumberExact(s); got != want {
			t.Errorf("jsonNumberExact(%s) = %v, want %v", s, got, want)
		}
	}
}
