package capture_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
)

// Writes to tables outside the publication still move the slot forward, so
// a quiet published table never pins WAL.
func TestIntegrationCaptureQuietPublicationAdvancesSlot(t *testing.T) {
	h := newHarness(t, "quiet_it", []capture.TableName{{Schema: "public", Name: "quiet_rows"}},
		`CREATE TABLE quiet_rows (id int PRIMARY KEY)`, `CREATE TABLE busy_unpublished (id int, pad text)`)
	h.start()
	defer h.stop()
	h.exec(`INSERT INTO busy_unpublished SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	var target pglogrepl.LSN
	if err := h.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan((*lsnText)(&target)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var confirmed pglogrepl.LSN
		if err := h.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", h.name).
			Scan((*lsnText)(&confirmed)); err != nil {
			t.Fatal(err)
		}
		if confirmed >= target {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot stuck at %s while the database wrote up to %s", confirmed, target)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Postgres restarted under capture (pg_ctl restart -m fast) while a writer
// inserts: capture reconnects and resumes; every row committed before,
// across and after the restart arrives.
func TestIntegrationCaptureSurvivesPostgresRestart(t *testing.T) {
	h := newHarness(t, "restart_it", []capture.TableName{{Schema: "public", Name: "restart_rows"}},
		`CREATE TABLE restart_rows (id int PRIMARY KEY)`)
	h.start()
	defer h.stop()
	h.exec(`INSERT INTO restart_rows SELECT generate_series(1, 50)`)
	ctx := context.Background()
	// The writer: one row per transaction, reconnecting whenever the server
	// is gone, until told to stop. Which of its inserts committed is read
	// from the table afterwards (a commit cut off by the restart may or may
	// not have happened).
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(ctx)
			}
		}()
		for id := 51; ; id++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if conn == nil {
				c, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				conn = c
			}
			if _, err := conn.Exec(ctx, `INSERT INTO restart_rows VALUES ($1)`, id); err != nil {
				if conn.IsClosed() || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "terminating connection") ||
					strings.Contains(err.Error(), "shutting down") || strings.Contains(err.Error(), "starting up") {
					conn.Close(ctx)
					conn = nil
					continue
				}
				writerDone <- fmt.Errorf("inserting %d: %w", id, err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	count := func(db *pgx.Conn) int {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM restart_rows`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Restart while the writer writes, and let it write on afterwards.
	waitRows := func(db *pgx.Conn, n int) {
		for deadline := time.Now().Add(30 * time.Second); count(db) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the writer did not reach %d rows within 30s", n)
			}
		}
	}
	waitRows(h.db, 70)
	before := count(h.db)
	if err := stack.Postgres.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	h.db = db
	restarted := count(db)
	waitRows(db, restarted+20)
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	committed := count(db)
	got := distinct(h.waitFor(committed, 2*time.Minute))
	t.Logf("%d rows committed: 50 up front, then by the writer %d before the restart began, %d while it ran, %d after it; %d distinct changes received",
		committed, before-50, restarted-before, committed-restarted, len(got))
	if len(got) != committed {
		t.Fatalf("received %d distinct changes, want %d", len(got), committed)
	}
	if st := h.c.Stats(); st.Published < int64(committed) || st.Restarts < 1 {
		t.Fatalf("stats after a Postgres restart: %+v, want at least %d published and a restart counted", st, committed)
	}
}

// /healthz's view: healthy while streaming; after capture stops, the slot is
// no longer active and the check says so.
func TestIntegrationCaptureHealth(t *testing.T) {
	h := newHarness(t, "health_it", []capture.TableName{{Schema: "public", Name: "health_rows"}},
		`CREATE TABLE health_rows (id int PRIMARY KEY)`)
	h.start()
	h.exec(`INSERT INTO health_rows SELECT generate_series(1, 10)`)
	h.waitFor(10, time.Minute)
	ctx := context.Background()
	var hl capture.Health
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if hl = h.c.Health(ctx, capture.HealthThresholds{}); hl.Healthy && hl.LagBytes < 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture streaming but unhealthy: %+v", hl)
		}
	}
	if hl.Published < 10 || hl.Slot != "health_it" {
		t.Fatalf("health report %+v", hl)
	}
	h.stop()
	// The walsender notices the closed connection a moment later.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if hl = h.c.Health(ctx, capture.HealthThresholds{}); !hl.Healthy && hl.FailingCheck == "slot active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after stopping: %+v, want unhealthy on \"slot active\"", hl)
		}
	}
	if hl = h.c.Health(ctx, capture.HealthThresholds{MaxLagBytes: 1}); hl.Healthy {
		t.Fatalf("a 1-byte lag threshold passed: %+v", hl)
	}
}

// A table without a primary key or replica identity: Postgres refuses its
// updates and deletes while it is published, its inserts all arrive, spread
// over the table's ordering keys.
func TestIntegrationCaptureKeylessTable(t *testing.T) {
	h := newHarness(t, "keyless_it", []capture.TableName{{Schema: "public", Name: "keyless_rows"}},
		`CREATE TABLE keyless_rows (a int, b text)`)
	h.start()
	defer h.stop()
	h.exec(`INSERT INTO keyless_rows SELECT g, 'v' || g FROM generate_series(1, 40) g`)
	if _, err := h.db.Exec(context.Background(), `UPDATE keyless_rows SET b = 'x' WHERE a = 1`); err == nil {
		t.Fatal("Postgres accepted an update of a published table without replica identity")
	}
	got := distinct(h.waitFor(40, time.Minute))
	keys := map[string]bool{}
	for _, r := range got {
		if r.event.Op != "c" {
			t.Fatalf("keyless table produced a %q event", r.event.Op)
		}
		keys[r.msg.OrderingKey] = true
	}
	if len(got) != 40 || len(keys) < 2 {
		t.Fatalf("received %d inserts on %d ordering keys, want 40 spread over several", len(got), len(keys))
	}
}

// A slot this pipeline created that has vanished (a failover, a manual drop)
// stops capture with the fix, instead of a new slot silently skipping the
// changes in between.
func TestIntegrationCaptureRefusesALostSlot(t *testing.T) {
	h := newHarness(t, "lost_it", []capture.TableName{{Schema: "public", Name: "lost_rows"}},
		`CREATE TABLE lost_rows (id int PRIMARY KEY)`)
	h.start()
	h.stop()
	// The walsender outlives the client's disconnect by a moment: a slot
	// still marked active cannot be dropped.
	stacktest.WaitUntil(t, "the slot released by the stopped capture", 30*time.Second, func() (bool, error) {
		var active bool
		err := h.db.QueryRow(context.Background(), "SELECT active FROM pg_replication_slots WHERE slot_name = 'lost_it'").Scan(&active)
		return !active, err
	})
	h.exec(`SELECT pg_drop_replication_slot('lost_it')`)
	c := capture.New(h.cfg, h.ps, h.gcs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.Run(ctx)
	var fe *capture.FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "lost_it") || !strings.Contains(fe.Fix, "_state/slot-lost_it.json") {
		t.Fatalf("capture with its slot gone: %v, want a fatal error naming the slot and the record to delete", err)
	}
	var exists bool
	if err := h.db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'lost_it')").Scan(&exists); err != nil || exists {
		t.Fatalf("capture created a new slot after losing the old one (exists %v, %v)", exists, err)
	}
}
