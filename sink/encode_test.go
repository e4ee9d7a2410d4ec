package sink

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/tributary-cdc/tributary/schema"
)

// benchEvents returns n decoded update events of a four-column table, as
// the sink holds them after decoding messages.
func benchEvents(tb testing.TB, n int) (*schema.Changelog, []*schema.Event) {
	tb.Helper()
	table, err := schema.MapTable("public", "orders", []schema.Column{
		{Name: "id", TypeOID: 20, Key: true}, {Name: "note", TypeOID: 25}, {Name: "qty", TypeOID: 23}, {Name: "at", TypeOID: 1184},
	}, schema.Builtin)
	if err != nil {
		tb.Fatal(err)
	}
	es, err := schema.NewEventSchema(table)
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := schema.NewChangelog(es)
	if err != nil {
		tb.Fatal(err)
	}
	events := make([]*schema.Event, n)
	at := time.Date(2026, 11, 3, 7, 0, 0, 0, time.UTC)
	for i := range events {
		row, err := table.Record([][]byte{
			fmt.Appendf(nil, "%d", i), fmt.Appendf(nil, "note number %d of the benchmark", i), fmt.Appendf(nil, "%d", i%100),
			[]byte("2026-11-03 07:00:00.123456+00"),
		})
		if err != nil {
			tb.Fatal(err)
		}
		data, err := es.Encode(nil, &schema.Event{Op: "u", CommitLSN: uint64(1000 + i), LSN: uint64(999 + i), Seq: 0, Xid: 7, CommitTime: at,
			Schema: "public", Table: "orders", After: row})
		if err != nil {
			tb.Fatal(err)
		}
		if events[i], err = es.Decode(data); err != nil {
			tb.Fatal(err)
		}
	}
	return cl, events
}

func TestEncodeOCFRoundTrip(t *testing.T) {
	cl, events := benchEvents(t, 5000)
	for _, c := range []string{goavro.CompressionSnappyLabel, goavro.CompressionDeflateLabel} {
		var buf bytes.Buffer
		if err := EncodeOCF(&buf, cl, events, c); err != nil {
			t.Fatal(err)
		}
		r, err := goavro.NewOCFReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for r.Scan() {
			rec, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			m := rec.(map[string]any)
			if m[schema.ColCommitLSN] != int64(1000+n) || m[schema.ColOp] != "u" {
				t.Fatalf("%s: record %d = %v", c, n, m)
			}
			n++
		}
		if n != len(events) {
			t.Errorf("%s: read %d records, want %d", c, n, len(events))
		}
	}
}

// BenchmarkSinkEncode measures decoded events to OCF bytes as a flush does
// it (flat record, blocks, snappy), beside plain goavro encoding of records
// built beforehand, in the same run.
func BenchmarkSinkEncode(b *testing.B) {
	const rows = 10_000
	cl, events := benchEvents(b, rows)
	b.Run("sink", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := EncodeOCF(&buf, cl, events, DefaultCompression); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("goavro-reference", func(b *testing.B) {
		b.ReportAllocs()
		records := make([]any, rows)
		for i, ev := range events {
			records[i] = cl.Record(ev)
		}
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Codec: cl.Codec, CompressionName: DefaultCompression})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < rows; i += ocfBlockRows {
				if err := w.Append(records[i:min(i+ocfBlockRows, rows)]); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
