package schema

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/linkedin/goavro/v2"
)

func TestEvolve(t *testing.T) {
	f := func(typ bigquery.FieldType) *bigquery.FieldSchema { return &bigquery.FieldSchema{Name: "c", Type: typ} }
	arr := func(typ bigquery.FieldType) *bigquery.FieldSchema {
		return &bigquery.FieldSchema{Name: "c", Type: typ, Repeated: true}
	}
	rec := func(fields ...*bigquery.FieldSchema) *bigquery.FieldSchema {
		return &bigquery.FieldSchema{Name: "c", Type: bigquery.RecordFieldType, Schema: fields}
	}
	for _, tc := range []struct {
		name       string
		have, want *bigquery.FieldSchema
		key        bool
		evolution  Evolution
	}{
		{"absent", nil, f(bigquery.StringFieldType), false, Added},
		{"INT64 = INT64", f(bigquery.IntegerFieldType), f(bigquery.IntegerFieldType), false, Same},
		{"REQUIRED and NULLABLE are one", &bigquery.FieldSchema{Type: bigquery.StringFieldType, Required: true}, f(bigquery.StringFieldType), false, Same},
		{"INT64 → NUMERIC", f(bigquery.IntegerFieldType), f(bigquery.NumericFieldType), false, Widen},
		{"INT64 → BIGNUMERIC", f(bigquery.IntegerFieldType), f(bigquery.BigNumericFieldType), false, Widen},
		{"NUMERIC → BIGNUMERIC", f(bigquery.NumericFieldType), f(bigquery.BigNumericFieldType), false, Widen},
		{"key INT64 → NUMERIC", f(bigquery.IntegerFieldType), f(bigquery.NumericFieldType), true, NewColumn},
		{"INT64 → FLOAT64 rounds", f(bigquery.IntegerFieldType), f(bigquery.FloatFieldType), false, NewColumn},
		{"NUMERIC → FLOAT64 rounds", f(bigquery.NumericFieldType), f(bigquery.FloatFieldType), false, NewColumn},
		{"BIGNUMERIC → NUMERIC", f(bigquery.BigNumericFieldType), f(bigquery.NumericFieldType), false, NewColumn},
		{"NUMERIC → INT64", f(bigquery.NumericFieldType), f(bigquery.IntegerFieldType), false, NewColumn},
		{"INT64 → STRING", f(bigquery.IntegerFieldType), f(bigquery.StringFieldType), false, NewColumn},
		{"STRING → INT64", f(bigquery.StringFieldType), f(bigquery.IntegerFieldType), false, NewColumn},
		{"DATE → TIMESTAMP", f(bigquery.DateFieldType), f(bigquery.TimestampFieldType), false, NewColumn},
		{"DATETIME → TIMESTAMP", f(bigquery.DateTimeFieldType), f(bigquery.TimestampFieldType), false, NewColumn},
		{"NUMERIC → STRING", f(bigquery.NumericFieldType), f(bigquery.StringFieldType), false, NewColumn},
		{"STRING → JSON", f(bigquery.StringFieldType), f(bigquery.JSONFieldType), false, NewColumn},
		{"INT64 → ARRAY<INT64>", f(bigquery.IntegerFieldType), arr(bigquery.IntegerFieldType), false, NewColumn},
		{"ARRAY<INT64> → ARRAY<NUMERIC>", arr(bigquery.IntegerFieldType), arr(bigquery.NumericFieldType), false, NewColumn},
		{"ARRAY<STRING> = ARRAY<STRING>", arr(bigquery.StringFieldType), arr(bigquery.StringFieldType), false, Same},
		{"same STRUCT", rec(f(bigquery.StringFieldType)), rec(f(bigquery.StringFieldType)), false, Same},
		{"STRUCT field retyped", rec(f(bigquery.IntegerFieldType)), rec(f(bigquery.NumericFieldType)), false, NewColumn},
		{"STRUCT field added", rec(f(bigquery.StringFieldType)), rec(f(bigquery.StringFieldType), &bigquery.FieldSchema{Name: "d", Type: bigquery.DateFieldType}), false, NewColumn},
	} {
		if got := Evolve(tc.have, tc.want, tc.key); got != tc.evolution {
			t.Errorf("%s: Evolve = %v, want %v", tc.name, got, tc.evolution)
		}
	}
}

// Type OIDs of the built-in types the cases use.
const (
	oidBool      = 16
	oidInt8      = 20
	oidInt4      = 23
	oidText      = 25
	oidFloat8    = 701
	oidInt4Arr   = 1007
	oidTextArr   = 1009
	oidVarchar   = 1043
	oidDate      = 1082
	oidTimestamp = 1114
	oidTstz      = 1184
	oidNumeric   = 1700
)

func numericMod(p, s int32) int32 { return p<<16 | s + 4 }

// version is an event schema of public.t with columns id (int4, key) and
// cols.
func version(t *testing.T, cols ...Column) *EventSchema {
	t.Helper()
	all := append([]Column{{Name: "id", TypeOID: oidInt4, TypeMod: -1, Key: true}}, cols...)
	tbl, err := MapTable("public", "t", all, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func col(name string, oid OID, mod int32) Column {
	return Column{Name: name, TypeOID: oid, TypeMod: mod}
}

func TestColumnNames(t *testing.T) {
	amount := func(oid OID, mod int32) Column { return col("amount", oid, mod) }
	for _, tc := range []struct {
		name     string
		versions [][]Column // the columns besides id of each version, oldest first
		want     map[string]string
	}{
		{"first version", [][]Column{{amount(oidInt4, -1)}}, map[string]string{}},
		{"int → bigint: INT64 both", [][]Column{{amount(oidInt4, -1)}, {amount(oidInt8, -1)}}, map[string]string{}},
		{"varchar(10) → text: STRING both", [][]Column{{amount(oidVarchar, 14)}, {amount(oidText, -1)}}, map[string]string{}},
		{"numeric(10,2) → numeric(12,4): NUMERIC both", [][]Column{{amount(oidNumeric, numericMod(10, 2))}, {amount(oidNumeric, numericMod(12, 4))}}, map[string]string{}},
		{"int → numeric(12,2) widens", [][]Column{{amount(oidInt4, -1)}, {amount(oidNumeric, numericMod(12, 2))}}, map[string]string{}},
		{"numeric(12,2) → numeric(40,2) widens", [][]Column{{amount(oidNumeric, numericMod(12, 2))}, {amount(oidNumeric, numericMod(40, 2))}}, map[string]string{}},
		{"int → text", [][]Column{{amount(oidInt4, -1)}, {amount(oidText, -1)}}, map[string]string{"amount": "amount__string"}},
		{"text → int", [][]Column{{amount(oidText, -1)}, {amount(oidInt4, -1)}}, map[string]string{"amount": "amount__int64"}},
		{"int → float8", [][]Column{{amount(oidInt4, -1)}, {amount(oidFloat8, -1)}}, map[string]string{"amount": "amount__float64"}},
		{"date → timestamptz", [][]Column{{amount(oidDate, -1)}, {amount(oidTstz, -1)}}, map[string]string{"amount": "amount__timestamp"}},
		{"timestamp → timestamptz", [][]Column{{amount(oidTimestamp, -1)}, {amount(oidTstz, -1)}}, map[string]string{"amount": "amount__timestamp"}},
		{"numeric(12,2) → numeric: STRING", [][]Column{{amount(oidNumeric, numericMod(12, 2))}, {amount(oidNumeric, -1)}}, map[string]string{"amount": "amount__string"}},
		{"numeric(12,2) → int", [][]Column{{amount(oidNumeric, numericMod(12, 2))}, {amount(oidInt4, -1)}}, map[string]string{"amount": "amount__int64"}},
		// A version seen before keeps the names it had then: v3 is v1.
		{"int → numeric(12,2) → int: v1 again", [][]Column{{amount(oidInt4, -1)}, {amount(oidNumeric, numericMod(12, 2))}, {amount(oidInt4, -1)}}, map[string]string{}},
		{"int → numeric(12,2) → bigint", [][]Column{{amount(oidInt4, -1)}, {amount(oidNumeric, numericMod(12, 2))}, {amount(oidInt8, -1)}}, map[string]string{"amount": "amount__int64"}},
		{"bool → int4[] (JSON)", [][]Column{{amount(oidBool, -1)}, {amount(oidInt4Arr, -1)}}, map[string]string{"amount": "amount__json"}},
		{"int4[] → text[]: JSON both", [][]Column{{amount(oidInt4Arr, -1)}, {amount(oidTextArr, -1)}}, map[string]string{}},
		{"int → text → bigint: back in its column", [][]Column{{amount(oidInt4, -1)}, {amount(oidText, -1)}, {amount(oidInt8, -1)}}, map[string]string{}},
		{"int → text → varchar: the same new column", [][]Column{{amount(oidInt4, -1)}, {amount(oidText, -1)}, {amount(oidVarchar, 20)}}, map[string]string{"amount": "amount__string"}},
		{"int → text → date → text", [][]Column{{amount(oidInt4, -1)}, {amount(oidText, -1)}, {amount(oidDate, -1)}, {amount(oidText, -1)}},
			map[string]string{"amount": "amount__string"}},
		{"dropped int, added back as text", [][]Column{{amount(oidInt4, -1)}, {}, {amount(oidText, -1)}}, map[string]string{"amount": "amount__string"}},
		{"a column of that name in the same version", [][]Column{{amount(oidInt4, -1), col("amount__string", oidText, -1)}, {amount(oidText, -1), col("amount__string", oidText, -1)}},
			map[string]string{"amount": TypeChangeName("amount", &bigquery.FieldSchema{Type: bigquery.StringFieldType}, "amount", true)}},
		{"a dropped column of that name", [][]Column{{amount(oidInt4, -1), col("amount__string", oidText, -1)}, {amount(oidText, -1)}},
			map[string]string{"amount": TypeChangeName("amount", &bigquery.FieldSchema{Type: bigquery.StringFieldType}, "amount", true)}},
		{"a later column named like a type change's", [][]Column{{amount(oidInt4, -1)}, {amount(oidText, -1)}, {amount(oidText, -1), col("amount__string", oidText, -1)}},
			map[string]string{"amount": "amount__string", "amount__string": "amount__string__string"}},
		{"renamed column of another type: a new name, no change", [][]Column{{amount(oidInt4, -1)}, {col("total", oidText, -1)}}, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vs []*EventSchema
			for _, cols := range tc.versions {
				vs = append(vs, version(t, cols...))
			}
			newest := vs[len(vs)-1]
			got, err := ColumnNames(vs, newest)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ColumnNames = %v, want %v", got, tc.want)
			}
			// Deterministic, and the same whether or not es is listed.
			again, err := ColumnNames(vs[:len(vs)-1], newest)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("without es in the history: %v, %v", again, err)
			}
		})
	}
}

func TestColumnNamesKeyNeverWidens(t *testing.T) {
	v1 := version(t)
	tbl, err := MapTable("public", "t", []Column{{Name: "id", TypeOID: oidNumeric, TypeMod: numericMod(12, 0), Key: true}}, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ColumnNames([]*EventSchema{v1, v2}, v2)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"id": "id__numeric"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ColumnNames = %v, want %v", got, want)
	}
	// The same version as a reader maps it without marking the key (the
	// fingerprint leaves pg_key out) gets the stored version's names.
	tbl, err = MapTable("public", "t", []Column{{Name: "id", TypeOID: oidNumeric, TypeMod: numericMod(12, 0)}}, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	v3, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if v3.Fingerprint != v2.Fingerprint {
		t.Fatal("the key flags changed the fingerprint")
	}
	got, err = ColumnNames([]*EventSchema{v1, v2}, v3)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"id": "id__numeric"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ColumnNames of the version without key = %v, want %v", got, want)
	}
	// A later version (another column added) that no longer marks it as
	// key keeps writing to that column rather than widening the old one.
	tbl, err = MapTable("public", "t", []Column{{Name: "id", TypeOID: oidNumeric, TypeMod: numericMod(12, 0)}, col("b", oidText, -1)}, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	v4, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	got, err = ColumnNames([]*EventSchema{v1, v2, v4}, v4)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"id": "id__numeric"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ColumnNames of a later version without key = %v, want %v", got, want)
	}
}

func TestTypeChangeName(t *testing.T) {
	for _, tc := range []struct {
		field *bigquery.FieldSchema
		want  string
	}{
		{&bigquery.FieldSchema{Type: bigquery.IntegerFieldType}, "amount__int64"},
		{&bigquery.FieldSchema{Type: bigquery.FloatFieldType}, "amount__float64"},
		{&bigquery.FieldSchema{Type: bigquery.BooleanFieldType}, "amount__bool"},
		{&bigquery.FieldSchema{Type: bigquery.BigNumericFieldType}, "amount__bignumeric"},
		{&bigquery.FieldSchema{Type: bigquery.DateTimeFieldType}, "amount__datetime"},
		{&bigquery.FieldSchema{Type: bigquery.RecordFieldType}, "amount__struct"},
		{&bigquery.FieldSchema{Type: bigquery.StringFieldType, Repeated: true}, "amount__array_string"},
	} {
		if got := TypeChangeName("amount", tc.field, "amount", false); got != tc.want {
			t.Errorf("TypeChangeName(%s) = %q, want %q", tc.field.Type, got, tc.want)
		}
		hashed := TypeChangeName("amount", tc.field, "amount", true)
		if !strings.HasPrefix(hashed, tc.want+"__") || !hasHashSuffix(hashed) || hashed != TypeChangeName("amount", tc.field, "amount", true) {
			t.Errorf("hashed TypeChangeName(%s) = %q", tc.field.Type, hashed)
		}
		if !avroNameRE.MatchString(hashed) {
			t.Errorf("%q is not an Avro name", hashed)
		}
	}
	long := BigQueryColumnName(strings.Repeat("Ä", 31) + "a")
	if n := TypeChangeName(long, &bigquery.FieldSchema{Type: bigquery.BigNumericFieldType, Repeated: true}, "x", true); len(n) > 300 {
		t.Errorf("%q is longer than BigQuery allows", n)
	}
}

// A changelog with a renamed column carries the event's values under the
// new name in the record, the Avro schema, the BigQuery schema, the
// before-key record and the unchanged list.
func TestChangelogColumns(t *testing.T) {
	v1 := version(t, col("amount", oidInt4, -1))
	tbl, err := MapTable("public", "t", []Column{{Name: "id", TypeOID: oidText, TypeMod: -1, Key: true}, col("amount", oidText, -1), col("note", oidText, -1)}, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	renamed, err := ColumnNames([]*EventSchema{v1, v2}, v2)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"id": "id__string", "amount": "amount__string"}; !reflect.DeepEqual(renamed, want) {
		t.Fatalf("ColumnNames = %v, want %v", renamed, want)
	}
	cl, err := NewChangelogColumns(v2, renamed)
	if err != nil {
		t.Fatal(err)
	}
	after, err := tbl.Record([][]byte{[]byte("k1"), []byte("twelve"), nil})
	if err != nil {
		t.Fatal(err)
	}
	before, err := tbl.Record([][]byte{[]byte("k0"), nil, nil})
	if err != nil {
		t.Fatal(err)
	}
	rec := cl.Record(&Event{Op: "u", CommitTime: time.Unix(0, 0), After: after, Before: before, Unchanged: []string{"amount", "note"}})
	bin, err := cl.Codec.BinaryFromNative(nil, rec)
	if err != nil {
		t.Fatalf("encoding %v: %v", rec, err)
	}
	native, _, err := cl.Codec.NativeFromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	got := native.(map[string]any)
	for _, name := range []string{"amount", "id"} {
		if _, ok := got[name]; ok {
			t.Errorf("the record has the old column %q: %v", name, got)
		}
	}
	if got["amount__string"] == nil || got["id__string"] == nil {
		t.Errorf("the record lacks the new columns: %v", got)
	}
	if u := got[ColUnchanged]; !reflect.DeepEqual(u, []any{"amount__string", "note"}) {
		t.Errorf("unchanged = %v", u)
	}
	bk := got[ColBeforeKey].(map[string]any)[cl.beforeKeyName].(map[string]any)
	if _, ok := bk["id__string"]; !ok {
		t.Errorf("before key = %v", bk)
	}
	bq, err := cl.BigQuerySchema()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range bq {
		names = append(names, f.Name)
		if f.Name == "amount__string" && (!strings.Contains(f.Description, `Postgres column amount`) || !strings.Contains(f.Description, "column amount)")) {
			t.Errorf("description of %s: %q", f.Name, f.Description)
		}
	}
	if want := []string{"id__string", "amount__string", "note"}; !reflect.DeepEqual(names, want) {
		t.Errorf("BigQuery columns %v, want %v", names, want)
	}
	bkf, err := cl.BeforeKeyBigQuery()
	if err != nil || bkf.Schema[0].Name != "id__string" {
		t.Errorf("before key field %+v, %v", bkf, err)
	}
	// The Avro field keeps the row field's name.
	var schema struct {
		Fields []map[string]any `json:"fields"`
	}
	if err := json.Unmarshal([]byte(cl.JSON), &schema); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range schema.Fields {
		if f["name"] == "amount__string" {
			found = f["pg_field"] == "amount" && f["pg_column"] == "amount"
		}
	}
	if !found {
		t.Errorf("no field amount__string with pg_field amount in %s", cl.JSON)
	}
	if cl.Field("amount__string") != "amount" || cl.Field("note") != "note" || cl.Column("note") != "note" {
		t.Error("Field is not Column's inverse")
	}
	// Unrenamed, the changelog is what NewChangelog gives.
	plain, err := NewChangelogColumns(v1, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	old, err := NewChangelog(v1)
	if err != nil || plain.JSON != old.JSON {
		t.Errorf("an empty rename changes the schema: %v", err)
	}
	if _, err := goavro.NewCodec(cl.JSON); err != nil {
		t.Error(err)
	}
}
