package capture_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// With logical_decoding_work_mem at its minimum, Postgres streams big
// transactions before they commit. Committed ones arrive whole, a rolled-back
// savepoint's rows and an aborted transaction's rows never become events, and
// no spill file outlives its transaction.
func TestIntegrationCaptureStreamedTransactions(t *testing.T) {
	h := newHarness(t, "stream_it", nil, `CREATE TABLE streamed (id int PRIMARY KEY, pad text)`)
	h.cfg.Tables = nil
	h.cfg.Schemas = []string{"public"}
	h.exec(`ALTER SYSTEM SET logical_decoding_work_mem = '64kB'`)
	h.exec(`SELECT pg_reload_conf()`)
	t.Cleanup(func() {
		h.exec(`ALTER SYSTEM RESET logical_decoding_work_mem`)
		h.exec(`SELECT pg_reload_conf()`)
	})
	h.start()
	defer h.stop()

	ctx := context.Background()
	tx, err := h.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec := func(q string) {
		t.Helper()
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`INSERT INTO streamed SELECT g, repeat('x', 500) FROM generate_series(1, 300) g`)
	mustExec(`SAVEPOINT s1`)
	mustExec(`INSERT INTO streamed SELECT g, repeat('y', 500) FROM generate_series(100001, 100300) g`)
	mustExec(`ROLLBACK TO SAVEPOINT s1`)
	mustExec(`INSERT INTO streamed SELECT g, repeat('z', 500) FROM generate_series(301, 400) g`)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	aborted, err := h.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aborted.Exec(ctx, `INSERT INTO streamed SELECT g, repeat('a', 500) FROM generate_series(200001, 200400) g`); err != nil {
		t.Fatal(err)
	}
	if err := aborted.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	h.exec(`INSERT INTO streamed VALUES (9999, 'last')`)

	var streamed int64
	if err := h.db.QueryRow(ctx, "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1", h.name).Scan(&streamed); err != nil {
		t.Fatal(err)
	}
	if streamed == 0 {
		t.Fatalf("Postgres streamed no transaction: the test does not exercise streaming")
	}

	got := distinct(h.waitFor(401, 2*time.Minute))
	ids := map[int]bool{}
	var commits = map[uint64]int{}
	for _, r := range got {
		id, _ := strconv.Atoi(canon(t, r.es, r.event.After, "id"))
		if id > 100000 {
			t.Fatalf("row %d of a rolled-back savepoint or an aborted transaction became an event", id)
		}
		ids[id] = true
		commits[r.event.CommitLSN]++
	}
	if len(ids) != 401 {
		t.Fatalf("received %d distinct rows, want 401", len(ids))
	}
	if len(commits) != 2 {
		t.Fatalf("rows arrived under %d commit LSNs, want 2 (the big transaction and the last insert): %v", len(commits), commits)
	}
	t.Logf("Postgres streamed %d transactions; %d committed rows arrived, none of the 700 rolled back", streamed, len(ids))
	entries, err := os.ReadDir(h.cfg.SpillDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("spill files left behind: %v", entries)
	}
}
