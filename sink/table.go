package sink

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/schema"
)

// tableKey names a Postgres table as spelled there.
type tableKey struct{ Schema, Table string }

func (k tableKey) String() string { return k.Schema + "." + k.Table }

// received is one decoded message waiting in a table's buffer: the
// message (its attributes dropped) and the change's envelope, kept small
// (48 bytes with the pointers): a buffered change costs its message and
// this, which is what flow control in messages bounds.
type received struct {
	msg *pubsub.Message
	ev  envelope
	es  *schema.EventSchema
}

// envelope is what the buffer needs of a change: its place, its commit
// time and whether it is a truncate.
type envelope struct {
	CommitLSN uint64
	Seq       int64
	// CommitUS is the commit time in microseconds since the epoch
	// (Postgres's precision, and the changelog's).
	CommitUS int64
	// Op is the op's letter ('c', 'u', 'd', 't', …).
	Op byte
}

func envelopeOf(ev *schema.Event) envelope {
	e := envelope{CommitLSN: ev.CommitLSN, Seq: ev.Seq, CommitUS: ev.CommitTime.UnixMicro()}
	if ev.Op != "" {
		e.Op = ev.Op[0]
	}
	return e
}

// CommitTime is the commit time, in UTC.
func (e envelope) CommitTime() time.Time { return time.UnixMicro(e.CommitUS).UTC() }

// Identity is schema.Event.Identity.
func (e envelope) Identity() string {
	return strconv.FormatUint(e.CommitLSN, 10) + ":" + strconv.FormatInt(e.Seq, 10)
}

// table is one table's share of the sink: its buffer, its flusher and its
// loader, each retrying on its own so that a failing table never holds up
// another (beyond the Pub/Sub flow-control bytes its buffer occupies, which
// a failing table caps by nacking what exceeds twice the flush bounds).
type table struct {
	s   *Sink
	key tableKey

	mu        sync.Mutex
	buf       []received
	dupAcks   []*pubsub.Message // further copies of truncates already buffered
	bytes     int
	since     time.Time // arrival of the oldest buffered message
	failing   bool
	truncates map[string]bool // identities of truncates seen, to apply once
	keyless   bool            // warned about updates of a table without a key

	pending      map[string]bool // objects written and not yet loaded
	pendingSince time.Time       // when pending last became non-empty
	errCounts    map[string]int64
	lastErr      string
	lastErrAt    time.Time

	label string // k.String(), the metrics' table label
	stats tableStats
	kick  chan struct{}

	// Markers (marker.go): flushTaken counts the buffers taken for
	// writing, flushDone the last one written; a marker waits in markers
	// for its flush, then in loadWait for a load round.
	nacked     map[string]bool // ordering keys with a nacked change
	flushTaken uint64
	flushDone  uint64
	markers    []pendingMarker
	loadWait   []pendingMarker
	loadKick   chan struct{}
	cfg        TableConfig  // mode and soft delete
	st         *streamState // streamed changes waiting to be applied (stream.go)
}

func newTable(s *Sink, k tableKey) *table {
	t := &table{s: s, key: k, label: k.String(), truncates: map[string]bool{}, pending: map[string]bool{}, errCounts: map[string]int64{},
		kick: make(chan struct{}, 1), nacked: map[string]bool{}, loadKick: make(chan struct{}, 1),
		cfg: s.cfg.table(k), st: newStreamState()}
	return t
}

// add buffers a decoded message, or nacks it while the table is failing and
// its buffer is full.
func (t *table) add(r received) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cfg := &t.s.cfg
	if t.failing && (len(t.buf) >= 2*cfg.FlushRows || t.bytes >= 2*cfg.FlushBytes) {
		t.nacked[r.msg.OrderingKey] = true
		r.msg.Nack()
		return
	}
	if r.ev.Op == 't' {
		id := r.ev.Identity()
		if t.truncates[id] {
			t.dupAcks = append(t.dupAcks, r.msg)
			return
		}
		if len(t.truncates) > 1024 {
			clear(t.truncates)
		}
		t.truncates[id] = true
	}
	if len(t.buf) == 0 {
		t.since = time.Now()
	}
	t.buf = append(t.buf, r)
	t.bytes += len(r.msg.Data)
	if len(t.buf) >= cfg.FlushRows || t.bytes >= cfg.FlushBytes {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// take empties the buffer if it is due (or if force); gen numbers a
// non-empty buffer taken.
func (t *table) take(force bool) (buf []received, acks []*pubsub.Message, gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cfg := &t.s.cfg
	due := len(t.buf) >= cfg.FlushRows || t.bytes >= cfg.FlushBytes || (len(t.buf) > 0 && time.Since(t.since) >= cfg.FlushAge)
	if !force && !due {
		if len(t.buf) == 0 && len(t.dupAcks) > 0 {
			acks := t.dupAcks
			t.dupAcks = nil
			return nil, acks, 0
		}
		return nil, nil, 0
	}
	buf, acks = t.buf, t.dupAcks
	t.buf, t.dupAcks, t.bytes = nil, nil, 0
	if len(buf) > 0 {
		t.flushTaken++
		gen = t.flushTaken
	}
	return buf, acks, gen
}

// flushLoop writes the buffer when it is due, until ctx ends (an abrupt
// stop: nothing more is written or acked) or drain is closed (a graceful
// one: the buffer is written first).
func (t *table) flushLoop(ctx context.Context, drain <-chan struct{}) {
	tick := time.NewTicker(max(t.s.cfg.FlushAge/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-drain:
			force = true
		case <-t.kick:
		case <-tick.C:
		}
		buf, acks, gen := t.take(force)
		if len(buf) > 0 {
			t.flushedGen(gen, t.flush(ctx, buf) && ctx.Err() == nil)
		}
		for _, m := range acks {
			m.Ack()
		}
		if force {
			return
		}
	}
}

// flush writes buf, one object per schema version, and acks each message
// once the object holding it is written and marked for loading. It reports
// whether every message was written (or dead-lettered) and acked.
func (t *table) flush(ctx context.Context, buf []received) bool {
	all := true
	for _, g := range groupBySchema(buf) {
		err := t.s.retry(ctx, t, "writing objects", func() error { return t.writeGroup(ctx, g) })
		// A message whose rows cannot be decoded (its envelope could: it
		// was routed) goes to the dead-letter alone; the rest is written.
		for bad := (*undecodableError)(nil); errors.As(err, &bad) && ctx.Err() == nil; {
			all = t.s.deadLetterMessage(ctx, bad.msg, bad.err) && all
			g = slices.DeleteFunc(g, func(r received) bool { return r.msg == bad.msg })
			if len(g) == 0 {
				break
			}
			err = t.s.retry(ctx, t, "writing objects", func() error { return t.writeGroup(ctx, g) })
		}
		if len(g) == 0 {
			continue
		}
		if err != nil && ctx.Err() == nil {
			err = t.s.retry(ctx, t, "writing a dead-letter", func() error { return t.deadLetterGroup(ctx, g, err) })
			if err == nil {
				t.countDeadLetters(int64(len(g)))
			}
		}
		if err != nil {
			return false // stopping: the messages are redelivered
		}
		for _, r := range g {
			r.msg.Ack()
		}
	}
	return all
}

// groupBySchema splits buf into one group per schema version, in the order
// of each version's first change, each group in buf's order. The groups
// share buf's array (buf is reordered in place): a flush holds no second
// copy of its buffer.
func groupBySchema(buf []received) [][]received {
	rank := map[uint64]int{}
	for _, r := range buf {
		if _, ok := rank[r.es.Fingerprint]; !ok {
			rank[r.es.Fingerprint] = len(rank)
		}
	}
	if len(rank) > 1 {
		slices.SortStableFunc(buf, func(a, b received) int { return rank[a.es.Fingerprint] - rank[b.es.Fingerprint] })
	}
	groups := make([][]received, 0, len(rank))
	for start := 0; start < len(buf); {
		end := start + 1
		for end < len(buf) && buf[end].es.Fingerprint == buf[start].es.Fingerprint {
			end++
		}
		groups = append(groups, buf[start:end:end])
		start = end
	}
	return groups
}

// undecodableError is a buffered message whose rows cannot be decoded.
type undecodableError struct {
	msg *pubsub.Message
	err error
}

func (e *undecodableError) Error() string { return e.err.Error() }
func (e *undecodableError) Unwrap() error { return e.err }

// objectWriter is the writer part of a data object's name. A transaction
// bigger than a flush fills several objects with one first LSN: the first
// change's seq tells them apart, so each name is free at the first attempt
// (not after one failed create per earlier object). A suffix covers a name
// already taken (the same changes redelivered to a writer with a fixed
// WriterID).
func objectWriter(id string, firstSeq int64, attempt int) string {
	if firstSeq > 0 {
		id += ".s" + strconv.FormatInt(firstSeq, 10)
	}
	if attempt > 0 {
		id += "." + strconv.Itoa(attempt)
	}
	return id
}

// uploadChunk bounds the part of a data object held for its upload: an
// object bigger goes up in parts of this size (a resumable upload). The
// object of a flush of the default 100,000 rows of a narrow table fits in
// one; one of FlushBytes is written in several.
const uploadChunk = 8 << 20

// ocfSlack is added to the bytes of a group's messages to bound the size of
// its object, for the upload's buffer: an object's records take about their
// messages' bytes (less once compressed), its header a few KiB more.
const ocfSlack = 64 << 10

// writeGroup writes the events of one schema version as one object, never
// replacing an existing one, then its pending marker.
func (t *table) writeGroup(ctx context.Context, g []received) error {
	s := t.s
	cl, err := s.changelog(ctx, g[0].es)
	if err != nil {
		return err // reading the schema history: Classify decides
	}
	// Buffered events hold their envelope only (receive drops the rows to
	// keep a buffered change near its message's size): the rows are decoded
	// again from the messages here, one at a time, and the object is
	// uploaded as it is encoded, a part of at most uploadChunk bytes held
	// at a time; the whole object never is.
	sortReceived(g)
	full := func(i int) (*schema.Event, error) {
		ev, err := g[i].es.Decode(g[i].msg.Data)
		if err != nil {
			return nil, &permanentError{&undecodableError{msg: g[i].msg, err: fmt.Errorf("decoding message %s: %w", g[i].msg.ID, err)}}
		}
		return ev, nil
	}
	first, last := g[0].ev, g[len(g)-1].ev
	lastCommit, size := first.CommitUS, 0
	for _, r := range g {
		lastCommit = max(lastCommit, r.ev.CommitUS)
		size += len(r.msg.Data)
	}
	var name string
	for n := 0; ; n++ {
		// A name already taken (412) shows only once the upload has begun:
		// the object is encoded again under the next name.
		writer := objectWriter(s.cfg.WriterID, first.Seq, n)
		name = s.layout.DataObject(t.key.Schema, t.key.Table, first.CommitTime(), first.CommitLSN, last.CommitLSN, writer)
		err = gcp.WriteNewStream(ctx, s.bucket.Object(name), "avro/binary", map[string]string{
			"rows": strconv.Itoa(len(g)), "first_lsn": lsnHex(first.CommitLSN), "last_lsn": lsnHex(last.CommitLSN),
			"schema_fingerprint": g[0].es.FingerprintHex(),
		}, min(uploadChunk, size+ocfSlack), func(w io.Writer) error {
			return encodeOCF(w, cl, len(g), full, s.cfg.Compression)
		})
		if !isPreconditionFailed(err) || n >= 100 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if t.streamed() {
		// Stream mode inserts the group's rows: decoded whole (a
		// stream-mode table is one that needs freshness, not volume).
		rows := make([]*schema.Event, len(g))
		for i := range g {
			if rows[i], err = full(i); err != nil {
				return err
			}
		}
		if err := t.streamEvents(ctx, cl, rows); err != nil {
			return err
		}
	}
	marker := s.layout.PendingMarker(t.key.Schema, t.key.Table, name)
	meta := map[string]string{
		"object": name, "schema": t.key.Schema, "table": t.key.Table, "schema_fingerprint": g[0].es.FingerprintHex(),
		"first_lsn": lsnHex(first.CommitLSN), "last_lsn": lsnHex(last.CommitLSN),
		"rows": strconv.Itoa(len(g)), "last_commit_us": strconv.FormatInt(lastCommit, 10),
	}
	if t.streamed() {
		meta[markerStreamed] = "true" // in the changelog already: applied, never loaded
	}
	err = s.writeObject(ctx, marker, "text/plain", nil, meta)
	if err != nil && !isPreconditionFailed(err) {
		return fmt.Errorf("writing %s: %w", marker, err)
	}
	if t.streamed() {
		t.noteStreamed(marker, streamedMarker{object: name, fingerprint: g[0].es.Fingerprint, first: first.CommitLSN, last: last.CommitLSN,
			rows: int64(len(g)), lastCommit: lastCommit})
	}
	t.countWritten(name, len(g))
	s.log.Debug("wrote object", "table", t.key, "object", name, "rows", len(g))
	return nil
}

// deadLetterGroup keeps messages whose object could not be written: their
// data and the reason. (The messages' attributes were dropped when they
// were buffered; everything they said is in the data.)
func (t *table) deadLetterGroup(ctx context.Context, g []received, cause error) error {
	type msg struct {
		ID          string            `json:"message_id"`
		OrderingKey string            `json:"ordering_key"`
		Attributes  map[string]string `json:"attributes,omitempty"`
		Data        string            `json:"data_base64"`
	}
	d := struct {
		Table  string `json:"table"`
		Reason string `json:"reason"`
		Class  string `json:"class"`
		Msgs   []msg  `json:"messages"`
	}{Table: t.key.String(), Reason: cause.Error(), Class: Classify(cause).String()}
	for _, r := range g {
		d.Msgs = append(d.Msgs, msg{r.msg.ID, r.msg.OrderingKey, r.msg.Attributes, base64.StdEncoding.EncodeToString(r.msg.Data)})
	}
	body, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return &permanentError{err}
	}
	first := g[0].ev
	name := t.s.layout.DeadLetter(schema.GCSSegment(t.key.Schema, t.key.Table), fmt.Sprintf("write-%s-%08d-%s", lsnHex(first.CommitLSN), first.Seq, t.s.cfg.WriterID))
	t.s.log.Error("dead-lettering changes", "table", t.key, "rows", len(g), "object", name, "err", cause)
	err = t.s.writeObject(ctx, name, "application/json", body, nil)
	if isPreconditionFailed(err) {
		return nil
	}
	return err
}

func lsnHex(l uint64) string { return fmt.Sprintf("%016x", l) }

// writeObject writes an object that must not exist yet.
func (s *Sink) writeObject(ctx context.Context, name, contentType string, data []byte, meta map[string]string) error {
	return gcp.WriteNew(ctx, s.bucket.Object(name), contentType, data, meta)
}

// retry runs op until it succeeds, fails other than Retryable, or ctx ends,
// backing off from 200 ms up to 30 s with jitter. The table is marked
// failing while it backs off.
func (s *Sink) retry(ctx context.Context, t *table, what string, op func() error) error {
	backoff := 200 * time.Millisecond
	defer func() {
		t.mu.Lock()
		t.failing = false
		t.mu.Unlock()
	}()
	for {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			t.countError(err)
		}
		if Classify(err) != Retryable || ctx.Err() != nil {
			return err
		}
		t.mu.Lock()
		t.failing = true
		t.mu.Unlock()
		s.log.Warn(what+": retrying", "table", t.key, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
