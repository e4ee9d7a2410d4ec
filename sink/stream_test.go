package sink

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/tributary-cdc/tributary/schema"
)

func TestInsertRow(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	rat := func(s string) *big.Rat { r, _ := new(big.Rat).SetString(s); return r }
	fields := append(schema.EnvelopeBigQuerySchema(),
		&bigquery.FieldSchema{Name: "i", Type: bigquery.IntegerFieldType},
		&bigquery.FieldSchema{Name: "f", Type: bigquery.FloatFieldType},
		&bigquery.FieldSchema{Name: "n", Type: bigquery.NumericFieldType},
		&bigquery.FieldSchema{Name: "b", Type: bigquery.BytesFieldType},
		&bigquery.FieldSchema{Name: "d", Type: bigquery.DateFieldType},
		&bigquery.FieldSchema{Name: "t", Type: bigquery.TimeFieldType},
		&bigquery.FieldSchema{Name: "dt", Type: bigquery.DateTimeFieldType},
		&bigquery.FieldSchema{Name: "ts", Type: bigquery.TimestampFieldType},
		&bigquery.FieldSchema{Name: "ok", Type: bigquery.BooleanFieldType},
		&bigquery.FieldSchema{Name: "s", Type: bigquery.StringFieldType},
		&bigquery.FieldSchema{Name: "rec", Type: bigquery.RecordFieldType, Schema: bigquery.Schema{
			{Name: "x", Type: bigquery.IntegerFieldType}, {Name: "y", Type: bigquery.StringFieldType}}},
	)
	envelope := map[string]any{
		schema.ColOp: "u", schema.ColCommitLSN: int64(26375080), schema.ColSeq: int64(3), schema.ColCommitTS: ts,
		schema.ColXid: int64(900), schema.ColLSN: int64(26375000), schema.ColUnchanged: []any{"s"},
	}
	wantEnvelope := map[string]bigquery.Value{
		schema.ColOp: "u", schema.ColCommitLSN: "26375080", schema.ColSeq: "3", schema.ColCommitTS: "2026-01-02 03:04:05.123456 UTC",
		schema.ColXid: "900", schema.ColLSN: "26375000", schema.ColUnchanged: []any{"s"},
	}
	with := func(base map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	withWant := func(kv ...any) map[string]bigquery.Value {
		out := map[string]bigquery.Value{}
		for k, v := range wantEnvelope {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name string
		rec  map[string]any
		want map[string]bigquery.Value
		err  string
	}{
		{"every type", with(envelope,
			"i", map[string]any{"long": int64(math.MaxInt64)}, "f", map[string]any{"double": 0.1},
			"n", map[string]any{"bytes.decimal": rat("-12.5")}, "b", map[string]any{"bytes": []byte{0, 1, 0xff}},
			"d", map[string]any{"int.date": time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
			"t", map[string]any{"long.time-micros": time.Hour + 2*time.Minute + 3456789*time.Microsecond},
			"dt", map[string]any{"long": int64(946684799500000)},
			"ts", map[string]any{"long.timestamp-micros": ts}, "ok", map[string]any{"boolean": false}, "s", map[string]any{"string": "ü"},
			"rec", map[string]any{"public.t.rec": map[string]any{"x": map[string]any{"int": int32(-7)}, "y": nil}}),
			withWant("i", "9223372036854775807", "f", 0.1, "n", "-12.5", "b", "AAH/", "d", "2026-03-01", "t", "01:02:03.456789",
				"dt", "1999-12-31 23:59:59.500000", "ts", "2026-01-02 03:04:05.123456 UTC", "ok", false, "s", "ü",
				"rec", map[string]bigquery.Value{"x": "-7", "y": nil}), ""},
		{"nulls", with(envelope, "i", nil, "n", nil, "rec", nil),
			withWant("i", nil, "n", nil, "rec", nil), ""},
		{"float specials", with(envelope, "f", map[string]any{"double": math.Inf(-1)}), withWant("f", "-Infinity"), ""},
		{"NaN", with(envelope, "f", map[string]any{"float": float32(math.NaN())}), withWant("f", "NaN"), ""},
		{"decimal of many places", with(envelope, "n", map[string]any{"bytes.decimal": rat("0.000000001")}), withWant("n", "0.000000001"), ""},
		{"an unwrapped column", with(envelope, "i", int64(1)), nil, "column i: got int64, want a goavro union"},
		{"a wrong type", with(envelope, "ok", map[string]any{"string": "yes"}), nil, "column ok: got string, want bool"},
		{"not a decimal", with(envelope, "n", map[string]any{"bytes.decimal": big.NewRat(1, 3)}), nil, "column n: 1/3 is not a decimal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := InsertRow(fields, tt.rec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestInsertErrorClass(t *testing.T) {
	row := func(reasons ...string) bigquery.RowInsertionError {
		var me bigquery.MultiError
		for _, r := range reasons {
			me = append(me, &bigquery.Error{Reason: r, Message: r + " row"})
		}
		return bigquery.RowInsertionError{Errors: me}
	}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"an invalid row, the others stopped", bigquery.PutMultiError{row("stopped"), row("invalid"), row("stopped")}, Permanent},
		{"a backend error", bigquery.PutMultiError{row("backendError")}, Retryable},
		{"backend and invalid", bigquery.PutMultiError{row("backendError"), row("invalid")}, Permanent},
		{"only stopped", bigquery.PutMultiError{row("stopped")}, Permanent},
		{"not row errors", errors.New("boom"), Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(insertError(tt.err)); got != tt.want {
				t.Errorf("Classify = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSoftDeleteStatements(t *testing.T) {
	st := Statements{Project: "p", Dataset: "d", Changelog: "public__t__changelog", Current: "public__t", Stage: "public__t__stage",
		SoftStage: "public__t__stage_soft", SoftDelete: true, Key: []string{"id"}, Columns: []string{"id", "v"}, Toastable: []string{"v"}}
	bt := func(s string) string { return strings.ReplaceAll(s, "^", "`") }
	tests := []struct{ name, got, want string }{
		{"soft stage", st.SoftStageSQL(), bt(`CREATE TABLE ^p.d.public__t__stage_soft^ AS
WITH tr AS (SELECT l AS _tributary_tl, q AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS q FROM ^p.d.public__t__changelog^ WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),
lv AS (SELECT _tributary_key,
  ARRAY_AGG(IF(_tributary_op = 'd' OR 'id' IN UNNEST(_tributary_unchanged), NULL, STRUCT(^id^ AS v)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)].v AS ^id^,
  ARRAY_AGG(IF(_tributary_op = 'd' OR 'v' IN UNNEST(_tributary_unchanged), NULL, STRUCT(^v^ AS v)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)].v AS ^v^
  FROM (SELECT TO_JSON_STRING(STRUCT(c.^id^)) AS _tributary_key, c.* FROM ^p.d.public__t__changelog^ AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts)))
  WHERE _tributary_key IN (SELECT _tributary_key FROM ^p.d.public__t__stage^ WHERE _tributary_op = 'd')
  GROUP BY _tributary_key)
SELECT st._tributary_key, st._tributary_op, st._tributary_commit_lsn, st._tributary_seq, st._tributary_commit_ts,
  IF(st._tributary_op = 'd', lv.^id^, st.^id^) AS ^id^,
  IF(st._tributary_op = 'd', lv.^v^, st.^v^) AS ^v^,
  st._tributary_op = 'd' AS _tributary_deleted
FROM ^p.d.public__t__stage^ AS st LEFT JOIN lv ON lv._tributary_key = st._tributary_key`)},
		{"insert soft stage", st.InsertSoftStagedSQL(), bt(`INSERT INTO ^p.d.public__t^ (_tributary_key, _tributary_commit_lsn, _tributary_seq, _tributary_commit_ts, ^id^, ^v^, _tributary_deleted)
SELECT _tributary_key, _tributary_commit_lsn, _tributary_seq, _tributary_commit_ts, ^id^, ^v^, _tributary_deleted FROM ^p.d.public__t__stage_soft^`)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\ngot\n%s\nwant\n%s", tt.name, tt.got, tt.want)
		}
	}
}
