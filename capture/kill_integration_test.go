package capture_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// buildTributary builds the binary under test.
func buildTributary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tributary")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tributary-cdc/tributary/cmd/tributary").CombinedOutput()
	if err != nil {
		t.Fatalf("building tributary: %v\n%s", err, out)
	}
	return bin
}

// writeConfig writes a config file for the capture binary, capturing table
// public.<table> into the harness's topic.
func (h *harness) writeConfig(t testing.TB, table string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tributary.yaml")
	yaml := fmt.Sprintf(`project: %s
postgres:
  url: %s
  slot: %s
  publication: %s
  tables: [public.%s]
pubsub:
  topic: %s
  ordering_buckets: %d
gcs:
  bucket: %s
  prefix: %s
bigquery:
  dataset: %s
http:
  listen: 127.0.0.1:0
log:
  level: warn
`, stack.Project, stack.Postgres.DSN(stack.Database), h.name, h.name, table, h.cfg.Topic, h.cfg.OrderingBuckets, stack.Bucket, h.name, stack.Dataset)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A writer runs while the capture process is SIGKILLed five times at random
// moments: afterwards every committed change has arrived at least once, and
// each row's changes arrived in commit order.
func TestIntegrationCaptureSurvivesSIGKILL(t *testing.T) {
	bin := buildTributary(t)
	h := newHarness(t, "kill_it", nil, `CREATE TABLE kill_rows (id int PRIMARY KEY, v int NOT NULL)`)
	cfgPath := h.writeConfig(t, "kill_rows")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "capture", "--config", cfgPath)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	proc := start()
	h.waitSlotActive()

	// The writer: inserts rows and increments their v, one transaction at a
	// time; final[id] is the last committed v.
	ctx, stopWriter := context.WithCancel(context.Background())
	var mu sync.Mutex
	final := map[int]int{}
	var writerErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := pgx.Connect(context.Background(), stack.Postgres.DSN(stack.Database))
		if err != nil {
			writerErr = err
			return
		}
		defer conn.Close(context.Background())
		next := 0
		for ctx.Err() == nil {
			if next < 20 || rand.IntN(3) == 0 {
				if _, err := conn.Exec(context.Background(), "INSERT INTO kill_rows VALUES ($1, 0)", next); err != nil {
					writerErr = err
					return
				}
				mu.Lock()
				final[next] = 0
				mu.Unlock()
				next++
				time.Sleep(10 * time.Millisecond)
				continue
			}
			id := rand.IntN(next)
			if _, err := conn.Exec(context.Background(), "UPDATE kill_rows SET v = v + 1 WHERE id = $1", id); err != nil {
				writerErr = err
				return
			}
			mu.Lock()
			final[id]++
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	for i := 0; i < 5; i++ {
		time.Sleep(time.Duration(200+rand.IntN(1300)) * time.Millisecond)
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = proc.Wait()
		proc = start()
	}
	time.Sleep(500 * time.Millisecond)
	stopWriter()
	wg.Wait()
	if writerErr != nil {
		t.Fatalf("writer: %v", writerErr)
	}
	changes := 0
	for _, v := range final {
		changes += v + 1
	}
	t.Logf("writer committed %d changes on %d rows across 5 SIGKILLs", changes, len(final))
	got := h.waitFor(changes, 3*time.Minute)

	// Per row, the first delivery of each change, in arrival order, must be
	// 0, 1, 2, … up to the last committed value: nothing missing, nothing out
	// of order.
	seen := map[string]bool{}
	perRow := map[int][]int{}
	duplicates := 0
	for _, r := range got {
		if r.event == nil || r.event.Table != "kill_rows" {
			continue
		}
		if seen[r.event.Identity()] {
			duplicates++
			continue
		}
		seen[r.event.Identity()] = true
		id, _ := strconv.Atoi(canon(t, r.es, r.event.After, "id"))
		v, _ := strconv.Atoi(canon(t, r.es, r.event.After, "v"))
		perRow[id] = append(perRow[id], v)
	}
	for id, last := range final {
		vs := perRow[id]
		if len(vs) != last+1 {
			t.Errorf("row %d: received values %v, want 0..%d", id, vs, last)
			continue
		}
		for i, v := range vs {
			if v != i {
				t.Errorf("row %d: received values %v out of order or with a gap", id, vs)
				break
			}
		}
	}
	t.Logf("received %d deliveries: %d distinct changes, %d duplicates (same commit_lsn:seq)", len(got), len(seen), duplicates)

	// A clean stop: SIGTERM flushes, confirms, exits 0.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("capture exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("capture did not exit within 30s of SIGTERM")
	}
}

func (h *harness) waitSlotActive() {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var active bool
		err := h.db.QueryRow(context.Background(), "SELECT active FROM pg_replication_slots WHERE slot_name = $1", h.name).Scan(&active)
		if err == nil && active {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("slot %s not active within 60s (last error %v)", h.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
