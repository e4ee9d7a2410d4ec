package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/schema"
)

// pipeline is capture and sink against the shared stack, with their own
// slot, topic, subscription and prefix.
type pipeline struct {
	t        testing.TB
	name     string
	db       *pgx.Conn
	ps       *pubsub.Client
	gcs      *storage.Client
	bq       *bigquery.Client
	cfg      Config
	stopCap  context.CancelFunc
	capDone  chan error
	sink     *Sink
	sinkDone chan error
}

func newPipeline(t testing.TB, name string, tables []capture.TableName, ddl ...string) *pipeline {
	t.Helper()
	ctx := context.Background()
	p := &pipeline{t: t, name: name}
	var err error
	if p.db, err = pgx.Connect(ctx, stack.Postgres.DSN(stack.Database)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.db.Close(context.Background()) })
	for _, q := range ddl {
		p.exec(q)
	}
	if p.ps, err = gcp.PubSub(ctx, stack.Project); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ps.Close() })
	if p.gcs, err = gcp.Storage(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.gcs.Close() })
	if p.bq, err = gcp.BigQuery(ctx, stack.Project); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.bq.Close() })
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if _, err := p.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + stack.Project + "/topics/" + name}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + stack.Project + "/topics/" + name + "_dead"}); err != nil {
		t.Fatal(err)
	}
	p.cfg = Config{
		Project: stack.Project, Subscription: name, Topic: name, DeadLetterTopic: name + "_dead",
		Bucket: stack.Bucket, Prefix: name, Database: stack.Database, Dataset: stack.Dataset,
		FlushAge: time.Second, LoadInterval: 2 * time.Second, AckDeadline: 10 * time.Second, Logger: log,
	}
	capCfg := capture.Config{
		DSN: stack.Postgres.DSN(stack.Database), Slot: name, Publication: name, Tables: tables,
		Project: stack.Project, Topic: name, Bucket: stack.Bucket, Prefix: name,
		// The default bucket count: the Pub/Sub fake delivers one message per
		// ordering key at a time, each after the previous one's ack (real
		// Pub/Sub streams a key's messages in order without waiting), so the
		// sink's drain here is about buckets × one message per flush.
		OrderingBuckets: 32, SpillDir: t.TempDir(), Logger: log,
	}
	// The sink creates the subscription before anything is published.
	s := New(p.cfg, p.ps, p.gcs, p.bq)
	if err := s.ensureSubscription(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	p.stopCap, p.capDone = cancel, make(chan error, 1)
	c := capture.New(capCfg, p.ps, p.gcs)
	go func() { p.capDone <- c.Run(cctx) }()
	t.Cleanup(p.stopCapture)
	p.waitUntil("the replication slot is active", 30*time.Second, func() (bool, error) {
		var active bool
		err := p.db.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&active)
		return err == nil && active, nil
	})
	return p
}

func (p *pipeline) stopCapture() {
	if p.stopCap == nil {
		return
	}
	p.stopCap()
	p.stopCap = nil
	select {
	case err := <-p.capDone:
		if err != nil {
			p.t.Errorf("capture returned %v", err)
		}
	case <-time.After(30 * time.Second):
		p.t.Error("capture did not stop within 30s")
	}
}

func (p *pipeline) startSink() {
	p.sink = New(p.cfg, p.ps, p.gcs, p.bq)
	p.sinkDone = make(chan error, 1)
	s, done := p.sink, p.sinkDone
	go func() { done <- s.Run(context.Background()) }()
}

// stopSink stops the sink gracefully, or abruptly (nothing buffered is
// written or acked) when halt is set.
func (p *pipeline) stopSink(halt bool) {
	p.t.Helper()
	if halt {
		p.sink.halt()
	} else if err := p.sink.Close(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.sinkDone:
		if err != nil {
			p.t.Fatalf("sink returned %v", err)
		}
	case <-time.After(2 * time.Minute):
		p.t.Fatal("sink did not stop within 2 minutes")
	}
}

func (p *pipeline) exec(q string, args ...any) int64 {
	p.t.Helper()
	tag, err := p.db.Exec(context.Background(), q, args...)
	if err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
	return tag.RowsAffected()
}

func (p *pipeline) waitUntil(what string, timeout time.Duration, cond func() (bool, error)) {
	p.t.Helper()
	stacktest.WaitUntil(p.t, what, timeout, cond)
}

// pgRows renders every row of a Postgres query as text, sorted.
func (p *pipeline) pgRows(q string) ([]string, error) {
	rows, err := p.db.Query(context.Background(), q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, render(vals))
	}
	sort.Strings(out)
	return out, rows.Err()
}

// bqRows renders every row of a BigQuery query as text, sorted.
func (p *pipeline) bqRows(q string) ([]string, error) {
	it, err := p.bq.Query(q).Read(context.Background())
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, err
		}
		vals := make([]any, len(row))
		for i, v := range row {
			vals[i] = v
		}
		out = append(out, render(vals))
	}
	sort.Strings(out)
	return out, nil
}

// render joins values of simple types (integers, text, NULL) the same way
// from either side.
func render(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			parts[i] = "NULL"
		case int32:
			parts[i] = fmt.Sprint(int64(v))
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return strings.Join(parts, "|")
}

// gcsIdentities decodes every data object of a table and returns the
// distinct change identities it holds and the total of records.
func (p *pipeline) gcsIdentities(pgSchema, table string) (map[string]bool, int, error) {
	ctx := context.Background()
	dir := Layout{Prefix: p.cfg.Prefix, Database: p.cfg.Database}.TableDir(pgSchema, table) + "/"
	ids := map[string]bool{}
	total := 0
	it := p.gcs.Bucket(p.cfg.Bucket).Objects(ctx, &storage.Query{Prefix: dir})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return ids, total, nil
		}
		if err != nil {
			return nil, 0, err
		}
		r, err := p.gcs.Bucket(p.cfg.Bucket).Object(a.Name).NewReader(ctx)
		if err != nil {
			return nil, 0, err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, 0, err
		}
		ocf, err := goavro.NewOCFReader(bytes.NewReader(data))
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", a.Name, err)
		}
		for ocf.Scan() {
			rec, err := ocf.Read()
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", a.Name, err)
			}
			m := rec.(map[string]any)
			ids[fmt.Sprintf("%d:%d", m[schema.ColCommitLSN], m[schema.ColSeq])] = true
			total++
		}
		if a.Metadata["rows"] == "" || a.Metadata["first_lsn"] == "" || a.Metadata["schema_fingerprint"] == "" {
			return nil, 0, fmt.Errorf("%s lacks its metadata: %v", a.Name, a.Metadata)
		}
	}
}

type checkedTable struct {
	name  string // Postgres table in schema public
	cols  string // columns compared, in both systems' spelling
	order string
	want  int64 // changes made
}

func TestIntegrationSinkMixedWorkloadSurvivesKill(t *testing.T) {
	needStack(t)
	p := newPipeline(t, "sink_mixed", []capture.TableName{
		{Schema: "public", Name: "orders"}, {Schema: "public", Name: "Line Items"},
		{Schema: "public", Name: "events_log"}, {Schema: "public", Name: "docs"},
	},
		`CREATE TABLE orders (id bigint PRIMARY KEY, status text, amount int)`,
		`CREATE TABLE "Line Items" (order_id int, line int, qty int, note text, PRIMARY KEY (order_id, line))`,
		`CREATE TABLE events_log (msg text, n int)`,
		`CREATE TABLE docs (id int PRIMARY KEY, title text, body text)`,
	)
	// No Config.Keys: the stored schemas mark the primary keys.
	tables := []*checkedTable{
		{name: "orders", cols: "id, status, amount"},
		{name: "Line Items", cols: "order_id, line, qty, note"},
		{name: "events_log", cols: "msg, n"},
		{name: "docs", cols: "id, title, md5(body), length(body)"},
	}
	orders, items, logs, docs := tables[0], tables[1], tables[2], tables[3]
	big := `(SELECT string_agg(md5(g::text || $1::text), '') FROM generate_series(1, 4000) g)`
	round := func(r int) {
		base := r * 1000
		orders.want += p.exec(`INSERT INTO orders SELECT $1::int + g, 'new', g FROM generate_series(1, 40) g`, base)
		items.want += p.exec(`INSERT INTO "Line Items" SELECT $1::int + o, l, o * l, 'n' FROM generate_series(1, 10) o, generate_series(1, 3) l`, base)
		logs.want += p.exec(`INSERT INTO events_log SELECT 'round ' || $1::text, g FROM generate_series(1, 20) g`, fmt.Sprint(r))
		for i := 1; i <= 5; i++ {
			docs.want += p.exec(`INSERT INTO docs VALUES ($2::int + $1::int, 'title', `+strings.Replace(big, "$1", "$3", 1)+`)`, i, base, fmt.Sprint(r, i))
		}
		orders.want += p.exec(`UPDATE orders SET status = 'paid', amount = amount * 10 WHERE id BETWEEN $1::int + 1 AND $1::int + 15`, base)
		items.want += p.exec(`UPDATE "Line Items" SET qty = qty + 100, note = NULL WHERE order_id BETWEEN $1::int + 1 AND $1::int + 4 AND line < 3`, base)
		docs.want += p.exec(`UPDATE docs SET title = 'retitled ' || id WHERE id > $1::int`, base) // body unchanged: TOASTed, not sent
		orders.want += p.exec(`DELETE FROM orders WHERE id BETWEEN $1::int + 36 AND $1::int + 40`, base)
		items.want += p.exec(`DELETE FROM "Line Items" WHERE order_id = $1::int + 10`, base)
		orders.want += p.exec(`UPDATE orders SET status = 'shipped' WHERE id BETWEEN $1::int + 1 AND $1::int + 5`, base)
		docs.want += p.exec(`UPDATE docs SET body = 'short ' || id WHERE id = $1::int + 1`, base)
		if r == 1 {
			p.exec(`TRUNCATE events_log`)
			logs.want++
		}
		logs.want += p.exec(`INSERT INTO events_log SELECT 'after ' || $1::text, g FROM generate_series(1, 10) g`, fmt.Sprint(r))
	}
	wrote := func() (bool, error) {
		attrs, err := p.gcs.Bucket(p.cfg.Bucket).Objects(context.Background(), &storage.Query{Prefix: p.cfg.Prefix + "/" + p.cfg.Database + "/"}).Next()
		return attrs != nil, err
	}

	p.startSink()
	round(1)
	p.waitUntil("the first sink writes an object", time.Minute, wrote)
	p.stopSink(true) // killed: its buffers are lost, Pub/Sub redelivers
	round(2)
	p.startSink()
	round(3)

	ctx := context.Background()
	for _, tb := range tables {
		current := "`" + stack.Dataset + "." + schema.BigQueryTableName("public", tb.name, "") + "`"
		bqCols := strings.NewReplacer("md5(body)", "TO_HEX(MD5(body))", "length(body)", "LENGTH(body)").Replace(tb.cols)
		var pg, bq []string
		p.waitUntil("BigQuery current state of "+tb.name+" equals Postgres", 4*time.Minute, func() (bool, error) {
			var err error
			if pg, err = p.pgRows(`SELECT ` + tb.cols + ` FROM ` + pgx.Identifier{tb.name}.Sanitize()); err != nil {
				return false, err
			}
			if bq, err = p.bqRows(`SELECT ` + bqCols + ` FROM ` + current); err != nil {
				return false, err
			}
			return strings.Join(pg, "\n") == strings.Join(bq, "\n"), nil
		})
		if len(pg) == 0 {
			t.Errorf("%s: empty in Postgres; the workload is wrong", tb.name)
		}
		changelog := "`" + stack.Dataset + "." + schema.BigQueryTableName("public", tb.name, "changelog") + "`"
		p.waitUntil("the changelog of "+tb.name+" holds every change", time.Minute, func() (bool, error) {
			rows, err := p.bqRows(`SELECT COUNT(DISTINCT CONCAT(CAST(_tributary_commit_lsn AS STRING), ':', CAST(_tributary_seq AS STRING))) FROM ` + changelog)
			if err != nil || len(rows) != 1 {
				return false, err
			}
			if rows[0] != fmt.Sprint(tb.want) {
				return false, fmt.Errorf("%s distinct changes, want %d", rows[0], tb.want)
			}
			return true, nil
		})
		ids, total, err := p.gcsIdentities("public", tb.name)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(ids)) != tb.want {
			t.Errorf("%s: GCS holds %d distinct changes (%d records), want %d", tb.name, len(ids), total, tb.want)
		}
		t.Logf("%s: %d rows equal; %d changes in the changelog and on GCS (%d records)", tb.name, len(pg), tb.want, total)
	}
	// The TOASTed bodies survived title-only updates (checked by md5 above);
	// the update really left them unsent.
	rows, err := p.bqRows("SELECT COUNT(*) FROM `" + stack.Dataset + "." + schema.BigQueryTableName("public", "docs", "changelog") + "` WHERE 'body' IN UNNEST(_tributary_unchanged)")
	if err != nil || len(rows) != 1 || rows[0] == "0" {
		t.Errorf("no changelog row of docs marks body unchanged: %v %v", rows, err)
	}
	// Nothing was dead-lettered.
	dl, err := p.gcs.Bucket(p.cfg.Bucket).Objects(ctx, &storage.Query{Prefix: p.cfg.Prefix + "/_deadletter/"}).Next()
	if !errors.Is(err, iterator.Done) {
		t.Errorf("dead-letters written: %v %v", dl, err)
	}
	p.stopSink(false)
	// A graceful stop leaves nothing pending.
	left, err := p.gcs.Bucket(p.cfg.Bucket).Objects(ctx, &storage.Query{Prefix: p.cfg.Prefix + "/_sink/"}).Next()
	if !errors.Is(err, iterator.Done) {
		t.Errorf("bookkeeping left after a graceful stop: %v %v", left, err)
	}
}

// TestIntegrationSinkKeyChanges changes primary keys (single and composite,
// back and forth, with the old key inserted again), runs tables under
// REPLICA IDENTITY FULL (with a configured key, and keyed by the whole row)
// and checks that every current-state table equals Postgres and that the
// metrics and health say what happened.
func TestIntegrationSinkKeyChanges(t *testing.T) {
	needStack(t)
	p := newPipeline(t, "sink_keys", []capture.TableName{
		{Schema: "public", Name: "accounts"}, {Schema: "public", Name: "pairs"},
		{Schema: "public", Name: "full_pk"}, {Schema: "public", Name: "full_rows"},
	},
		`CREATE TABLE accounts (id int PRIMARY KEY, name text, bal int)`,
		`CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b))`,
		`CREATE TABLE full_pk (id int PRIMARY KEY, note text, body text)`,
		`ALTER TABLE full_pk REPLICA IDENTITY FULL`,
		`CREATE TABLE full_rows (msg text, n int)`,
		`ALTER TABLE full_rows REPLICA IDENTITY FULL`,
	)
	// The one override: full_pk's replica identity is every column; key its
	// current state by the primary key instead.
	p.cfg.Keys = map[string][]string{"public.full_pk": {"id"}}
	p.startSink()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.sink.Collectors()...)

	// accounts: single-column key.
	p.exec(`INSERT INTO accounts SELECT g, 'n' || g, g * 10 FROM generate_series(1, 20) g`)
	p.exec(`UPDATE accounts SET id = id + 100 WHERE id <= 5`)                              // 1..5 move to 101..105
	p.exec(`INSERT INTO accounts SELECT g, 'again ' || g, 0 FROM generate_series(1, 3) g`) // the old keys come back
	p.exec(`UPDATE accounts SET name = 'renamed' WHERE id IN (101, 2)`)
	p.exec(`UPDATE accounts SET id = 1101 WHERE id = 101`)
	p.exec(`DELETE FROM accounts WHERE id = 102`)
	p.exec(`BEGIN; UPDATE accounts SET id = 999 WHERE id = 10; UPDATE accounts SET id = 10 WHERE id = 11; UPDATE accounts SET id = 11 WHERE id = 999; COMMIT`)
	p.exec(`BEGIN; DELETE FROM accounts WHERE id = 1; UPDATE accounts SET id = 1, bal = bal + 1 WHERE id = 1101; COMMIT`)
	// pairs: composite key, one part or both changing.
	p.exec(`INSERT INTO pairs SELECT g, 'x', g FROM generate_series(1, 10) g`)
	p.exec(`UPDATE pairs SET b = 'y' WHERE a <= 3`)
	p.exec(`INSERT INTO pairs VALUES (1, 'x', -1)`)
	p.exec(`UPDATE pairs SET a = a + 50, b = 'z', v = v + 1 WHERE a IN (4, 5)`)
	p.exec(`DELETE FROM pairs WHERE a = 2 AND b = 'y'`)
	p.exec(`UPDATE pairs SET a = 4, b = 'x' WHERE a = 54`) // back to the old key
	// full_pk: identity FULL with a configured key; bodies TOASTed and left
	// unchanged by updates, so only the old row holds them.
	big := `(SELECT string_agg(md5(g::text || $1::text), '') FROM generate_series(1, 4000) g)`
	for i := 1; i <= 5; i++ {
		p.exec(`INSERT INTO full_pk VALUES ($1::int, 'note', `+strings.Replace(big, "$1", "$2", 1)+`)`, i, fmt.Sprint(i))
	}
	p.exec(`UPDATE full_pk SET note = 'changed ' || id WHERE id <= 3`)
	p.exec(`UPDATE full_pk SET id = id + 10 WHERE id = 4`)
	p.exec(`DELETE FROM full_pk WHERE id = 5`)
	p.exec(`INSERT INTO full_pk VALUES (4, 'four again', 'short')`)
	// full_rows: identity FULL, no key: keyed by the whole row.
	p.exec(`INSERT INTO full_rows VALUES ('a', 1), ('b', 2), ('c', 3), ('d', NULL)`)
	p.exec(`UPDATE full_rows SET n = n + 10 WHERE msg = 'a'`)
	p.exec(`DELETE FROM full_rows WHERE msg = 'b'`)
	p.exec(`INSERT INTO full_rows VALUES ('b', 2)`)
	p.exec(`UPDATE full_rows SET msg = 'cc' WHERE msg = 'c'`)
	p.exec(`UPDATE full_rows SET n = 4 WHERE msg = 'd'`)

	tables := []checkedTable{
		{name: "accounts", cols: "id, name, bal"},
		{name: "pairs", cols: "a, b, v"},
		{name: "full_pk", cols: "id, note, md5(body), length(body)"},
		{name: "full_rows", cols: "msg, n"},
	}
	for _, tb := range tables {
		p.waitForCurrentState(tb, 3*time.Minute)
	}
	if ok, h := p.sink.Health(context.Background()); !ok {
		t.Errorf("unhealthy while running: %+v", h)
	}
	p.stopSink(false)

	// Every row loaded is counted, once the sink has stopped (all loaded).
	ok, body := p.sink.Health(context.Background())
	h := body.(HealthReport)
	if len(h.Tables) != len(tables) || h.Undecodable != 0 {
		t.Errorf("health after the stop (healthy %v): %+v", ok, h)
	}
	byTable := map[string]TableHealth{}
	for _, th := range h.Tables {
		byTable[th.Table] = th
	}
	metric := gathered(t, reg)
	for _, tb := range tables {
		label := "public." + tb.name
		changelog := "`" + stack.Dataset + "." + schema.BigQueryTableName("public", tb.name, "changelog") + "`"
		rows, err := p.bqRows(`SELECT COUNT(*), COUNT(DISTINCT CONCAT(CAST(_tributary_commit_lsn AS STRING), ':', CAST(_tributary_seq AS STRING))),
			UNIX_MICROS(MAX(_tributary_commit_ts)) FROM ` + changelog)
		if err != nil || len(rows) != 1 {
			t.Fatalf("%s: %v %v", changelog, rows, err)
		}
		var count, distinct, maxCommit int64
		fmt.Sscanf(strings.ReplaceAll(rows[0], "|", " "), "%d %d %d", &count, &distinct, &maxCommit)
		_, records, err := p.gcsIdentities("public", tb.name)
		if err != nil {
			t.Fatal(err)
		}
		objects := p.gcsObjects("public", tb.name)
		th := byTable[label]
		checks := []struct {
			what      string
			got, want float64
		}{
			{"rows loaded = changelog rows", metric["tributary_sink_rows_loaded_total{"+label+"}"], float64(count)},
			{"rows written = records on GCS", metric["tributary_sink_rows_written_total{"+label+"}"], float64(records)},
			{"objects written = objects on GCS", metric["tributary_sink_objects_written_total{"+label+"}"], float64(objects)},
			{"pending objects", metric["tributary_sink_pending_objects{"+label+"}"], 0},
			{"dead-letters", metric["tributary_sink_dead_letters_total{"+label+"}"], 0},
			{"last commit", metric["tributary_sink_last_commit_timestamp_seconds{"+label+"}"] * 1e6, float64(maxCommit)},
			{"health: rows loaded", float64(th.RowsLoaded), float64(count)},
			{"health: objects written", float64(th.ObjectsWritten), float64(objects)},
			{"health: pending", float64(th.PendingObjects), 0},
		}
		for _, c := range checks {
			if math.Abs(c.got-c.want) > 1 {
				t.Errorf("%s: %s: got %v, want %v", label, c.what, c.got, c.want)
			}
		}
		if received := metric["tributary_sink_events_received_total{"+label+"}"]; received < float64(distinct) {
			t.Errorf("%s: %v events received, fewer than the %d distinct changes", label, received, distinct)
		}
		if th.LastLoad.IsZero() || th.LastFlush.IsZero() {
			t.Errorf("%s: health lacks its last flush or load: %+v", label, th)
		}
		t.Logf("%s: %d changes (%d distinct), %d objects; health %+v", label, count, distinct, objects, th)
	}
	if got := metric["tributary_sink_loads_total{public.accounts}"]; got < 1 {
		t.Errorf("loads of accounts: %v", got)
	}
	for k, v := range metric {
		if strings.HasPrefix(k, "tributary_sink_errors_total") {
			t.Logf("%s = %v", k, v) // retried failures are allowed; none is expected
		}
	}
}

// gathered reads every series of reg as "name{label values}" → value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// waitForCurrentState waits until BigQuery's current state of tb equals
// Postgres.
func (p *pipeline) waitForCurrentState(tb checkedTable, timeout time.Duration) {
	p.t.Helper()
	current := "`" + stack.Dataset + "." + schema.BigQueryTableName("public", tb.name, "") + "`"
	bqCols := strings.NewReplacer("md5(body)", "TO_HEX(MD5(body))", "length(body)", "LENGTH(body)").Replace(tb.cols)
	var pg, bq []string
	p.waitUntil("BigQuery current state of "+tb.name+" equals Postgres", timeout, func() (bool, error) {
		var err error
		if pg, err = p.pgRows(`SELECT ` + tb.cols + ` FROM ` + pgx.Identifier{tb.name}.Sanitize()); err != nil {
			return false, err
		}
		if bq, err = p.bqRows(`SELECT ` + bqCols + ` FROM ` + current); err != nil {
			return false, err
		}
		if a, b := strings.Join(pg, "\n"), strings.Join(bq, "\n"); a != b {
			return false, fmt.Errorf("Postgres:\n%s\nBigQuery:\n%s", a, b)
		}
		return true, nil
	})
	if len(pg) == 0 {
		p.t.Errorf("%s: empty in Postgres; the workload is wrong", tb.name)
	}
	p.t.Logf("%s: %d rows equal", tb.name, len(pg))
}

// gcsObjects counts the data objects of a table.
func (p *pipeline) gcsObjects(pgSchema, table string) int {
	p.t.Helper()
	dir := Layout{Prefix: p.cfg.Prefix, Database: p.cfg.Database}.TableDir(pgSchema, table) + "/"
	it := p.gcs.Bucket(p.cfg.Bucket).Objects(context.Background(), &storage.Query{Prefix: dir})
	n := 0
	for {
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n
		}
		if err != nil {
			p.t.Fatal(err)
		}
		n++
	}
}
