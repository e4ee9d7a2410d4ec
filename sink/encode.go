package sink

import (
	"fmt"
	"io"
	"sort"

	"github.com/tributary-cdc/tributary/schema"
)

// ocfBlockRows is how many records go into one OCF block.
const ocfBlockRows = 4096

// sortReceived orders buffered changes by (commit LSN, seq).
func sortReceived(g []received) {
	sort.SliceStable(g, func(i, j int) bool {
		a, b := g[i].ev, g[j].ev
		if a.CommitLSN != b.CommitLSN {
			return a.CommitLSN < b.CommitLSN
		}
		return a.Seq < b.Seq
	})
}

// EncodeOCF writes events as an Avro object container file of the flat
// changelog record cl, compressed with compression ("snappy", "deflate" or
// "null"), in blocks of up to 4096 records.
func EncodeOCF(w io.Writer, cl *schema.Changelog, events []*schema.Event, compression string) error {
	return encodeOCF(w, cl, len(events), func(i int) (*schema.Event, error) { return events[i], nil }, compression)
}

// encodeOCF is EncodeOCF of n events that event(i) yields in order. Each
// event is turned into its record's Avro binary as soon as it is yielded,
// so one event is held decoded at a time, beside the binary records of the
// block being filled (a block's decoded events, in goavro's native form,
// take several times the block's bytes). The file is the one goavro's
// writer makes of the same records (OCFWriter).
func encodeOCF(w io.Writer, cl *schema.Changelog, n int, event func(int) (*schema.Event, error), compression string) error {
	ocf, err := NewOCFWriter(w, cl, compression)
	if err != nil {
		return err
	}
	var block []byte
	rows := 0
	for i := range n {
		ev, err := event(i)
		if err != nil {
			return err
		}
		if block, err = cl.Codec.BinaryFromNative(block, cl.Record(ev)); err != nil {
			return &permanentError{fmt.Errorf("encoding the record of %s: %w", ev.Identity(), err)}
		}
		if rows++; rows == ocfBlockRows || i == n-1 {
			if err := ocf.WriteBlock(rows, block); err != nil {
				return err
			}
			block, rows = block[:0], 0
		}
	}
	return nil
}
