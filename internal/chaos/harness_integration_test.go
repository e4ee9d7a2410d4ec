package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

// big reports whether the run asks for the long sizes (TRIBUTARY_CHAOS=big).
func big() bool { return os.Getenv("TRIBUTARY_CHAOS") == "big" }

// buildBinary builds the binary under test.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tributary")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tributary-cdc/tributary/cmd/tributary").CombinedOutput()
	if err != nil {
		t.Fatalf("building tributary: %v\n%s", err, out)
	}
	return bin
}

// pipeline is a capture process and a sink process of the built binary on
// the shared stack, with their own slot, publication, topics, subscription
// and GCS prefix (all named by name). Clients of the test itself reach the
// stack directly, never through a fault proxy.
type pipeline struct {
	t       *testing.T
	name    string
	bin     string
	cfgPath string
	tables  [][2]string // schema, table
	db      *pgx.Conn
	gcs     *storage.Client
	bq      *bigquery.Client
	layout  sink.Layout
	capture *proc
	sink    *proc
}

// newPipeline writes the config for tables (schema, table) and opens the
// test's own clients. env overrides the stack's environment for the two
// processes (a fault proxy's address, say). Nothing runs until start.
func newPipeline(t *testing.T, name string, tables [][2]string, env map[string]string) *pipeline {
	t.Helper()
	if stack == nil {
		t.Skip("the local stack is not running (-short or -skip TestIntegration)")
	}
	ctx := context.Background()
	p := &pipeline{t: t, name: name, bin: buildBinary(t), tables: tables,
		layout: sink.Layout{Prefix: name, Database: stack.Database}}
	var err error
	if p.db, err = pgx.Connect(ctx, stack.Postgres.DSN(stack.Database)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.db.Close(context.Background()) })
	if p.gcs, err = gcp.Storage(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.gcs.Close() })
	if p.bq, err = gcp.BigQuery(ctx, stack.Project); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.bq.Close() })

	names := make([]string, len(tables))
	for i, tb := range tables {
		names[i] = tb[0] + "." + tb[1]
	}
	yaml := fmt.Sprintf(`project: %s
postgres:
  url: %s
  slot: %s
  publication: %s
  tables: [%s]
pubsub:
  topic: %s
  subscription: %s
  dead_letter_topic: %s_dead
gcs:
  bucket: %s
  prefix: %s
bigquery:
  dataset: %s
sink:
  flush_age: 1s
  load_interval: 3s
http:
  listen: 127.0.0.1:0
log:
  level: info
`, stack.Project, stack.Postgres.DSN(stack.Database), name, name, strings.Join(names, ", "),
		name, name, name, stack.Bucket, name, stack.Dataset)
	p.cfgPath = filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(p.cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	procEnv := os.Environ()
	for k, v := range stack.Env() {
		if o, ok := env[k]; ok {
			v = o
		}
		procEnv = append(procEnv, k+"="+v)
	}
	p.capture = &proc{t: t, role: "capture", args: []string{p.bin, "capture", "--config", p.cfgPath}, env: procEnv}
	p.sink = &proc{t: t, role: "sink", args: []string{p.bin, "sink", "--config", p.cfgPath}, env: procEnv}
	t.Cleanup(func() {
		p.capture.halt()
		p.sink.halt()
		if t.Failed() {
			t.Logf("capture's log (last 4 KiB):\n%s", p.capture.tail(4096))
			t.Logf("sink's log (last 4 KiB):\n%s", p.sink.tail(4096))
		}
	})
	return p
}

// start creates the topics, starts the sink, waits for its subscription
// (so no published change can miss it), then starts capture and waits
// until its slot streams: every change committed afterwards is captured.
func (p *pipeline) start() {
	p.t.Helper()
	ctx := context.Background()
	ps, err := gcp.PubSub(ctx, stack.Project)
	if err != nil {
		p.t.Fatal(err)
	}
	defer ps.Close()
	for _, topic := range []string{p.name, p.name + "_dead"} {
		if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + stack.Project + "/topics/" + topic}); err != nil {
			p.t.Fatal(err)
		}
	}
	p.sink.start()
	stacktest.WaitUntil(p.t, "the sink's subscription exists", time.Minute, func() (bool, error) {
		_, err := ps.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{
			Subscription: "projects/" + stack.Project + "/subscriptions/" + p.name})
		return err == nil, err
	})
	p.capture.start()
	p.waitSlotActive(time.Minute)
}

func (p *pipeline) waitSlotActive(timeout time.Duration) {
	p.t.Helper()
	stacktest.WaitUntil(p.t, "the replication slot "+p.name+" streams", timeout, func() (bool, error) {
		var active bool
		err := p.db.QueryRow(context.Background(), "SELECT active FROM pg_replication_slots WHERE slot_name = $1", p.name).Scan(&active)
		return err == nil && active, err
	})
}

// exec runs q on the test's connection.
func (p *pipeline) exec(q string, args ...any) int64 {
	p.t.Helper()
	tag, err := p.db.Exec(context.Background(), q, args...)
	if err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
	return tag.RowsAffected()
}

// verifyAll compares every table of the pipeline with its current state in
// BigQuery, as `tributary verify` does; it returns the results and an error
// describing the first difference.
func (p *pipeline) verifyAll() ([]*verify.Result, error) {
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
	src := verify.Source{Postgres: conn, BigQuery: p.bq, Dataset: stack.Dataset,
		Resolver: schema.Chain(schema.Builtin, pgcatalog.New(stack.Postgres.DSN(stack.Database)))}
	var out []*verify.Result
	for _, tb := range p.tables {
		res, err := verify.Table(ctx, src, tb[0], tb[1])
		if err != nil {
			return out, fmt.Errorf("verifying %s.%s: %w", tb[0], tb[1], err)
		}
		out = append(out, res)
		if !res.Equal() {
			d, _ := json.Marshal(res.Discrepancies)
			if len(d) > 400 {
				d = append(d[:400], "…"...)
			}
			return out, fmt.Errorf("%s: %d rows in Postgres, %d in BigQuery, discrepancies %s", res.Table, res.PostgresRows, res.BigQueryRows, d)
		}
	}
	return out, nil
}

// waitEqual waits until every table of the pipeline is equal in Postgres
// and BigQuery, and returns the results.
func (p *pipeline) waitEqual(timeout time.Duration) []*verify.Result {
	p.t.Helper()
	var res []*verify.Result
	stacktest.WaitUntil(p.t, "BigQuery's current state equals Postgres for every table", timeout, func() (bool, error) {
		var err error
		res, err = p.verifyAll()
		return err == nil, err
	})
	return res
}

// changePos is a change's identity: its commit LSN and its sequence number
// in the transaction. A redelivered change carries the same.
type changePos struct {
	lsn uint64
	seq int64
}

// gcsChanges is what a table's data objects on GCS hold.
type gcsChanges struct {
	objects, records int
	// op of each distinct change.
	ops map[changePos]string
	// commits holds each distinct commit LSN of changes other than
	// snapshot reads.
	commits map[uint64]bool
}

// count returns the distinct changes of operation op.
func (g *gcsChanges) count(op string) int {
	n := 0
	for _, o := range g.ops {
		if o == op {
			n++
		}
	}
	return n
}

// readChanges reads every data object of table on GCS, deduplicating the
// changes by (commit LSN, seq).
func (p *pipeline) readChanges(pgSchema, table string) (*gcsChanges, error) {
	g := &gcsChanges{ops: map[changePos]string{}, commits: map[uint64]bool{}}
	var bad error
	objects := map[string]bool{}
	err := p.eachRecord(pgSchema, table, func(object string, rec map[string]any) {
		objects[object] = true
		lsn, ok1 := rec[schema.ColCommitLSN].(int64)
		seq, ok2 := rec[schema.ColSeq].(int64)
		op, ok3 := rec[schema.ColOp].(string)
		if !ok1 || !ok2 || !ok3 {
			bad = fmt.Errorf("a record of %s.%s lacks %s, %s or %s", pgSchema, table, schema.ColCommitLSN, schema.ColSeq, schema.ColOp)
			return
		}
		g.records++
		pos := changePos{uint64(lsn), seq}
		if prev, seen := g.ops[pos]; seen && prev != op && bad == nil {
			bad = fmt.Errorf("%s.%s: change %X/%d is %q in one object and %q in another", pgSchema, table, lsn, seq, op, prev)
		}
		g.ops[pos] = op
		if op != "r" {
			g.commits[uint64(lsn)] = true
		}
	})
	if err == nil {
		err = bad
	}
	g.objects = len(objects)
	return g, err
}

// eachRecord calls fn with every record of every data object of table on
// GCS, redeliveries included. The objects are self-describing Avro object
// container files.
func (p *pipeline) eachRecord(pgSchema, table string, fn func(object string, rec map[string]any)) error {
	ctx := context.Background()
	it := p.gcs.Bucket(stack.Bucket).Objects(ctx, &storage.Query{Prefix: p.layout.TableDir(pgSchema, table) + "/"})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing the objects of %s.%s: %w", pgSchema, table, err)
		}
		if !strings.HasSuffix(a.Name, ".avro") {
			continue
		}
		if err := readObject(ctx, p.gcs.Bucket(stack.Bucket).Object(a.Name), func(rec map[string]any) error {
			fn(a.Name, rec)
			return nil
		}); err != nil {
			return err
		}
	}
}

func readObject(ctx context.Context, o *storage.ObjectHandle, each func(map[string]any) error) error {
	rd, err := o.NewReader(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: %w", o.ObjectName(), err)
	}
	defer rd.Close()
	ocf, err := goavro.NewOCFReader(rd)
	if err != nil {
		return fmt.Errorf("reading %s: %w", o.ObjectName(), err)
	}
	for ocf.Scan() {
		v, err := ocf.Read()
		if err != nil {
			return fmt.Errorf("reading %s: %w", o.ObjectName(), err)
		}
		rec, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("reading %s: a record is %T", o.ObjectName(), v)
		}
		if err := each(rec); err != nil {
			return err
		}
	}
	if err := ocf.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", o.ObjectName(), err)
	}
	return nil
}

// deadLetters lists the names of the pipeline's dead-letter objects (the
// sink's and capture's, under <prefix>/_deadletter/).
func (p *pipeline) deadLetters() ([]string, error) {
	ctx := context.Background()
	var names []string
	it := p.gcs.Bucket(stack.Bucket).Objects(ctx, &storage.Query{Prefix: p.name + "/_deadletter/"})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing dead-letters: %w", err)
		}
		names = append(names, a.Name)
	}
}

// proc is one process of the binary (capture or sink), restarted as often
// as the test kills it. Its output of every run is kept.
type proc struct {
	t             *testing.T
	role          string
	args          []string
	env           []string
	mu            sync.Mutex
	cmd           *exec.Cmd
	log           lockedBuffer // every run's output
	run           *lockedBuffer
	starts, kills int
}

func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = p.env
	p.run = &lockedBuffer{}
	cmd.Stdout = io.MultiWriter(&p.log, p.run)
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.role, err)
	}
	p.cmd = cmd
	p.starts++
}

// kill SIGKILLs the process and reaps it.
func (p *proc) kill() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("killing %s: %v", p.role, err)
	}
	_ = p.cmd.Wait()
	p.cmd = nil
	p.kills++
}

// stop sends SIGTERM and waits; the process must exit 0.
func (p *proc) stop(timeout time.Duration) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("stopping %s: %v", p.role, err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("%s exited with %v after SIGTERM", p.role, err)
		}
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-done
		p.t.Errorf("%s did not stop within %s of SIGTERM", p.role, timeout)
	}
	p.cmd = nil
}

// halt kills the process if it still runs (cleanup).
func (p *proc) halt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

func (p *proc) tail(n int) string {
	s := p.log.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

var httpAddr = regexp.MustCompile(`"http":"([^"]+)"`)

// get fetches path (/metrics, /healthz) from the running process, whatever
// the status (/healthz answers 500 when unhealthy).
func (p *proc) get(path string) ([]byte, error) {
	p.mu.Lock()
	run := p.run
	p.mu.Unlock()
	var addr []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if addr = httpAddr.FindStringSubmatch(run.String()); addr != nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not log the address of its /healthz and /metrics", p.role)
		}
	}
	resp, err := http.Get("http://" + addr[1] + path)
	if err != nil {
		return nil, fmt.Errorf("reading %s of %s: %w", path, p.role, err)
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// metric scrapes the running process's /metrics: the sum of the samples of
// metric name whose labels include every one of labels (`kind="retryable"`).
func (p *proc) metric(name string, labels ...string) (float64, error) {
	body, err := p.get("/metrics")
	if err != nil {
		return 0, err
	}
	return sumSamples(bytes.NewReader(body), name, labels...)
}

// sumSamples adds up the samples of metric name in Prometheus' text format
// whose labels include every one of labels.
func sumSamples(r io.Reader, name string, labels ...string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
sample:
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var lbls string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				return 0, fmt.Errorf("bad sample %q", line)
			}
			lbls, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric whose name starts with name
		}
		for _, l := range labels {
			if !strings.Contains(","+lbls+",", ","+l+",") {
				continue sample
			}
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("bad sample %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("bad sample %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// lockedBuffer is a bytes.Buffer safe to write from a process's output
// copier while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
