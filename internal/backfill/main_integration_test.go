package backfill_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/option"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/backfill"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

// stack is the local stack every TestIntegration… test and benchmark of
// the package shares; nil when the tests run with -short.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(s *localstack.Stack) { stack = s })
}

func needStack(tb testing.TB) {
	tb.Helper()
	if stack == nil {
		tb.Skip("the local stack is not running (-short or -skip TestIntegration)")
	}
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// pipe is capture and sink against the shared stack, with their own slot,
// topic, subscription and prefix, and a backfill writing under the same
// prefix.
type pipe struct {
	t        testing.TB
	name     string
	dsn      string
	db       *pgx.Conn
	ps       *pubsub.Client
	gcs      *storage.Client
	bq       *bigquery.Client
	sinkCfg  sink.Config
	stopCap  context.CancelFunc
	capDone  chan error
	sink     *sink.Sink
	sinkDone chan error
}

// newPipe runs ddl (rows inserted here come before the slot: only a
// backfill brings them over), then starts capture on tables.
func newPipe(t testing.TB, name string, tables []capture.TableName, ddl ...string) *pipe {
	t.Helper()
	needStack(t)
	ctx := context.Background()
	p := &pipe{t: t, name: name, dsn: stack.Postgres.DSN(stack.Database)}
	var err error
	if p.db, err = connect(ctx, p.dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.db.Close(context.Background()) })
	for _, q := range ddl {
		p.exec(q)
	}
	if p.gcs, err = gcp.Storage(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.gcs.Close() })
	if tables == nil {
		return p // GCS only: no capture, no sink
	}
	if p.ps, err = gcp.PubSub(ctx, stack.Project); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ps.Close() })
	if p.bq, err = gcp.BigQuery(ctx, stack.Project); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.bq.Close() })
	topic := "projects/" + stack.Project + "/topics/" + name
	if _, err := p.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + stack.Project + "/subscriptions/" + name, Topic: topic, EnableMessageOrdering: true, AckDeadlineSeconds: 10,
	}); err != nil {
		t.Fatal(err)
	}
	p.sinkCfg = sink.Config{
		Project: stack.Project, Subscription: name, Topic: name, Bucket: stack.Bucket, Prefix: name,
		Database: stack.Database, Dataset: stack.Dataset, FlushAge: time.Second, LoadInterval: 2 * time.Second,
		AckDeadline: 10 * time.Second, Logger: logger(),
	}
	capCfg := capture.Config{
		DSN: p.dsn, Slot: name, Publication: name, Tables: tables,
		Project: stack.Project, Topic: name, Bucket: stack.Bucket, Prefix: name,
		OrderingBuckets: 32, SpillDir: t.TempDir(), Logger: logger(), // the default; the Pub/Sub fake drains about one message per ordering key per ack
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

func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := schema.ConnConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func (p *pipe) stopCapture() {
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

// noBigQuery answers every BigQuery request with 400: a sink given a client
// with it writes objects to GCS and gives up on every load at once.
type noBigQuery struct{}

func (noBigQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	body := `{"error":{"code":400,"message":"this test keeps BigQuery out","errors":[{"reason":"invalid","message":"this test keeps BigQuery out"}]}}`
	return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Request: r,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}, nil
}

// withoutBigQuery makes the sink write objects only.
func (p *pipe) withoutBigQuery() {
	p.t.Helper()
	bq, err := gcp.BigQuery(context.Background(), stack.Project, option.WithHTTPClient(&http.Client{Transport: noBigQuery{}}))
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { bq.Close() })
	p.bq = bq
}

// startSink starts the sink; it finds the markers already written when it
// starts, and a table's later markers once the table receives messages.
func (p *pipe) startSink() {
	p.sink = sink.New(p.sinkCfg, p.ps, p.gcs, p.bq)
	p.sinkDone = make(chan error, 1)
	s, done := p.sink, p.sinkDone
	go func() {
		err := s.Run(context.Background())
		if err != nil {
			p.t.Logf("sink returned early: %v", err)
		}
		done <- err
	}()
	p.t.Cleanup(func() {
		_ = s.Close(context.Background())
		select {
		case err := <-done:
			if err != nil {
				p.t.Errorf("sink returned %v", err)
			}
		case <-time.After(2 * time.Minute):
			p.t.Error("sink did not stop within 2 minutes")
		}
	})
}

func (p *pipe) exec(q string, args ...any) int64 {
	p.t.Helper()
	tag, err := p.db.Exec(context.Background(), q, args...)
	if err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
	return tag.RowsAffected()
}

func (p *pipe) waitUntil(what string, timeout time.Duration, cond func() (bool, error)) {
	p.t.Helper()
	stacktest.WaitUntil(p.t, what, timeout, cond)
}

// options are backfill options for table under the pipe's prefix.
func (p *pipe) options(table, runID string) backfill.Options {
	return backfill.Options{
		Schema: "public", Table: table, RunID: runID, Bucket: stack.Bucket, Prefix: p.name,
		Database: stack.Database, Logger: logger(),
	}
}

// waitEqual waits until BigQuery's current state of table equals Postgres.
func (p *pipe) waitEqual(table string, timeout time.Duration) {
	p.t.Helper()
	ctx := context.Background()
	cat := pgcatalog.New(p.dsn)
	defer cat.Close(ctx)
	src := verify.Source{Postgres: p.db, Resolver: schema.Chain(schema.Builtin, cat), BigQuery: p.bq, Dataset: stack.Dataset}
	var last *verify.Result
	current := p.bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName("public", table, ""))
	p.waitUntil("BigQuery's current state of "+table+" equals Postgres", timeout, func() (bool, error) {
		// A query of a table that does not exist yet is retried for ever.
		if _, err := current.Metadata(ctx); err != nil {
			return false, err
		}
		// One comparison of a large table may take minutes on the emulator.
		vctx, cancel := context.WithTimeout(ctx, max(time.Minute, timeout/4))
		defer cancel()
		res, err := verify.Table(vctx, src, "public", table)
		if err != nil {
			return false, err
		}
		last = res
		return res.Equal(), nil
	})
	if last != nil {
		p.t.Logf("%s: %d rows in Postgres, %d in BigQuery, equal", table, last.PostgresRows, last.BigQueryRows)
	}
}
