package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/internal/localstack"
)

// verify's consistent point through the binary, against `tributary run`
// with a sink that holds changes back (flush_age 4s; an ordering key's next
// message comes once the one before is acked, at a flush): right after a
// writer's last commit a compare at once (--no-wait) differs, while verify
// with its marker waits until the pipeline has applied everything before
// the marker — whose LSN lies after the last write — and finds the two
// sides equal. With the pipeline stopped the marker is never applied:
// verify gives up after --wait-timeout with exit 2, naming the table and
// its buckets.
func TestIntegrationVerifyWaitsForMarker(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	stack, err := localstack.Start(ctx, localstack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close(context.Background())
	env := os.Environ()
	for k, v := range stack.Env() {
		env = append(env, k+"="+v)
	}
	cfg := filepath.Join(t.TempDir(), "tributary.yaml")
	yaml := strings.Replace(stack.ConfigYAML(), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	yaml += "sink:\n  flush_age: 4s\n  load_interval: 4s\nlog:\n  level: info\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	exec1 := func(q string) {
		t.Helper()
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec1(`CREATE TABLE orders (id bigint PRIMARY KEY, qty int, note text)`)
	exec1(`INSERT INTO orders SELECT g, g % 5, 'early ' || g FROM generate_series(1, 30) g`)

	run := exec.CommandContext(ctx, bin, "run", "--config", cfg)
	run.Env = env
	var runErr lockedBuffer
	run.Stderr = &runErr
	run.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Process.Kill()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var active bool
		if db.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'tributary'").Scan(&active) == nil && active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not start streaming within a minute:\n%s", runErr.String())
		}
	}
	verify := func(args ...string) (string, int) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"verify", "--config", cfg}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	// The initial snapshot's rows are loaded: equal, with nothing held in
	// the sink's buffer.
	var out string
	code := -1
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if out, code = verify("--no-wait"); code == 0 {
			break
		}
	}
	if code != 0 {
		t.Fatalf("the snapshot did not reach BigQuery within a minute; verify (exit %d):\n%s\nrun's log:\n%s", code, out, runErr.String())
	}

	// A writer: 12 transactions of inserts, updates and deletes, three of
	// them updates of one row (one ordering key: three flushes apart).
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		w, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
		if err != nil {
			writeErr = err
			return
		}
		defer w.Close(ctx)
		for i := 0; i < 12 && writeErr == nil; i++ {
			switch i % 4 {
			case 0:
				_, writeErr = w.Exec(ctx, "INSERT INTO orders VALUES ($1, $2, $3)", 100+i, i, "new")
			case 1:
				_, writeErr = w.Exec(ctx, "UPDATE orders SET qty = qty + 10, note = 'changed' WHERE id = 1")
			case 2:
				_, writeErr = w.Exec(ctx, "UPDATE orders SET note = 'seventh' WHERE id % 7 = 0")
			case 3:
				_, writeErr = w.Exec(ctx, "DELETE FROM orders WHERE id = $1", i)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	var lastText string
	if err := db.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lastText); err != nil {
		t.Fatal(err)
	}
	lastWrite, _ := pglogrepl.ParseLSN(lastText)

	// At once: the writer's changes are still in the sink's buffer.
	out, code = verify("--no-wait")
	if code != 1 {
		t.Fatalf("verify --no-wait right after the writer: exit %d, want 1 (BigQuery behind):\n%s", code, out)
	}
	noWaitOut := out

	// With the marker: waits, then equal.
	cmd := exec.CommandContext(ctx, bin, "verify", "--config", cfg, "--json")
	cmd.Env = env
	js, err := cmd.Output()
	if err != nil {
		t.Fatalf("verify with a marker: %v\n%s\nrun's log:\n%s", err, js, runErr.String())
	}
	var rep struct {
		Equal  bool `json:"equal"`
		Marker struct {
			ID     string  `json:"id"`
			LSN    string  `json:"lsn"`
			Waited float64 `json:"waited_seconds"`
		} `json:"marker"`
		Tables []struct {
			PostgresRows int64 `json:"postgres_rows"`
			BigQueryRows int64 `json:"bigquery_rows"`
		} `json:"tables"`
	}
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatalf("verify --json printed %s: %v", js, err)
	}
	markerLSN, err := pglogrepl.ParseLSN(rep.Marker.LSN)
	if err != nil {
		t.Fatalf("marker LSN %q: %v", rep.Marker.LSN, err)
	}
	var pgRows int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&pgRows); err != nil {
		t.Fatal(err)
	}
	if !rep.Equal || len(rep.Tables) != 1 || rep.Tables[0].PostgresRows != pgRows || rep.Tables[0].BigQueryRows != pgRows {
		t.Fatalf("verify with a marker: %s (Postgres has %d rows)", js, pgRows)
	}
	if markerLSN < lastWrite {
		t.Fatalf("marker at %s precedes the last write's position %s", markerLSN, lastWrite)
	}
	// The wait is what made the difference: the third update of row 1
	// reaches the sink three flushes (≥ 12s) after the first.
	if rep.Marker.Waited < 5 {
		t.Fatalf("verify waited %.1fs for the marker, yet the sink needs three 4s flushes for row 1's updates", rep.Marker.Waited)
	}
	t.Logf("--no-wait right after the writer:\n%smarker %s at %s (last write before %s) applied after %.1fs; %d rows equal",
		noWaitOut, rep.Marker.ID, markerLSN, lastWrite, rep.Marker.Waited, pgRows)

	// Nothing changed since: the sink records the next marker without
	// waiting for a load interval's worth of changes.
	cmd = exec.CommandContext(ctx, bin, "verify", "--config", cfg, "--json")
	cmd.Env = env
	if js, err = cmd.Output(); err != nil {
		t.Fatalf("verify of a quiet table: %v\n%s", err, js)
	}
	quiet := rep
	if err := json.Unmarshal(js, &quiet); err != nil || !quiet.Equal || quiet.Marker.ID == rep.Marker.ID {
		t.Fatalf("verify of a quiet table printed %s (%v)", js, err)
	}
	if quiet.Marker.Waited >= 8 {
		t.Errorf("a marker on a quiet table took %.1fs to be applied, two load intervals", quiet.Marker.Waited)
	}
	t.Logf("marker on the quiet table applied after %.1fs", quiet.Marker.Waited)

	// The pipeline stopped: the marker is never applied.
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("run exited with %v after SIGTERM:\n%s", err, runErr.String())
	}
	start := time.Now()
	out, code = verify("--wait-timeout", "2s")
	if code != 2 || !strings.Contains(out, "not applied after 2s") || !strings.Contains(out, "public.orders buckets 0-31 (32 of 32)") {
		t.Fatalf("verify with the pipeline stopped: exit %d after %s, output:\n%s", code, time.Since(start), out)
	}
}
