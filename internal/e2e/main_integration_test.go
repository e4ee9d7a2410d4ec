package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

// stack is the local stack every TestIntegration… test of the package
// shares; nil when the tests run with -short.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(s *localstack.Stack) { stack = s })
}

// pipeline is capture and sink running against the shared stack with their
// own slot, publication, topic, subscription and GCS prefix (all named by
// name), as `tributary run` wires them.
type pipeline struct {
	t       *testing.T
	name    string
	db      *pgx.Conn
	ps      *pubsub.Client
	gcs     *storage.Client
	bq      *bigquery.Client
	sinkCfg sink.Config
	layout  sink.Layout
	stopCap context.CancelFunc
	capDone chan error
	sink    *sink.Sink
	sinkErr chan error
}

// startPipeline runs ddl, then starts the sink (which creates the
// subscription) and capture of tables, and returns once the replication slot
// streams: every change made after it returns is captured.
func startPipeline(t *testing.T, name string, tables []capture.TableName, ddl ...string) *pipeline {
	t.Helper()
	if stack == nil {
		t.Skip("the local stack is not running (-short or -skip TestIntegration)")
	}
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
	for _, topic := range []string{name, name + "_dead"} {
		if _, err := p.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + stack.Project + "/topics/" + topic}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p.sinkCfg = sink.Config{
		Project: stack.Project, Subscription: name, Topic: name, DeadLetterTopic: name + "_dead",
		Bucket: stack.Bucket, Prefix: name, Database: stack.Database, Dataset: stack.Dataset,
		FlushAge: time.Second, LoadInterval: 2 * time.Second, AckDeadline: 10 * time.Second, Logger: log,
	}
	p.layout = sink.Layout{Prefix: p.sinkCfg.Prefix, Database: p.sinkCfg.Database}
	p.sink = sink.New(p.sinkCfg, p.ps, p.gcs, p.bq)
	p.sinkErr = make(chan error, 1)
	go func(s *sink.Sink, done chan<- error) { done <- s.Run(context.Background()) }(p.sink, p.sinkErr)
	t.Cleanup(p.stopSink)

	capCfg := capture.Config{
		DSN: stack.Postgres.DSN(stack.Database), Slot: name, Publication: name, Tables: tables,
		Project: stack.Project, Topic: name, Bucket: stack.Bucket, Prefix: name,
		OrderingBuckets: 32, SpillDir: t.TempDir(), Logger: log, // the default; the Pub/Sub fake drains about one message per ordering key per ack
	}
	cctx, cancel := context.WithCancel(ctx)
	p.stopCap, p.capDone = cancel, make(chan error, 1)
	c := capture.New(capCfg, p.ps, p.gcs)
	go func() { p.capDone <- c.Run(cctx) }()
	t.Cleanup(p.stopCapture)
	p.waitUntil("the replication slot streams", time.Minute, func() (bool, error) {
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

func (p *pipeline) stopSink() {
	if p.sink == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.sink.Close(ctx); err != nil {
		p.t.Errorf("stopping the sink: %v", err)
	}
	select {
	case err := <-p.sinkErr:
		if err != nil {
			p.t.Errorf("sink returned %v", err)
		}
	case <-ctx.Done():
		p.t.Error("sink did not stop within 2 minutes")
	}
	p.sink = nil
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

// verify compares Postgres table public.table with its current state in
// BigQuery, as `tributary verify` does.
func (p *pipeline) verify(table string) (*verify.Result, error) {
	return p.verifyIn(stack.Dataset, table)
}

// verifyIn is verify against the current state in dataset.
func (p *pipeline) verifyIn(dataset, table string) (*verify.Result, error) {
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
	return verify.Table(ctx, verify.Source{
		Postgres: conn, Resolver: schema.Chain(schema.Builtin, pgcatalog.New(stack.Postgres.DSN(stack.Database))),
		BigQuery: p.bq, Dataset: dataset, Store: schema.NewStore(p.gcs, stack.Bucket, p.sinkCfg.Prefix),
	}, "public", table)
}

// waitEqual waits until verify finds public.table equal in both systems.
func (p *pipeline) waitEqual(table string, timeout time.Duration) *verify.Result {
	p.t.Helper()
	var res *verify.Result
	p.waitUntil("BigQuery's current state of "+table+" equals Postgres", timeout, func() (bool, error) {
		var err error
		if res, err = p.verify(table); err != nil {
			return false, err
		}
		if !res.Equal() {
			d, _ := json.Marshal(res.Discrepancies)
			return false, fmt.Errorf("%d rows in Postgres, %d in BigQuery, discrepancies %s", res.PostgresRows, res.BigQueryRows, short(d))
		}
		return true, nil
	})
	return res
}

// bqTable is the quoted BigQuery name of a table of public.
func bqTable(table, suffix string) string {
	return schema.QuoteBigQuery(stack.Dataset) + "." + schema.QuoteBigQuery(schema.BigQueryTableName("public", table, suffix))
}

// query runs a BigQuery query and returns its rows.
func (p *pipeline) query(q string) ([][]bigquery.Value, error) {
	it, err := p.bq.Query(q).Read(context.Background())
	if err != nil {
		return nil, err
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
}

// count runs a query whose one row holds one integer.
func (p *pipeline) count(q string) (int64, error) {
	rows, err := p.query(q)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, fmt.Errorf("%s: %d rows", q, len(rows))
	}
	n, ok := rows[0][0].(int64)
	if !ok {
		return 0, fmt.Errorf("%s: got %T", q, rows[0][0])
	}
	return n, nil
}

// objects lists the names of the objects under prefix.
func (p *pipeline) objects(prefix string) ([]string, error) {
	var out []string
	it := p.gcs.Bucket(stack.Bucket).Objects(context.Background(), &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		out = append(out, a.Name)
	}
}

func (p *pipeline) read(name string) ([]byte, error) {
	r, err := p.gcs.Bucket(stack.Bucket).Object(name).NewReader(context.Background())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

// ocfRecords decodes an Avro object container file on GCS with the writer
// schema in its own header.
func (p *pipeline) ocfRecords(name string) ([]map[string]any, error) {
	data, err := p.read(name)
	if err != nil {
		return nil, err
	}
	ocf, err := goavro.NewOCFReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []map[string]any
	for ocf.Scan() {
		rec, err := ocf.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, rec.(map[string]any))
	}
	return out, ocf.Err()
}

// sinkDeadLetter is what the test reads of a dead-letter object of the sink:
// a refused load (its manifest, with the objects) or an object that could
// not be written (its messages).
type sinkDeadLetter struct {
	Name     string
	JobID    string   `json:"job_id"`
	Objects  []string `json:"objects"`
	Rows     int64    `json:"rows"`
	Reason   string   `json:"reason"`
	Class    string   `json:"class"`
	Messages []struct {
		Data []byte `json:"data_base64"`
	} `json:"messages"`
}

// sinkDeadLetters reads the sink's dead-letters of public.table.
func (p *pipeline) sinkDeadLetters(table string) ([]sinkDeadLetter, error) {
	dir := strings.TrimSuffix(p.layout.DeadLetter(schema.GCSSegment("public", table), "x"), "x.json")
	names, err := p.objects(dir)
	if err != nil {
		return nil, err
	}
	var out []sinkDeadLetter
	for _, n := range names {
		body, err := p.read(n)
		if err != nil {
			return nil, err
		}
		d := sinkDeadLetter{Name: n}
		if err := json.Unmarshal(body, &d); err != nil {
			return nil, fmt.Errorf("dead-letter %s: %w", n, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func short(b []byte) string {
	if b == nil {
		return "NULL"
	}
	if len(b) > 200 {
		return fmt.Sprintf("%s…(%d bytes)", strings.ToValidUTF8(string(b[:180]), ""), len(b))
	}
	return string(b)
}
