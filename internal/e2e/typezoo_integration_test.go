package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/schema"
)

// zooColumn is one column of the type-zoo tables: its type and the values
// worth trying (SQL expressions; the first is an ordinary value).
type zooColumn struct {
	name, typ string
	values    []string
}

// l quotes s as a SQL string literal.
func l(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func ls(ss ...string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = l(s)
	}
	return out
}

// The type zoo of capture's test, with timestamps at the edges of what the
// BigQuery emulator's TIMESTAMP (nanoseconds in an int64) holds.
var zooColumns = []zooColumn{
	{name: "c_bool", typ: "bool", values: ls("true", "false")},
	{name: "c_int2", typ: "int2", values: ls("12", "-32768", "32767", "0")},
	{name: "c_int4", typ: "int4", values: ls("1234", "-2147483648", "2147483647")},
	{name: "c_int8", typ: "int8", values: ls("1234567890123", "-9223372036854775808", "9223372036854775807")},
	{name: "c_oid", typ: "oid", values: ls("12345", "0", "4294967295")},
	{name: "c_float4", typ: "float4", values: ls("1.5", "-3.4028235e+38", "3.4028235e+38", "1e-45", "1.1754944e-38", "-0", "NaN", "Infinity", "-Infinity", "0.1")},
	{name: "c_float8", typ: "float8", values: ls("0.1", "-1.7976931348623157e+308", "1.7976931348623157e+308", "5e-324", "-0", "NaN", "Infinity", "-Infinity", "1e21", "123456789012345680000")},
	{name: "c_numeric", typ: "numeric", values: append(ls("3.14", "0", "NaN", "Infinity", "-Infinity",
		"1234567890123456789012345678901234567890", "-0.000000000000000000000000000000000000000001"),
		`repeat('9', 1000)::numeric`, `('-0.' || repeat('0', 999) || '1')::numeric`)},
	{name: "c_num10_2", typ: "numeric(10,2)", values: ls("12.34", "-99999999.99", "99999999.99", "0.01", "0", "1.005", "NaN")},
	{name: "c_num38_9", typ: "numeric(38,9)", values: ls("1.5", "-99999999999999999999999999999.999999999", "99999999999999999999999999999.999999999", "0.000000001", "NaN")},
	{name: "c_num60_20", typ: "numeric(60,20)", values: append(ls("1.5", "0.00000000000000000001", "NaN"),
		`(repeat('9', 40) || '.' || repeat('9', 20))::numeric`, `('-' || repeat('9', 40) || '.' || repeat('9', 20))::numeric`)},
	{name: "c_num40_10", typ: "numeric(40,10)", values: append(ls("2.5", "0.0000000001", "NaN"),
		`('-' || repeat('9', 30) || '.' || repeat('9', 10))::numeric`)},
	{name: "c_num3_5", typ: "numeric(3,5)", values: ls("0.00123", "-0.00999", "0", "NaN")},
	{name: "c_num5_m2", typ: "numeric(5,-2)", values: ls("1200", "9999900", "-9999900", "-50", "NaN")},
	{name: "c_money", typ: "money", values: ls("12.34", "-92233720368547758.08", "92233720368547758.07", "0", "-0.01")},
	{name: "c_text", typ: "text", values: append(ls("hello", "", "NULL", "😀 grinning, 𝄞 clef", "tab\there\nnewline\\back\"quote'", "\x01\x7f", "Zürich ∑ 中文"),
		// 1 MiB of md5 hex, which pglz cannot shrink much: stored out of line.
		`(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 32768) g)`)},
	{name: "c_varchar", typ: "varchar(10)", values: ls("short", "", "😀😀😀😀😀😀😀😀😀😀")},
	{name: "c_bpchar", typ: "bpchar(5)", values: ls("ab", "", "😀", "abcde")},
	{name: "c_name", typ: "name", values: ls("a_name", "", strings.Repeat("n", 63), "x😀")},
	{name: "c_char", typ: `"char"`, values: ls("a", "", "é", `\`)},
	{name: "c_bytea", typ: "bytea", values: append(ls(`\xdeadbeef`, `\x`, `\x00`, `\x000100ff00`),
		`decode(repeat('00', 4096), 'hex')`)},
	{name: "c_uuid", typ: "uuid", values: ls("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")},
	{name: "c_json", typ: "json", values: ls(`{"a": 1, "b": [true, null, "x"]}`, `{}`, `[]`, `null`, `""`, `{"a":1,"a":2}`,
		`{"big": 12345678901234567890123}`, `{"f": 0.1, "e": 1e2, "z": -0, "g": 1.0}`, `{"n": 1e400}`,
		`{"😀": "\ud83d\ude00", "nul": "\u0000"}`, `  {"ws" : [ 1 , 2 ] }  `, `{"deep":{"a":{"b":{"c":{"d":[1,[2,[3,{"e":null}]]]}}}}}`)},
	{name: "c_jsonb", typ: "jsonb", values: ls(`{"a": 1}`, `{"a":1,"a":2}`, `{"u": 18446744073709551615}`, `{"u": 18446744073709551616}`,
		`{"x": 1.5e300}`, `{"😀": ["😀"], "": ""}`, `"\u00e9"`, `[1.000, 2.50, -0.0]`,
		`{"l1":{"l2":{"l3":{"l4":{"l5":[{"l6":[1,2,{"l7":null}]}]}}}}}`)},
	{name: "c_xml", typ: "xml", values: ls("<a>1</a>", "", `<a b="😀">x &amp; y</a>`, "text only")},
	{name: "c_date", typ: "date", values: ls("2024-02-29", "0001-01-01", "9999-12-31", "1969-12-31", "1582-10-10", "10000-01-01", "0001-01-01 BC", "4713-01-01 BC", "5874897-12-31", "infinity", "-infinity")},
	{name: "c_ts", typ: "timestamp", values: ls("2024-02-29 12:34:56.789012", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999", "1900-01-01 00:00:00.5",
		"10000-01-01 00:00:00", "0044-03-15 12:00:00 BC", "4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999", "infinity", "-infinity")},
	{name: "c_tstz", typ: "timestamptz", values: ls("2024-02-29 12:34:56.789012+00", "2024-06-01 12:00:00+05:30", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00", "1969-12-31 23:59:59.999999+00",
		"0001-01-01 00:00:00+01", "9999-12-31 23:00:00-05", "0044-03-15 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00", "infinity", "-infinity",
		"2262-04-11 23:47:16.854775+00", "2262-04-11 23:47:16.854776+00", "3000-01-01 00:00:00+00", "1677-09-21 00:12:43.145225+00", "1677-09-21 00:12:43.145224+00")},
	{name: "c_time", typ: "time", values: ls("12:34:56.789012", "00:00:00", "23:59:59.999999", "24:00:00")},
	{name: "c_timetz", typ: "timetz", values: ls("12:34:56+02", "00:00:00+15:59", "24:00:00-15:59", "23:59:59.999999+00")},
	{name: "c_interval", typ: "interval", values: ls("1 year 2 mons 3 days 04:05:06.5", "0", "-1 years -2 mons +3 days -04:05:06.789",
		"178000000 years", "-178000000 years", "2147483647 days", "-2147483648 days", "2562047788:00:54.775807", "-2562047788:00:54.775807",
		"0.000001 seconds", "-1 day +04:00:00", "1 mon -1 sec", "-2147483648 mons")},
	{name: "c_inet", typ: "inet", values: ls("192.168.0.1", "10.0.0.0/8", "::1", "2001:db8::1/64", "::ffff:1.2.3.4")},
	{name: "c_cidr", typ: "cidr", values: ls("10.0.0.0/8", "::/0", "192.168.1.0/24")},
	{name: "c_macaddr", typ: "macaddr", values: ls("08:00:2b:01:02:03", "FF:FF:FF:FF:FF:FF")},
	{name: "c_macaddr8", typ: "macaddr8", values: ls("08:00:2b:01:02:03:04:05", "08:00:2b:01:02:03")},
	{name: "c_bit", typ: "bit(4)", values: ls("1010", "0000", "1111")},
	{name: "c_varbit", typ: "varbit", values: ls("101", "", "1")},
	{name: "c_tsvector", typ: "tsvector", values: ls("a fat cat", "", `'it''s' '😀':1A 'x\\y'`)},
	{name: "c_enum", typ: "zoo_mood", values: ls("ok", `très "happy" 😀`)},
	{name: "c_domain", typ: "zoo_posint", values: ls("7", "2147483647", "1")},
	{name: "c_enumarr", typ: "zoo_mood[]", values: ls(`{ok,"très \"happy\" 😀",NULL}`)},
	{name: "c_domarr", typ: "zoo_posint[]", values: ls("{1,NULL,2147483647}", "{}")},
	{name: "c_int4arr", typ: "int4[]", values: ls("{1,2,3}", "{}", "{NULL}", "{1,NULL,3}", "{{1,2},{3,4}}",
		"{{{1},{2}},{{3},{NULL}}}", "{-2147483648,2147483647}", "[0:1]={1,2}")},
	{name: "c_int8arr", typ: "int8[]", values: ls("{1}", "{-9223372036854775808,9223372036854775807}")},
	{name: "c_textarr", typ: "text[]", values: ls("{a,b}", "{}", `{"",NULL,"NULL","a,b","q\"u","back\\slash","😀"," sp ","{}"}`,
		"{{a,b},{c,NULL}}")},
	{name: "c_float8arr", typ: "float8[]", values: ls("{0.1}", "{NaN,Infinity,-Infinity,-0,5e-324,1.7976931348623157e+308}")},
	{name: "c_float4arr", typ: "float4[]", values: ls("{1.5}", "{3.4028235e+38,1e-45,NaN,-0}")},
	{name: "c_numarr", typ: "numeric[]", values: ls("{1.50}", "{NaN,Infinity,-Infinity,0.000000000000000000000000000001,123456789012345678901234567890123456789}")},
	{name: "c_decarr", typ: "numeric(10,2)[]", values: ls("{1.50}", "{NaN,-99999999.99}")},
	{name: "c_boolarr", typ: "bool[]", values: ls("{t,f,NULL}")},
	{name: "c_tsarr", typ: "timestamp[]", values: ls(`{"2024-01-01 00:00:00"}`, `{infinity,"0044-03-15 00:00:00 BC",NULL}`)},
	{name: "c_jsonbarr", typ: "jsonb[]", values: ls(`{"{\"a\": 1}"}`, `{"{\"a\": 1}",NULL,"[1, \"😀\"]"}`)},
	{name: "c_comp", typ: "zoo_pair", values: ls(`(1,"a,b",1.50)`, `(,,)`, `(0,"",0)`, `(3,NULL,1)`, `(1,"q\"u\\o ( ) 😀",NaN)`)},
	{name: "c_comparr", typ: "zoo_pair[]", values: ls(`{"(1,x,1.00)"}`, `{"(1,x,1.00)",NULL,"(,,)","(2,\"\",)"}`, `{"(1,y,NaN)"}`)},
	{name: "c_comp2", typ: "zoo_dropped", values: ls(`(1,x)`, `(,)`)},
	{name: "c_nest", typ: "zoo_nest", values: ls(`("(1,a,1.00)","{1,NULL}","2024-01-01 00:00:00","a=>1")`, `(,,,)`,
		`("(,,)",{},"0001-01-01 00:00:00","""😀""=>NULL")`, `("(2,b,NaN)",,,)`, `(,"{{1,2},{3,4}}",infinity,)`)},
	{name: "c_int4range", typ: "int4range", values: ls("[1,10)", "empty", "(,)", "[,5]", "[-2147483648,2147483647)")},
	{name: "c_tstzrange", typ: "tstzrange", values: ls("[2024-01-01 00:00:00+00,2024-02-01 00:00:00+00)", "[2024-01-01,infinity)", "empty", "(,)")},
	{name: "c_int4multirange", typ: "int4multirange", values: ls("{[1,3),[5,7)}", "{}", "{(,)}")},
	{name: "c_hstore", typ: "hstore", values: ls("a=>1, b=>NULL", "", `"😀"=>"x", ""=>""`, `"a\"b"=>"c\\d"`, `k=>"NULL"`)},
}

// The BigQuery emulator cannot hold every value BigQuery holds (see the
// README). A value it cannot hold goes into a table of its own kind, so the
// load refused for it holds nothing else and hides no other value.
const (
	emuNone = ""
	// Refused by the local stack's proxy.
	emuNaN     = "nan"     // FLOAT NaN: the emulator would store NULL
	emuJSONNum = "jsonnum" // JSON holding numbers: the emulator turns them into strings
	// Changed by the emulator without the proxy refusing them.
	emuNegZero    = "negzero"    // FLOAT -0: the emulator stores 0
	emuTSNanos    = "tsnanos"    // TIMESTAMP outside 1677-09-21..2262-04-11: nanoseconds in an int64 wrap around
	emuJSONNull   = "jsonnull"   // a JSON null column value: loaded from NDJSON as SQL NULL
	emuJSONNUL    = "jsonnul"    // JSON holding U+0000: read back as invalid JSON (\x00)
	emuRecordJSON = "recordjson" // JSON inside a RECORD: read back parsed, not as JSON text
)

// zooKinds are the kinds of row, each with its own table.
var zooKinds = []string{emuNone, emuNaN, emuJSONNum, emuNegZero, emuTSNanos, emuJSONNull, emuJSONNUL, emuRecordJSON}

// zooTable names the table of rows of a kind.
func zooTableOf(kind string) string {
	if kind == emuNone {
		return "zoo"
	}
	return "zoo_" + kind
}

// zooReasons is what the reason of a refused load must say for each kind.
var zooReasons = map[string]string{
	emuNaN:        "NaN cannot be stored by the BigQuery emulator",
	emuJSONNum:    "JSON holding numbers cannot be stored exactly by the BigQuery emulator",
	emuNegZero:    "BigQuery emulator",
	emuTSNanos:    "BigQuery emulator",
	emuJSONNull:   "BigQuery emulator",
	emuJSONNUL:    "BigQuery emulator",
	emuRecordJSON: "BigQuery emulator",
}

// The instants an int64 of nanoseconds since 1970 holds, to the microsecond.
var (
	minNanoMicros = int64(math.MinInt64 / 1000)
	maxNanoMicros = int64(math.MaxInt64 / 1000)
)

// emulatorLimit names the emulator limit a converted column value (goavro
// native, union-wrapped) runs into, or emuNone. The limits the proxy refuses
// come first: a value running into one of them is refused whatever else it
// holds.
func emulatorLimit(f *bigquery.FieldSchema, native any) string {
	var kinds []string
	walkBigQuery(f, native, false, func(k string) { kinds = append(kinds, k) })
	for _, k := range zooKinds {
		for _, have := range kinds {
			if have == k {
				return k
			}
		}
	}
	return emuNone
}

// walkBigQuery reports every emulator limit a value runs into; nested is set
// inside a RECORD.
func walkBigQuery(f *bigquery.FieldSchema, native any, nested bool, report func(string)) {
	u, ok := native.(map[string]any)
	if !ok || len(u) != 1 {
		return // NULL
	}
	var v any
	for _, x := range u {
		v = x
	}
	switch f.Type {
	case bigquery.FloatFieldType:
		var x float64
		switch y := v.(type) {
		case float32:
			x = float64(y)
		case float64:
			x = y
		}
		if math.IsNaN(x) {
			report(emuNaN)
		}
		if x == 0 && math.Signbit(x) {
			report(emuNegZero)
		}
	case bigquery.JSONFieldType:
		s, _ := v.(string)
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var doc any
		if dec.Decode(&doc) != nil {
			return
		}
		if hasNumber(doc) {
			report(emuJSONNum)
		}
		if doc == nil && !nested {
			report(emuJSONNull)
		}
		if strings.Contains(fmt.Sprint(doc), "\x00") {
			report(emuJSONNUL)
		}
		if nested {
			report(emuRecordJSON)
		}
	case bigquery.TimestampFieldType:
		if us, ok := v.(int64); ok && (us < minNanoMicros || us > maxNanoMicros) {
			report(emuTSNanos)
		}
	case bigquery.RecordFieldType:
		rec, _ := v.(map[string]any)
		for _, sub := range f.Schema {
			walkBigQuery(sub, rec[sub.Name], true, report)
		}
	}
}

func hasNumber(v any) bool {
	switch x := v.(type) {
	case json.Number:
		return true
	case []any:
		for _, e := range x {
			if hasNumber(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasNumber(e) {
				return true
			}
		}
	}
	return false
}

// zooRow is one inserted row: its id, the table it goes to, what it tries,
// and the SQL of each set column (the others are NULL).
type zooRow struct {
	id     int
	kind   string // emulator limit of the row's table
	label  string
	column string // the column the row exists for; empty for shared rows
	vals   map[string]string
}

// zooRows lays the values out as capture's type-zoo test does (a row of
// NULLs, a row of ordinary values, a row of its own for each further value
// the mapping may dead-letter, the further values of lossless columns side by
// side), except that each value the emulator cannot hold gets a row of its
// own in the table of its kind. texts holds Postgres' text of each value,
// maps each column's mapping.
func zooRows(maps map[string]*schema.Mapping, texts map[string][][]byte) []zooRow {
	rows := []zooRow{{label: "all NULL", vals: map[string]string{}}, {label: "ordinary", vals: map[string]string{}}}
	var shared []zooRow
	for _, c := range zooColumns {
		m := maps[c.name]
		for i, v := range c.values {
			native, err := m.Convert(texts[c.name][i])
			kind := emuNone
			if err == nil {
				kind = emulatorLimit(m.BigQuery, native)
			}
			switch {
			case kind != emuNone || (i > 0 && (err != nil || !m.Lossless)):
				label := c.name + " = " + v
				if len(label) > 60 {
					label = label[:57] + "..."
				}
				rows = append(rows, zooRow{kind: kind, label: label, column: c.name, vals: map[string]string{c.name: v}})
			case i == 0:
				rows[1].vals[c.name] = v
			default:
				for len(shared) < i {
					shared = append(shared, zooRow{label: fmt.Sprintf("lossless #%d", len(shared)+1), vals: map[string]string{}})
				}
				shared[i-1].vals[c.name] = v
			}
		}
	}
	rows = append(rows, shared...)
	for i := range rows {
		rows[i].id = i + 1
	}
	return rows
}

// zooDeadLetter is what the test reads of a dead-letter object of capture.
type zooDeadLetter struct {
	Column string         `json:"column"`
	Value  string         `json:"value"`
	Reason string         `json:"reason"`
	After  map[string]any `json:"after"`
}

// sinkDead is a row the sink dead-lettered, with the reason.
type sinkDead struct {
	reason, class, object string
}

// TestIntegrationTypeZooToBigQuery checks the promise of the type mapping,
// never to change a value silently, end to end: one column of every kind of
// type with the values at their edges goes through capture and sink into
// BigQuery, and every value is read back from the current-state table equal
// to Postgres' in canonical form, or its row is in a dead-letter with the
// reason: capture's for values the mapping cannot represent, the sink's for
// loads the BigQuery emulator cannot hold (which BigQuery itself would load).
func TestIntegrationTypeZooToBigQuery(t *testing.T) {
	kinds := zooKinds
	ddl := []string{
		`CREATE EXTENSION IF NOT EXISTS hstore`,
		`CREATE TYPE zoo_mood AS ENUM ('sad', 'ok', 'très "happy" 😀')`,
		`CREATE DOMAIN zoo_posint AS int4 CHECK (VALUE > 0)`,
		`CREATE TYPE zoo_pair AS (n int4, s text, d numeric(10,2))`,
		`CREATE TYPE zoo_dropped AS (a int4, gone text, b text)`,
		`ALTER TYPE zoo_dropped DROP ATTRIBUTE gone`,
		`CREATE TYPE zoo_nest AS (p zoo_pair, arr int4[], ts timestamp, h hstore)`,
	}
	var tables []capture.TableName
	for _, k := range kinds {
		name := zooTableOf(k)
		create := `CREATE TABLE ` + name + ` (id int4 PRIMARY KEY, label text`
		for _, c := range zooColumns {
			create += ", " + c.name + " " + c.typ
		}
		// Out of line and uncompressed, whatever pglz would make of the text.
		ddl = append(ddl, create+")", `ALTER TABLE `+name+` ALTER COLUMN c_text SET STORAGE EXTERNAL`)
		tables = append(tables, capture.TableName{Schema: "public", Name: name})
	}
	p := startPipeline(t, "e2e_typezoo", tables, ddl...)
	ctx := context.Background()

	// Read values the way capture receives them: in the same session
	// settings, in the text format.
	for k, v := range schema.SessionSettings {
		p.exec(`SELECT set_config($1, $2, false)`, k, v)
	}
	table := zooTable(t, p.db, "zoo")
	maps := map[string]*schema.Mapping{}
	for _, m := range table.Columns {
		maps[m.Column] = m
	}
	texts := map[string][][]byte{}
	for _, c := range zooColumns {
		exprs := make([]string, len(c.values))
		for i, v := range c.values {
			exprs[i] = "(" + v + ")::" + c.typ
		}
		texts[c.name] = zooText(t, p.db, "SELECT "+strings.Join(exprs, ", "), 1)[0]
	}
	rows := zooRows(maps, texts)
	want := map[string]int{}
	for _, r := range rows {
		cols, vals := []string{"id", "label"}, []string{strconv.Itoa(r.id), l(r.label)}
		for _, c := range zooColumns {
			if v, ok := r.vals[c.name]; ok {
				cols, vals = append(cols, c.name), append(vals, v)
			}
		}
		p.exec(`INSERT INTO ` + zooTableOf(r.kind) + ` (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(vals, ", ") + `)`)
		want[r.kind]++
	}
	var toasted int
	if err := p.db.QueryRow(ctx, `SELECT count(*) FROM zoo WHERE pg_column_size(c_text) >= 1048576`).Scan(&toasted); err != nil || toasted != 1 {
		t.Fatalf("rows holding the uncompressed 1 MiB text: %d, %v", toasted, err)
	}
	pgText := map[int][][]byte{}
	for _, k := range kinds {
		for _, row := range zooText(t, p.db, `SELECT * FROM `+zooTableOf(k)+` ORDER BY id`, want[k]) {
			id, _ := strconv.Atoi(string(row[0]))
			pgText[id] = row
		}
	}

	// Wait until every row is in BigQuery or in a dead-letter.
	var (
		loaded     map[int][]bigquery.Value
		capDead    map[int]zooDeadLetter
		sinkDeadBy map[int]sinkDead
	)
	selectList := make([]string, len(table.Columns))
	for i, m := range table.Columns {
		selectList[i] = schema.QuoteBigQuery(m.Name)
	}
	collect := func() (bool, error) {
		loaded, capDead, sinkDeadBy = map[int][]bigquery.Value{}, map[int]zooDeadLetter{}, map[int]sinkDead{}
		var errs []string
		for _, k := range kinds {
			name := zooTableOf(k)
			if err := p.zooCaptureDeadLetters(name, capDead); err != nil {
				return false, err
			}
			if err := p.zooSinkDeadLetters(name, sinkDeadBy); err != nil {
				return false, err
			}
			got, err := p.query("SELECT " + strings.Join(selectList, ", ") + " FROM " + bqTable(name, ""))
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			for _, row := range got {
				id, ok := row[0].(int64)
				if !ok {
					return false, fmt.Errorf("%s: id %v", name, row[0])
				}
				loaded[int(id)] = row
			}
		}
		accounted := 0
		for _, r := range rows {
			_, a := loaded[r.id]
			_, b := capDead[r.id]
			_, c := sinkDeadBy[r.id]
			if a || b || c {
				accounted++
			}
		}
		if accounted < len(rows) {
			return false, fmt.Errorf("%d of %d rows accounted for (%d loaded, %d dead-lettered by capture, %d by the sink); %s",
				accounted, len(rows), len(loaded), len(capDead), len(sinkDeadBy), strings.Join(errs, "; "))
		}
		return true, nil
	}
	p.waitUntil("every row of the zoo is in BigQuery or in a dead-letter", 5*time.Minute, collect)
	time.Sleep(5 * time.Second) // a late duplicate would show now
	if ok, err := collect(); !ok {
		t.Fatal(err)
	}

	type tally struct{ equal, capDead, sinkDead, silent int }
	per := map[string]*tally{}
	for _, m := range table.Columns {
		per[m.Column] = &tally{}
	}
	var silent, reasons []string
	silentAt := func(col, format string, args ...any) {
		silent = append(silent, fmt.Sprintf(format, args...))
		if c := per[col]; c != nil {
			c.silent++
		}
	}
	for _, r := range rows {
		text := pgText[r.id]
		bq, isLoaded := loaded[r.id]
		dl, isCapDead := capDead[r.id]
		sd, isSinkDead := sinkDeadBy[r.id]
		where := fmt.Sprintf("row %d of %s (%s)", r.id, zooTableOf(r.kind), r.label)
		switch {
		case isLoaded && (isCapDead || isSinkDead):
			silentAt("", "%s: both in BigQuery and dead-lettered", where)
		case isCapDead && isSinkDead:
			silentAt("", "%s: dead-lettered by capture and by the sink", where)
		case isLoaded:
			for j, m := range table.Columns {
				want, err := m.Canonical(text[j])
				if err != nil {
					silentAt(m.Column, "%s %s: in BigQuery, but Postgres' text %q has no canonical form: %v", where, m.Column, short(text[j]), err)
					continue
				}
				have, err := m.CanonicalBigQuery(bq[j])
				switch {
				case err != nil:
					silentAt(m.Column, "%s %s: BigQuery's value %v has no canonical form: %v", where, m.Column, bq[j], err)
				case (text[j] == nil) != (bq[j] == nil):
					silentAt(m.Column, "%s %s: NULL mismatch: Postgres %q, BigQuery %s", where, m.Column, short(text[j]), short([]byte(have)))
				case have != want:
					silentAt(m.Column, "%s %s: Postgres %q canonical %s, BigQuery %s", where, m.Column, short(text[j]), short([]byte(want)), short([]byte(have)))
				default:
					per[m.Column].equal++
				}
			}
			if r.kind != emuNone {
				t.Errorf("%s: loaded, though the emulator cannot hold %s values (%s): the local stack should have refused the load", where, r.kind, r.column)
			}
		case isCapDead:
			col := dlColumn(dl.Column, maps)
			m, known := maps[col]
			if !known || dl.Reason == "" {
				silentAt("", "%s: capture's dead-letter names column %q with reason %q", where, dl.Column, dl.Reason)
				continue
			}
			per[col].capDead++
			reasons = append(reasons, fmt.Sprintf("capture  row %3d %-22s %s: %s", r.id, dl.Column, short([]byte(dl.Value)), dl.Reason))
			j := columnIndex(table, col)
			if text[j] == nil || dl.Value != string(text[j]) {
				t.Errorf("%s: dead-letter value %q, Postgres has %q", where, short([]byte(dl.Value)), short(text[j]))
			}
			if _, err := m.Convert(text[j]); err == nil {
				t.Errorf("%s: dead-lettered for %s, which converts: %s", where, dl.Column, dl.Reason)
			}
		case isSinkDead:
			if r.column == "" || sd.reason == "" {
				silentAt("", "%s: dead-lettered by the sink without a column of its own or a reason (%q): values hidden", where, sd.reason)
				continue
			}
			per[r.column].sinkDead++
			reason := sd.reason
			if i := strings.Index(reason, ": field "); i >= 0 {
				reason = reason[i+2:] // what the conversion of the refused object said
			}
			reasons = append(reasons, fmt.Sprintf("sink     row %3d %-22s %s: [%s] %s", r.id, r.column, short([]byte(r.vals[r.column])), sd.class, reason))
			if r.kind == emuNone {
				t.Errorf("%s: its load was refused, though the emulator holds its values: %s", where, sd.reason)
			} else if !strings.Contains(sd.reason, zooReasons[r.kind]) {
				t.Errorf("%s: its load was refused for %q, want a reason naming the emulator's %s limit (%q)", where, sd.reason, r.kind, zooReasons[r.kind])
			}
		default:
			silentAt("", "%s: neither in BigQuery nor dead-lettered", where)
		}
	}
	for id := range loaded {
		if id < 1 || id > len(rows) {
			silentAt("", "BigQuery holds a row with id %d that Postgres never had", id)
		}
	}

	var b strings.Builder
	counts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		counts = append(counts, fmt.Sprintf("%s %d", zooTableOf(k), want[k]))
	}
	fmt.Fprintf(&b, "type zoo to BigQuery: %d rows (%s): %d in BigQuery, %d dead-lettered by capture, %d by the sink\n",
		len(rows), strings.Join(counts, ", "), len(loaded), len(capDead), len(sinkDeadBy))
	fmt.Fprintf(&b, "%-18s %-30s %6s %8s %8s %6s\n", "column", "type", "equal", "dead:cap", "dead:emu", "SILENT")
	var sum tally
	for _, m := range table.Columns {
		c := per[m.Column]
		fmt.Fprintf(&b, "%-18s %-30s %6d %8d %8d %6d\n", m.Column, short([]byte(m.PG)), c.equal, c.capDead, c.sinkDead, c.silent)
		sum.equal, sum.capDead, sum.sinkDead = sum.equal+c.equal, sum.capDead+c.capDead, sum.sinkDead+c.sinkDead
	}
	fmt.Fprintf(&b, "%-18s %-30s %6d %8d %8d %6d\n", "total", "", sum.equal, sum.capDead, sum.sinkDead, len(silent))
	b.WriteString("equal: values read back from BigQuery equal to Postgres' in canonical form;\n")
	b.WriteString("dead:cap: rows capture dead-lettered for the column (the mapping cannot represent the value);\n")
	b.WriteString("dead:emu: rows whose load the local stack refused for the column (the emulator cannot hold the value; BigQuery would load it);\n")
	b.WriteString("SILENT: values changed, lost or unaccounted for\n")
	sort.Strings(reasons)
	b.WriteString("dead-letter reasons:\n  " + strings.Join(reasons, "\n  "))
	t.Log(b.String())
	if len(silent) > 0 {
		t.Errorf("%d silent changes:\n  %s", len(silent), strings.Join(silent, "\n  "))
	}
}

// zooCaptureDeadLetters adds capture's dead-letters of public.table to out,
// by row id.
func (p *pipeline) zooCaptureDeadLetters(table string, out map[int]zooDeadLetter) error {
	prefix := p.name + "/_deadletter/" + schema.GCSSegment("public", table) + "/"
	names, err := p.objects(prefix)
	if err != nil {
		return err
	}
	for _, n := range names {
		body, err := p.read(n)
		if err != nil {
			return err
		}
		var d zooDeadLetter
		if err := json.Unmarshal(body, &d); err != nil {
			return fmt.Errorf("dead-letter %s: %w", n, err)
		}
		id, err := strconv.Atoi(fmt.Sprint(d.After["id"]))
		if err != nil {
			return fmt.Errorf("dead-letter %s: after.id %v", n, d.After["id"])
		}
		out[id] = d
	}
	return nil
}

// zooSinkDeadLetters adds the rows of the sink's dead-letters of
// public.table to out, by row id: for a refused load, every row of its
// objects; for an object that could not be written, every message.
func (p *pipeline) zooSinkDeadLetters(table string, out map[int]sinkDead) error {
	dls, err := p.sinkDeadLetters(table)
	if err != nil {
		return err
	}
	store := schema.NewStore(p.gcs, stack.Bucket, p.name)
	for _, d := range dls {
		for _, o := range d.Objects {
			recs, err := p.ocfRecords(o)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				id, ok := rec["id"].(map[string]any)["int"].(int32)
				if !ok {
					return fmt.Errorf("%s: id %v", o, rec["id"])
				}
				out[int(id)] = sinkDead{reason: d.Reason, class: d.Class, object: d.Name}
			}
		}
		for _, m := range d.Messages {
			ev, _, err := store.Decode(context.Background(), m.Data)
			if err != nil {
				return fmt.Errorf("%s: %w", d.Name, err)
			}
			id, ok := ev.After["id"].(map[string]any)["int"].(int32)
			if !ok {
				return fmt.Errorf("%s: id %v", d.Name, ev.After["id"])
			}
			out[int(id)] = sinkDead{reason: d.Reason, class: d.Class, object: d.Name}
		}
	}
	return nil
}

// dlColumn is the column a dead-letter path (col, col.attr, col[2]) starts at.
func dlColumn(path string, maps map[string]*schema.Mapping) string {
	if _, ok := maps[path]; ok {
		return path
	}
	if i := strings.IndexAny(path, ".["); i > 0 {
		return path[:i]
	}
	return path
}

func columnIndex(t *schema.Table, col string) int {
	for i, m := range t.Columns {
		if m.Column == col {
			return i
		}
	}
	return -1
}

// zooText runs q and returns every row's values as Postgres prints them in
// the text format (nil for NULL), as pgoutput sends them.
func zooText(t *testing.T, db *pgx.Conn, q string, n int) [][][]byte {
	t.Helper()
	rr := db.PgConn().ExecParams(context.Background(), q, nil, nil, nil, nil)
	var out [][][]byte
	for rr.NextRow() {
		var row [][]byte
		for _, v := range rr.Values() {
			if v == nil {
				row = append(row, nil)
			} else {
				row = append(row, append([]byte{}, v...))
			}
		}
		out = append(out, row)
	}
	if _, err := rr.Close(); err != nil {
		t.Fatalf("%s: %v", short([]byte(q)), err)
	}
	if len(out) != n {
		t.Fatalf("%s: %d rows, want %d", short([]byte(q)), len(out), n)
	}
	return out
}

// zooTable maps public.name as capture does, from pg_attribute and the
// catalog.
func zooTable(t *testing.T, db *pgx.Conn, name string) *schema.Table {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT attname, atttypid, atttypmod FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, pgx.Identifier{"public", name}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	var cols []schema.Column
	for rows.Next() {
		var c schema.Column
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeMod); err != nil {
			t.Fatal(err)
		}
		c.Key = c.Name == "id"
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	table, err := schema.MapTable("public", name, cols, schema.Chain(schema.Builtin, pgcatalog.New(stack.Postgres.DSN(stack.Database))))
	if err != nil {
		t.Fatal(err)
	}
	return table
}
