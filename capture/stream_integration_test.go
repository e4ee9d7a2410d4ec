package capture_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
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

	got := distinct(h.waitFor(401, 2*time.Minute))
	// The walsender reports its statistics now and then, not per transaction.
	var streamed int64
	stacktest.WaitUntil(t, "Postgres to count a streamed transaction (else the test does not exercise streaming)", 30*time.Second, func() (bool, error) {
		err := h.db.QueryRow(ctx, "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1", h.name).Scan(&streamed)
		return streamed > 0, err
	})
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

// A streamed transaction is published from its spill file after its commit
// arrives, which takes longer than wal_sender_timeout when it is big: capture
// keeps reporting its position meanwhile, so Postgres keeps the session and
// the transaction passes once, without a restart from the slot.
func TestIntegrationCaptureLongReplayKeepsTheSession(t *testing.T) {
	h := newHarness(t, "long_replay", nil, `CREATE TABLE long_replay (id int PRIMARY KEY, pad text)`)
	h.cfg.Tables = nil
	h.cfg.Schemas = []string{"public"}
	h.cfg.StandbyTimeout = 100 * time.Millisecond
	h.exec(`ALTER SYSTEM SET logical_decoding_work_mem = '64kB'`)
	h.exec(`ALTER SYSTEM SET wal_sender_timeout = '2s'`)
	h.exec(`SELECT pg_reload_conf()`)
	t.Cleanup(func() {
		h.exec(`ALTER SYSTEM RESET logical_decoding_work_mem`)
		h.exec(`ALTER SYSTEM RESET wal_sender_timeout`)
		h.exec(`SELECT pg_reload_conf()`)
	})
	h.start()
	defer h.stop()

	const rows = 50000
	start := time.Now()
	h.exec(fmt.Sprintf(`INSERT INTO long_replay SELECT g, repeat('x', 200) FROM generate_series(1, %d) g`, rows))
	var end pglogrepl.LSN
	if err := h.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan((*lsnText)(&end)); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitUntil(t, "capture to confirm the big transaction", 3*time.Minute, func() (bool, error) {
		if r := h.c.Stats().Restarts; r > 0 {
			t.Fatalf("capture restarted its session %d times while publishing one transaction", r)
		}
		return h.c.Stats().Confirmed >= end, nil
	})
	took := time.Since(start)
	if r := h.c.Stats().Restarts; r > 0 {
		t.Fatalf("capture restarted its session %d times while publishing one transaction", r)
	}
	if took < 2*time.Second {
		t.Fatalf("the transaction passed in %s, within wal_sender_timeout: the test does not exercise a long replay", took)
	}
	if p := h.c.Stats().Published; p < rows {
		t.Fatalf("published %d events, want at least %d", p, rows)
	}
	t.Logf("%d rows in one streamed transaction published in %s with wal_sender_timeout 2s, no restart", rows, took.Round(time.Millisecond))
}
