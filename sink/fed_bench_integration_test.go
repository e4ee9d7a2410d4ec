package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/linkedin/goavro/v2"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/schema"
)

// The sink benchmarks run the sink in a process of their own — this test
// binary again, running TestSinkFedProcess — so that its peak RSS and its
// CPU are its own: the local stack (the GCS fake among it) runs in the
// benchmark's process. The sink is fed directly, without Pub/Sub (the
// stack's Pub/Sub fake delivers about a hundred messages a second per
// stream): messages go to the same receive function the Pub/Sub client
// calls, from NumGoroutines goroutines, and the feeder holds back while the
// bytes fed and not yet written to GCS exceed MaxOutstandingBytes, or the
// messages MaxOutstandingMessages, as the client's flow control does (the bytes written are estimated as rows
// written times the mean message size; the sink acks a message when the
// object holding it is written).

// sinkMemLimitEnv names the GOMEMLIMIT the sink process runs with, when set
// (make bench sets it; see internal/benchreport).
const sinkMemLimitEnv = "TRIBUTARY_BENCH_SINK_GOMEMLIMIT"

// fedSpec is what the benchmark asks of the sink process.
type fedSpec struct {
	Rows        int    `json:"rows"`
	Pregenerate bool   `json:"pregenerate"` // encode every message before the clock starts (and time a plain goavro reference)
	Bucket      string `json:"bucket"`
	Prefix      string `json:"prefix"`
	Project     string `json:"project"`
	Profile     string `json:"profile,omitempty"` // CPU profile of the fed run
	// HeapProfile is written when FlushRows/2 rows are buffered and none
	// written yet; the live heap they add is reported per row.
	HeapProfile string `json:"heap_profile,omitempty"`
	// MaxOutstandingBytes is the flow-control bound, as `tributary sink`
	// sets it from the config: max(pubsub.max_outstanding_bytes,
	// 2 × sink.flush_bytes); the defaults give 128 MiB.
	MaxOutstandingBytes int `json:"max_outstanding_bytes"`
	// MaxOutstandingMessages is the other bound: sink.max_buffered_messages.
	MaxOutstandingMessages int `json:"max_outstanding_messages"`
}

// fedResult is what the sink process measured.
type fedResult struct {
	Rows          int64   `json:"rows"`
	Objects       int64   `json:"objects"`
	Seconds       float64 `json:"seconds"`
	RowsPerSec    float64 `json:"rows_per_sec"`
	GoavroPerSec  float64 `json:"goavro_rows_per_sec,omitempty"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	MessageBytes  float64 `json:"mean_message_bytes"`
	GOMAXPROCS    int     `json:"gomaxprocs"`
	PeakHeapBytes uint64  `json:"heap_sys_bytes"`
	// HeapPerRow is the live heap per buffered row (HeapProfile's moment).
	HeapPerRow float64 `json:"heap_bytes_per_buffered_row,omitempty"`
}

const fedSpecEnv = "TRIBUTARY_SINK_FED"

// BenchmarkIntegrationSinkFedPerCore feeds the sink TRIBUTARY_BENCH_SINK_ROWS
// (default 300,000) single-row insert messages of a 10-column table, encoded
// beforehand, with GOMAXPROCS=1, and reports rows per second from the first
// message to the last object written: decoding, buffering, Avro OCF encoding
// (snappy) and GCS writes of objects and pending markers. Beside it, in the
// same process, plain goavro encoding of the same rows into OCF (records built
// beforehand). CPU profile in the temp directory. Run with -benchtime=1x.
func BenchmarkIntegrationSinkFedPerCore(b *testing.B) {
	rows := envRows("TRIBUTARY_BENCH_SINK_ROWS", 300_000)
	prof := filepath.Join(os.TempDir(), "tributary-sink-fed.pprof")
	for b.Loop() {
		res := runFed(b, fedSpec{Rows: rows, Pregenerate: true, Profile: prof}, "GOMAXPROCS=1")
		b.ReportMetric(res.RowsPerSec, "rows/s/core")
		b.ReportMetric(res.GoavroPerSec, "goavro-rows/s/core")
		b.ReportMetric(res.RowsPerSec/res.GoavroPerSec, "ratio")
		b.ReportMetric(res.MessageBytes, "B/message")
		fmt.Fprintf(os.Stderr, "sink fed directly, 1 core: %d rows in %d objects, %.0f rows/s (plain goavro OCF %.0f rows/s, ratio %.2f); CPU profile %s\n",
			res.Rows, res.Objects, res.RowsPerSec, res.GoavroPerSec, res.RowsPerSec/res.GoavroPerSec, prof)
	}
}

// BenchmarkIntegrationSinkBigTransactionRSS feeds the sink one transaction
// of TRIBUTARY_BENCH_BIG_ROWS rows (default 2,000,000; the figure is
// 5,000,000), generated while fed, with the default flush and flow-control
// settings, and reports the sink process's peak RSS (VmHWM, measured by the
// kernel). Run with -benchtime=1x.
func BenchmarkIntegrationSinkBigTransactionRSS(b *testing.B) {
	rows := envRows("TRIBUTARY_BENCH_BIG_ROWS", 2_000_000)
	for b.Loop() {
		heap := filepath.Join(os.TempDir(), "tributary-sink-big.heap.pprof")
		res := runFed(b, fedSpec{Rows: rows, HeapProfile: heap})
		b.ReportMetric(float64(res.PeakRSSBytes)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(res.HeapPerRow, "heap-B/buffered-row")
		b.ReportMetric(res.MessageBytes, "B/message")
		b.ReportMetric(res.RowsPerSec, "rows/s")
		b.ReportMetric(float64(res.Rows), "rows")
		fmt.Fprintf(os.Stderr, "sink, one transaction of %d rows fed directly: %d objects in %.1f s, peak RSS %.1f MiB (target <= 256, GOMEMLIMIT %q), GOMAXPROCS %d; live heap %.0f B per buffered row of %.0f B messages (heap profile %s)\n",
			res.Rows, res.Objects, res.Seconds, float64(res.PeakRSSBytes)/(1<<20), os.Getenv(sinkMemLimitEnv), res.GOMAXPROCS, res.HeapPerRow, res.MessageBytes, heap)
	}
}

func envRows(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// runFed runs the sink process for spec and returns what it measured.
func runFed(b *testing.B, spec fedSpec, env ...string) fedResult {
	b.Helper()
	if stack == nil {
		b.Skip("the local stack is not running")
	}
	spec.Bucket, spec.Project = stack.Bucket, stack.Project
	spec.Prefix = "fed" + strconv.FormatInt(time.Now().UnixNano(), 36)
	spec.MaxOutstandingBytes = max(64<<20, 2*DefaultFlushBytes)
	spec.MaxOutstandingMessages = DefaultMaxOutstandingMessages
	js, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSinkFedProcess$", "-test.short", "-test.count=1")
	cmd.Env = append(append(os.Environ(), fedSpecEnv+"="+string(js)), env...)
	if v := os.Getenv(sinkMemLimitEnv); v != "" {
		// The sink process alone runs under the limit, as in a container
		// (deploy/ sets GOMEMLIMIT to 90% of the memory limit).
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+v)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("sink process: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "SINKFED "); ok {
			var res fedResult
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				b.Fatal(err)
			}
			if res.Rows != int64(spec.Rows) {
				b.Fatalf("the sink process wrote %d rows, want %d", res.Rows, spec.Rows)
			}
			return res
		}
	}
	b.Fatalf("no result from the sink process:\n%s", out)
	return fedResult{}
}

// TestSinkFedProcess is the sink process of the benchmarks above; without
// their environment variable it is skipped.
func TestSinkFedProcess(t *testing.T) {
	js := os.Getenv(fedSpecEnv)
	if js == "" {
		t.Skip("the sink process of BenchmarkIntegrationSinkFed…; run by them")
	}
	var spec fedSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		t.Fatal(err)
	}
	res, err := feedSink(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("SINKFED %s\n", out)
}

// fedTable is a 10-column table (the shape of capture's drain benchmark).
func fedTable() (*schema.Table, error) {
	return schema.MapTable("public", "fed_rows", []schema.Column{
		{Name: "id", TypeOID: 20, TypeMod: -1, Key: true}, {Name: "a", TypeOID: 23, TypeMod: -1}, {Name: "b", TypeOID: 20, TypeMod: -1},
		{Name: "c", TypeOID: 25, TypeMod: -1}, {Name: "d", TypeOID: 25, TypeMod: -1}, {Name: "e", TypeOID: 1700, TypeMod: (12<<16 | 2) + 4},
		{Name: "f", TypeOID: 1184, TypeMod: -1}, {Name: "g", TypeOID: 1082, TypeMod: -1}, {Name: "h", TypeOID: 16, TypeMod: -1},
		{Name: "i", TypeOID: 701, TypeMod: -1},
	}, schema.Builtin)
}

// fedMessage is row i of one big transaction, as capture publishes it.
func fedMessage(tbl *schema.Table, es *schema.EventSchema, i int) (*pubsub.Message, error) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	row, err := tbl.Record([][]byte{
		strconv.AppendInt(nil, int64(i), 10), strconv.AppendInt(nil, int64(i%1000), 10), strconv.AppendInt(nil, int64(i)*7, 10),
		fmt.Appendf(nil, "customer-%d", i), fmt.Appendf(nil, "%032x", uint64(i)*0x9e3779b97f4a7c15),
		fmt.Appendf(nil, "%d.%02d", i/100, i%100), []byte(at.Add(time.Duration(i) * time.Second).Format("2006-01-02 15:04:05-07")),
		[]byte(time.Date(2026, 1, 1+i%300, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)), []byte(strconv.FormatBool(i%2 == 0)),
		strconv.AppendFloat(nil, float64(i)/3, 'g', -1, 64),
	})
	if err != nil {
		return nil, err
	}
	const commit = 0x5_0000_0000
	data, err := es.Encode(nil, &schema.Event{Op: "c", CommitLSN: commit, LSN: commit - 0x1_0000_0000 + uint64(i)*80, Seq: int64(i), Xid: 777,
		CommitTime: at, Schema: "public", Table: "fed_rows", After: row})
	if err != nil {
		return nil, err
	}
	return &pubsub.Message{
		ID: strconv.Itoa(i), Data: data, OrderingKey: `public.fed_rows/` + strconv.Itoa(i%32),
		Attributes: map[string]string{"table": "public.fed_rows", "op": "c", "commit_lsn": "5/0", "seq": strconv.Itoa(i), "schema_fingerprint": es.FingerprintHex()},
	}, nil
}

// feedSink runs a sink without Pub/Sub and feeds it spec.Rows messages.
func feedSink(ctx context.Context, spec fedSpec) (*fedResult, error) {
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		return nil, err
	}
	defer gcs.Close()
	ps, err := gcp.PubSub(ctx, spec.Project)
	if err != nil {
		return nil, err
	}
	defer ps.Close()
	bq, err := gcp.BigQuery(ctx, spec.Project)
	if err != nil {
		return nil, err
	}
	defer bq.Close()
	tbl, err := fedTable()
	if err != nil {
		return nil, err
	}
	es, err := schema.NewEventSchema(tbl)
	if err != nil {
		return nil, err
	}
	if err := schema.NewStore(gcs, spec.Bucket, spec.Prefix).Put(ctx, es); err != nil {
		return nil, err
	}
	var pre []*pubsub.Message
	var goavroRate float64
	if spec.Pregenerate {
		pre = make([]*pubsub.Message, spec.Rows)
		for i := range pre {
			if pre[i], err = fedMessage(tbl, es, i); err != nil {
				return nil, err
			}
		}
		if goavroRate, err = goavroReference(es, pre); err != nil {
			return nil, err
		}
		runtime.GC()
	}
	// The bookkeeping of a sink that never loads: the feeder stops it
	// before its loaders would reach BigQuery.
	s := New(Config{Project: spec.Project, Subscription: "fed", Bucket: spec.Bucket, Prefix: spec.Prefix, Database: "bench",
		Dataset: "fed", LoadInterval: 24 * time.Hour, MaxOutstandingBytes: spec.MaxOutstandingBytes,
		MaxOutstandingMessages: spec.MaxOutstandingMessages}, ps, gcs, bq)
	workCtx, abort := context.WithCancel(ctx)
	defer abort()
	s.mu.Lock()
	s.workCtx, s.abortWork = workCtx, abort // what Run sets up before receiving
	s.mu.Unlock()
	fedTableStats := func() *tableStats {
		s.mu.Lock()
		defer s.mu.Unlock()
		if t := s.tables[tableKey{"public", "fed_rows"}]; t != nil {
			return &t.stats
		}
		return &tableStats{}
	}
	written := func() (rows, objects int64) {
		st := fedTableStats()
		return st.rowsWritten.Load(), st.objects.Load()
	}
	heapAt := -1
	var heapBase uint64
	var heapPerRow float64
	if spec.HeapProfile != "" {
		heapAt = s.cfg.FlushRows / 2
		heapBase = liveHeap()
	}

	if spec.Profile != "" {
		f, err := os.Create(spec.Profile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	msgs := make(chan *pubsub.Message)
	var wg sync.WaitGroup
	for range s.cfg.NumGoroutines {
		wg.Go(func() {
			for m := range msgs {
				s.receive(workCtx, m)
			}
		})
	}
	start := time.Now()
	var fedBytes int64
	for i := range spec.Rows {
		var m *pubsub.Message
		if pre != nil {
			m, pre[i] = pre[i], nil
		} else if m, err = fedMessage(tbl, es, i); err != nil {
			return nil, err
		}
		// Flow control: hold back while the bytes not yet written exceed
		// the bound.
		for {
			rows, _ := written()
			outstanding := fedBytes - int64(math.Round(float64(rows)*float64(fedBytes)/float64(max(i, 1))))
			if outstanding+int64(len(m.Data)) <= int64(spec.MaxOutstandingBytes) && int64(i)-rows < int64(spec.MaxOutstandingMessages) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		fedBytes += int64(len(m.Data))
		msgs <- m
		if i == heapAt {
			buffered := fedTableStats().received.Load()
			if rows, _ := written(); rows > 0 || buffered == 0 {
				return nil, fmt.Errorf("%d rows written, %d received when the heap was to be profiled", rows, buffered)
			}
			heapPerRow = float64(liveHeap()-heapBase) / float64(buffered)
			f, err := os.Create(spec.HeapProfile)
			if err != nil {
				return nil, err
			}
			err = pprof.WriteHeapProfile(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, err
			}
		}
	}
	close(msgs)
	wg.Wait()
	// Everything is received: write the buffers now, as a stopping sink
	// does, instead of waiting for FlushAge.
	s.mu.Lock()
	close(s.drain)
	s.mu.Unlock()
	s.flushers.Wait()
	took := time.Since(start)
	abort()
	s.workers.Wait()
	rows, objects := written()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	hwm, err := peakRSS()
	if err != nil {
		return nil, err
	}
	return &fedResult{
		Rows: rows, Objects: objects, Seconds: took.Seconds(), RowsPerSec: float64(rows) / took.Seconds(), GoavroPerSec: goavroRate,
		PeakRSSBytes: hwm, MessageBytes: float64(fedBytes) / float64(spec.Rows), GOMAXPROCS: runtime.GOMAXPROCS(0), PeakHeapBytes: ms.HeapSys,
		HeapPerRow: heapPerRow,
	}, nil
}

// goavroReference times plain goavro OCF encoding (snappy, the sink's
// block size) of the rows of msgs, their records built beforehand.
func goavroReference(es *schema.EventSchema, msgs []*pubsub.Message) (float64, error) {
	cl, err := schema.NewChangelog(es)
	if err != nil {
		return 0, err
	}
	records := make([]any, len(msgs))
	for i, m := range msgs {
		ev, err := es.Decode(m.Data)
		if err != nil {
			return 0, err
		}
		records[i] = cl.Record(ev)
	}
	start := time.Now()
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Codec: cl.Codec, CompressionName: DefaultCompression})
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(records); i += ocfBlockRows {
		if err := w.Append(records[i:min(i+ocfBlockRows, len(records))]); err != nil {
			return 0, err
		}
	}
	return float64(len(records)) / time.Since(start).Seconds(), nil
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// peakRSS reads this process's VmHWM.
func peakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
