package sink

import (
	"io"
	"sort"

	"github.com/linkedin/goavro/v2"

	"github.com/tributary-cdc/tributary/schema"
)

// ocfBlockRows is how many records go into one OCF block.
const ocfBlockRows = 4096

// sortEvents orders events by (commit LSN, seq), the order of the source.
func sortEvents(events []*schema.Event) {
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
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
	ocf, err := goavro.NewOCFWriter(goavro.OCFConfig{W: w, Codec: cl.Codec, CompressionName: compression})
	if err != nil {
		return &permanentError{err}
	}
	block := make([]any, 0, min(len(events), ocfBlockRows))
	for i, ev := range events {
		block = append(block, cl.Record(ev))
		if len(block) == cap(block) || i == len(events)-1 {
			if err := ocf.Append(block); err != nil {
				return &permanentError{err}
			}
			clear(block)
			block = block[:0]
		}
	}
	return nil
}
