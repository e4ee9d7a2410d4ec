package capture_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"github.com/tributary-cdc/tributary/schema"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(s *localstack.Stack) { stack = s })
}

type received struct {
	msg    *pubsub.Message
	event  *schema.Event
	es     *schema.EventSchema
	marker *schema.Marker // a marker message instead of a change
}

// harness is one capture pipeline against the shared stack with its own
// slot, publication, topic and subscription.
type harness struct {
	t      testing.TB
	name   string
	db     *pgx.Conn
	ps     *pubsub.Client
	gcs    *storage.Client
	store  *schema.Store
	cfg    capture.Config
	mu     sync.Mutex
	got    []received
	cancel context.CancelFunc
	done   chan error
	c      *capture.Capturer
}

func newHarness(t testing.TB, name string, tables []capture.TableName, ddl ...string) *harness {
	t.Helper()
	ctx := context.Background()
	db, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	for _, q := range ddl {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ps, err := gcp.PubSub(ctx, stack.Project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gcs.Close() })
	h := &harness{t: t, name: name, db: db, ps: ps, gcs: gcs, store: schema.NewStore(gcs, stack.Bucket, name)}
	h.cfg = capture.Config{
		DSN: stack.Postgres.DSN(stack.Database), Slot: name, Publication: name, Tables: tables,
		Project: stack.Project, Topic: name, Bucket: stack.Bucket, Prefix: name, OrderingBuckets: 4,
		SpillDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	topic := "projects/" + stack.Project + "/topics/" + name
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	sub := "projects/" + stack.Project + "/subscriptions/" + name
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topic, EnableMessageOrdering: true, AckDeadlineSeconds: 60,
	}); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	s := ps.Subscriber(sub)
	s.ReceiveSettings.NumGoroutines = 8
	go s.Receive(rctx, func(ctx context.Context, m *pubsub.Message) {
		if schema.IsMarker(m.Data) {
			mk, err := schema.DecodeMarker(m.Data)
			if err != nil {
				t.Errorf("decoding marker %v: %v", m.Attributes, err)
			}
			h.mu.Lock()
			h.got = append(h.got, received{msg: m, marker: mk})
			h.mu.Unlock()
			m.Ack()
			return
		}
		ev, es, err := h.store.Decode(ctx, m.Data)
		if err != nil {
			t.Errorf("decoding message %v: %v", m.Attributes, err)
		}
		h.mu.Lock()
		h.got = append(h.got, received{msg: m, event: ev, es: es})
		h.mu.Unlock()
		m.Ack()
	})
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	c := capture.New(h.cfg, h.ps, h.gcs)
	h.c = c
	go func() { h.done <- c.Run(ctx) }()
	// Changes count from the slot's creation: wait for it before writing.
	// The slot shows active while it is being created, before capture has
	// recorded it on GCS; a capture stopped in that moment leaves no record
	// (and a later loss of the slot undetectable), so started means both.
	h.waitSlotActive()
	record := h.gcs.Bucket(h.cfg.Bucket).Object(h.cfg.Prefix + "/_state/slot-" + h.cfg.Slot + ".json")
	stacktest.WaitUntil(h.t, "capture records its slot", 60*time.Second, func() (bool, error) {
		_, err := record.Attrs(context.Background())
		return err == nil, err
	})
}

func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("capture returned %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("capture did not stop within 30s of its context ending")
	}
}

func (h *harness) exec(q string, args ...any) {
	h.t.Helper()
	if _, err := h.db.Exec(context.Background(), q, args...); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
}

// waitFor waits until at least n distinct changes (by table and identity)
// have arrived.
func (h *harness) waitFor(n int, timeout time.Duration) []received {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		got := append([]received(nil), h.got...)
		h.mu.Unlock()
		if len(distinct(got)) >= n {
			return got
		}
		select {
		case err := <-h.done:
			h.done <- err // for stop()
			h.t.Fatalf("capture stopped early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("received %d distinct changes within %s, want %d", len(distinct(got)), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// distinct keeps the first delivery of each change, in commit order.
func distinct(rs []received) []received {
	seen := map[string]bool{}
	var out []received
	for _, r := range rs {
		if r.event == nil {
			continue
		}
		k := r.event.Table + "|" + r.event.Identity()
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].event, out[j].event
		if a.CommitLSN != b.CommitLSN {
			return a.CommitLSN < b.CommitLSN
		}
		return a.Seq < b.Seq
	})
	return out
}

// canon renders a decoded row's columns as Postgres text, in canonical form.
func canon(t *testing.T, es *schema.EventSchema, row map[string]any, pgName string) string {
	t.Helper()
	if row == nil {
		return "<no row>"
	}
	cols := tableColumns(es)
	m, ok := cols[pgName]
	if !ok {
		t.Fatalf("no column %q in the event schema", pgName)
	}
	v, present := row[m]
	if !present {
		t.Fatalf("row lacks field %q", m)
	}
	if v == nil {
		return "NULL"
	}
	for _, inner := range v.(map[string]any) {
		return fmt.Sprint(inner)
	}
	return "?"
}

// tableColumns maps Postgres column names to row field names, from the
// field docs of a stored schema (a consumer has nothing else).
func tableColumns(es *schema.EventSchema) map[string]string {
	cols, err := es.Columns()
	if err != nil {
		panic(err)
	}
	out := map[string]string{}
	for _, c := range cols {
		out[c.PGColumn] = c.Field
	}
	return out
}

func TestIntegrationCaptureEvents(t *testing.T) {
	h := newHarness(t, "events_it", []capture.TableName{
		{Schema: "public", Name: "items"}, {Schema: "public", Name: "Order Lines"},
		{Schema: "public", Name: "audit"}, {Schema: "public", Name: "measurements"},
	},
		`CREATE TABLE items (id bigint PRIMARY KEY, note text, big text)`,
		`CREATE TABLE "Order Lines" (order_id int, line int, qty int, PRIMARY KEY (order_id, line))`,
		`CREATE TABLE audit (id int, msg text)`,
		`ALTER TABLE audit REPLICA IDENTITY FULL`,
		`CREATE TABLE measurements (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
		`CREATE TABLE measurements_2026_10 PARTITION OF measurements FOR VALUES FROM ('2026-10-01') TO ('2026-11-01')`,
		`CREATE TABLE measurements_2026_11 PARTITION OF measurements FOR VALUES FROM ('2026-11-01') TO ('2026-12-01')`,
	)
	h.start()
	defer h.stop()

	bigText := `(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 3000) g)`
	h.exec(`INSERT INTO items VALUES (1, 'one', NULL), (2, 'two', NULL), (3, 'three', NULL)`)
	h.exec(`UPDATE items SET note = 'TWO' WHERE id = 2`)
	h.exec(`INSERT INTO items VALUES (4, 'four', ` + bigText + `)`)
	h.exec(`UPDATE items SET note = 'FOUR' WHERE id = 4`)
	h.exec(`DELETE FROM items WHERE id = 1`)
	h.exec(`INSERT INTO "Order Lines" VALUES (1, 1, 5), (1, 2, 7)`)
	h.exec(`UPDATE "Order Lines" SET qty = 8 WHERE order_id = 1 AND line = 2`)
	h.exec(`DELETE FROM "Order Lines" WHERE order_id = 1 AND line = 1`)
	h.exec(`INSERT INTO audit VALUES (1, 'a')`)
	h.exec(`UPDATE audit SET msg = 'b' WHERE id = 1`)
	h.exec(`DELETE FROM audit WHERE id = 1`)
	h.exec(`INSERT INTO measurements VALUES (1, '2026-10-05', 'oct'), (1, '2026-11-05', 'nov')`)
	h.exec(`TRUNCATE audit`)
	var lastCommit pglogrepl.LSN
	if err := h.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan((*lsnText)(&lastCommit)); err != nil {
		t.Fatal(err)
	}

	got := distinct(h.waitFor(17, time.Minute))
	var ops []string
	for _, r := range got {
		ops = append(ops, r.event.Table+":"+r.event.Op)
	}
	want := []string{"items:c", "items:c", "items:c", "items:u", "items:c", "items:u", "items:d",
		"Order Lines:c", "Order Lines:c", "Order Lines:u", "Order Lines:d",
		"audit:c", "audit:u", "audit:d", "measurements:c", "measurements:c", "audit:t"}
	if strings.Join(ops, " ") != strings.Join(want, " ") {
		t.Fatalf("changes in commit order:\n got %v\nwant %v", ops, want)
	}
	for _, r := range got {
		a := r.msg.Attributes
		if a["op"] != r.event.Op || a["commit_lsn"] != pglogrepl.LSN(r.event.CommitLSN).String() ||
			a["seq"] != fmt.Sprint(r.event.Seq) || a["schema_fingerprint"] != r.es.FingerprintHex() {
			t.Errorf("attributes %v disagree with the event %s %s", a, r.event.Op, r.event.Identity())
		}
		if !strings.HasPrefix(r.msg.OrderingKey, "public.") {
			t.Errorf("ordering key %q", r.msg.OrderingKey)
		}
	}

	// The TOASTed column left alone by the update is marked unchanged, not null.
	upd4 := got[5]
	big := tableColumns(upd4.es)["big"]
	if len(upd4.event.Unchanged) != 1 || upd4.event.Unchanged[0] != big {
		t.Errorf("update of a row with an untouched TOASTed column: unchanged = %v, want [%s]", upd4.event.Unchanged, big)
	}
	if got := canon(t, upd4.es, upd4.event.After, "note"); got != "FOUR" {
		t.Errorf("after.note = %s", got)
	}
	// The insert carried the whole TOASTed value.
	if got := canon(t, got[4].es, got[4].event.After, "big"); len(got) != 96000 {
		t.Errorf("inserted TOASTed text arrived with %d characters, want 96000", len(got))
	}
	// Composite key: the delete's before holds both key columns.
	del := got[10]
	if canon(t, del.es, del.event.Before, "order_id") != "1" || canon(t, del.es, del.event.Before, "line") != "1" {
		t.Errorf("composite-key delete before = %v", del.event.Before)
	}
	// REPLICA IDENTITY FULL: the old row is whole.
	if got := canon(t, got[13].es, got[13].event.Before, "msg"); got != "b" {
		t.Errorf("REPLICA IDENTITY FULL delete: before.msg = %s, want b", got)
	}
	if got := canon(t, got[12].es, got[12].event.Before, "msg"); got != "a" {
		t.Errorf("REPLICA IDENTITY FULL update: before.msg = %s, want a", got)
	}
	// Partitions arrive as their root.
	if got[14].event.Table != "measurements" || got[15].event.Table != "measurements" {
		t.Errorf("partition rows arrived as %s and %s", got[14].event.Table, got[15].event.Table)
	}
	// The truncate went to every ordering key of its table.
	keys := map[string]bool{}
	for deadline := time.Now().Add(30 * time.Second); len(keys) < 4 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h.mu.Lock()
		for _, r := range h.got {
			if r.event != nil && r.event.Op == "t" {
				keys[r.msg.OrderingKey] = true
			}
		}
		h.mu.Unlock()
	}
	if len(keys) != 4 {
		t.Errorf("truncate published on %d ordering keys, want all 4: %v", len(keys), keys)
	}

	// Everything acknowledged by Pub/Sub is confirmed to Postgres.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var confirmed pglogrepl.LSN
		if err := h.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", h.name).
			Scan((*lsnText)(&confirmed)); err != nil {
			t.Fatal(err)
		}
		if confirmed >= pglogrepl.LSN(got[len(got)-1].event.CommitLSN) && confirmed >= lastCommit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot confirmed %s, want at least the last commit %s", confirmed, lastCommit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lsnText scans an LSN from its text form.
type lsnText pglogrepl.LSN

func (l *lsnText) Scan(src any) error {
	s, ok := src.(string)
	if !ok {
		return fmt.Errorf("lsn from %T", src)
	}
	v, err := pglogrepl.ParseLSN(s)
	*l = lsnText(v)
	return err
}

// newConn opens a connection to the stack's database, closed with the test.
func newConn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
