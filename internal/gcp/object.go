package gcp

import (
	"context"

	"cloud.google.com/go/storage"
)

// WriteNew writes data to obj unless obj exists (ifGenerationMatch=0):
// then it fails with the service's 412, which callers tell apart. The
// upload buffer is the object's size (at least the client's smallest, 256
// KiB), not the client's default of 16 MiB allocated for every object, and
// it is kept, so a failed upload is retried by the client.
func WriteNew(ctx context.Context, obj *storage.ObjectHandle, contentType string, data []byte, meta map[string]string) error {
	w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ChunkSize = UploadBuffer(len(data))
	w.ContentType = contentType
	w.Metadata = meta
	_, err := w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// UploadBuffer is the ChunkSize of a writer of an object of size bytes: the
// size rounded up to the client's 256 KiB quantum.
func UploadBuffer(size int) int {
	const quantum = 256 << 10
	return max(quantum, (size+quantum-1)/quantum*quantum)
}
