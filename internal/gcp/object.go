package gcp

import (
	"context"
	"io"

	"cloud.google.com/go/storage"
)

// WriteNew writes data to obj unless obj exists (ifGenerationMatch=0):
// then it fails with the service's 412, which callers tell apart. The
// upload buffer is the object's size (at least the client's smallest, 256
// KiB), not the client's default of 16 MiB allocated for every object, and
// it is kept, so a failed upload is retried by the client.
func WriteNew(ctx context.Context, obj *storage.ObjectHandle, contentType string, data []byte, meta map[string]string) error {
	return WriteNewStream(ctx, obj, contentType, meta, len(data), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// UploadBuffer is the ChunkSize of a writer of an object of size bytes: the
// size rounded up to the client's 256 KiB quantum.
func UploadBuffer(size int) int {
	const quantum = 256 << 10
	return max(quantum, (size+quantum-1)/quantum*quantum)
}

// WriteNewStream writes the object that write produces, unless obj exists,
// as WriteNew does, holding at most chunk bytes of it (rounded up to the
// client's 256 KiB quantum) instead of the whole: an object bigger than
// chunk goes up as a resumable upload of chunk-sized parts, each kept until
// it is sent, so the client retries a failed part. The object exists only if
// write returns nil and the upload completes: when write fails, the upload
// is cancelled and nothing is created.
func WriteNewStream(ctx context.Context, obj *storage.ObjectHandle, contentType string, meta map[string]string, chunk int, write func(io.Writer) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ChunkSize = UploadBuffer(chunk)
	w.ContentType = contentType
	w.Metadata = meta
	if err := write(w); err != nil {
		cancel() // before Close, which would otherwise finish the object
		_ = w.Close()
		return err
	}
	return w.Close()
}
