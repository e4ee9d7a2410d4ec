package sink

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
)

// While a writer inserts, updates and deletes, the table's state is copied
// aside in Postgres at a moment t (the writer paused), and later a column is
// added. Once the sink has caught up (it keeps running throughout): the
// table's BigQuery tables are dropped and Replay rebuilds them from GCS
// alone, equal to Postgres, across both schema versions; a replay from t
// into the live tables keeps the changelog rows before t and gives the same
// state; and replays up to t (as a time and as an LSN) into other datasets
// equal the copy taken at t.
func TestIntegrationReplay(t *testing.T) {
	needStack(t)
	p := newPipeline(t, "sink_replay", []capture.TableName{{Schema: "public", Name: "replayed"}},
		`CREATE TABLE replayed (id int PRIMARY KEY, status text, amount int)`)
	ctx := context.Background()
	writerDB, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer writerDB.Close(ctx)

	// The writer runs one transaction per step while holding mu, so that
	// holding mu pauses it between commits.
	var (
		mu       sync.Mutex
		step     int
		withNote bool
		changes  int64
		wg       sync.WaitGroup
	)
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			mu.Lock()
			step++
			i := step
			stmts := []string{`INSERT INTO replayed (id, status, amount) VALUES ($1, 'new', $1)`}
			if i%3 == 0 {
				stmts = append(stmts, `UPDATE replayed SET status = 'paid', amount = amount * 10 WHERE id = $1 / 2`)
			}
			if i%5 == 0 {
				stmts = append(stmts, `UPDATE replayed SET id = id + 100000 WHERE id = $1 - 3`) // a key change
			}
			if i%7 == 0 {
				stmts = append(stmts, `DELETE FROM replayed WHERE id = $1 - 5`)
			}
			if withNote && i%2 == 0 {
				stmts = append(stmts, `UPDATE replayed SET note = 'note ' || $1::text WHERE id = $1 - 1`)
			}
			var n int64
			tx, err := writerDB.Begin(ctx)
			for _, q := range stmts {
				if err == nil {
					var tag pgconn.CommandTag
					tag, err = tx.Exec(ctx, q, i)
					n += tag.RowsAffected()
				}
			}
			if err == nil {
				err = tx.Commit(ctx)
			}
			if err == nil {
				changes += n
			}
			mu.Unlock()
			if err != nil {
				t.Errorf("writer step %d: %v", i, err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitSteps := func(n int) {
		t.Helper()
		mu.Lock()
		target := step + n
		mu.Unlock()
		p.waitUntil(fmt.Sprintf("the writer reaches step %d", target), 30*time.Second, func() (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return step >= target, nil
		})
	}

	p.startSink()
	defer func() {
		if p.sink != nil {
			p.stopSink(false)
		}
	}()
	waitSteps(60)
	// t: the writer paused between commits; every commit so far is at or
	// before t and before lsnAtT, every later one after both.
	var atT time.Time
	var lsnText string
	mu.Lock()
	err = p.db.QueryRow(ctx, `SELECT clock_timestamp(), pg_current_wal_lsn()::text`).Scan(&atT, &lsnText)
	if err == nil {
		_, err = p.db.Exec(ctx, `CREATE TABLE replayed_at_t (LIKE replayed INCLUDING ALL); INSERT INTO replayed_at_t SELECT * FROM replayed`)
	}
	time.Sleep(10 * time.Millisecond)
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	lsnAtT, err := pglogrepl.ParseLSN(lsnText)
	if err != nil {
		t.Fatal(err)
	}
	waitSteps(40)
	mu.Lock()
	p.exec(`ALTER TABLE replayed ADD COLUMN note text`)
	withNote = true
	mu.Unlock()
	waitSteps(60)
	stopWriter()
	wg.Wait()

	// The sink caught up; it keeps running through every replay.
	var records int
	stopped := time.Now()
	p.waitUntil("GCS holds every change", 2*time.Minute, func() (bool, error) {
		ids, n, err := p.gcsIdentities("public", "replayed")
		records = n
		return err == nil && int64(len(ids)) == changes, fmt.Errorf("%d of %d changes on GCS (%v)", len(ids), changes, err)
	})
	t.Logf("GCS held every change %.1f s after the writer stopped", time.Since(stopped).Seconds())
	res := p.waitVerified("replayed", stack.Dataset, 3*time.Minute)
	changelog := "`" + stack.Dataset + "." + schema.BigQueryTableName("public", "replayed", "changelog") + "`"
	// Equal current state does not mean every object is loaded (the last
	// ones may change nothing visible); a load after the swap below would
	// add its rows to the rebuilt changelog a second time (the README's
	// replay contract: the table's sink idle, or replay again afterwards).
	p.waitUntil("the sink loads every object on GCS", 2*time.Minute, func() (bool, error) {
		_, rep := p.sink.Health(ctx)
		pending := -1
		for _, th := range rep.(HealthReport).Tables {
			if th.Table == "public.replayed" {
				pending = th.PendingObjects
			}
		}
		n := p.countRows(changelog)
		return pending == 0 && n == int64(records), fmt.Errorf("%d objects pending, changelog %d rows of %d", pending, n, records)
	})
	t.Logf("the sink caught up: %d rows equal; GCS: %d records of %d changes", res.PostgresRows, records, changes)

	// The tables dropped, rebuilt from GCS alone, across both versions.
	for _, suffix := range []string{"changelog", ""} {
		if err := p.bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName("public", "replayed", suffix)).Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var reports []ReplayProgress
	opts := ReplayOptions{Schema: "public", Table: "replayed", Progress: func(r ReplayProgress) { reports = append(reports, r) }}
	full, err := Replay(ctx, p.cfg, p.gcs, p.bq, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Progress = nil
	t.Logf("replay: %+v", full)
	checkProgress(t, reports, []string{"loading", "applying", "swapping", "done"}, full.Objects, full.RowsRead)
	p.mustVerify("replayed", stack.Dataset)
	if full.SchemaVersions < 2 || full.RowsRead != int64(records) || full.ChangelogRows != int64(records) {
		t.Errorf("replay result %+v; want 2 schema versions or more and %d rows (the records on GCS)", full, records)
	}
	if n := p.countRows(changelog); n != int64(records) {
		t.Errorf("the rebuilt changelog holds %d rows, GCS %d records", n, records)
	}
	if n := p.countRows(changelog + " WHERE note IS NOT NULL"); n == 0 {
		t.Error("no change of the second schema version carries its added column")
	}
	p.noAsideTables(stack.Dataset)
	if ok, h := p.sink.Health(ctx); !ok {
		t.Errorf("the sink is unhealthy after the replay: %+v", h)
	}

	// A repair from t into the live tables: rows before t kept, the rest
	// reloaded; the same state, the same changelog.
	opts.From = Bound{LSN: uint64(lsnAtT)}
	repair, err := Replay(ctx, p.cfg, p.gcs, p.bq, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay --from %s: %+v", lsnAtT, repair)
	p.mustVerify("replayed", stack.Dataset)
	if repair.RowsKept == 0 || repair.ChangelogRows != int64(records) || p.countRows(changelog) != int64(records) {
		t.Errorf("replay --from: %+v; want rows kept and %d changelog rows", repair, records)
	}

	// Point in time, by time and by LSN, into other datasets: equal to the
	// copy taken at t.
	for _, to := range []Bound{{Time: atT}, {LSN: uint64(lsnAtT)}} {
		into := "replay_pit_" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
		pit, err := Replay(ctx, p.cfg, p.gcs, p.bq, ReplayOptions{Schema: "public", Table: "replayed", To: to, Into: into})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("replay --to %s --into %s: %+v", to, into, pit)
		if pit.ChangelogRows >= int64(records) || pit.ChangelogRows == 0 {
			t.Errorf("replay --to %s: %d changelog rows of %d", to, pit.ChangelogRows, records)
		}
		// Compare the copy in Postgres with the replayed state, under the
		// copy's name.
		copied := schema.QuoteBigQuery(stack.Project + "." + into + "." + schema.BigQueryTableName("public", "replayed_at_t", ""))
		replayed := schema.QuoteBigQuery(stack.Project + "." + into + "." + schema.BigQueryTableName("public", "replayed", ""))
		p.sinkExec("CREATE TABLE " + copied + " AS SELECT * FROM " + replayed)
		p.mustVerify("replayed_at_t", into)
		p.noAsideTables(into)
	}
}

// verifyTable compares a Postgres table of schema public with its
// current-state table in dataset.
func (p *pipeline) verifyTable(table, dataset string) (*verify.Result, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	for k, v := range schema.SessionSettings {
		if _, err := conn.Exec(ctx, `SELECT set_config($1, $2, false)`, k, v); err != nil {
			return nil, err
		}
	}
	return verify.Table(ctx, verify.Source{Postgres: conn, Resolver: schema.Builtin, BigQuery: p.bq, Dataset: dataset}, "public", table)
}

// waitVerified waits until the table is equal in both systems.
func (p *pipeline) waitVerified(table, dataset string, timeout time.Duration) *verify.Result {
	p.t.Helper()
	var res *verify.Result
	p.waitUntil(table+" in "+dataset+" equals Postgres", timeout, func() (bool, error) {
		var err error
		if res, err = p.verifyTable(table, dataset); err != nil {
			return false, err
		}
		return res.Equal(), fmt.Errorf("%d rows in Postgres, %d in BigQuery, discrepancies %v", res.PostgresRows, res.BigQueryRows, res.Discrepancies)
	})
	return res
}

// mustVerify checks at once that the table is equal in both systems.
func (p *pipeline) mustVerify(table, dataset string) {
	p.t.Helper()
	res, err := p.verifyTable(table, dataset)
	if err != nil {
		p.t.Fatal(err)
	}
	if !res.Equal() {
		p.t.Errorf("%s in %s differs from Postgres: %d rows there, %d in BigQuery; %v", table, dataset, res.PostgresRows, res.BigQueryRows, res.Discrepancies)
		return
	}
	p.t.Logf("%s in %s: %d rows equal to Postgres", table, dataset, res.PostgresRows)
}

func (p *pipeline) countRows(from string) int64 {
	p.t.Helper()
	rows, err := p.bqRows("SELECT COUNT(*) FROM " + from)
	if err != nil || len(rows) != 1 {
		p.t.Fatalf("counting %s: %v %v", from, rows, err)
	}
	n, _ := strconv.ParseInt(rows[0], 10, 64)
	return n
}

func (p *pipeline) sinkExec(sql string) {
	p.t.Helper()
	s := &Sink{bq: p.bq}
	if err := s.exec(context.Background(), sql); err != nil {
		p.t.Fatal(err)
	}
}

// noAsideTables checks that a replay left no table of its own behind.
func (p *pipeline) noAsideTables(dataset string) {
	p.t.Helper()
	for _, suffix := range []string{"changelog_replay", "replay", "replay_stage"} {
		id := schema.BigQueryTableName("public", "replayed", suffix)
		if _, err := p.bq.Dataset(dataset).Table(id).Metadata(context.Background()); !isNotFound(err) {
			p.t.Errorf("%s.%s is still there (%v)", dataset, id, err)
		}
	}
}

// While capture and the sink run, a table with a composite key gets
// inserts, updates (one changing the key) and deletes; a second ordered
// subscription on capture's topic keeps the original events. Once GCS holds
// every change, and a copy of one object as a redelivery would leave it,
// ReplayToTopic publishes the table to a new topic whose ordered
// subscription exists beforehand: every change arrives exactly once, each
// row's changes in commit order on one ordering key, with the original's
// attributes and, byte for byte, the original's data.
func TestIntegrationReplayToTopic(t *testing.T) {
	needStack(t)
	const name = "sink_replay_topic"
	p := newPipeline(t, name, []capture.TableName{{Schema: "public", Name: "Pair Keys"}},
		`CREATE TABLE "Pair Keys" (a int, b text, v int, note text, PRIMARY KEY (a, b))`)
	ctx := context.Background()
	original := p.orderedSubscription(name, name+"_original")
	originals := p.collect(original)

	p.startSink()
	defer p.stopSink(false)
	var changes int64
	for i := 1; i <= 40; i++ {
		tx, err := p.db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(0)
		for _, q := range []string{
			`INSERT INTO "Pair Keys" (a, b, v) VALUES ($1, 'k' || ($1 % 3)::text, $1)`,
			`UPDATE "Pair Keys" SET v = v + 1, note = 'n' || $1::text WHERE a = $1 / 2`,
			`UPDATE "Pair Keys" SET b = b || 'x' WHERE a = $1 - 4 AND $1 % 5 = 0`, // a key change
			`DELETE FROM "Pair Keys" WHERE a = $1 - 7 AND $1 % 4 = 0`,
		} {
			tag, err := tx.Exec(ctx, q, i)
			if err != nil {
				t.Fatal(err)
			}
			n += tag.RowsAffected()
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		changes += n
	}
	p.waitUntil("GCS holds every change", 2*time.Minute, func() (bool, error) {
		ids, _, err := p.gcsIdentities("public", "Pair Keys")
		return err == nil && int64(len(ids)) == changes, fmt.Errorf("%d of %d changes on GCS (%v)", len(ids), changes, err)
	})
	p.waitUntil("the original events arrived", time.Minute, func() (bool, error) {
		return int64(originals.distinct()) == changes, fmt.Errorf("%d of %d", originals.distinct(), changes)
	})

	// A copy of one object under another writer's name, as a redelivery
	// to another sink instance would leave: its records are duplicates.
	dir := Layout{Prefix: p.cfg.Prefix, Database: p.cfg.Database}.TableDir("public", "Pair Keys") + "/"
	objs, err := (&Sink{bucket: p.gcs.Bucket(p.cfg.Bucket)}).list(ctx, dir)
	if err != nil || len(objs) < 2 {
		t.Fatalf("listing %s: %d objects, %v", dir, len(objs), err)
	}
	src := objs[len(objs)/2]
	dup := strings.TrimSuffix(src.Name, ".avro")
	dup = dup[:strings.LastIndex(dup, "-")] + "-redelivered.avro"
	bkt := p.gcs.Bucket(p.cfg.Bucket)
	if _, err := bkt.Object(dup).CopierFrom(bkt.Object(src.Name)).Run(ctx); err != nil {
		t.Fatal(err)
	}
	dupRows, _ := strconv.ParseInt(src.Metadata["rows"], 10, 64)

	topic := name + "_out"
	replayed := p.collect(p.orderedSubscription(topic, topic))
	var reports []ReplayProgress
	res, err := ReplayToTopic(ctx, p.cfg, p.ps, p.gcs, TopicReplayOptions{Schema: "public", Table: "Pair Keys", Topic: topic,
		Progress: func(r ReplayProgress) { reports = append(reports, r) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay --to-topic: %+v", res)
	checkProgress(t, reports, []string{"publishing", "done"}, res.Objects, changes+dupRows)
	if res.Events != changes || res.Messages != changes || res.Duplicates != dupRows || res.Objects != len(objs)+1 {
		t.Errorf("replay result %+v; want %d objects, %d events and messages, %d duplicates", res, len(objs)+1, changes, dupRows)
	}
	p.waitUntil("the replayed events arrived", time.Minute, func() (bool, error) {
		return int64(replayed.distinct()) == changes, fmt.Errorf("%d of %d", replayed.distinct(), changes)
	})
	time.Sleep(2 * time.Second) // a late duplicate would arrive now

	got, want := replayed.snapshot(), originals.byIdentity()
	if len(got) != int(changes) {
		t.Errorf("%d messages for %d changes: each change must arrive exactly once", len(got), changes)
	}
	store := schema.NewStore(p.gcs, p.cfg.Bucket, p.cfg.Prefix)
	lastOfRow := map[string]*schema.Event{}
	lastOfKey := map[string]*schema.Event{}
	for _, m := range got {
		ev, es, err := store.Decode(ctx, m.Data)
		if err != nil {
			t.Fatalf("decoding a replayed message: %v", err)
		}
		orig, ok := want[ev.Identity()]
		if !ok {
			t.Errorf("replayed change %s was never published by capture", ev.Identity())
			continue
		}
		if !bytes.Equal(m.Data, orig.Data) {
			o, _, _ := store.Decode(ctx, orig.Data)
			t.Errorf("change %s differs:\n replayed %+v\n original %+v", ev.Identity(), ev, o)
		}
		for _, a := range []string{"table", "op", "commit_lsn", "seq", "schema_fingerprint"} {
			if m.Attributes[a] != orig.Attributes[a] {
				t.Errorf("change %s: attribute %s = %q, capture's %q", ev.Identity(), a, m.Attributes[a], orig.Attributes[a])
			}
		}
		if m.Attributes["schema_fingerprint"] != es.FingerprintHex() {
			t.Errorf("change %s: fingerprint attribute %s, data %s", ev.Identity(), m.Attributes["schema_fingerprint"], es.FingerprintHex())
		}
		if !strings.HasPrefix(m.OrderingKey, `public."Pair Keys"/`) {
			t.Errorf("change %s: ordering key %q", ev.Identity(), m.OrderingKey)
		}
		// Per row (by its key after the change, before it for a delete)
		// and per ordering key, arrival order is commit order. (A key
		// change moves a row to another ordering key, whose arrivals are
		// not ordered against the old one's.)
		row := rowKey(ev.After)
		if row == "" {
			row = rowKey(ev.Before)
		}
		for _, k := range []string{"row " + row, "key " + m.OrderingKey} {
			if prev := lastOfRow[k]; prev != nil && !(prev.CommitLSN < ev.CommitLSN || prev.CommitLSN == ev.CommitLSN && prev.Seq < ev.Seq) {
				t.Errorf("%s: change %s arrived after %s", k, ev.Identity(), prev.Identity())
			}
			lastOfRow[k] = ev
		}
		if rk := rowKey(ev.After); rk != "" {
			lastOfKey[rk] = ev
		}
	}
	if t.Failed() {
		return
	}
	// The last event of each row that still exists equals Postgres' row.
	rows, err := p.pgRows(`SELECT a, b, v, note FROM "Pair Keys"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		parts := strings.SplitN(r, "|", 4)
		ev := lastOfKey[parts[0]+"|"+parts[1]]
		if ev == nil {
			t.Errorf("row %s: no replayed change", r)
			continue
		}
		if got := rowText(ev.After); got != r {
			t.Errorf("row %s: last replayed change %s has %s", r, ev.Identity(), got)
		}
	}
	t.Logf("%d changes replayed exactly once, in order; %d rows equal Postgres", changes, len(rows))
}

// orderedSubscription creates an ordered subscription on topic.
func (p *pipeline) orderedSubscription(topic, sub string) string {
	p.t.Helper()
	ctx := context.Background()
	if _, err := p.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + stack.Project + "/topics/" + topic}); err != nil && status.Code(err) != codes.AlreadyExists {
		p.t.Fatal(err)
	}
	if _, err := p.ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + stack.Project + "/subscriptions/" + sub, Topic: "projects/" + stack.Project + "/topics/" + topic,
		EnableMessageOrdering: true, AckDeadlineSeconds: 60,
	}); err != nil {
		p.t.Fatal(err)
	}
	return sub
}

// topicMessages keeps the messages of one subscription in arrival order.
type topicMessages struct {
	mu   sync.Mutex
	msgs []*pubsub.Message
	ids  map[string]bool
}

// collect receives from sub until the test ends.
func (p *pipeline) collect(sub string) *topicMessages {
	r := &topicMessages{ids: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.ps.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.ids[m.Attributes["commit_lsn"]+":"+m.Attributes["seq"]] = true
			r.mu.Unlock()
			m.Ack()
		})
	}()
	p.t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *topicMessages) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func (r *topicMessages) snapshot() []*pubsub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pubsub.Message(nil), r.msgs...)
}

func (r *topicMessages) byIdentity() map[string]*pubsub.Message {
	out := map[string]*pubsub.Message{}
	for _, m := range r.snapshot() {
		lsn, err := pglogrepl.ParseLSN(m.Attributes["commit_lsn"])
		if err == nil {
			out[strconv.FormatUint(uint64(lsn), 10)+":"+m.Attributes["seq"]] = m
		}
	}
	return out
}

// rowKey renders the key (a, b) of a "Pair Keys" row record; "" for none.
func rowKey(row map[string]any) string {
	if row == nil {
		return ""
	}
	return renderAvro(row["a"]) + "|" + renderAvro(row["b"])
}

// rowText renders a "Pair Keys" row record as pgRows renders its row.
func rowText(row map[string]any) string {
	return renderAvro(row["a"]) + "|" + renderAvro(row["b"]) + "|" + renderAvro(row["v"]) + "|" + renderAvro(row["note"])
}

func renderAvro(v any) string {
	if u, ok := v.(map[string]any); ok {
		for _, x := range u {
			v = x
		}
	}
	return render([]any{v})
}

// checkProgress checks a replay's progress reports: the steps in order,
// objects and rows never going back, and the last report done with every
// object and row.
func checkProgress(t *testing.T, reports []ReplayProgress, steps []string, objects int, rows int64) {
	t.Helper()
	var seen []string
	var prev ReplayProgress
	for _, r := range reports {
		if len(seen) == 0 || seen[len(seen)-1] != r.Step {
			seen = append(seen, r.Step)
		}
		if r.ObjectsDone < prev.ObjectsDone || r.RowsDone < prev.RowsDone || r.Objects != objects || r.Rows != rows {
			t.Errorf("progress %+v after %+v; want totals %d objects, %d rows", r, prev, objects, rows)
		}
		prev = r
	}
	if fmt.Sprint(seen) != fmt.Sprint(steps) {
		t.Errorf("progress steps %v, want %v", seen, steps)
	}
	if !prev.Done || prev.ObjectsDone != objects || prev.RowsDone != rows {
		t.Errorf("last progress %+v; want done with %d objects and %d rows", prev, objects, rows)
	}
	t.Logf("%d progress reports; last %+v", len(reports), prev)
}
