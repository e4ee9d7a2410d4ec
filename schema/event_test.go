package schema

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

func testTable(t *testing.T) *Table {
	t.Helper()
	tbl, err := MapTable("public", "Order Items", []Column{
		{Name: "id", TypeOID: 20, TypeMod: -1, Key: true},
		{Name: "Note", TypeOID: 25, TypeMod: -1},
		{Name: "amount", TypeOID: 1700, TypeMod: (12<<16 | 2) + 4},
	}, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestEventRoundTripsThroughSingleObjectEncoding(t *testing.T) {
	tbl := testTable(t)
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	after, err := tbl.Record([][]byte{[]byte("7"), nil, []byte("12.50")})
	if err != nil {
		t.Fatal(err)
	}
	before, err := tbl.Record([][]byte{[]byte("7"), nil, nil})
	if err != nil {
		t.Fatal(err)
	}
	in := &Event{
		Op: "u", CommitLSN: 0x16B3748, LSN: 0x16B3700, Seq: 3, Xid: 771,
		CommitTime: time.Date(2026, 11, 21, 10, 0, 0, 123456000, time.UTC),
		Schema:     "public", Table: "Order Items", Before: before, After: after,
		Unchanged: []string{tbl.Columns[1].Name},
	}
	data, err := es.Encode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte{0xC3, 0x01}) {
		t.Fatalf("no single-object marker: % x", data[:4])
	}
	if fp := binary.LittleEndian.Uint64(data[2:10]); fp != es.Fingerprint {
		t.Fatalf("header fingerprint %x, schema %x", fp, es.Fingerprint)
	}
	if fp, err := SingleObjectFingerprint(data); err != nil || fp != es.Fingerprint {
		t.Fatalf("SingleObjectFingerprint = %x, %v", fp, err)
	}
	out, err := es.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if out.Identity() != in.Identity() || out.Op != "u" || out.Xid != 771 || !out.CommitTime.Equal(in.CommitTime) ||
		out.Schema != "public" || out.Table != "Order Items" || len(out.Unchanged) != 1 || out.Unchanged[0] != tbl.Columns[1].Name {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
	got, err := tbl.Columns[2].CanonicalAvro(out.After[tbl.Columns[2].Name])
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := tbl.Columns[2].Canonical([]byte("12.50")); got != want {
		t.Fatalf("amount decoded as %q, want %q", got, want)
	}
	if v := out.Before[tbl.Columns[1].Name]; v != nil {
		t.Fatalf("before.Note = %v, want null", v)
	}
}

func TestEventSchemaFingerprintFollowsColumns(t *testing.T) {
	a, err := NewEventSchema(testTable(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEventSchema(testTable(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint {
		t.Fatal("the same table mapped twice has two fingerprints")
	}
	wider, err := MapTable("public", "Order Items", []Column{
		{Name: "id", TypeOID: 20, TypeMod: -1, Key: true},
		{Name: "Note", TypeOID: 25, TypeMod: -1},
		{Name: "amount", TypeOID: 1700, TypeMod: (12<<16 | 2) + 4},
		{Name: "added", TypeOID: 16, TypeMod: -1},
	}, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewEventSchema(wider)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint == a.Fingerprint {
		t.Fatal("adding a column kept the fingerprint")
	}
	if len(a.FingerprintHex()) != 16 {
		t.Fatalf("FingerprintHex = %q", a.FingerprintHex())
	}
}

func TestSingleObjectFingerprintRejectsOtherData(t *testing.T) {
	for _, data := range [][]byte{nil, {0xC3}, {0xC3, 0x02, 1, 2, 3, 4, 5, 6, 7, 8}, []byte(`{"op":"c"}`)} {
		if _, err := SingleObjectFingerprint(data); err == nil {
			t.Errorf("SingleObjectFingerprint(% x) accepted it", data)
		}
	}
}

func TestChangelogFlattensEvents(t *testing.T) {
	tbl := testTable(t)
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := ParseEventSchema(es.JSON, nil) // what a consumer has
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewChangelog(stored)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tbl.Record([][]byte{[]byte("9"), nil, nil})
	del := &Event{Op: "d", CommitLSN: 100, LSN: 90, Seq: 1, Xid: 5, CommitTime: time.Unix(1, 0), Schema: "public", Table: "Order Items", Before: key}
	rec := cl.Record(del)
	bin, err := cl.Codec.BinaryFromNative(nil, rec)
	if err != nil {
		t.Fatalf("changelog record does not encode: %v", err)
	}
	back, _, err := cl.Codec.NativeFromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	m := back.(map[string]any)
	if m[ColOp] != "d" || m[ColCommitLSN] != int64(100) || m[ColSeq] != int64(1) {
		t.Fatalf("envelope columns: %v", m)
	}
	if len(cl.Keys) != 1 || cl.Keys[0].PGColumn != "id" {
		t.Fatalf("stored key columns %+v, want [id]", cl.Keys)
	}
	want, _ := tbl.Columns[0].Canonical([]byte("9"))
	bk, ok := m[ColBeforeKey].(map[string]any)
	if !ok {
		t.Fatalf("a delete's changelog row has no %s: %v", ColBeforeKey, m[ColBeforeKey])
	}
	for _, inner := range bk {
		if got, _ := tbl.Columns[0].CanonicalAvro(inner.(map[string]any)[tbl.Columns[0].Name]); got != want {
			t.Fatalf("before key id = %q, want %q", got, want)
		}
	}
	ins := cl.Record(&Event{Op: "c", CommitLSN: 101, CommitTime: time.Unix(1, 0), After: key})
	if _, err := cl.Codec.BinaryFromNative(nil, ins); err != nil || ins[ColBeforeKey] != nil {
		t.Fatalf("an insert's changelog row: before key %v, encode error %v", ins[ColBeforeKey], err)
	}
	if f, err := cl.BeforeKeyBigQuery(); err != nil || f == nil || len(f.Schema) != 1 || f.Schema[0].Name != tbl.Columns[0].Name {
		t.Fatalf("BeforeKeyBigQuery = %+v, %v", f, err)
	}
	if got, _ := tbl.Columns[0].CanonicalAvro(m[tbl.Columns[0].Name]); got != want {
		t.Fatalf("a delete's changelog row carries key %q, want %q", got, want)
	}
	bq, err := cl.BigQuerySchema()
	if err != nil {
		t.Fatal(err)
	}
	if len(bq) != len(tbl.Columns) || bq[2].Type != tbl.BigQuery[2].Type || bq[1].Name != tbl.BigQuery[1].Name {
		t.Fatalf("stored BigQuery schema %v differs from the mapping %v", bq, tbl.BigQuery)
	}
}
