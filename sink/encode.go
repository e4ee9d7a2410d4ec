package sink

import (
	"io"
	"sort"

	"github.com/linkedin/goavro/v2"

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

// encodeOCF is EncodeOCF of n events that event(i) yields in order: only
// one block's events need be decoded at a time.
func encodeOCF(w io.Writer, cl *schema.Changelog, n int, event func(int) (*schema.Event, error), compression string) error {
	ocf, err := goavro.NewOCFWriter(goavro.OCFConfig{W: w, Codec: cl.Codec, CompressionName: compression})
	if err != nil {
		return &permanentError{err}
	}
	block := make([]any, 0, min(n, ocfBlockRows))
	for i := range n {
		ev, err := event(i)
		if err != nil {
			return err
		}
		block = append(block, cl.Record(ev))
		if len(block) == cap(block) || i == n-1 {
			if err := ocf.Append(block); err != nil {
				return &permanentError{err}
			}
			clear(block)
			block = block[:0]
		}
	}
	return nil
}
