package capture_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
)

// pgbenchTables are the tables `pgbench -i` creates; pgbench_history has no
// primary key (its changes are inserts only).
var pgbenchTables = []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"}

// BenchmarkIntegrationPgbenchLag runs pgbench's TPC-B-like script with 4
// clients twice for the same time: once alone (the reference), once while
// the capture binary streams its tables, and reports both transaction
// rates and capture's lag while the load runs. Lag is sampled every 50 ms
// in one query as pg_current_wal_lsn() and the slot's confirmed_flush_lsn:
// a sample's lag is the time since the latest earlier sample at which the
// source's WAL had not yet reached the confirmed position — an upper bound,
// at most one sampling interval high. capture confirms every 100 ms here
// (postgres.standby_timeout), which the figure includes. Seconds per phase
// from TRIBUTARY_BENCH_PGBENCH_SECONDS (default 20). Run with -benchtime=1x.
func BenchmarkIntegrationPgbenchLag(b *testing.B) {
	secs := envInt("TRIBUTARY_BENCH_PGBENCH_SECONDS", 20)
	pgbench := stack.Postgres.Tool("pgbench")
	dsn := stack.Postgres.DSN(stack.Database)
	h := newHarness(b, "pgbench_lag", nil)
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	var serverVersion int
	if err := h.db.QueryRow(context.Background(), "SELECT current_setting('server_version_num')::int").Scan(&serverVersion); err != nil {
		b.Fatal(err)
	}
	h.cfg.Topic = "pgbench_lag_nosub"
	bin := buildTributary(b)
	run := func() (tps float64, txs int) {
		out, err := exec.Command(pgbench, "-c", "4", "-j", "2", "-T", strconv.Itoa(secs), "-n", dsn).CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
		return parsePgbench(b, string(out))
	}
	b.ResetTimer()

	refTPS, _ := run()

	h.exec(`CREATE PUBLICATION pgbench_lag FOR TABLE ` + strings.Join(pgbenchTables, ", "))
	h.exec(`SELECT pg_create_logical_replication_slot('pgbench_lag', 'pgoutput')`)
	cfgPath := filepath.Join(b.TempDir(), "tributary.yaml")
	tables := ""
	for _, t := range pgbenchTables {
		tables += ", public." + t
	}
	yaml := fmt.Sprintf(`project: %s
postgres:
  url: %s
  slot: pgbench_lag
  publication: pgbench_lag
  tables: [%s]
  standby_timeout: 100ms
  initial_snapshot: false
pubsub:
  topic: %s
gcs:
  bucket: %s
  prefix: pgbench_lag
bigquery:
  dataset: %s
http:
  listen: 127.0.0.1:0
log:
  level: warn
`, stack.Project, dsn, tables[2:], h.cfg.Topic, stack.Bucket, stack.Dataset)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	prof := filepath.Join(os.TempDir(), "tributary-capture-pgbench.pprof")
	cmd := exec.Command(bin, "capture", "--config", cfgPath, "--cpuprofile", prof)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	dropSubscriptionOnceStreaming(b, h)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	h.waitSlotActive()

	type sample struct {
		at                 time.Time
		current, confirmed int64
	}
	var (
		samples []sample
		mu      sync.Mutex
		stop    = make(chan struct{})
		done    = make(chan error, 1)
	)
	go func() {
		conn := newConn(b)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
			}
			var s sample
			err := conn.QueryRow(context.Background(), `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint
				FROM pg_replication_slots WHERE slot_name = 'pgbench_lag'`).Scan(&s.current, &s.confirmed)
			if err != nil {
				done <- fmt.Errorf("sampling the slot: %w", err)
				return
			}
			s.at = time.Now()
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}
	}()
	capTPS, txs := run()
	close(stop)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	// capture catches up with the end of the load: it kept running.
	var end int64
	if err := h.db.QueryRow(context.Background(), "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").Scan(&end); err != nil {
		b.Fatal(err)
	}
	loadEnd := time.Now()
	stacktest.WaitUntil(b, "capture confirming the end of the load", 2*time.Minute, func() (bool, error) {
		var confirmed int64
		err := h.db.QueryRow(context.Background(), `SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint
			FROM pg_replication_slots WHERE slot_name = 'pgbench_lag'`).Scan(&confirmed)
		return err == nil && confirmed >= end, err
	})
	catchUp := time.Since(loadEnd)
	var lags []float64 // milliseconds
	for i, s := range samples {
		// k: the first sample whose WAL position had reached what this
		// sample finds confirmed; the WAL was written after sample k-1.
		k := slices.IndexFunc(samples[:i+1], func(p sample) bool { return p.current >= s.confirmed })
		if k < 1 {
			continue // confirmed before sampling began (the start of the run)
		}
		lags = append(lags, float64(s.at.Sub(samples[k-1].at))/float64(time.Millisecond))
	}
	if len(lags) < 10 {
		b.Fatalf("only %d lag samples over %d s of load", len(lags), secs)
	}
	slices.Sort(lags)
	p50, p99 := quantile(lags, 0.50), quantile(lags, 0.99)
	b.ReportMetric(refTPS, "tps-alone")
	b.ReportMetric(capTPS, "tps-with-capture")
	b.ReportMetric(capTPS*4, "row-changes/s") // TPC-B: 3 updates and 1 insert per transaction
	b.ReportMetric(p50, "lag-p50-ms")
	b.ReportMetric(p99, "lag-p99-ms")
	b.ReportMetric(lags[len(lags)-1], "lag-max-ms")
	b.ReportMetric(float64(catchUp)/float64(time.Millisecond), "catch-up-ms")
	b.ReportMetric(float64(serverVersion), "pg-server-version-num")
	fmt.Fprintf(os.Stderr, "pgbench -c 4, %d s: %.0f tps alone, %.0f tps with capture (%d transactions); capture lag p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d samples (target p99 < 2000); CPU profile %s\n",
		secs, refTPS, capTPS, txs, p50, p99, lags[len(lags)-1], len(lags), prof)
}

var pgbenchTPS = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
var pgbenchTxs = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

func parsePgbench(b *testing.B, out string) (float64, int) {
	m, n := pgbenchTPS.FindStringSubmatch(out), pgbenchTxs.FindStringSubmatch(out)
	if m == nil || n == nil {
		b.Fatalf("no tps or transaction count in pgbench's output:\n%s", out)
	}
	tps, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	txs, err := strconv.Atoi(n[1])
	if err != nil {
		b.Fatal(err)
	}
	return tps, txs
}

// quantile returns the q-quantile of sorted values (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// dropSubscriptionOnceStreaming gives h.cfg.Topic a subscription, which
// capture waits for before it streams, and deletes it as soon as h's slot
// is active; until the benchmark ends it then clears the Pub/Sub fake's
// messages every 200 ms (the fake keeps every published message, and runs
// in the benchmark's process). Neither the fake's memory nor its delivery
// loop then weighs on the figures.
func dropSubscriptionOnceStreaming(b *testing.B, h *harness) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	topic := "projects/" + stack.Project + "/topics/" + h.cfg.Topic
	if _, err := h.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil && status.Code(err) != codes.AlreadyExists {
		b.Fatal(err)
	}
	sub := "projects/" + stack.Project + "/subscriptions/" + h.cfg.Topic + "_until_streaming"
	if _, err := h.ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		b.Fatal(err)
	}
	conn := newConn(b)
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			var active bool
			err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", h.name).Scan(&active)
			if ctx.Err() != nil {
				return
			}
			if err == nil && active {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := h.ps.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: sub}); err != nil {
			fmt.Fprintf(os.Stderr, "deleting %s: %v\n", sub, err)
		}
		for {
			stack.ClearPubSubMessages()
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}
