package sink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/tributary-cdc/tributary/internal/gcp"
)

// Data objects are uploaded as they are encoded (gcp.WriteNewStream): an
// object bigger than the upload chunk goes up in parts and reads back whole,
// a name already taken is refused with the 412 writeGroup tells apart, and a
// write that fails part-way, after parts were sent, leaves no object.
func TestIntegrationWriteNewStream(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	bucket := gcs.Bucket(stack.Bucket)
	prefix := "upload" + strconv.FormatInt(time.Now().UnixNano(), 36)
	const chunk = 256 << 10
	data := make([]byte, 4*chunk+12345)
	rng := rand.NewChaCha8([32]byte{7})
	_, _ = rng.Read(data)
	// writeUpTo writes data in pieces of odd sizes, as OCFWriter's blocks
	// come, and fails after n bytes when n is less than the data.
	writeUpTo := func(n int) func(io.Writer) error {
		return func(w io.Writer) error {
			for off := 0; off < len(data); off += 10007 {
				if off >= n {
					return errors.New("encoding failed")
				}
				if _, err := w.Write(data[off:min(off+10007, len(data))]); err != nil {
					return err
				}
			}
			return nil
		}
	}

	obj := bucket.Object(prefix + "/whole.avro")
	if err := gcp.WriteNewStream(ctx, obj, "avro/binary", map[string]string{"rows": "1"}, chunk, writeUpTo(len(data))); err != nil {
		t.Fatalf("writing an object of %d bytes in %d-byte parts: %v", len(data), chunk, err)
	}
	r, err := obj.NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not the %d written", len(got), len(data))
	}
	if attrs, err := obj.Attrs(ctx); err != nil || attrs.Metadata["rows"] != "1" || attrs.ContentType != "avro/binary" {
		t.Errorf("attributes %+v, %v", attrs, err)
	}

	err = gcp.WriteNewStream(ctx, obj, "avro/binary", nil, chunk, writeUpTo(len(data)))
	if !isPreconditionFailed(err) {
		t.Errorf("writing over an existing object: %v, want the 412", err)
	}

	for _, upTo := range []int{chunk / 2, 3 * chunk} { // before the first part is sent, and after
		cut := bucket.Object(prefix + "/cut-" + strconv.Itoa(upTo) + ".avro")
		err := gcp.WriteNewStream(ctx, cut, "avro/binary", nil, chunk, writeUpTo(upTo))
		if err == nil || err.Error() != "encoding failed" {
			t.Errorf("a write failing after %d bytes: %v, want its error", upTo, err)
		}
		if _, err := cut.Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
			t.Errorf("a write failing after %d bytes left an object (%v)", upTo, err)
		}
	}
}
