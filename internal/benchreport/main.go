package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// step is one `go test -bench` run.
type step struct {
	Name      string // also the raw output's file name under the results directory
	Pkg       string
	Bench     string
	Benchtime string // "" for go test's default
}

var steps = []step{
	{Name: "capture", Pkg: "./capture/", Bench: "^BenchmarkIntegration", Benchtime: "1x"},
	{Name: "schema", Pkg: "./schema/", Bench: "."},
	{Name: "sink-encode", Pkg: "./sink/", Bench: "^BenchmarkSink"},
	{Name: "sink", Pkg: "./sink/", Bench: "^BenchmarkIntegration", Benchtime: "1x"},
	{Name: "backfill", Pkg: "./internal/backfill/", Bench: "^BenchmarkIntegration", Benchtime: "1x"},
}

// sinkMemLimit is the GOMEMLIMIT of the sink process whose peak RSS is
// measured: 90% of a 256 MiB container, as deploy/ sets it.
const sinkMemLimit = "230MiB"

// specs are the report's rows, in the order; see the README's
// performance section for what each measures.
func specs(bigRows int) []Spec {
	ref := func(bench, unit string) *Figure { return &Figure{bench, unit} }
	big := Human(float64(bigRows))
	return []Spec{
		{Metric: "capture drain rate", Measured: Figure{"BenchmarkIntegrationDrainVsRecvlogical", "capture-rows/s"},
			Reference: ref("BenchmarkIntegrationDrainVsRecvlogical", "recvlogical-rows/s"), RefLabel: "pg_recvlogical, same WAL",
			Target: &Target{OnRatio: true, Op: ">=", Bound: 0.8}},
		{Metric: "source write rate, pgbench -c 4, capture running", Measured: Figure{"BenchmarkIntegrationPgbenchLag", "tps-with-capture"},
			Reference: ref("BenchmarkIntegrationPgbenchLag", "tps-alone"), RefLabel: "pgbench alone"},
		{Metric: "capture lag p50 during pgbench", Measured: Figure{"BenchmarkIntegrationPgbenchLag", "lag-p50-ms"}},
		{Metric: "capture lag p99 during pgbench", Measured: Figure{"BenchmarkIntegrationPgbenchLag", "lag-p99-ms"},
			Target: &Target{Op: "<", Bound: 2000}},
		{Metric: "capture peak RSS, one " + big + "-row transaction", Measured: Figure{"BenchmarkIntegrationBigTransactionRSS", "peak-RSS-MiB"},
			Target: &Target{Op: "<=", Bound: 256}},
		{Metric: "sink peak RSS, one " + big + "-row transaction, GOMEMLIMIT " + sinkMemLimit, Measured: Figure{"BenchmarkIntegrationSinkBigTransactionRSS", "peak-RSS-MiB"},
			Target: &Target{Op: "<=", Bound: 256}},
		{Metric: "snapshot rate", Measured: Figure{"BenchmarkIntegrationSnapshotVsCopy", "backfill_rows/s"},
			Reference: ref("BenchmarkIntegrationSnapshotVsCopy", "copy_rows/s"), RefLabel: "COPY (FORMAT binary)",
			Target: &Target{OnRatio: true, Op: ">=", Bound: 0.5}},
		{Metric: "Pub/Sub bytes per event", Measured: Figure{"BenchmarkIntegrationEventBytesVsDebezium", "pubsub-B/event"},
			Reference: ref("BenchmarkIntegrationEventBytesVsDebezium", "debezium-json-B/event"), RefLabel: "Debezium JSON envelope",
			Target: &Target{OnRatio: true, Op: "<=", Bound: 0.2}},
		{Metric: "sink rows/s per core, fed directly, to GCS", Measured: Figure{"BenchmarkIntegrationSinkFedPerCore", "rows/s/core"},
			Reference: ref("BenchmarkIntegrationSinkFedPerCore", "goavro-rows/s/core"), RefLabel: "plain goavro OCF, no GCS"},
		{Metric: "sink OCF encoding", Measured: Figure{"BenchmarkSinkEncode/sink", "rows/s"},
			Reference: ref("BenchmarkSinkEncode/goavro-reference", "rows/s"), RefLabel: "plain goavro"},
		{Metric: "row decode (pgoutput text to Avro native)", Measured: Figure{"BenchmarkDecodeTuple/schema", "ns/op"},
			Reference: ref("BenchmarkDecodeTuple/reference-pgx-DecodeValue", "ns/op"), RefLabel: "pgx DecodeValue"},
		{Metric: "row decode allocations", Measured: Figure{"BenchmarkDecodeTuple/schema", "allocs/op"},
			Reference: ref("BenchmarkDecodeTuple/reference-pgx-DecodeValue", "allocs/op"), RefLabel: "pgx DecodeValue"},
		{Metric: "row Avro encode", Measured: Figure{"BenchmarkEncodeAvro/schema", "ns/op"},
			Reference: ref("BenchmarkEncodeAvro/reference-strings", "ns/op"), RefLabel: "all-string record"},
	}
}

// Machine describes where the figures were measured.
type Machine struct {
	Cores       int    `json:"cores"`
	CPU         string `json:"cpu_model"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	Postgres    string `json:"postgres_version"` // of the server the benchmarks ran against
	Commit      string `json:"commit"`
	MemoryTotal string `json:"memory_total"`
	// LoadStart and LoadEnd are /proc/loadavg's 1-minute load average
	// when the run began and ended: other work on the machine shares its
	// cores with the benchmarks.
	LoadStart float64 `json:"load_average_start"`
	LoadEnd   float64 `json:"load_average_end"`
}

// Report is the JSON written under the results directory.
type Report struct {
	Date     time.Time         `json:"date"`
	Machine  Machine           `json:"machine"`
	Settings map[string]string `json:"settings"`
	Rows     []Row             `json:"rows"`
	Failed   []string          `json:"failed_steps,omitempty"`
	Results  []Result          `json:"benchmarks"`
}

func main() {
	outDir := flag.String("out", "bench/results", "directory for the raw outputs and the JSON report")
	bigRows := flag.Int("big-rows", 5_000_000, "rows of the one big transaction passed through capture and sink")
	only := flag.String("steps", "", "comma-separated steps to run (default all: "+stepNames()+")")
	flag.Parse()
	if err := run(*outDir, *bigRows, *only); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func stepNames() string {
	var n []string
	for _, s := range steps {
		n = append(n, s.Name)
	}
	return strings.Join(n, ",")
}

func run(outDir string, bigRows int, only string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", outDir, err)
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	for n := range want {
		if !strings.Contains(","+stepNames()+",", ","+n+",") {
			return fmt.Errorf("-steps: no step %q (steps: %s)", n, stepNames())
		}
	}
	loadStart := loadAverage()
	rep := Report{Date: time.Now().UTC(), Settings: map[string]string{"TRIBUTARY_BENCH_BIG_ROWS": strconv.Itoa(bigRows),
		"TRIBUTARY_BENCH_SINK_GOMEMLIMIT": sinkMemLimit}}
	env := append(os.Environ(), "TRIBUTARY_BENCH_BIG_ROWS="+strconv.Itoa(bigRows), "TRIBUTARY_BENCH_SINK_GOMEMLIMIT="+sinkMemLimit)
	for _, s := range steps {
		if len(want) > 0 && !want[s.Name] {
			continue
		}
		res, err := runStep(s, env, filepath.Join(outDir, s.Name+".txt"))
		rep.Results = append(rep.Results, res...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: step %s: %v\n", s.Name, err)
			rep.Failed = append(rep.Failed, s.Name+": "+err.Error())
		}
	}
	rep.Machine = machine(rep.Results)
	rep.Machine.LoadStart, rep.Machine.LoadEnd = loadStart, loadAverage()
	rep.Rows = Build(specs(bigRows), rep.Results)

	fmt.Printf("tributary benchmarks, %s, %d cores (%s), load average %.1f at the start and %.1f at the end, %s, Postgres %s, commit %s\n\n",
		rep.Date.Format(time.RFC3339), rep.Machine.Cores, rep.Machine.CPU, rep.Machine.LoadStart, rep.Machine.LoadEnd,
		rep.Machine.GoVersion, rep.Machine.Postgres, rep.Machine.Commit)
	if err := Print(os.Stdout, rep.Rows); err != nil {
		return err
	}
	for _, f := range rep.Failed {
		fmt.Printf("failed: %s\n", f)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(outDir, rep.Date.Format("2006-01-02T150405Z")+".json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Printf("\nwritten to %s (raw outputs beside it)\n", path)
	if len(rep.Failed) > 0 {
		return fmt.Errorf("%d step(s) failed: %s", len(rep.Failed), strings.Join(rep.Failed, "; "))
	}
	return nil
}

// runStep runs one go test invocation, its output shown on stderr and kept
// in rawPath, and parses its standard output.
func runStep(s step, env []string, rawPath string) ([]Result, error) {
	args := []string{"test", "-run", "^$", "-bench", s.Bench, "-benchmem", "-timeout", "90m"}
	if s.Benchtime != "" {
		args = append(args, "-benchtime", s.Benchtime)
	}
	args = append(args, s.Pkg)
	fmt.Fprintf(os.Stderr, "== %s: go %s\n", s.Name, strings.Join(args, " "))
	raw, err := os.Create(rawPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", rawPath, err)
	}
	defer raw.Close()
	var stdout bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Env = env
	cmd.Stdout = io.MultiWriter(&stdout, raw, os.Stderr)
	cmd.Stderr = io.MultiWriter(raw, os.Stderr)
	runErr := cmd.Run()
	res, err := Parse(&stdout)
	if err != nil {
		return nil, fmt.Errorf("parsing the output of %s: %w", s.Pkg, err)
	}
	if runErr != nil {
		return res, fmt.Errorf("go test %s: %w%s", s.Pkg, runErr, Failures(stdout.String()))
	}
	return res, nil
}

// machine describes this machine; the Postgres version is the one a
// benchmark read from the server it ran against.
func machine(results []Result) Machine {
	m := Machine{Cores: runtime.NumCPU(), CPU: "unknown", Postgres: "unknown", Commit: "unknown", GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					m.MemoryTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	for _, r := range results {
		if v, ok := r.Get("pg-server-version-num"); ok {
			m.Postgres = PostgresVersion(int(v))
		}
	}
	return m
}

// loadAverage is the 1-minute load average, -1 when unknown.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// PostgresVersion renders server_version_num (150014 → "15.14").
func PostgresVersion(num int) string {
	if num >= 100000 {
		return fmt.Sprintf("%d.%d", num/10000, num%10000)
	}
	return fmt.Sprintf("%d.%d.%d", num/10000, num/100%100, num%100)
}
