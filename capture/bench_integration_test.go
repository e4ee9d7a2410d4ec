package capture_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tributary-cdc/tributary/capture"
)

const benchColumns = `id bigint PRIMARY KEY, a int, b bigint, c text, d text, e numeric(12,2), f timestamptz, g date, h boolean, i double precision`

func benchInsert(b *testing.B, h *harness, table string, from, rows, perTx int) pglogrepl.LSN {
	b.Helper()
	for lo := from; lo < from+rows; lo += perTx {
		hi := min(lo+perTx-1, from+rows-1)
		h.exec(fmt.Sprintf(`INSERT INTO %s SELECT g, g %% 1000, g * 7, 'customer-' || g, md5(g::text), g / 100.0,
			'2026-11-21 10:00:00+00'::timestamptz + g * interval '1 second', '2026-01-01'::date + (g %% 300), g %% 2 = 0, g / 3.0
			FROM generate_series(%d, %d) g`, table, lo, hi))
	}
	var end pglogrepl.LSN
	if err := h.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan((*lsnText)(&end)); err != nil {
		b.Fatal(err)
	}
	return end
}

// BenchmarkIntegrationDrainVsRecvlogical drains the same WAL (10-column rows,
// 1,000 per transaction) with pg_recvlogical (pgoutput, to /dev/null) and with
// capture (decoding, Avro encoding, publishing to the Pub/Sub fake), side by
// side, and reports both rates and their ratio. Run with -benchtime=1x.
func BenchmarkIntegrationDrainVsRecvlogical(b *testing.B) {
	rows := envInt("TRIBUTARY_BENCH_ROWS", 200000)
	h := newHarness(b, "drain_bench", []capture.TableName{{Schema: "public", Name: "drain_rows"}},
		`CREATE TABLE drain_rows (`+benchColumns+`)`)
	// Both slots exist before the data is written, so both drain the same WAL.
	h.exec(`CREATE PUBLICATION drain_bench FOR TABLE drain_rows WITH (publish_via_partition_root = true)`)
	h.exec(`SELECT pg_create_logical_replication_slot('drain_bench', 'pgoutput')`)
	h.exec(`SELECT pg_create_logical_replication_slot('drain_reference', 'pgoutput')`)
	// A topic without subscriptions: the fake (it runs in this process)
	// records each message but delivers none, so little of its cost is in
	// the run.
	h.cfg.Topic = "drain_bench_nosub"
	dropSubscriptionOnceStreaming(b, h) // capture waits for one before streaming
	h.cfg.OrderingBuckets = 32          // the default
	end := benchInsert(b, h, "drain_rows", 1, rows, 1000)
	bin := buildTributary(b)
	b.ResetTimer()

	refStart := time.Now()
	ref := exec.Command(stack.Postgres.Tool("pg_recvlogical"), "-d", stack.Postgres.DSN(stack.Database), "--slot", "drain_reference",
		"--start", "--no-loop", "-f", "/dev/null", "--endpos", end.String(), "-o", "proto_version=1", "-o", "publication_names=drain_bench")
	if out, err := ref.CombinedOutput(); err != nil {
		b.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	refRate := float64(rows) / time.Since(refStart).Seconds()

	// capture runs as its own process, as in production, so the Pub/Sub fake
	// (which runs in this test process) does not share its CPU profile; the
	// slot's confirmed position, reported every 100ms here, marks the end.
	cfgPath := h.writeConfig(b, "drain_rows")
	prof := filepath.Join(os.TempDir(), fmt.Sprintf("tributary-capture-drain-%d.pprof", os.Getpid()))
	capStart := time.Now()
	// No initial snapshot: pg_recvlogical reads only the WAL, so capture
	// must not also read the table.
	cmd := exec.Command(bin, "capture", "--config", cfgPath, "--set", "postgres.standby_timeout=100ms", "--set", "postgres.initial_snapshot=false",
		"--cpuprofile", prof)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for {
		var confirmed pglogrepl.LSN
		if err := h.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", h.name).
			Scan((*lsnText)(&confirmed)); err != nil {
			b.Fatal(err)
		}
		if confirmed >= end {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	capRate := float64(rows) / time.Since(capStart).Seconds()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("capture exited with %v", err)
	}
	// The CPU capture spent per row, start and shutdown included: on a
	// machine shared with other work it varies less than the rates.
	cpuPerRow := float64((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Microseconds()) / float64(rows)
	b.ReportMetric(refRate, "recvlogical-rows/s")
	b.ReportMetric(capRate, "capture-rows/s")
	b.ReportMetric(capRate/refRate, "drain-ratio")
	b.ReportMetric(cpuPerRow, "capture-CPU-us/row")
	fmt.Fprintf(os.Stderr, "drain: %d rows; pg_recvlogical %.0f rows/s, capture %.0f rows/s, ratio %.2f (target >= 0.8); capture CPU %.2f us/row; CPU profile %s\n",
		rows, refRate, capRate, capRate/refRate, cpuPerRow, prof)
}

// BenchmarkIntegrationBigTransactionRSS runs the capture binary while one
// transaction of many rows passes through it and reports its peak RSS
// (VmHWM), measured by the kernel. Run with -benchtime=1x.
func BenchmarkIntegrationBigTransactionRSS(b *testing.B) {
	rows := envInt("TRIBUTARY_BENCH_BIG_ROWS", 2000000)
	bin := buildTributary(b)
	h := newHarness(b, "big_bench", nil, `CREATE TABLE big_rows (id int PRIMARY KEY, v int NOT NULL)`)
	h.cfg.Topic = "big_bench_nosub"     // no subscription: the in-process fake delivers nothing
	dropSubscriptionOnceStreaming(b, h) // capture waits for one before streaming
	cfgPath := h.writeConfig(b, "big_rows")
	cmd := exec.Command(bin, "capture", "--config", cfgPath, "--set", "postgres.initial_snapshot=false")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	h.waitSlotActive()
	var session int // the walsender serving capture
	if err := h.db.QueryRow(context.Background(), "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", h.name).Scan(&session); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	h.exec(fmt.Sprintf(`INSERT INTO big_rows SELECT g, g FROM generate_series(1, %d) g`, rows))
	var end pglogrepl.LSN
	if err := h.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan((*lsnText)(&end)); err != nil {
		b.Fatal(err)
	}
	// A new walsender for the slot means capture restarted its session:
	// the transaction is read again from its start, so fail at once
	// instead of polling until the test's timeout.
	for {
		var confirmed pglogrepl.LSN
		var pid *int
		if err := h.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text, active_pid FROM pg_replication_slots WHERE slot_name = $1", h.name).
			Scan((*lsnText)(&confirmed), &pid); err != nil {
			b.Fatal(err)
		}
		if confirmed >= end {
			break
		}
		if pid == nil || *pid != session {
			b.Fatalf("capture's replication session ended after %s with %s of %s confirmed (peak RSS so far %.1f MiB): the %d-row transaction starts again; the server log says why (a replication timeout?)",
				time.Since(start).Round(time.Second), confirmed, end, float64(vmHWM(b, cmd.Process.Pid))/(1<<20), rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	hwm := vmHWM(b, cmd.Process.Pid)
	b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
	fmt.Fprintf(os.Stderr, "big transaction: %d rows in one transaction through capture in %s; capture peak RSS %.1f MiB (target <= 256)\n",
		rows, took.Round(time.Millisecond), float64(hwm)/(1<<20))
}

func vmHWM(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
