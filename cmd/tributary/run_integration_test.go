package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
)

// Postgres to BigQuery through the binary: `tributary run` on the local
// stack — rows from before it (the initial snapshot's) and a workload of
// inserts, updates and deletes on two tables (one with a composite key and a
// quoted name) — then `tributary verify` exits 0, and SIGTERM stops run with
// status 0 and releases the slot.
func TestIntegrationRunEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	// The stack's own config, with a free port and short flush and load intervals.
	// A password the server ignores (trust authentication) but which must
	// never show in logs, /healthz or /metrics.
	const secret = "s3cr3t-probe"
	yaml := strings.Replace(stack.ConfigYAML(), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	yaml = strings.Replace(yaml, "postgres://postgres@", "postgres://postgres:"+secret+"@", 1)
	yaml += "sink:\n  flush_age: 1s\n  load_interval: 2s\nlog:\n  level: info\n"
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
	exec1(`CREATE TABLE customers (id bigint PRIMARY KEY, name text, since date)`)
	exec1(`CREATE TABLE "Quote Lines" (quote int, line int, price numeric(10,2), PRIMARY KEY (quote, line))`)
	// Rows from before the pipeline: only the initial snapshot brings them.
	exec1(`INSERT INTO customers SELECT g, 'early ' || g, DATE '2025-01-01' + g FROM generate_series(1001, 1020) g`)

	run := exec.CommandContext(ctx, bin, "run", "--config", cfg)
	run.Env = env
	var runErr lockedBuffer // the process writes it while the test reads it
	run.Stderr = &runErr
	run.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Process.Kill()
	// Changes count from the slot's creation.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var active bool
		if db.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'tributary'").Scan(&active) == nil && active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not start streaming within a minute:\n%s", runErr.String())
		}
	}
	exec1(`INSERT INTO customers SELECT g, 'customer ' || g, DATE '2026-01-01' + g FROM generate_series(1, 60) g`)
	exec1(`INSERT INTO "Quote Lines" SELECT g / 3, g % 3, g * 1.5 FROM generate_series(3, 50) g`)
	exec1(`UPDATE customers SET name = name || ' (vip)' WHERE id % 7 = 0`)
	exec1(`DELETE FROM customers WHERE id % 11 = 0`)
	exec1(`UPDATE "Quote Lines" SET price = price * 2 WHERE line = 1`)
	exec1(`DELETE FROM "Quote Lines" WHERE quote = 5`)

	verify := func() (string, int) {
		cmd := exec.CommandContext(ctx, bin, "verify", "--config", cfg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	var out string
	code := -1
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if out, code = verify(); code == 0 {
			break
		}
	}
	if code != 0 {
		t.Fatalf("BigQuery did not come to equal Postgres within 3 minutes; last verify (exit %d):\n%s\nrun's log:\n%s", code, out, runErr.String())
	}
	t.Logf("verify:\n%s", out)

	// /healthz and /metrics of the running process.
	addr := regexp.MustCompile(`"http":"([^"]+)"`).FindStringSubmatch(runErr.String())
	if addr == nil {
		t.Fatalf("run did not log its /healthz address:\n%s", runErr.String())
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get("http://" + addr[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s answered %d: %s", path, resp.StatusCode, body)
		}
		if strings.Contains(string(body), secret) {
			t.Errorf("%s shows the database password", path)
		}
		for _, want := range map[string][]string{
			"/healthz": {`"capture"`, `"sink"`, `"slot":"tributary"`, `"snapshot":{"public.\"Quote Lines\"":"done","public.customers":"done"}`},
			"/metrics": {"tributary_capture_events_published_total", `tributary_sink_rows_loaded_total{table="public.customers"}`},
		}[path] {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s lacks %s:\n%s", path, want, body)
			}
		}
	}

	// status, read from the outside while run runs: the slot is active, each
	// table has objects on GCS, nothing waits to load, nothing dead-lettered,
	// and BigQuery's row counts are Postgres'.
	st := exec.CommandContext(ctx, bin, "status", "--config", cfg, "--json")
	st.Env = env
	js, err := st.Output()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var rep struct {
		Slot struct {
			Exists, Active bool
		} `json:"slot"`
		Tables []struct {
			Table          string  `json:"table"`
			Objects        int     `json:"objects"`
			PendingObjects int     `json:"pending_objects"`
			Rows           *uint64 `json:"rows"`
			DeadLetters    int     `json:"dead_letters"`
		} `json:"tables"`
	}
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatalf("status --json printed %s: %v", js, err)
	}
	// customers: 60 inserted, 5 deleted; 20 from before, 2 of them deleted.
	want := map[string]uint64{"public.customers": 73, "public.Quote Lines": 45}
	if !rep.Slot.Exists || !rep.Slot.Active || len(rep.Tables) != 2 {
		t.Fatalf("status: %s", js)
	}
	for _, tb := range rep.Tables {
		if tb.Objects == 0 || tb.PendingObjects != 0 || tb.DeadLetters != 0 || tb.Rows == nil || *tb.Rows != want[tb.Table] {
			t.Errorf("status of %s: %+v, want objects, nothing pending or dead-lettered, %d rows", tb.Table, tb, want[tb.Table])
		}
	}

	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("run exited with %v after SIGTERM:\n%s", err, runErr.String())
	}
	if strings.Contains(runErr.String(), secret) {
		t.Errorf("run's log shows the database password")
	}
	// The walsender outlives its client's disconnect by a moment.
	stacktest.WaitUntil(t, "the slot released after run stopped", 30*time.Second, func() (bool, error) {
		var active bool
		err := db.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'tributary'").Scan(&active)
		return err == nil && !active, err
	})
}

// lockedBuffer is a bytes.Buffer safe to write from a process's output
// copier while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
