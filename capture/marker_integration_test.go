package capture_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/schema"
)

// A transactional marker message becomes one marker on every ordering key
// of each table it names, in its transaction's place: on each key after
// every change committed before it. Other prefixes, malformed markers and
// non-transactional ones publish nothing and do not stop capture.
func TestIntegrationCaptureMarkers(t *testing.T) {
	h := newHarness(t, "marker_it", nil, `CREATE TABLE marked (id int PRIMARY KEY, v text)`)
	h.cfg.Tables = nil
	h.cfg.Schemas = []string{"public"}
	h.start()
	defer h.stop()
	ctx := context.Background()

	h.exec(`INSERT INTO marked SELECT g, 'before' FROM generate_series(1, 20) g`)
	// Not capture's: another prefix (a backfill's watermark is one), a
	// malformed request, a marker outside a transaction.
	h.exec(`SELECT pg_logical_emit_message(false, 'tributary.backfill.chunk', '{"id":"x"}')`)
	h.exec(`SELECT pg_logical_emit_message(true, $1, 'not json')`, schema.MarkerPrefix)
	h.exec(`SELECT pg_logical_emit_message(false, $1, '{"id":"nontx","tables":[{"schema":"public","table":"marked"}]}')`, schema.MarkerPrefix)
	// The marker, after a change in its own transaction, naming a table
	// with no changes too.
	tx, err := h.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE marked SET v = 'with the marker' WHERE id = 7`); err != nil {
		t.Fatal(err)
	}
	var markerLSN string
	if err := tx.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, $2)::text`, schema.MarkerPrefix,
		`{"id":"m1","tables":[{"schema":"public","table":"marked"},{"schema":"public","table":"Quiet One"}]}`).Scan(&markerLSN); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	h.exec(`INSERT INTO marked VALUES (100, 'after')`)

	rows := distinct(h.waitFor(22, time.Minute))
	var got []received
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		got = append(got[:0], h.got...)
		h.mu.Unlock()
		n := 0
		for _, r := range got {
			if r.marker != nil {
				n++
			}
		}
		if n >= 8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a marker too many would arrive now
	h.mu.Lock()
	got = append(got[:0], h.got...)
	h.mu.Unlock()

	// Rows: the update's commit LSN is the marker's.
	var updateCommit uint64
	for _, r := range rows {
		if r.event.Op == "u" {
			updateCommit = r.event.CommitLSN
		}
	}
	// Markers: 4 buckets × 2 tables, once each (no duplicates in this run),
	// on the key their bucket names, after every change on that key.
	seen := map[string]bool{}
	lastChange := map[string]int{} // ordering key → arrival of its last change committed with or before the marker
	for i, r := range got {
		if r.marker == nil && r.event.CommitLSN <= updateCommit {
			lastChange[r.msg.OrderingKey] = i
		}
	}
	for i, r := range got {
		if r.marker == nil {
			continue
		}
		m := r.marker
		key := schema.QuoteIdent(m.Schema) + "." + schema.QuoteIdent(m.Table) + "/" + fmt.Sprint(m.Bucket)
		if m.ID != "m1" || m.Buckets != 4 || m.CommitLSN != updateCommit || r.msg.OrderingKey != key ||
			r.msg.Attributes["op"] != "m" || r.msg.Attributes["marker"] != "m1" || r.msg.Attributes["table"] != schema.QuoteIdent(m.Schema)+"."+schema.QuoteIdent(m.Table) {
			t.Errorf("marker %+v on key %q with attributes %v; want m1 of 4 buckets at the update's commit %X", m, r.msg.OrderingKey, r.msg.Attributes, updateCommit)
		}
		if m.LSN == 0 || fmt.Sprintf("%X/%X", m.LSN>>32, uint32(m.LSN)) != markerLSN {
			t.Errorf("marker LSN %X, pg_logical_emit_message said %s", m.LSN, markerLSN)
		}
		if seen[key] {
			t.Errorf("marker on %s twice", key)
		}
		seen[key] = true
		if j, ok := lastChange[key]; ok && j > i {
			t.Errorf("on %s a change committed before the marker arrived after it", key)
		}
	}
	if len(seen) != 8 {
		t.Fatalf("markers on %d keys, want 8 (4 buckets of 2 tables): %v", len(seen), seen)
	}
	// The marker schema is in the store, so a marker decodes with GCS alone.
	r, err := h.gcs.Bucket(stack.Bucket).Object(h.store.ObjectName(schema.MarkerFingerprint)).NewReader(ctx)
	if err != nil {
		t.Fatalf("marker schema not stored: %v", err)
	}
	avsc, _ := io.ReadAll(r)
	r.Close()
	if string(avsc) != schema.MarkerSchemaJSON {
		t.Fatalf("stored marker schema %s", avsc)
	}
}
