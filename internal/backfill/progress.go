package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/schema"
)

// ProgressObject names the progress object of a run:
// <prefix>/_backfill/<database>/<GCSSegment(schema, table)>/<run id>.json.
func ProgressObject(prefix, database, pgSchema, table, runID string) string {
	parts := []string{"_backfill", database, schema.GCSSegment(pgSchema, table), runID + ".json"}
	if p := strings.Trim(prefix, "/"); p != "" {
		parts = append([]string{p}, parts...)
	}
	return path.Join(parts...)
}

// state is a run's progress as kept in its progress object.
type state struct {
	RunID  string `json:"run_id"`
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Where  string `json:"where,omitempty"`
	// Paging are the key columns chunks are read in order of; empty when
	// the table is read by ctid block ranges.
	Paging    []string      `json:"paging_key,omitempty"`
	ChunkRows int           `json:"chunk_rows"`
	Started   time.Time     `json:"started"`
	Updated   time.Time     `json:"updated"`
	Finished  bool          `json:"finished"`
	Estimate  int64         `json:"estimated_rows"` // pg_class.reltuples at the start; -1 unknown
	Ranges    []*rangeState `json:"ranges"`
}

// rangeState is one worker's share: a key range (Lower inclusive, Upper
// exclusive, nil for no bound; After the last key read) or a block range
// [FromBlock, ToBlock) read up to NextBlock.
type rangeState struct {
	Lower     []string `json:"lower,omitempty"`
	Upper     []string `json:"upper,omitempty"`
	After     []string `json:"after,omitempty"`
	FromBlock uint32   `json:"from_block,omitempty"`
	ToBlock   uint32   `json:"to_block,omitempty"`
	NextBlock uint32   `json:"next_block,omitempty"`
	// BlocksPerChunk is the block-range chunk size (ctid ranges only).
	BlocksPerChunk uint32 `json:"blocks_per_chunk,omitempty"`
	Done           bool   `json:"done"`
	Chunks         int64  `json:"chunks"`
	Rows           int64  `json:"rows"`
	Objects        int64  `json:"objects"`
	// LastObject is the last object recorded; its pending marker is written
	// again when the run resumes.
	LastObject string `json:"last_object,omitempty"`
}

func (s *state) totals() (rows, chunks, objects int64) {
	for _, r := range s.Ranges {
		rows, chunks, objects = rows+r.Rows, chunks+r.Chunks, objects+r.Objects
	}
	return
}

// stateObject reads and writes a run's progress object with generation
// preconditions: a write fails if anyone else wrote since our last read or
// write.
type stateObject struct {
	obj  *storage.ObjectHandle
	name string
	gen  int64 // 0: absent
}

// load reads the progress object; nil when there is none.
func (o *stateObject) load(ctx context.Context) (*state, error) {
	r, err := o.obj.NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.name, err)
	}
	s := &state{}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.name, err)
	}
	o.gen = r.Attrs.Generation
	return s, nil
}

// ErrConcurrentRun reports that the progress object changed under us:
// another process runs the same run id.
var ErrConcurrentRun = errors.New("the progress object was written by another process: is the same run id running twice?")

// save writes s if the object is still the one last read or written.
func (o *stateObject) save(ctx context.Context, s *state) error {
	body, err := o.encode(s)
	if err != nil {
		return err
	}
	return o.write(ctx, body)
}

// encode stamps s with the time and returns the object's content.
func (o *stateObject) encode(s *state) ([]byte, error) {
	s.Updated = time.Now().UTC()
	return json.MarshalIndent(s, "", "  ")
}

// write writes the content encode returned if the object is still the one
// last read or written. Writes must not overlap.
func (o *stateObject) write(ctx context.Context, body []byte) error {
	cond := storage.Conditions{DoesNotExist: true}
	if o.gen != 0 {
		cond = storage.Conditions{GenerationMatch: o.gen}
	}
	w := o.obj.If(cond).NewWriter(ctx)
	w.ChunkSize = gcp.UploadBuffer(len(body))
	w.ContentType = "application/json"
	_, err := w.Write(body)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if isPreconditionFailed(err) {
		return fmt.Errorf("writing %s: %w", o.name, ErrConcurrentRun)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.name, err)
	}
	o.gen = w.Attrs().Generation
	return nil
}

func isPreconditionFailed(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed
}
