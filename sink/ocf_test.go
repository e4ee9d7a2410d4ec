package sink

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// TestOCFWriterIsGoavros writes the same records with OCFWriter (from their
// Avro binary, in blocks of ocfBlockRows) and with goavro's writer (from
// their native form, in the same blocks), under every compression: the
// files must be the same bytes but for the random sync marker, and goavro's
// reader must read back the same records, block structure and header.
// EncodeOCF, which writes through OCFWriter, must write the same blocks too.
func TestOCFWriterIsGoavros(t *testing.T) {
	cl, events := benchEvents(t, 2*ocfBlockRows+17)
	for _, c := range []string{goavro.CompressionSnappyLabel, goavro.CompressionDeflateLabel, goavro.CompressionNullLabel, ""} {
		var want bytes.Buffer
		gw, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &want, Codec: cl.Codec, CompressionName: c})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(events); i += ocfBlockRows {
			block := make([]any, 0, ocfBlockRows)
			for _, ev := range events[i:min(i+ocfBlockRows, len(events))] {
				block = append(block, cl.Record(ev))
			}
			if err := gw.Append(block); err != nil {
				t.Fatal(err)
			}
		}
		var enc bytes.Buffer
		if err := EncodeOCF(&enc, cl, events, c); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		w, err := NewOCFWriter(&got, cl, c)
		if err != nil {
			t.Fatal(err)
		}
		var block []byte
		n := 0
		for i, ev := range events {
			if block, err = cl.Codec.BinaryFromNative(block, cl.Record(ev)); err != nil {
				t.Fatal(err)
			}
			if n++; n == ocfBlockRows || i == len(events)-1 {
				if err := w.WriteBlock(n, block); err != nil {
					t.Fatal(err)
				}
				block, n = block[:0], 0
			}
		}
		if err := w.WriteBlock(0, nil); err != nil {
			t.Fatal(err)
		}
		// Both end with their sync marker, which also ends the header; after
		// it, with goavro's marker replaced by ours, the blocks are the same
		// bytes. (goavro writes the header's metadata map in map order.)
		wantSync := want.Bytes()[want.Len()-16:]
		wantBlocks := want.Bytes()[bytes.Index(want.Bytes(), wantSync)+16:]
		gotBlocks := got.Bytes()[bytes.Index(got.Bytes(), w.sync[:])+16:]
		if !bytes.Equal(gotBlocks, bytes.ReplaceAll(wantBlocks, wantSync, w.sync[:])) {
			t.Errorf("compression %q: the blocks differ from goavro's (%d bytes, goavro's %d)", c, len(gotBlocks), len(wantBlocks))
		}
		encSync := enc.Bytes()[enc.Len()-16:]
		encBlocks := enc.Bytes()[bytes.Index(enc.Bytes(), encSync)+16:]
		if !bytes.Equal(encBlocks, bytes.ReplaceAll(wantBlocks, wantSync, encSync)) {
			t.Errorf("compression %q: EncodeOCF's blocks differ from goavro's (%d bytes, goavro's %d)", c, len(encBlocks), len(wantBlocks))
		}
		gotRecs, gotCodec, gotComp := readOCF(t, got.Bytes())
		wantRecs, wantCodec, wantComp := readOCF(t, want.Bytes())
		if gotCodec != wantCodec || gotComp != wantComp {
			t.Errorf("compression %q: header schema or codec differ: %q vs %q", c, gotComp, wantComp)
		}
		if len(gotRecs) != len(events) || !reflect.DeepEqual(gotRecs, wantRecs) {
			t.Errorf("compression %q: read back %d records, goavro's file %d, or their values differ", c, len(gotRecs), len(wantRecs))
		}
	}
	if _, err := NewOCFWriter(&bytes.Buffer{}, cl, "zstd"); err == nil {
		t.Error("NewOCFWriter took an unknown compression")
	}
}

func readOCF(t *testing.T, data []byte) ([]any, string, string) {
	t.Helper()
	r, err := goavro.NewOCFReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out, r.Codec().Schema(), r.CompressionName()
}
