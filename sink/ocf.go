package sink

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/golang/snappy"
	"github.com/linkedin/goavro/v2"

	"github.com/tributary-cdc/tributary/schema"
)

// OCFWriter writes an Avro object container file of the flat changelog
// record from records already in Avro binary (schema.ChangelogEncoder's),
// one block at a time. The header is goavro's; each block is what goavro's
// writer makes of the same records (count, size, the records compressed as
// it compresses them, the sync marker), so the file reads back as the one
// EncodeOCF writes of the same records.
type OCFWriter struct {
	w           io.Writer
	sync        [16]byte
	compression string
	deflate     *flate.Writer
	packed      []byte // snappy's output
}

// NewOCFWriter writes the header of an object file of cl's records,
// compressed with compression ("snappy", "deflate" or "null"), to w.
func NewOCFWriter(w io.Writer, cl *schema.Changelog, compression string) (*OCFWriter, error) {
	o := &OCFWriter{w: w, compression: compression}
	if _, err := rand.Read(o.sync[:]); err != nil {
		return nil, err
	}
	if compression == "" {
		o.compression = goavro.CompressionNullLabel
	}
	// goavro's writer writes the header when it is made: into a buffer, so
	// that a failure of w (an upload) is told apart from goavro's refusal.
	var header bytes.Buffer
	if _, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &header, Codec: cl.Codec, CompressionName: compression, SyncMarker: o.sync}); err != nil {
		return nil, &permanentError{err}
	}
	if _, err := w.Write(header.Bytes()); err != nil {
		return nil, err
	}
	return o, nil
}

// WriteBlock writes one block of n records, whose Avro binary records
// concatenates. An empty block (n zero) is not written: goavro's reader
// refuses one.
func (o *OCFWriter) WriteBlock(n int, records []byte) error {
	if n == 0 {
		return nil
	}
	block := records
	switch o.compression {
	case goavro.CompressionNullLabel:
	case goavro.CompressionDeflateLabel:
		var z bytes.Buffer
		z.Grow(len(records) / 2)
		if o.deflate == nil {
			var err error
			if o.deflate, err = flate.NewWriter(&z, flate.DefaultCompression); err != nil {
				return err
			}
		} else {
			o.deflate.Reset(&z)
		}
		if _, err := o.deflate.Write(records); err != nil {
			return err
		}
		if err := o.deflate.Close(); err != nil {
			return err
		}
		block = z.Bytes()
	case goavro.CompressionSnappyLabel:
		o.packed = snappy.Encode(o.packed[:cap(o.packed)], records)
		// The checksum of the uncompressed records, big-endian.
		o.packed = binary.BigEndian.AppendUint32(o.packed, crc32.ChecksumIEEE(records))
		block = o.packed
	default:
		return &permanentError{fmt.Errorf("writing an object file block: unknown compression %q", o.compression)}
	}
	// Count and size as Avro longs (zig-zag varints, as binary.AppendVarint).
	var head [2 * binary.MaxVarintLen64]byte
	h := binary.AppendVarint(head[:0], int64(n))
	h = binary.AppendVarint(h, int64(len(block)))
	for _, b := range [][]byte{h, block, o.sync[:]} {
		if _, err := o.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
