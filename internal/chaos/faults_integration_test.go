package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/internal/faultproxy"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
)

// The pipeline runs with a fault proxy in front of every emulator: HTTP
// faults for GCS and BigQuery (5% answered 503 or 429, 2% of connections
// reset, 2% of requests stalled 2 s) and TCP faults for Pub/Sub's gRPC
// (0.2% of reads reset, 1% stalled 2 s). A writer inserts, updates and
// deletes throughout: 30 s (3 min with TRIBUTARY_CHAOS=big), longer until
// every kind of fault has hit every service and the sink's error metric
// has counted a retryable error. After the faults stop: nothing is lost
// (BigQuery equals Postgres), the lag recovers (the slot is confirmed up
// to the end of the writes, nothing waits to be loaded), no error was
// taken for permanent, nothing was dead-lettered.
func TestIntegrationChaosFaults(t *testing.T) {
	period := 30 * time.Second
	if big() {
		period = 3 * time.Minute
	}
	if stack == nil {
		t.Skip("the local stack is not running (-short or -skip TestIntegration)")
	}
	gcsProxy, err := faultproxy.NewHTTP(stack.GCSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer gcsProxy.Close()
	bqProxy, err := faultproxy.NewHTTP(stack.BigQueryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer bqProxy.Close()
	psProxy, err := faultproxy.NewTCP(stack.PubSubAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer psProxy.Close()

	tables := [][2]string{{"faults", "accounts"}, {"faults", "events"}}
	p := newPipeline(t, "chaos_faults", tables, map[string]string{
		"STORAGE_EMULATOR_HOST":  gcsProxy.URL(),
		"BIGQUERY_EMULATOR_HOST": bqProxy.URL(),
		"PUBSUB_EMULATOR_HOST":   psProxy.Addr(),
	})
	p.exec(`CREATE SCHEMA faults`)
	p.exec(`CREATE TABLE faults.accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text)`)
	p.exec(`CREATE TABLE faults.events (id bigserial PRIMARY KEY, account int NOT NULL, delta bigint NOT NULL, at timestamptz NOT NULL DEFAULT now())`)
	p.exec(`INSERT INTO faults.accounts SELECT g, 0, 'opened' FROM generate_series(1, 50) g`)
	p.start()

	httpFaults := faultproxy.Faults{ErrorRate: 0.05, ResetRate: 0.02, StallRate: 0.02, Stall: 2 * time.Second}
	tcpFaults := faultproxy.Faults{ResetRate: 0.002, StallRate: 0.01, Stall: 2 * time.Second}
	for _, set := range []func(faultproxy.Faults) error{gcsProxy.Set, bqProxy.Set} {
		if err := set(httpFaults); err != nil {
			t.Fatal(err)
		}
	}
	if err := psProxy.Set(tcpFaults); err != nil {
		t.Fatal(err)
	}

	// The writer: one transaction at a time, each a transfer (an event row
	// and an account update), now and then an account opened or closed.
	ctx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	var wg sync.WaitGroup
	var writerErr error
	txs := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := pgx.Connect(context.Background(), stack.Postgres.DSN(stack.Database))
		if err != nil {
			writerErr = err
			return
		}
		defer conn.Close(context.Background())
		next := 51
		for ctx.Err() == nil {
			err := pgx.BeginFunc(context.Background(), conn, func(tx pgx.Tx) error {
				switch rand.IntN(20) { // 10% opened, 5% closed, the rest transfers
				case 0, 1:
					next++
					_, err := tx.Exec(context.Background(), `INSERT INTO faults.accounts VALUES ($1, 0, 'opened')`, next)
					return err
				case 2:
					_, err := tx.Exec(context.Background(), `DELETE FROM faults.accounts WHERE id = (SELECT id FROM faults.accounts ORDER BY random() LIMIT 1)`)
					return err
				}
				id, delta := 1+rand.IntN(next), rand.Int64N(2000)-1000
				if _, err := tx.Exec(context.Background(), `INSERT INTO faults.events (account, delta) VALUES ($1, $2)`, id, delta); err != nil {
					return err
				}
				_, err := tx.Exec(context.Background(), `UPDATE faults.accounts SET balance = balance + $2, note = 'moved ' || $2 WHERE id = $1`, id, delta)
				return err
			})
			if err != nil {
				writerErr = err
				return
			}
			txs++
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// The faults last the period, and then until every kind has hit every
	// service and the sink has counted a retryable error (most injected
	// faults are retried inside the client libraries, unseen by the sink),
	// for at most as long again.
	faultsOn := time.Now()
	time.Sleep(period)
	for cap := time.Now().Add(period); time.Now().Before(cap) && ctx.Err() == nil; time.Sleep(time.Second) {
		g, b, ps := gcsProxy.Counts(), bqProxy.Counts(), psProxy.Counts()
		retryable, err := p.sink.metric("tributary_sink_errors_total", `kind="retryable"`)
		if err != nil {
			t.Fatal(err)
		}
		if g.Status503+g.Status429 > 0 && g.Resets > 0 && g.Stalls > 0 && b.Status503+b.Status429 > 0 && b.Resets > 0 && b.Stalls > 0 &&
			ps.Resets > 0 && ps.Stalls > 0 && retryable > 0 {
			break
		}
	}
	stopWriter()
	faultTime := time.Since(faultsOn)
	wg.Wait()
	if writerErr != nil {
		t.Fatalf("writer: %v", writerErr)
	}
	for _, set := range []func(faultproxy.Faults) error{gcsProxy.Set, bqProxy.Set, psProxy.Set} {
		if err := set(faultproxy.Faults{}); err != nil {
			t.Fatal(err)
		}
	}
	faultsOff := time.Now()
	gcsCounts, bqCounts, psCounts := gcsProxy.Counts(), bqProxy.Counts(), psProxy.Counts()
	t.Logf("writer: %d transactions in %s under faults", txs, faultTime.Round(time.Millisecond))
	t.Logf("injected into GCS: %s", gcsCounts)
	t.Logf("injected into BigQuery: %s", bqCounts)
	t.Logf("injected into Pub/Sub: %s", psCounts)
	for name, c := range map[string]faultproxy.Counts{"GCS": gcsCounts, "BigQuery": bqCounts} {
		if c.Status503+c.Status429 == 0 || c.Resets == 0 || c.Stalls == 0 {
			t.Errorf("the %s proxy did not inject every kind of fault: %s", name, c)
		}
	}
	if psCounts.Resets == 0 || psCounts.Stalls == 0 {
		t.Errorf("the Pub/Sub proxy did not inject every kind of fault: %s", psCounts)
	}

	// Lag recovers: capture confirms the slot up to the writer's last
	// commit, BigQuery comes to equal Postgres, nothing waits to be loaded.
	var end string
	if err := p.db.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitUntil(t, "capture confirms the slot past the last write", 2*time.Minute, func() (bool, error) {
		var done bool
		err := p.db.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`, end, p.name).Scan(&done)
		return done, err
	})
	confirmedIn := time.Since(faultsOff)
	stacktest.WaitUntil(t, "the sink loads everything it wrote", 3*time.Minute, func() (bool, error) {
		h, err := p.sinkHealth()
		if err != nil {
			return false, err
		}
		for _, th := range h.Tables {
			if th.PendingObjects != 0 {
				return false, fmt.Errorf("%s: %d objects to load", th.Table, th.PendingObjects)
			}
		}
		return len(h.Tables) == len(tables), fmt.Errorf("the sink knows %d tables", len(h.Tables))
	})
	loadedIn := time.Since(faultsOff)
	res := p.waitEqual(3 * time.Minute)
	equalIn := time.Since(faultsOff)
	for _, r := range res {
		t.Logf("verify %s: %d rows in Postgres, %d in BigQuery, equal", r.Table, r.PostgresRows, r.BigQueryRows)
	}
	t.Logf("after the faults stopped: slot confirmed past the last write in %s, the sink's backlog loaded in %s, BigQuery equal in %s",
		confirmedIn.Round(time.Millisecond), loadedIn.Round(time.Millisecond), equalIn.Round(time.Millisecond))
	health, err := p.sinkHealth()
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range health.Tables {
		if th.DeadLetters != 0 {
			t.Errorf("sink health of %s: %d changes dead-lettered", th.Table, th.DeadLetters)
		}
		t.Logf("sink %s: %d events received, %d objects, %d rows loaded, errors %v", th.Table, th.EventsReceived, th.ObjectsWritten, th.RowsLoaded, th.Errors)
	}

	// The error metrics show what happened.
	retryable, err := p.sink.metric("tributary_sink_errors_total", `kind="retryable"`)
	if err != nil {
		t.Fatal(err)
	}
	permanent, err := p.sink.metric("tributary_sink_errors_total", `kind="permanent"`)
	if err != nil {
		t.Fatal(err)
	}
	restarts, err := p.capture.metric("tributary_capture_restarts_total")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("metrics: sink errors retryable %v, permanent %v; capture session restarts %v", retryable, permanent, restarts)
	if retryable == 0 {
		t.Errorf("tributary_sink_errors_total{kind=\"retryable\"} is 0 after %d injected GCS and %d BigQuery faults",
			gcsCounts.Status503+gcsCounts.Status429+gcsCounts.Resets, bqCounts.Status503+bqCounts.Status429+bqCounts.Resets)
	}
	if permanent != 0 {
		t.Errorf("tributary_sink_errors_total{kind=\"permanent\"} is %v: an injected fault was taken as permanent", permanent)
	}
	if dl, err := p.deadLetters(); err != nil || len(dl) > 0 {
		t.Errorf("dead-letters: %v %v", dl, err)
	}
	p.capture.stop(30 * time.Second)
	p.sink.stop(2 * time.Minute)
}

// sinkHealthReport is the sink's part of /healthz.
type sinkHealthReport struct {
	Healthy bool `json:"healthy"`
	Tables  []struct {
		Table          string           `json:"table"`
		EventsReceived int64            `json:"events_received"`
		ObjectsWritten int64            `json:"objects_written"`
		RowsLoaded     int64            `json:"rows_loaded"`
		PendingObjects int              `json:"pending_objects"`
		DeadLetters    int64            `json:"dead_letters"`
		Errors         map[string]int64 `json:"errors"`
	} `json:"tables"`
}

func (p *pipeline) sinkHealth() (sinkHealthReport, error) {
	body, err := p.sink.get("/healthz")
	if err != nil {
		return sinkHealthReport{}, err
	}
	var h struct {
		Sink sinkHealthReport `json:"sink"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return sinkHealthReport{}, fmt.Errorf("the sink's /healthz: %w: %s", err, body)
	}
	return h.Sink, nil
}
