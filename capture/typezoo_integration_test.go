package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/schema"
)

// zooColumn is one column of the type-zoo table: its type, the values worth
// trying (SQL expressions; the first is an ordinary value), and optionally a
// second opinion on the canonical form computed by Postgres itself.
type zooColumn struct {
	name, typ string
	values    []string
	// truth, when set, is a SQL expression (the column as %[1]s) that
	// Postgres evaluates to the value's canonical text without any of this
	// module's parsing, or NULL where it has no opinion.
	truth string
	// truthJSON marks a column whose canonical form is compared with its
	// to_json rendering, leaf by leaf (arrays, composites, hstore).
	truthJSON bool
	// truthISO marks an interval column, compared with Postgres' own
	// IntervalStyle iso_8601 text.
	truthISO bool
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

// The range guard of the date and time truths: outside it the value goes to
// the dead-letter and there is nothing to compare.
const inBQRange = `CASE WHEN isfinite(%[1]s) AND %[1]s >= '0001-01-01' AND %[1]s < '10000-01-01' THEN `

var zooColumns = []zooColumn{
	{name: "c_bool", typ: "bool", values: ls("true", "false")},
	{name: "c_int2", typ: "int2", values: ls("12", "-32768", "32767", "0")},
	{name: "c_int4", typ: "int4", values: ls("1234", "-2147483648", "2147483647")},
	{name: "c_int8", typ: "int8", values: ls("1234567890123", "-9223372036854775808", "9223372036854775807")},
	{name: "c_oid", typ: "oid", values: ls("12345", "0", "4294967295")},
	{name: "c_float4", typ: "float4", values: ls("1.5", "-3.4028235e+38", "3.4028235e+38", "1e-45", "1.1754944e-38", "-0", "NaN", "Infinity", "-Infinity", "0.1")},
	{name: "c_float8", typ: "float8", values: ls("0.1", "-1.7976931348623157e+308", "1.7976931348623157e+308", "5e-324", "-0", "NaN", "Infinity", "-Infinity", "1e21", "123456789012345680000")},
	{name: "c_numeric", typ: "numeric", truth: `%[1]s::text`, values: append(ls("3.14", "0", "NaN", "Infinity", "-Infinity",
		"1234567890123456789012345678901234567890", "-0.000000000000000000000000000000000000000001"),
		`repeat('9', 1000)::numeric`, `('-0.' || repeat('0', 999) || '1')::numeric`)},
	{name: "c_num10_2", typ: "numeric(10,2)", truth: `%[1]s::text`, values: ls("12.34", "-99999999.99", "99999999.99", "0.01", "0", "1.005", "NaN")},
	{name: "c_num38_9", typ: "numeric(38,9)", truth: `%[1]s::text`, values: ls("1.5", "-99999999999999999999999999999.999999999", "99999999999999999999999999999.999999999", "0.000000001", "NaN")},
	{name: "c_num60_20", typ: "numeric(60,20)", truth: `%[1]s::text`, values: append(ls("1.5", "0.00000000000000000001", "NaN"),
		`(repeat('9', 40) || '.' || repeat('9', 20))::numeric`, `('-' || repeat('9', 40) || '.' || repeat('9', 20))::numeric`)},
	{name: "c_num40_10", typ: "numeric(40,10)", truth: `%[1]s::text`, values: append(ls("2.5", "0.0000000001", "NaN"),
		`('-' || repeat('9', 30) || '.' || repeat('9', 10))::numeric`)},
	{name: "c_num3_5", typ: "numeric(3,5)", truth: `%[1]s::text`, values: ls("0.00123", "-0.00999", "0", "NaN")},
	{name: "c_num5_m2", typ: "numeric(5,-2)", truth: `%[1]s::text`, values: ls("1200", "9999900", "-9999900", "-50", "NaN")},
	{name: "c_money", typ: "money", truth: `%[1]s::numeric::text`, values: ls("12.34", "-92233720368547758.08", "92233720368547758.07", "0", "-0.01")},
	{name: "c_text", typ: "text", values: append(ls("hello", "", "NULL", "😀 grinning, 𝄞 clef", "tab\there\nnewline\\back\"quote'", "\x01\x7f", "Zürich ∑ 中文"),
		// 1 MiB of md5 hex, which pglz cannot shrink much: stored out of line.
		`(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 32768) g)`)},
	{name: "c_varchar", typ: "varchar(10)", values: ls("short", "", "😀😀😀😀😀😀😀😀😀😀")},
	{name: "c_bpchar", typ: "bpchar(5)", values: ls("ab", "", "😀", "abcde")},
	{name: "c_name", typ: "name", values: ls("a_name", "", strings.Repeat("n", 63), "x😀")},
	{name: "c_char", typ: `"char"`, values: ls("a", "", "é", `\`)},
	{name: "c_bytea", typ: "bytea", truth: `'\x' || encode(%[1]s, 'hex')`, values: append(ls(`\xdeadbeef`, `\x`, `\x00`, `\x000100ff00`),
		`decode(repeat('00', 4096), 'hex')`)},
	{name: "c_uuid", typ: "uuid", values: ls("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")},
	{name: "c_json", typ: "json", values: ls(`{"a": 1, "b": [true, null, "x"]}`, `{}`, `[]`, `null`, `""`, `{"a":1,"a":2}`,
		`{"big": 12345678901234567890123}`, `{"f": 0.1, "e": 1e2, "z": -0, "g": 1.0}`, `{"n": 1e400}`,
		`{"😀": "\ud83d\ude00", "nul": "\u0000"}`, `  {"ws" : [ 1 , 2 ] }  `, `{"deep":{"a":{"b":{"c":{"d":[1,[2,[3,{"e":null}]]]}}}}}`)},
	{name: "c_jsonb", typ: "jsonb", values: ls(`{"a": 1}`, `{"a":1,"a":2}`, `{"u": 18446744073709551615}`, `{"u": 18446744073709551616}`,
		`{"x": 1.5e300}`, `{"😀": ["😀"], "": ""}`, `"\u00e9"`, `[1.000, 2.50, -0.0]`,
		`{"l1":{"l2":{"l3":{"l4":{"l5":[{"l6":[1,2,{"l7":null}]}]}}}}}`)},
	{name: "c_xml", typ: "xml", values: ls("<a>1</a>", "", `<a b="😀">x &amp; y</a>`, "text only")},
	{name: "c_date", typ: "date", truth: inBQRange + `to_char(%[1]s, 'YYYY-MM-DD') END`,
		values: ls("2024-02-29", "0001-01-01", "9999-12-31", "1969-12-31", "1582-10-10", "10000-01-01", "0001-01-01 BC", "4713-01-01 BC", "5874897-12-31", "infinity", "-infinity")},
	{name: "c_ts", typ: "timestamp", truth: inBQRange + `to_char(%[1]s, 'YYYY-MM-DD"T"HH24:MI:SS.US') END`,
		values: ls("2024-02-29 12:34:56.789012", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999", "1900-01-01 00:00:00.5",
			"10000-01-01 00:00:00", "0044-03-15 12:00:00 BC", "4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999", "infinity", "-infinity")},
	{name: "c_tstz", typ: "timestamptz", truth: inBQRange + `to_char(%[1]s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END`,
		values: ls("2024-02-29 12:34:56.789012+00", "2024-06-01 12:00:00+05:30", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00", "1969-12-31 23:59:59.999999+00",
			"0001-01-01 00:00:00+01", "9999-12-31 23:00:00-05", "0044-03-15 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00", "infinity", "-infinity")},
	{name: "c_time", typ: "time", truth: `to_char(%[1]s, 'HH24:MI:SS.US')`, values: ls("12:34:56.789012", "00:00:00", "23:59:59.999999", "24:00:00")},
	{name: "c_timetz", typ: "timetz", values: ls("12:34:56+02", "00:00:00+15:59", "24:00:00-15:59", "23:59:59.999999+00")},
	{name: "c_interval", typ: "interval", truthISO: true, values: ls("1 year 2 mons 3 days 04:05:06.5", "0", "-1 years -2 mons +3 days -04:05:06.789",
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
	{name: "c_enumarr", typ: "zoo_mood[]", truthJSON: true, values: ls(`{ok,"très \"happy\" 😀",NULL}`)},
	{name: "c_domarr", typ: "zoo_posint[]", truthJSON: true, values: ls("{1,NULL,2147483647}", "{}")},
	{name: "c_int4arr", typ: "int4[]", truthJSON: true, values: ls("{1,2,3}", "{}", "{NULL}", "{1,NULL,3}", "{{1,2},{3,4}}",
		"{{{1},{2}},{{3},{NULL}}}", "{-2147483648,2147483647}", "[0:1]={1,2}")},
	{name: "c_int8arr", typ: "int8[]", truthJSON: true, values: ls("{1}", "{-9223372036854775808,9223372036854775807}")},
	{name: "c_textarr", typ: "text[]", truthJSON: true, values: ls("{a,b}", "{}", `{"",NULL,"NULL","a,b","q\"u","back\\slash","😀"," sp ","{}"}`,
		"{{a,b},{c,NULL}}")},
	{name: "c_float8arr", typ: "float8[]", truthJSON: true, values: ls("{0.1}", "{NaN,Infinity,-Infinity,-0,5e-324,1.7976931348623157e+308}")},
	{name: "c_float4arr", typ: "float4[]", truthJSON: true, values: ls("{1.5}", "{3.4028235e+38,1e-45,NaN,-0}")},
	{name: "c_numarr", typ: "numeric[]", truthJSON: true, values: ls("{1.50}", "{NaN,Infinity,-Infinity,0.000000000000000000000000000001,123456789012345678901234567890123456789}")},
	{name: "c_decarr", typ: "numeric(10,2)[]", truthJSON: true, values: ls("{1.50}", "{NaN,-99999999.99}")},
	{name: "c_boolarr", typ: "bool[]", truthJSON: true, values: ls("{t,f,NULL}")},
	{name: "c_tsarr", typ: "timestamp[]", values: ls(`{"2024-01-01 00:00:00"}`, `{infinity,"0044-03-15 00:00:00 BC",NULL}`)},
	{name: "c_jsonbarr", typ: "jsonb[]", values: ls(`{"{\"a\": 1}"}`, `{"{\"a\": 1}",NULL,"[1, \"😀\"]"}`)},
	{name: "c_comp", typ: "zoo_pair", truthJSON: true, values: ls(`(1,"a,b",1.50)`, `(,,)`, `(0,"",0)`, `(3,NULL,1)`, `(1,"q\"u\\o ( ) 😀",NaN)`)},
	{name: "c_comparr", typ: "zoo_pair[]", truthJSON: true, values: ls(`{"(1,x,1.00)"}`, `{"(1,x,1.00)",NULL,"(,,)","(2,\"\",)"}`, `{"(1,y,NaN)"}`)},
	{name: "c_comp2", typ: "zoo_dropped", values: ls(`(1,x)`, `(,)`)},
	{name: "c_nest", typ: "zoo_nest", values: ls(`("(1,a,1.00)","{1,NULL}","2024-01-01 00:00:00","a=>1")`, `(,,,)`,
		`("(,,)",{},"0001-01-01 00:00:00","""😀""=>NULL")`, `("(2,b,NaN)",,,)`, `(,"{{1,2},{3,4}}",infinity,)`)},
	{name: "c_int4range", typ: "int4range", values: ls("[1,10)", "empty", "(,)", "[,5]", "[-2147483648,2147483647)")},
	{name: "c_tstzrange", typ: "tstzrange", values: ls("[2024-01-01 00:00:00+00,2024-02-01 00:00:00+00)", "[2024-01-01,infinity)", "empty", "(,)")},
	{name: "c_int4multirange", typ: "int4multirange", values: ls("{[1,3),[5,7)}", "{}", "{(,)}")},
	{name: "c_hstore", typ: "hstore", truthJSON: true, values: ls("a=>1, b=>NULL", "", `"😀"=>"x", ""=>""`, `"a\"b"=>"c\\d"`, `k=>"NULL"`)},
}

// zooRow is one inserted row: its id, what it tries, and the SQL of each set
// column (the others are NULL).
type zooRow struct {
	id    int
	label string
	vals  map[string]string
}

// zooRows lays the values out: a row of NULLs, a row of ordinary values, then
// each further value of a column whose mapping may dead-letter in a row of
// its own (the dead-letter takes the whole row, which must not hide other
// values), and the further values of lossless columns side by side.
func zooRows(lossless map[string]bool) []zooRow {
	rows := []zooRow{{id: 1, label: "all NULL", vals: map[string]string{}}, {id: 2, label: "ordinary", vals: map[string]string{}}}
	for _, c := range zooColumns {
		rows[1].vals[c.name] = c.values[0]
	}
	var shared []zooRow
	for _, c := range zooColumns {
		for i, v := range c.values[1:] {
			if lossless[c.name] {
				for len(shared) <= i {
					shared = append(shared, zooRow{label: fmt.Sprintf("lossless #%d", len(shared)+1), vals: map[string]string{}})
				}
				shared[i].vals[c.name] = v
				continue
			}
			label := c.name + " = " + v
			if len(label) > 60 {
				label = label[:57] + "..."
			}
			rows = append(rows, zooRow{label: label, vals: map[string]string{c.name: v}})
		}
	}
	rows = append(rows, shared...)
	for i := range rows {
		rows[i].id = i + 1
	}
	return rows
}

// zooDeadLetter is what the test reads of a dead-letter object.
type zooDeadLetter struct {
	Column string         `json:"column"`
	Value  string         `json:"value"`
	Reason string         `json:"reason"`
	After  map[string]any `json:"after"`
}

// TestIntegrationTypeZoo checks the promise of the type mapping, never to
// change a value silently, for one column of every kind of type and the
// values at their edges: every value either arrives in an event whose
// canonical form is Postgres' own, or its row is in the dead-letter with the
// column and the reason.
func TestIntegrationTypeZoo(t *testing.T) {
	ddl := []string{
		`CREATE EXTENSION IF NOT EXISTS hstore`,
		`CREATE TYPE zoo_mood AS ENUM ('sad', 'ok', 'très "happy" 😀')`,
		`CREATE DOMAIN zoo_posint AS int4 CHECK (VALUE > 0)`,
		`CREATE TYPE zoo_pair AS (n int4, s text, d numeric(10,2))`,
		`CREATE TYPE zoo_dropped AS (a int4, gone text, b text)`,
		`ALTER TYPE zoo_dropped DROP ATTRIBUTE gone`,
		`CREATE TYPE zoo_nest AS (p zoo_pair, arr int4[], ts timestamp, h hstore)`,
	}
	create := `CREATE TABLE zoo (id int4 PRIMARY KEY, label text`
	for _, c := range zooColumns {
		create += ", " + c.name + " " + c.typ
	}
	// Out of line and uncompressed, whatever pglz would make of the text.
	ddl = append(ddl, create+")", `ALTER TABLE zoo ALTER COLUMN c_text SET STORAGE EXTERNAL`)
	h := newHarness(t, "typezoo_it", []capture.TableName{{Schema: "public", Name: "zoo"}}, ddl...)

	// Read values the way capture receives them: in the same session settings,
	// in the text format.
	for k, v := range schema.SessionSettings {
		h.exec(`SELECT set_config($1, $2, false)`, k, v)
	}
	resolver := schema.Chain(schema.Builtin, zooCatalog{h.db})
	table := zooTable(t, h.db, resolver)
	maps := map[string]*schema.Mapping{}
	lossless := map[string]bool{}
	for _, m := range table.Columns {
		maps[m.Column] = m
		lossless[m.Column] = m.Lossless
	}
	rows := zooRows(lossless)

	h.start()
	defer h.stop()
	for _, r := range rows {
		cols, vals := []string{"id", "label"}, []string{strconv.Itoa(r.id), l(r.label)}
		for _, c := range zooColumns {
			if v, ok := r.vals[c.name]; ok {
				cols, vals = append(cols, c.name), append(vals, v)
			}
		}
		h.exec(`INSERT INTO zoo (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(vals, ", ") + `)`)
	}
	pgText := zooText(t, h.db, `SELECT * FROM zoo ORDER BY id`, len(rows))
	var toasted int
	if err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM zoo WHERE pg_column_size(c_text) >= 1048576`).Scan(&toasted); err != nil || toasted != 1 {
		t.Fatalf("rows holding the uncompressed 1 MiB text: %d, %v", toasted, err)
	}
	truths := zooTruths(t, h.db, len(rows))

	// Wait until every row has arrived or is in the dead-letter.
	dlPrefix := h.name + "/_deadletter/" + schema.GCSSegment("public", "zoo") + "/"
	var (
		events map[int]received
		dead   map[int]zooDeadLetter
	)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		events, dead = zooReceived(t, h), zooDeadLetters(t, h, dlPrefix)
		if len(events)+len(dead) >= len(rows) || time.Now().After(deadline) {
			break
		}
		select {
		case err := <-h.done:
			h.done <- err // for the deferred stop
			t.Fatalf("capture stopped early: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	// The stored schema is the one the test maps: same fields, same types.
	for _, ev := range events {
		cols, err := ev.es.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			if m := table.Columns[i]; c.Field != m.Name || c.PGColumn != m.Column || c.PGType != m.PG {
				t.Fatalf("stored schema field %d is %s (%s %s), the test maps %s (%s %s)", i, c.Field, c.PGColumn, c.PGType, m.Name, m.Column, m.PG)
			}
		}
		break
	}

	type tally struct{ equal, dead, silent, truth int }
	per := map[string]*tally{}
	for _, m := range table.Columns {
		per[m.Column] = &tally{}
	}
	var silent, reasons []string
	for i, r := range rows {
		text := pgText[i]
		ev, got := events[r.id]
		dl, isDead := dead[r.id]
		switch {
		case got && isDead:
			silent = append(silent, fmt.Sprintf("row %d (%s): both published and dead-lettered", r.id, r.label))
		case got:
			for j, m := range table.Columns {
				want, err := m.Canonical(text[j])
				if err != nil {
					silent = append(silent, fmt.Sprintf("row %d (%s) %s: published, but Postgres' text %q has no canonical form: %v", r.id, r.label, m.Column, short(text[j]), err))
					per[m.Column].silent++
					continue
				}
				v, present := ev.event.After[m.Name]
				if !present {
					silent = append(silent, fmt.Sprintf("row %d (%s) %s: field %s missing from the event", r.id, r.label, m.Column, m.Name))
					per[m.Column].silent++
					continue
				}
				have, err := m.CanonicalAvro(v)
				switch {
				case err != nil:
					silent = append(silent, fmt.Sprintf("row %d (%s) %s: decoded value %v has no canonical form: %v", r.id, r.label, m.Column, v, err))
					per[m.Column].silent++
				case (text[j] == nil) != (v == nil):
					silent = append(silent, fmt.Sprintf("row %d (%s) %s: NULL mismatch: Postgres %q, event %s", r.id, r.label, m.Column, short(text[j]), short([]byte(have))))
					per[m.Column].silent++
				case have != want:
					silent = append(silent, fmt.Sprintf("row %d (%s) %s: Postgres %q canonical %s, event %s", r.id, r.label, m.Column, short(text[j]), short([]byte(want)), short([]byte(have))))
					per[m.Column].silent++
				default:
					per[m.Column].equal++
				}
				// A second opinion from Postgres itself, independent of the
				// parsing shared by both sides above.
				if tr, ok := truths[m.Column][r.id]; ok && have != tr {
					silent = append(silent, fmt.Sprintf("row %d (%s) %s: Postgres %q renders as %s, event %s", r.id, r.label, m.Column, short(text[j]), short([]byte(tr)), short([]byte(have))))
					per[m.Column].silent++
				} else if ok {
					per[m.Column].truth++
				}
			}
		case isDead:
			col := dlColumn(dl.Column, maps)
			m, known := maps[col]
			if !known || dl.Reason == "" {
				silent = append(silent, fmt.Sprintf("row %d (%s): dead-letter names column %q with reason %q", r.id, r.label, dl.Column, dl.Reason))
				continue
			}
			per[col].dead++
			reasons = append(reasons, fmt.Sprintf("row %3d %-24s %s: %s", r.id, dl.Column, short([]byte(dl.Value)), dl.Reason))
			j := columnIndex(table, col)
			if text[j] == nil || dl.Value != string(text[j]) {
				t.Errorf("row %d (%s): dead-letter value %q, Postgres has %q", r.id, r.label, short([]byte(dl.Value)), short(text[j]))
			}
			if _, err := m.Convert(text[j]); err == nil {
				t.Errorf("row %d (%s): dead-lettered for %s, which converts: %s", r.id, r.label, dl.Column, dl.Reason)
			}
			if m.Lossless {
				t.Errorf("row %d (%s): dead-lettered for %s, whose mapping claims to be lossless: %s", r.id, r.label, dl.Column, dl.Reason)
			}
			if id, _ := dl.After["id"].(string); id != strconv.Itoa(r.id) {
				t.Errorf("row %d: dead-letter after.id = %v", r.id, dl.After["id"])
			}
		default:
			silent = append(silent, fmt.Sprintf("row %d (%s): neither published nor dead-lettered", r.id, r.label))
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "type zoo: %d rows, %d published, %d dead-lettered\n", len(rows), len(events), len(dead))
	fmt.Fprintf(&b, "%-18s %-34s %6s %6s %6s %6s\n", "column", "type", "equal", "2nd", "dead", "SILENT")
	var sum tally
	for _, m := range table.Columns {
		c := per[m.Column]
		fmt.Fprintf(&b, "%-18s %-34s %6d %6d %6d %6d\n", m.Column, short([]byte(m.PG)), c.equal, c.truth, c.dead, c.silent)
		sum.equal, sum.truth, sum.dead, sum.silent = sum.equal+c.equal, sum.truth+c.truth, sum.dead+c.dead, sum.silent+c.silent
	}
	fmt.Fprintf(&b, "%-18s %-34s %6d %6d %6d %6d\n", "total", "", sum.equal, sum.truth, sum.dead, len(silent))
	b.WriteString("equal: values whose canonical form arrived unchanged; 2nd: of those, also equal to Postgres' own rendering;\n")
	b.WriteString("dead: rows dead-lettered for the column; SILENT: values changed, lost or unaccounted for\n")
	b.WriteString("dead-letter reasons:\n  " + strings.Join(reasons, "\n  "))
	t.Log(b.String())
	if len(silent) > 0 {
		t.Errorf("%d silent changes:\n  %s", len(silent), strings.Join(silent, "\n  "))
	}
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

func short(b []byte) string {
	if b == nil {
		return "NULL"
	}
	if len(b) > 70 {
		return fmt.Sprintf("%s…(%d bytes)", strings.ToValidUTF8(string(b[:60]), ""), len(b))
	}
	return string(b)
}

// zooReceived returns the inserts of zoo received so far, by id.
func zooReceived(t *testing.T, h *harness) map[int]received {
	t.Helper()
	h.mu.Lock()
	got := append([]received(nil), h.got...)
	h.mu.Unlock()
	out := map[int]received{}
	for _, r := range distinct(got) {
		if r.event.Table != "zoo" || r.event.Op != "c" {
			continue
		}
		id, ok := r.event.After["id"].(map[string]any)["int"].(int32)
		if !ok {
			t.Fatalf("event %s: id %v", r.event.Identity(), r.event.After["id"])
		}
		out[int(id)] = r
	}
	return out
}

// zooDeadLetters reads the dead-letter objects of zoo, by row id.
func zooDeadLetters(t *testing.T, h *harness, prefix string) map[int]zooDeadLetter {
	t.Helper()
	ctx := context.Background()
	bucket := h.gcs.Bucket(stack.Bucket)
	out := map[int]zooDeadLetter{}
	it := bucket.Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		r, err := bucket.Object(attrs.Name).NewReader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		var d zooDeadLetter
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("dead-letter %s: %v", attrs.Name, err)
		}
		id, err := strconv.Atoi(fmt.Sprint(d.After["id"]))
		if err != nil {
			t.Fatalf("dead-letter %s: after.id %v", attrs.Name, d.After["id"])
		}
		out[id] = d
	}
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
		t.Fatalf("%s: %v", q, err)
	}
	if len(out) != n {
		t.Fatalf("%s: %d rows, want %d", q, len(out), n)
	}
	return out
}

// zooTable maps the table as capture does, from pg_attribute.
func zooTable(t *testing.T, db *pgx.Conn, r schema.TypeResolver) *schema.Table {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT attname, atttypid, atttypmod FROM pg_attribute
		WHERE attrelid = 'public.zoo'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
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
	table, err := schema.MapTable("public", "zoo", cols, r)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// zooCatalog resolves the zoo's own types (enum, domain, composite and its
// array, hstore) from pg_type.
type zooCatalog struct{ db *pgx.Conn }

func (c zooCatalog) Type(oid schema.OID) (schema.TypeInfo, error) {
	ctx := context.Background()
	ti := schema.TypeInfo{OID: oid, TypeMod: -1}
	var typtype, category string
	var elem, base, relid uint32
	var typmod int32
	err := c.db.QueryRow(ctx, `SELECT n.nspname, t.typname, t.typtype::text, t.typcategory::text, t.typelem, t.typbasetype, t.typtypmod, t.typrelid
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1`, oid).
		Scan(&ti.Schema, &ti.Name, &typtype, &category, &elem, &base, &typmod, &relid)
	if err != nil {
		return ti, fmt.Errorf("looking up type %d: %w", oid, err)
	}
	switch {
	case category == "A" && elem != 0:
		ti.Kind, ti.Elem = schema.KindArray, elem
	case typtype == "e":
		ti.Kind = schema.KindEnum
	case typtype == "d":
		ti.Kind, ti.Elem, ti.TypeMod = schema.KindDomain, base, typmod
	case typtype == "c":
		ti.Kind = schema.KindComposite
		rows, err := c.db.Query(ctx, `SELECT attname, atttypid, atttypmod FROM pg_attribute
			WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, relid)
		if err != nil {
			return ti, err
		}
		for rows.Next() {
			var f schema.Field
			if err := rows.Scan(&f.Name, &f.TypeOID, &f.TypeMod); err != nil {
				return ti, err
			}
			ti.Fields = append(ti.Fields, f)
		}
		if err := rows.Err(); err != nil {
			return ti, err
		}
	case typtype == "r" || typtype == "m":
		return ti, fmt.Errorf("type %d: ranges here are built in", oid)
	}
	return ti, nil
}

// zooTruths computes the second opinions: per column, per row id, the
// canonical form as Postgres renders it.
func zooTruths(t *testing.T, db *pgx.Conn, n int) map[string]map[int]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[int]string{}
	var exprs []string
	var cols []zooColumn
	for _, c := range zooColumns {
		switch {
		case c.truth != "":
			exprs = append(exprs, fmt.Sprintf(c.truth, c.name))
		case c.truthJSON && c.typ == "hstore":
			exprs = append(exprs, fmt.Sprintf("hstore_to_json(%s)::text", c.name))
		case c.truthJSON:
			exprs = append(exprs, fmt.Sprintf("to_json(%s)::text", c.name))
		default:
			continue
		}
		cols = append(cols, c)
	}
	rows := zooText(t, db, "SELECT id, "+strings.Join(exprs, ", ")+" FROM zoo ORDER BY id", n)
	jsonDoc, err := schema.MapColumn(schema.Column{Name: "doc", TypeOID: 3802}, schema.Builtin)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		id, _ := strconv.Atoi(string(row[0]))
		for k, c := range cols {
			v := row[k+1]
			if v == nil {
				continue // NULL, or no opinion
			}
			if out[c.name] == nil {
				out[c.name] = map[int]string{}
			}
			var canon string
			switch {
			case c.typ == "hstore":
				if canon, err = jsonDoc.Canonical(v); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
			case c.truthJSON:
				if canon, err = jsonLeaves(c.typ, v); err != nil {
					t.Fatalf("%s %s: %v", c.name, v, err)
				}
			default:
				canon = string(appendQuoted(nil, string(v)))
			}
			out[c.name][id] = canon
		}
	}

	// Intervals as Postgres prints them in ISO 8601.
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL IntervalStyle = iso_8601`); err != nil {
		t.Fatal(err)
	}
	for _, c := range zooColumns {
		if !c.truthISO {
			continue
		}
		rows, err := tx.Query(ctx, "SELECT id, "+c.name+"::text FROM zoo WHERE "+c.name+" IS NOT NULL")
		if err != nil {
			t.Fatal(err)
		}
		out[c.name] = map[int]string{}
		for rows.Next() {
			var id int
			var s string
			if err := rows.Scan(&id, &s); err != nil {
				t.Fatal(err)
			}
			out[c.name][id] = string(appendQuoted(nil, s))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// appendQuoted appends s as a JSON string, escaping only what JSON requires,
// as the canonical form does.
func appendQuoted(buf []byte, s string) []byte {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(buf, bytes.TrimSuffix(out.Bytes(), []byte("\n"))...)
}

// zooLeaf maps the scalar types inside the zoo's arrays and composite to
// Postgres' text of a to_json leaf, so the leaf's canonical form can be had
// from a mapping of its own. Types to_json renders otherwise are absent.
var zooLeaf = map[string]schema.Column{
	"int4":          {TypeOID: 23, TypeMod: -1},
	"int8":          {TypeOID: 20, TypeMod: -1},
	"text":          {TypeOID: 25, TypeMod: -1},
	"float8":        {TypeOID: 701, TypeMod: -1},
	"float4":        {TypeOID: 700, TypeMod: -1},
	"numeric":       {TypeOID: 1700, TypeMod: -1},
	"numeric(10,2)": {TypeOID: 1700, TypeMod: 10<<16 | 2 + 4},
	"bool":          {TypeOID: 16, TypeMod: -1},
	"zoo_mood":      {TypeOID: 25, TypeMod: -1}, // an enum label is text
	"zoo_posint":    {TypeOID: 23, TypeMod: -1}, // the domain's base
}

// jsonLeaves is the canonical form of an array or composite value from its
// to_json text: the same nesting, each leaf replaced by the canonical form of
// its Postgres text.
func jsonLeaves(typ string, doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	elem := strings.TrimSuffix(typ, "[]")
	var leaf func(typ string, v any) ([]byte, error)
	leaf = func(typ string, v any) ([]byte, error) {
		switch x := v.(type) {
		case nil:
			return []byte("null"), nil
		case []any:
			out := []byte{'['}
			for i, e := range x {
				if i > 0 {
					out = append(out, ',')
				}
				b, err := leaf(typ, e)
				if err != nil {
					return nil, err
				}
				out = append(out, b...)
			}
			return append(out, ']'), nil
		case map[string]any:
			if typ != "zoo_pair" {
				return nil, fmt.Errorf("object for %s", typ)
			}
			out := []byte{'{'}
			for i, f := range []struct{ name, typ string }{{"n", "int4"}, {"s", "text"}, {"d", "numeric(10,2)"}} {
				if i > 0 {
					out = append(out, ',')
				}
				out = appendQuoted(out, f.name)
				out = append(out, ':')
				b, err := leaf(f.typ, x[f.name])
				if err != nil {
					return nil, err
				}
				out = append(out, b...)
			}
			return append(out, '}'), nil
		}
		col, ok := zooLeaf[typ]
		if !ok {
			return nil, fmt.Errorf("no leaf mapping for %s", typ)
		}
		m, err := schema.MapColumn(col, schema.Builtin)
		if err != nil {
			return nil, err
		}
		text := fmt.Sprint(v)
		if n, ok := v.(json.Number); ok {
			text = string(n)
		}
		s, err := m.Canonical([]byte(text))
		return []byte(s), err
	}
	b, err := leaf(elem, v)
	return string(b), err
}
