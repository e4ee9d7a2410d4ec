package schema

import (
	"bytes"
	"testing"
	"time"
)

// drainColumns and drainRow are the row of capture's drain benchmark
// (capture/bench_integration_test.go) as pgoutput prints it.
var (
	drainColumns = []Column{
		{Name: "id", TypeOID: 20, TypeMod: -1, Key: true},
		{Name: "a", TypeOID: 23, TypeMod: -1},
		{Name: "b", TypeOID: 20, TypeMod: -1},
		{Name: "c", TypeOID: 25, TypeMod: -1},
		{Name: "d", TypeOID: 25, TypeMod: -1},
		{Name: "e", TypeOID: 1700, TypeMod: numericTypmod(12, 2)},
		{Name: "f", TypeOID: 1184, TypeMod: -1},
		{Name: "g", TypeOID: 1082, TypeMod: -1},
		{Name: "h", TypeOID: 16, TypeMod: -1},
		{Name: "i", TypeOID: 701, TypeMod: -1},
	}
	drainRow = [][]byte{
		[]byte("123457"), []byte("457"), []byte("864199"), []byte("customer-123457"), []byte("0f6b2b4a1b5d4e0c9a34b2e5c8d1f7a3"),
		[]byte("1234.57"), []byte("2026-11-22 20:17:37+00"), []byte("2026-05-28"), []byte("f"), []byte("41152.333333333336"),
	}
)

// BenchmarkEventEncode encodes one insert event from its Postgres texts to
// single-object Avro: "general" is the path capture took before the
// Encoder (Table.Record, then EventSchema.Encode through goavro),
// "encoder" the Encoder's. The rows: "drain", the 10 columns of capture's
// drain benchmark, all taken by hand-written appends; "mixed", the 12
// columns of BenchmarkDecodeTuple, of which jsonb, text[] and two
// composites go through goavro field codecs.
func BenchmarkEventEncode(b *testing.B) {
	for _, tc := range []struct {
		name string
		cols []Column
		row  [][]byte
	}{{"drain", drainColumns, drainRow}, {"mixed", benchColumns, benchRow}} {
		tbl, err := MapTable("public", "orders", tc.cols, testResolver)
		if err != nil {
			b.Fatal(err)
		}
		es, err := NewEventSchema(tbl)
		if err != nil {
			b.Fatal(err)
		}
		enc, err := NewEncoder(es)
		if err != nil {
			b.Fatal(err)
		}
		ev := &TextEvent{Op: "c", CommitLSN: 0x16B3748, LSN: 0x16B3700, Seq: 3, Xid: 771,
			CommitTime: time.Date(2026, 11, 21, 10, 0, 0, 123456000, time.UTC), Schema: "public", Table: "orders", After: tc.row}
		want, err := referenceEncode(es, nil, ev)
		if err != nil {
			b.Fatal(err)
		}
		if got, err := enc.Encode(nil, ev); err != nil || !bytes.Equal(got, want) {
			b.Fatalf("%s: the encoder's bytes differ from the general path's (%v)", tc.name, err)
		}
		if _, fast := enc.appendEvent(nil, ev); !fast {
			b.Fatalf("%s: the event does not take the fast path", tc.name)
		}
		buf := make([]byte, 0, 1024)
		b.Run(tc.name+"/general", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = referenceEncode(es, buf[:0], ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/encoder", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = enc.Encode(buf[:0], ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
