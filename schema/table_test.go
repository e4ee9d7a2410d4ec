package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/linkedin/goavro/v2"
)

// benchColumns is a typical row: keys, text, money-like numeric, timestamps,
// JSON, an array and a composite used twice.
var benchColumns = []Column{
	{Name: "id", TypeOID: 20, TypeMod: -1, Key: true},
	{Name: "Customer ID", TypeOID: 23, TypeMod: -1},
	{Name: "name", TypeOID: 25, TypeMod: -1},
	{Name: "amount", TypeOID: 1700, TypeMod: numericTypmod(12, 2)},
	{Name: "ratio", TypeOID: 701, TypeMod: -1},
	{Name: "created_at", TypeOID: 1184, TypeMod: -1},
	{Name: "day", TypeOID: 1082, TypeMod: -1},
	{Name: "active", TypeOID: 16, TypeMod: -1},
	{Name: "attrs", TypeOID: 3802, TypeMod: -1},
	{Name: "tags", TypeOID: 1009, TypeMod: -1},
	{Name: "home", TypeOID: 200003, TypeMod: -1},
	{Name: "work", TypeOID: 200003, TypeMod: -1},
}

var benchRow = [][]byte{
	[]byte("9007199254740993"),
	[]byte("42"),
	[]byte("Zoë 😀"),
	[]byte("1234.50"),
	[]byte("0.1"),
	[]byte("2024-05-06 07:08:09.123456+00"),
	[]byte("2024-05-06"),
	[]byte("t"),
	[]byte(`{"plan": "pro", "seats": 5}`),
	[]byte(`{red,"dark blue",NULL}`),
	[]byte(`(1,street,"{1.5}")`),
	nil,
}

func TestMapTable(t *testing.T) {
	tbl, err := MapTable("Sales", "order items", benchColumns, testResolver)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(tbl.AvroSchema)
	if err != nil {
		t.Fatalf("goavro.NewCodec(%s): %v", tbl.AvroSchema, err)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(tbl.AvroSchema), &s); err != nil {
		t.Fatal(err)
	}
	if s["name"] != AvroName("Sales")+"."+AvroName("order items") {
		t.Errorf("record name %v", s["name"])
	}
	if tbl.BigQuery[1].Name != BigQueryColumnName("Customer ID") || !strings.Contains(tbl.BigQuery[1].Description, `"Customer ID"`) {
		t.Errorf("column 1: %+v", tbl.BigQuery[1])
	}

	rec, err := tbl.Record(benchRow)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := codec.BinaryFromNative(nil, rec)
	if err != nil {
		t.Fatalf("BinaryFromNative: %v", err)
	}
	back, _, err := codec.NativeFromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range tbl.Columns {
		want, err := m.Canonical(benchRow[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.CanonicalAvro(back.(map[string]any)[m.Name])
		if err != nil || got != want {
			t.Errorf("column %q: canonical after Avro %s, %v; want %s", m.Column, got, err, want)
		}
	}

	// A value that cannot be represented fails the row, naming the table.
	bad := append([][]byte(nil), benchRow...)
	bad[5] = []byte("infinity")
	_, err = tbl.Record(bad)
	var dl *DeadLetterError
	if !errors.As(err, &dl) || dl.Table != "Sales.order items" || dl.Column != "created_at" || dl.Value != "infinity" {
		t.Errorf("Record with infinity: %v", err)
	}
	bad[5] = benchRow[5]
	bad[10] = []byte(`(x,street,)`)
	_, err = tbl.Record(bad)
	if !errors.As(err, &dl) || dl.Column != "home.a" {
		t.Errorf("Record with a bad attribute: %v", err)
	}

	if _, err := tbl.Record(benchRow[:3]); err == nil {
		t.Error("Record with too few values succeeded")
	}
}

func TestMappingsCoverBuiltins(t *testing.T) {
	ms := Mappings()
	if len(ms) != len(docColumns) {
		t.Fatalf("Mappings() has %d entries, want %d", len(ms), len(docColumns))
	}
	for _, m := range ms {
		if _, err := goavro.NewCodec(`{"type":"record","name":"r","fields":[` + mustJSON(t, m.AvroField()) + `]}`); err != nil {
			t.Errorf("%s: Avro type does not compile: %v", m.PG, err)
		}
		if m.Policy == "" || m.BigQuery.Description == "" {
			t.Errorf("%s: no policy or description", m.PG)
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BenchmarkDecodeTuple converts one row image to the Avro native record. The
// reference decodes the same texts with pgx's generic DecodeValue.
func BenchmarkDecodeTuple(b *testing.B) {
	tbl, err := MapTable("public", "orders", benchColumns, testResolver)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("schema", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tbl.Record(benchRow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference-pgx-DecodeValue", func(b *testing.B) {
		m := pgtype.NewMap()
		oids := []uint32{20, 23, 25, 1700, 701, 1184, 1082, 16, 3802, 1009, 25, 25}
		b.ReportAllocs()
		for b.Loop() {
			for i, oid := range oids {
				if benchRow[i] == nil {
					continue
				}
				t, _ := m.TypeForOID(oid)
				if _, err := t.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, benchRow[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkEncodeAvro encodes one converted row with goavro. The reference
// encodes the same texts as a record of plain strings.
func BenchmarkEncodeAvro(b *testing.B) {
	tbl, err := MapTable("public", "orders", benchColumns, testResolver)
	if err != nil {
		b.Fatal(err)
	}
	codec, err := goavro.NewCodec(tbl.AvroSchema)
	if err != nil {
		b.Fatal(err)
	}
	rec, err := tbl.Record(benchRow)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("schema", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			if _, err := codec.BinaryFromNative(buf[:0], rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference-strings", func(b *testing.B) {
		fields := make([]string, len(benchColumns))
		strRec := make(map[string]any, len(benchColumns))
		for i, c := range benchColumns {
			n := BigQueryColumnName(c.Name)
			fields[i] = `{"name":"` + n + `","type":["null","string"]}`
			if benchRow[i] != nil {
				strRec[n] = goavro.Union("string", string(benchRow[i]))
			} else {
				strRec[n] = nil
			}
		}
		ref, err := goavro.NewCodec(`{"type":"record","name":"r","fields":[` + strings.Join(fields, ",") + `]}`)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			if _, err := ref.BinaryFromNative(buf[:0], strRec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRecordConcurrent converts rows from many goroutines at once; run with
// -race it proves the shared pgx plans are only read.
func TestRecordConcurrent(t *testing.T) {
	tbl, err := MapTable("public", "orders", benchColumns, testResolver)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 50 {
				if _, err = tbl.Record(benchRow); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// failingResolver resolves nothing, with its own reason.
type failingResolver struct{ err error }

func (f failingResolver) Type(OID) (TypeInfo, error) { return TypeInfo{}, f.err }

func TestChainReportsEveryResolversError(t *testing.T) {
	catalogErr := errors.New("looking up type 16514 in pg_type: connection refused")
	r := Chain(Builtin, failingResolver{catalogErr})
	_, err := r.Type(16514)
	if !errors.Is(err, catalogErr) {
		t.Fatalf("Chain(Builtin, catalog) error %q does not carry the catalog's error", err)
	}
	if !strings.Contains(err.Error(), "not a built-in type") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q should name both failures", err)
	}
	if ti, err := r.Type(23); err != nil || ti.Name != "int4" {
		t.Errorf("Chain(Builtin, catalog).Type(23) = %v, %v; want int4 from Builtin", ti, err)
	}
	if _, err := Chain().Type(23); err == nil {
		t.Error("an empty chain resolved a type")
	}
}
