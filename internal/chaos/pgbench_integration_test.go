package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"github.com/tributary-cdc/tributary/internal/verify"
)

// tpcbScript is pgbench's built-in tpcb-like script with 20 accounts per
// branch instead of 100000 (so the initial snapshot stays small: the
// emulator's apply of a table slows with the square of its changelog): each
// transaction updates one account, one teller and one branch and inserts
// one history row.
const tpcbScript = `\set aid random(1, 20 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`

// A pgbench TPC-B-like load (4 clients) runs while the capture and the sink
// processes are each SIGKILLed N times at random moments and restarted at
// once. After the load stops, BigQuery's current state equals Postgres for
// all four tables (pgbench_history has no key: compared as a multiset), and
// GCS holds every change: per table, one distinct update (one insert for
// pgbench_history) per committed transaction, each in a transaction of its
// own, and every row of the initial snapshot; nothing dead-lettered.
func TestIntegrationChaosPgbench(t *testing.T) {
	kills, duration, rate, scale, settle := 3, 30*time.Second, 5, 10, 5*time.Minute
	if big() {
		// Longer and more kills, but few more transactions: the Pub/Sub
		// fake passes a hot row's changes at about one per flush (below).
		kills, duration, rate, scale, settle = 10, 3*time.Minute, 3, 20, 15*time.Minute
	}
	// Ten branches (twenty with TRIBUTARY_CHAOS=big): on the local stack, the
	// Pub/Sub fake delivers the next message of an ordering key only once
	// the previous one is acknowledged (the sink acknowledges when the
	// object holding it is written), so the changes of one hot row pass at
	// about one per flush; with one branch every transaction would queue on
	// the same key.
	accounts := 20 * scale
	if stack == nil {
		t.Skip("the local stack is not running (-short or -skip TestIntegration)")
	}
	pgbench := stack.Postgres.Tool("pgbench")
	dsn := stack.Postgres.DSN(stack.Database)
	runPgbench := func(ctx context.Context, args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, pgbench, append(args, dsn)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// pgbench's tables and primary keys (pgbench_history has none), filled
	// as pgbench -i fills them but with 20 accounts per branch.
	runPgbench(context.Background(), "-i", "-s", strconv.Itoa(scale), "-I", "dtp")
	tables := [][2]string{{"public", "pgbench_accounts"}, {"public", "pgbench_branches"}, {"public", "pgbench_tellers"}, {"public", "pgbench_history"}}
	p := newPipeline(t, "chaos_pgbench", tables, nil)
	p.exec(`INSERT INTO pgbench_branches (bid, bbalance) SELECT g, 0 FROM generate_series(1, $1::int) g`, scale)
	p.exec(`INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT g, (g - 1) / 10 + 1, 0 FROM generate_series(1, $1::int) g`, 10*scale)
	p.exec(`INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT g, (g - 1) / 20 + 1, 0, '' FROM generate_series(1, $1::int) g`, accounts)
	initial := map[string]int{"pgbench_accounts": accounts, "pgbench_branches": scale, "pgbench_tellers": 10 * scale, "pgbench_history": 0}
	begin := time.Now()
	p.start()
	// The load starts once the initial snapshot is done. Read while
	// pgbench inserts, pgbench_history (no key) would get rows twice: once
	// read by the snapshot and once streamed, and nothing tells the two
	// apart without a key.
	stacktest.WaitUntil(t, "the initial snapshot is done", 3*time.Minute, func() (bool, error) {
		body, err := p.capture.get("/healthz")
		if err != nil {
			return false, err
		}
		var h struct {
			Snapshot map[string]string `json:"snapshot"`
		}
		if err := json.Unmarshal(body, &h); err != nil {
			return false, fmt.Errorf("capture's /healthz: %w: %s", err, body)
		}
		for _, tb := range tables {
			if h.Snapshot[tb[0]+"."+tb[1]] != "done" {
				return false, fmt.Errorf("snapshot: %v", h.Snapshot)
			}
		}
		return true, nil
	})
	t.Logf("initial snapshot done %s after the pipeline started", time.Since(begin).Round(time.Millisecond))

	script := filepath.Join(t.TempDir(), "tpcb.sql")
	if err := os.WriteFile(script, []byte(tpcbScript), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out string
		err error
	}
	loadDone := make(chan result, 1)
	go func() {
		out, err := exec.Command(pgbench, "-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(int(duration/time.Second)),
			"-R", strconv.Itoa(rate), "-f", script, "-D", fmt.Sprintf("scale=%d", scale), dsn).CombinedOutput()
		loadDone <- result{string(out), err}
	}()

	// N kills of each process at random moments of the load, in random order.
	var at []time.Duration
	var who []*proc
	for i := 0; i < kills; i++ {
		for _, pr := range []*proc{p.capture, p.sink} {
			at = append(at, duration/10+time.Duration(rand.Int64N(int64(duration*8/10))))
			who = append(who, pr)
		}
	}
	order := make([]int, len(at))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return at[order[i]] < at[order[j]] })
	loadStart := time.Now()
	for _, i := range order {
		time.Sleep(time.Until(loadStart.Add(at[i])))
		who[i].kill()
		who[i].start()
	}
	load := <-loadDone
	if load.err != nil {
		t.Fatalf("pgbench: %v\n%s", load.err, load.out)
	}
	loadTook := time.Since(loadStart)
	m := regexp.MustCompile(`number of transactions actually processed: (\d+)`).FindStringSubmatch(load.out)
	if m == nil {
		t.Fatalf("pgbench printed no transaction count:\n%s", load.out)
	}
	reported, _ := strconv.Atoi(m[1])
	var txs int
	if err := p.db.QueryRow(context.Background(), `SELECT count(*) FROM pgbench_history`).Scan(&txs); err != nil {
		t.Fatal(err)
	}
	if txs != reported || txs == 0 {
		t.Fatalf("pgbench reports %d transactions, pgbench_history holds %d rows", reported, txs)
	}
	t.Logf("pgbench: %d transactions in %s (4 clients, %d/s asked) while capture was killed %d times and the sink %d times",
		txs, loadTook.Round(time.Millisecond), rate, p.capture.kills, p.sink.kills)

	// Wait on cheap signals first (the emulator answers verify's reads
	// slowly and they slow the sink's loads): every change on GCS, then
	// nothing left for the sink to load, then BigQuery equal to Postgres.
	caughtUp := time.Now()
	deadline := caughtUp.Add(settle)
	var waitErr error
	wait := func(what string, every time.Duration, cond func() error) bool {
		for {
			if waitErr = cond(); waitErr == nil {
				return true
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: not within %s of the load's end: %v", what, settle, waitErr)
				return false
			}
			time.Sleep(every)
		}
	}
	wantOp := map[string]string{"pgbench_accounts": "u", "pgbench_branches": "u", "pgbench_tellers": "u", "pgbench_history": "c"}
	onGCS := wait("every change on GCS", 2*time.Second, func() error {
		for _, tb := range tables {
			g, err := p.readChanges(tb[0], tb[1])
			if err != nil {
				return err
			}
			if n := g.count(wantOp[tb[1]]); n < txs {
				return fmt.Errorf("%s: %d of %d changes", tb[1], n, txs)
			}
		}
		return nil
	})
	if onGCS {
		t.Logf("every change on GCS %s after the load stopped", time.Since(caughtUp).Round(time.Millisecond))
	}
	loaded := onGCS && wait("the sink loads everything it wrote", 2*time.Second, func() error {
		h, err := p.sinkHealth()
		if err != nil {
			return err
		}
		if len(h.Tables) != len(tables) {
			return fmt.Errorf("the sink knows %d tables", len(h.Tables))
		}
		for _, th := range h.Tables {
			if th.PendingObjects != 0 {
				return fmt.Errorf("%s: %d objects to load", th.Table, th.PendingObjects)
			}
		}
		return nil
	})
	var res []*verify.Result
	if loaded && wait("BigQuery's current state equals Postgres", 5*time.Second, func() (err error) {
		res, err = p.verifyAll()
		return err
	}) {
		for _, r := range res {
			t.Logf("verify %s: %d rows in Postgres, %d in BigQuery, equal", r.Table, r.PostgresRows, r.BigQueryRows)
		}
		t.Logf("BigQuery equal to Postgres %s after the load stopped (%s after the pipeline started)",
			time.Since(caughtUp).Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	}

	// Every change on GCS, exactly, counted from the data objects.
	keyCol := map[string]string{"pgbench_accounts": "aid", "pgbench_branches": "bid", "pgbench_tellers": "tid"}
	for _, tb := range tables {
		g, err := p.readChanges(tb[0], tb[1])
		if err != nil {
			t.Fatal(err)
		}
		changes := g.count(wantOp[tb[1]])
		reads := len(g.ops) - changes
		t.Logf("GCS %s: %d objects, %d records, %d distinct changes: %d %q in %d transactions, %d snapshot reads (%d duplicates)",
			tb[1], g.objects, g.records, len(g.ops), changes, wantOp[tb[1]], len(g.commits), reads, g.records-len(g.ops))
		if changes != txs || len(g.commits) != txs {
			t.Errorf("GCS %s: %d %q changes in %d transactions, want %d of each", tb[1], changes, wantOp[tb[1]], len(g.commits), txs)
		}
		if got := g.count("r"); reads != got {
			t.Errorf("GCS %s: %d changes other than %q and snapshot reads", tb[1], reads-got, wantOp[tb[1]])
		}
		if col := keyCol[tb[1]]; col != "" {
			keys := map[string]bool{}
			if err := p.eachRecord(tb[0], tb[1], func(_ string, rec map[string]any) {
				if rec["_tributary_op"] == "r" {
					keys[fmt.Sprint(rec[col])] = true
				}
			}); err != nil {
				t.Fatal(err)
			}
			if len(keys) != initial[tb[1]] {
				t.Errorf("GCS %s: the initial snapshot read %d distinct rows, want %d", tb[1], len(keys), initial[tb[1]])
			}
		} else if reads != initial[tb[1]] {
			t.Errorf("GCS %s: %d snapshot reads, want %d", tb[1], reads, initial[tb[1]])
		}
	}
	if dl, err := p.deadLetters(); err != nil || len(dl) > 0 {
		t.Errorf("dead-letters: %v %v", dl, err)
	}
	p.capture.stop(30 * time.Second)
	p.sink.stop(2 * time.Minute)
}
