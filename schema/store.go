package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/tributary-cdc/tributary/internal/gcp"
)

// Store keeps every event schema version in GCS at
// <bucket>/<prefix>/_schemas/<fingerprint hex>.avsc, forever: replay reads
// old files with the schema they were written with. Objects are written with
// ifGenerationMatch=0 and never replaced. Store caches what it has seen and
// is safe for concurrent use.
type Store struct {
	bucket *storage.BucketHandle
	prefix string
	mu     sync.Mutex
	known  map[uint64]*EventSchema
}

// NewStore returns a store in bucket under prefix (no leading or trailing
// slash; empty for the bucket's root).
func NewStore(client *storage.Client, bucket, prefix string) *Store {
	return &Store{bucket: client.Bucket(bucket), prefix: strings.Trim(prefix, "/"), known: map[uint64]*EventSchema{}}
}

// ObjectName is the object name of the schema with fingerprint fp.
func (s *Store) ObjectName(fp uint64) string {
	name := fmt.Sprintf("_schemas/%016x.avsc", fp)
	if s.prefix != "" {
		name = s.prefix + "/" + name
	}
	return name
}

// Put stores es unless it is there already. It returns only once the object
// is durable, so a message using the schema may be published after it.
func (s *Store) Put(ctx context.Context, es *EventSchema) error {
	s.mu.Lock()
	_, ok := s.known[es.Fingerprint]
	s.mu.Unlock()
	if ok {
		return nil
	}
	obj := s.bucket.Object(s.ObjectName(es.Fingerprint))
	err := gcp.WriteNew(ctx, obj, "application/json", []byte(es.JSON), nil)
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed {
		err = nil // written before, by us or another process: same fingerprint, same schema
	}
	if err != nil {
		return fmt.Errorf("storing schema %s: %w", s.ObjectName(es.Fingerprint), err)
	}
	s.mu.Lock()
	s.known[es.Fingerprint] = es
	s.mu.Unlock()
	return nil
}

// Get returns the schema with fingerprint fp, from the cache or GCS.
func (s *Store) Get(ctx context.Context, fp uint64) (*EventSchema, error) {
	s.mu.Lock()
	es, ok := s.known[fp]
	s.mu.Unlock()
	if ok {
		return es, nil
	}
	r, err := s.bucket.Object(s.ObjectName(fp)).NewReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading schema %s: %w", s.ObjectName(fp), err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading schema %s: %w", s.ObjectName(fp), err)
	}
	es, err = ParseEventSchema(string(data), nil)
	if err != nil {
		return nil, fmt.Errorf("reading schema %s: %w", s.ObjectName(fp), err)
	}
	if es.Fingerprint != fp {
		return nil, fmt.Errorf("reading schema %s: its fingerprint is %016x", s.ObjectName(fp), es.Fingerprint)
	}
	s.mu.Lock()
	s.known[fp] = es
	s.mu.Unlock()
	return es, nil
}

// DecodeHead reads the envelope of a single-object encoded event (see
// EventSchema.DecodeHead) with the writer schema its fingerprint names.
func (s *Store) DecodeHead(ctx context.Context, data []byte) (*Event, *EventSchema, error) {
	es, err := s.writer(ctx, data)
	if err != nil {
		return nil, nil, err
	}
	e, err := es.DecodeHead(data)
	return e, es, err
}

// writer is the schema a single-object encoded event names.
func (s *Store) writer(ctx context.Context, data []byte) (*EventSchema, error) {
	fp, err := SingleObjectFingerprint(data)
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, fp)
}

// Decode reads a single-object encoded event with the writer schema its
// fingerprint names.
func (s *Store) Decode(ctx context.Context, data []byte) (*Event, *EventSchema, error) {
	es, err := s.writer(ctx, data)
	if err != nil {
		return nil, nil, err
	}
	e, err := es.Decode(data)
	return e, es, err
}
