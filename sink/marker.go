package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/tributary-cdc/tributary/schema"
)

// MarkerDir holds the records of marker id for a table, one per ordering
// key bucket: <prefix>/_sink/markers/<database>/<GCSSegment>/<id>/.
func (l Layout) MarkerDir(pgSchema, table, id string) string {
	return l.join("_sink", "markers", l.Database, schema.GCSSegment(pgSchema, table), id) + "/"
}

// MarkerRecord names the record saying that every change published before
// marker id on the table's ordering key bucket is loaded into BigQuery and
// applied to the current state.
func (l Layout) MarkerRecord(pgSchema, table, id string, bucket int) string {
	return l.MarkerDir(pgSchema, table, id) + strconv.Itoa(bucket)
}

// MarkerRecordBody is the content of a marker record (JSON). Its metadata
// holds "buckets" too, so a reader need not open it.
type MarkerRecordBody struct {
	Marker    string    `json:"marker"`
	Table     string    `json:"table"`
	Bucket    int       `json:"bucket"`
	Buckets   int       `json:"buckets"`
	CommitLSN string    `json:"commit_lsn"`
	Writer    string    `json:"writer"`
	Recorded  time.Time `json:"recorded"`
}

// pendingMarker is a marker message waiting for the changes before it to be
// applied: first for the flush that writes them (gen), then for a load
// round that starts after that flush.
type pendingMarker struct {
	msg *pubsub.Message
	mk  *schema.Marker
	gen uint64
}

// receiveMarker routes a marker message to its table.
func (s *Sink) receiveMarker(ctx context.Context, m *pubsub.Message) {
	mk, err := schema.DecodeMarker(m.Data)
	if err != nil {
		s.deadLetterMessage(ctx, m, err)
		return
	}
	t := s.table(tableKey{mk.Schema, mk.Table})
	if t == nil {
		m.Nack()
		return
	}
	t.addMarker(m, mk)
}

// addMarker places a marker behind the changes received before it: they
// are in the buffer (written by the next flush) or in a flush under way or
// done. A marker behind a change this table nacked is nacked too, so it
// comes again after that change.
func (t *table) addMarker(m *pubsub.Message, mk *schema.Marker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nacked[m.OrderingKey] {
		delete(t.nacked, m.OrderingKey)
		m.Nack()
		return
	}
	p := pendingMarker{msg: m, mk: mk, gen: t.flushTaken}
	if len(t.buf) > 0 {
		p.gen++
	}
	if p.gen > t.flushDone {
		t.markers = append(t.markers, p)
		return
	}
	t.loadWait = append(t.loadWait, p)
	t.kickLoadLocked()
}

// flushedGen notes that flush gen is over and moves the markers waiting
// for it on to wait for a load; if it did not write (and ack) every change
// (written false), those markers are nacked instead: they come again after
// the changes, which are redelivered.
func (t *table) flushedGen(gen uint64, written bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushDone = gen
	kept := t.markers[:0]
	moved := false
	for _, p := range t.markers {
		switch {
		case p.gen > gen:
			kept = append(kept, p)
		case written:
			t.loadWait = append(t.loadWait, p)
			moved = true
		default:
			p.msg.Nack()
		}
	}
	t.markers = kept
	if moved {
		t.kickLoadLocked()
	}
}

// kickLoadLocked starts a load round now when this table has nothing of its
// own waiting to load (the round only finds what other writers left, if
// anything): a marker on a quiet table is recorded at once. Otherwise the
// markers wait for the next LoadInterval. t.mu is held.
func (t *table) kickLoadLocked() {
	if len(t.pending) > 0 {
		return
	}
	select {
	case t.loadKick <- struct{}{}:
	default:
	}
}

// takeLoadWait returns the markers whose changes were written before the
// load round about to start.
func (t *table) takeLoadWait() []pendingMarker {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.loadWait
	t.loadWait = nil
	return w
}

// returnLoadWait puts markers back for the next round after a failed one.
func (t *table) returnLoadWait(w []pendingMarker) {
	if len(w) == 0 {
		return
	}
	t.mu.Lock()
	t.loadWait = append(w, t.loadWait...)
	t.mu.Unlock()
}

// recordMarkers writes the record of each marker whose changes a finished
// load round applied, then acks it; a marker whose record cannot be written
// is nacked and comes again.
func (t *table) recordMarkers(ctx context.Context, w []pendingMarker) {
	s := t.s
	for _, p := range w {
		name := s.layout.MarkerRecord(p.mk.Schema, p.mk.Table, p.mk.ID, p.mk.Bucket)
		body, _ := json.Marshal(MarkerRecordBody{
			Marker: p.mk.ID, Table: t.key.String(), Bucket: p.mk.Bucket, Buckets: p.mk.Buckets,
			CommitLSN: fmt.Sprintf("%X/%X", p.mk.CommitLSN>>32, uint32(p.mk.CommitLSN)), Writer: s.cfg.WriterID, Recorded: time.Now().UTC(),
		})
		err := s.writeObject(ctx, name, "application/json", body, map[string]string{"buckets": strconv.Itoa(p.mk.Buckets)})
		if err != nil && !isPreconditionFailed(err) {
			s.log.Warn("recording a marker", "table", t.key, "marker", p.mk.ID, "bucket", p.mk.Bucket, "err", err)
			p.msg.Nack()
			continue
		}
		p.msg.Ack()
	}
	if len(w) > 0 {
		s.log.Debug("recorded markers", "table", t.key, "marker", w[0].mk.ID, "records", len(w))
	}
}
