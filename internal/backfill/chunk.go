package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

// ChunkMessagePrefix is the prefix of the logical message each chunk emits
// to place its watermark in the WAL. Consumers of logical messages ignore
// it.
const ChunkMessagePrefix = "tributary.chunk"

// chunk is what one read produced.
type chunk struct {
	watermark uint64
	ver       *version
	read      time.Time    // the commit time of its records
	data      bytes.Buffer // the object file, once a record is written
	ocf       *sink.OCFWriter
	block     []byte            // the records of the block being filled
	inBlock   int               // how many
	records   int64             // records written (rows not dead-lettered)
	rows      int64             // rows read (dead-lettered ones included)
	lastKey   []string          // paging key of the last row read (keyset only)
	exhausted bool              // the range has nothing after this chunk
	nextBlock uint32            // ctid only
	ctid      bool              // read by ctid block range
	no        int64             // the chunk's number in its range
	obj       string            // its object, once written
	meta      map[string]string // the object's metadata
}

// work reads range i chunk by chunk until it is exhausted, in three
// stages that hand each chunk on in order, so that they run at once on
// consecutive chunks: the reader, the upload of a chunk's object (when it
// has records), then its progress and its object's pending marker (see
// recordChunks). Any stage's failure cancels the others; work returns the
// first failure.
func (r *run) work(ctx context.Context, i int) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	read, uploaded := make(chan *chunk), make(chan *chunk)
	upErr, recErr := make(chan error, 1), make(chan error, 1)
	go func() { upErr <- r.uploadChunks(ctx, i, read, uploaded, cancel) }()
	go func() { recErr <- r.recordChunks(ctx, i, uploaded, cancel) }()
	r.mu.Lock()
	rs := *r.st.Ranges[i] // a copy: only this worker changes the range
	r.mu.Unlock()
	var readErr error
	for !rs.Done {
		c, err := r.readChunk(ctx, conn, i, &rs)
		if err != nil {
			readErr = err
			break
		}
		c.no = rs.Chunks
		rs.advance(c, "")
		read <- c
	}
	close(read)
	// The first failure: a later stage's comes first, the earlier stages'
	// being then the cancellation.
	if err := <-upErr; err != nil {
		<-recErr
		return err
	}
	if err := <-recErr; err != nil {
		return err
	}
	return readErr
}

// uploadChunks writes the objects of the chunks in, in order, and hands
// each chunk on to out, which it closes at the end. After a failure it
// calls cancel and drains in.
func (r *run) uploadChunks(ctx context.Context, i int, in <-chan *chunk, out chan<- *chunk, cancel func()) error {
	defer close(out)
	var err error
	for c := range in {
		if err != nil || c.records == 0 {
			if err == nil {
				out <- c
			}
			continue
		}
		if c.obj, c.meta, err = r.writeObject(ctx, i, c.no, c); err != nil {
			cancel()
			continue
		}
		c.data = bytes.Buffer{} // written: the memory is not needed
		out <- c
	}
	return err
}

// recordChunks records the chunks in, in order, and writes each one's
// pending marker before the next is recorded: a resumed run writes again
// only the marker of the last object recorded. After a failure it calls
// cancel and drains in.
func (r *run) recordChunks(ctx context.Context, i int, in <-chan *chunk, cancel func()) error {
	var err error
	for c := range in {
		if err != nil {
			continue
		}
		if err = r.record(ctx, i, c, c.obj); err == nil && c.obj != "" {
			err = r.writeMarker(ctx, c.obj, c.meta)
		}
		if err != nil {
			cancel()
		}
	}
	return err
}

// readChunk reads the next chunk of range rs: watermark first, then the
// snapshot, then the rows (see the package doc).
func (r *run) readChunk(ctx context.Context, conn *pgx.Conn, i int, rs *rangeState) (*chunk, error) {
	payload, _ := json.Marshal(map[string]any{"run": r.opts.RunID, "table": r.opts.Schema + "." + r.opts.Table, "range": i, "chunk": rs.Chunks})
	var mText string
	if err := conn.QueryRow(ctx, "SELECT pg_logical_emit_message(false, $1, $2::text)::text", ChunkMessagePrefix, string(payload)).Scan(&mText); err != nil {
		return nil, fmt.Errorf("emitting the watermark of a chunk of %s: %w", r.table, err)
	}
	m, err := pglogrepl.ParseLSN(mText)
	if err != nil {
		return nil, fmt.Errorf("reading the watermark of a chunk of %s: %w", r.table, err)
	}
	c := &chunk{watermark: uint64(m) - 1}

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("starting a chunk of %s: %w", r.table, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The first statement takes the snapshot: the table's shape as of it.
	sh, _, err := describe(ctx, tx, r.opts.Schema, r.opts.Table)
	if err != nil {
		return nil, err
	}
	if c.ver, err = r.version(ctx, sh); err != nil {
		return nil, err
	}
	var xmax int64
	if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").Scan(&xmax); err != nil {
		return nil, fmt.Errorf("reading the snapshot of a chunk of %s: %w", r.table, err)
	}

	var q string
	var args []any
	var keyIdx []int
	if len(r.st.Paging) > 0 {
		names, types, idx, err := pagingOf(sh, r.st.Paging)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.table, err)
		}
		keyIdx = idx
		q, args = keyChunkSQL(r.table, sh.Columns, names, types, rs.After, rs.Lower, rs.Upper, r.opts.Where, r.opts.ChunkRows)
	} else {
		to := min(rs.ToBlock, rs.NextBlock+rs.BlocksPerChunk)
		q = ctidChunkSQL(r.table, sh.Columns, rs.NextBlock, to, r.opts.Where)
		c.ctid, c.nextBlock, c.exhausted = true, to, to >= rs.ToBlock
	}
	rows, err := tx.Query(ctx, q, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("reading a chunk of %s: %w", r.table, err)
	}
	defer rows.Close()
	c.read = time.Now().UTC().Truncate(time.Microsecond)
	ev := &schema.TextEvent{Op: "r", CommitLSN: c.watermark, LSN: c.watermark, Xid: xmax, CommitTime: c.read,
		Schema: r.opts.Schema, Table: r.opts.Table}
	cut := false
	for rows.Next() {
		raw := rows.RawValues()
		ev.Seq, ev.After = c.rows, raw
		c.rows++
		if keyIdx != nil {
			c.lastKey = make([]string, len(keyIdx))
			for k, j := range keyIdx {
				c.lastKey[k] = string(raw[j])
			}
		}
		if err := r.add(c, ev); err != nil {
			var dl *schema.DeadLetterError
			if !errors.As(err, &dl) {
				return nil, err
			}
			if err := r.deadLetter(ctx, c.watermark, ev.Seq, sh, raw, dl); err != nil {
				return nil, err
			}
		}
		if keyIdx != nil && c.data.Len()+len(c.block) >= r.opts.ChunkBytes {
			cut = true // the next chunk reads on after this row
			break
		}
	}
	rows.Close() // reads past the rows a cut chunk leaves
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading a chunk of %s: %w", r.table, err)
	}
	if err := r.flush(c); err != nil {
		return nil, err
	}
	if keyIdx != nil && c.rows < int64(r.opts.ChunkRows) && !cut {
		c.exhausted = true
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("ending a chunk of %s: %w", r.table, err)
	}
	return c, nil
}

// pagingOf finds the paging columns in a shape.
func pagingOf(sh *shape, paging []string) (names, types []string, idx []int, err error) {
	for _, p := range paging {
		found := false
		for j, c := range sh.Columns {
			if c.Name == p {
				names, types, idx = append(names, p), append(types, c.TypeSQL), append(idx, j)
				found = true
				break
			}
		}
		if !found {
			return nil, nil, nil, fmt.Errorf("the paging key column %q is gone", p)
		}
	}
	return names, types, idx, nil
}

// writer names the writer of a chunk's object.
func (r *run) writer(rangeNo int, chunkNo int64) string {
	return fmt.Sprintf("backfill-%s-%d-%d", r.opts.RunID, rangeNo, chunkNo)
}

// blockRows is how many records go into one block of an object file, as
// the sink's own objects have.
const blockRows = 4096

// add encodes ev's record into c's object file, a block at a time. A row
// the type mapping cannot represent fails with its *DeadLetterError and
// leaves c as it was.
func (r *run) add(c *chunk, ev *schema.TextEvent) error {
	block, err := c.ver.enc.Encode(c.block, ev)
	if err != nil {
		return err
	}
	c.block = block
	c.inBlock++
	c.records++
	if c.inBlock == blockRows {
		return r.flush(c)
	}
	return nil
}

// flush writes the block being filled to c's object file.
func (r *run) flush(c *chunk) error {
	if c.inBlock == 0 {
		return nil
	}
	if c.ocf == nil {
		var err error
		if c.ocf, err = sink.NewOCFWriter(&c.data, c.ver.cl, r.opts.Compression); err != nil {
			return fmt.Errorf("encoding a chunk of %s: %w", r.table, err)
		}
	}
	if err := c.ocf.WriteBlock(c.inBlock, c.block); err != nil {
		return fmt.Errorf("encoding a chunk of %s: %w", r.table, err)
	}
	c.block, c.inBlock = c.block[:0], 0
	return nil
}

// writeObject writes a chunk's object file of the flat changelog record,
// never replacing an object, with the sink's metadata.
func (r *run) writeObject(ctx context.Context, rangeNo int, chunkNo int64, c *chunk) (string, map[string]string, error) {
	lsn := fmt.Sprintf("%016x", c.watermark)
	meta := map[string]string{
		"rows": strconv.FormatInt(c.records, 10), "first_lsn": lsn, "last_lsn": lsn,
		"schema_fingerprint": c.ver.es.FingerprintHex(), "backfill_run": r.opts.RunID,
	}
	name := r.layout.DataObject(r.opts.Schema, r.opts.Table, c.read, c.watermark, c.watermark, r.writer(rangeNo, chunkNo))
	if err := r.put(ctx, name, "avro/binary", c.data.Bytes(), meta); err != nil {
		return "", nil, err
	}
	return name, meta, nil
}

// writeMarker writes the sink's pending marker of object obj.
func (r *run) writeMarker(ctx context.Context, obj string, meta map[string]string) error {
	marker := r.layout.PendingMarker(r.opts.Schema, r.opts.Table, obj)
	err := r.put(ctx, marker, "text/plain", nil, map[string]string{
		"object": obj, "schema": r.opts.Schema, "table": r.opts.Table, "schema_fingerprint": meta["schema_fingerprint"],
		"first_lsn": meta["first_lsn"], "last_lsn": meta["last_lsn"],
	})
	if isPreconditionFailed(err) {
		return nil
	}
	return err
}

// put writes an object that must not exist yet.
func (r *run) put(ctx context.Context, name, contentType string, data []byte, meta map[string]string) error {
	err := gcp.WriteNew(ctx, r.bucket.Object(name), contentType, data, meta)
	if err != nil && !isPreconditionFailed(err) {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return err
}

// advance moves rs past chunk c, whose object (if any) is obj.
func (rs *rangeState) advance(c *chunk, obj string) {
	rs.Chunks++
	rs.Rows += c.records
	if c.lastKey != nil {
		rs.After = c.lastKey
	}
	if c.ctid {
		rs.NextBlock = c.nextBlock
	}
	rs.Done = c.exhausted
	if obj != "" {
		rs.Objects++
		rs.LastObject = obj
	}
}

// record advances range i past chunk c and saves the progress. The saves
// of ranges recording at once are grouped: while one save is under way,
// the ranges recording wait, and the next save writes all of their
// progress. record returns once a save holding c's progress succeeded; if
// the save fails, c's progress is undone and every later record fails.
func (r *run) record(ctx context.Context, i int, c *chunk, obj string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.st.Ranges[i]
	prev := *rs
	rs.advance(c, obj)
	r.recorded++
	mine := r.recorded
	for r.saved < mine {
		if r.saveErr != nil {
			*rs = prev
			return r.saveErr
		}
		if r.saving {
			r.saveDone.Wait()
			continue
		}
		r.saving = true
		upTo := r.recorded
		rows, chunks, objects := r.st.totals()
		body, err := r.progress.encode(r.st)
		if err == nil {
			r.mu.Unlock()
			err = r.progress.write(ctx, body)
			r.mu.Lock()
		}
		r.saving = false
		r.saveDone.Broadcast()
		if err != nil {
			r.saveErr = err
			continue
		}
		r.saved, r.savedTotals = upTo, [3]int64{rows, chunks, objects}
	}
	r.chunks++
	r.rows += c.records
	r.dead += c.rows - c.records
	if obj != "" {
		r.objects++
		r.written = append(r.written, obj)
	}
	r.log.Debug("backfilled a chunk", "table", r.table, "range", i, "rows", c.records, "watermark", pglogrepl.LSN(c.watermark), "object", obj)
	r.report(false)
	return nil
}

// deadLetter keeps a row the type mapping cannot represent, as capture
// does: <prefix>/_deadletter/<GCSSegment>/<watermark>-<seq>.json with the
// row as Postgres printed it and the reason.
func (r *run) deadLetter(ctx context.Context, watermark uint64, seq int64, sh *shape, raw [][]byte, dl *schema.DeadLetterError) error {
	row := map[string]any{}
	key := map[string]string{}
	for j, c := range sh.Columns {
		var v any
		if raw[j] != nil {
			v = string(raw[j])
		}
		row[c.Name] = v
		if c.Key && raw[j] != nil {
			key[c.Name] = string(raw[j])
		}
	}
	body, err := json.MarshalIndent(map[string]any{
		"table": r.table, "op": "r", "commit_lsn": pglogrepl.LSN(watermark).String(), "seq": seq, "key": key,
		"column": dl.Column, "value": dl.Value, "reason": dl.Reason, "after": row, "backfill_run": r.opts.RunID,
	}, "", "  ")
	if err != nil {
		return err
	}
	name := fmt.Sprintf("_deadletter/%s/%016x-%08d.json", schema.GCSSegment(r.opts.Schema, r.opts.Table), watermark, seq)
	if r.opts.Prefix != "" {
		name = r.opts.Prefix + "/" + name
	}
	if err := r.put(ctx, name, "application/json", body, nil); err != nil && !isPreconditionFailed(err) {
		return err
	}
	r.log.Warn("dead-lettered a row", "table", r.table, "object", name, "reason", dl.Reason)
	return nil
}
