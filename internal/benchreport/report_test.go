package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/tributary-cdc/tributary/capture
cpu: Intel(R) Xeon(R) Processor
BenchmarkIntegrationDrainVsRecvlogical-2   	time=2026-11-22T02:46:53.764Z level=INFO msg="capture streaming"
       1	49890753458 ns/op	     41000 capture-rows/s	     0.8200 drain-ratio	     50000 recvlogical-rows/s
BenchmarkDecodeTuple/schema-2         	 1000000	      1043 ns/op	     560 B/op	      14 allocs/op
BenchmarkDecodeTuple/reference-pgx-DecodeValue-2         	  500000	      2086 ns/op	     900 B/op	      28 allocs/op
BenchmarkIntegrationCommitToQueryableStream-2   	1	300 ns/op	  950.5 p50-ms	  6100 p99-ms
BenchmarkIntegrationCommitToQueryableLoad   	1	300 ns/op	  70000 p99-ms	  12 objects
    bench_test.go:12: a log line
PASS
ok  	github.com/tributary-cdc/tributary/capture	97.702s
`

func TestParse(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		name  string
		procs int
		unit  string
		value float64
	}
	for i, w := range []want{
		{"BenchmarkIntegrationDrainVsRecvlogical", 2, "capture-rows/s", 41000},
		{"BenchmarkDecodeTuple/schema", 2, "allocs/op", 14},
		{"BenchmarkDecodeTuple/reference-pgx-DecodeValue", 2, "ns/op", 2086},
		{"BenchmarkIntegrationCommitToQueryableStream", 2, "p50-ms", 950.5},
		{"BenchmarkIntegrationCommitToQueryableLoad", 1, "objects", 12},
	} {
		if i >= len(res) {
			t.Fatalf("parsed %d results, want at least %d", len(res), i+1)
		}
		r := res[i]
		if r.Name != w.name || r.Procs != w.procs {
			t.Errorf("result %d: %s procs %d, want %s procs %d", i, r.Name, r.Procs, w.name, w.procs)
		}
		if v, ok := r.Get(w.unit); !ok || v != w.value {
			t.Errorf("result %d: %s = %v (%v), want %v", i, w.unit, v, ok, w.value)
		}
	}
	if len(res) != 5 {
		t.Errorf("parsed %d results, want 5", len(res))
	}
}

func TestParseRejectsBrokenFigures(t *testing.T) {
	_, err := Parse(strings.NewReader("BenchmarkX-2 \t 1 \t 12 ns/op 7\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v, want one naming line 1", err)
	}
}

func TestBuild(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	specs := []Spec{
		{Metric: "drain", Measured: Figure{"BenchmarkIntegrationDrainVsRecvlogical", "capture-rows/s"},
			Reference: &Figure{"BenchmarkIntegrationDrainVsRecvlogical", "recvlogical-rows/s"}, RefLabel: "ref",
			Target: &Target{OnRatio: true, Op: ">=", Bound: 0.8}},
		{Metric: "decode", Measured: Figure{"BenchmarkDecodeTuple/schema", "ns/op"},
			Reference: &Figure{"BenchmarkDecodeTuple/reference-pgx-DecodeValue", "ns/op"}},
		{Metric: "rss", Measured: Figure{"BenchmarkMissing", "peak-RSS-MiB"}, Target: &Target{Op: "<=", Bound: 256}},
		{Metric: "lag", Measured: Figure{"BenchmarkIntegrationCommitToQueryableStream", "p50-ms"}, Target: &Target{Op: "<", Bound: 1000}},
	}
	rows := Build(specs, res)
	type want struct {
		metric   string
		measured float64 // -1: not measured
		ratio    float64 // -1: none
		met      string  // "yes", "no", "" (no verdict)
	}
	wants := []want{
		{"drain", 41000, 0.82, "yes"},
		{"decode", 1043, 0.5, ""},
		{"rss", -1, -1, ""},
		{"lag", 950.5, -1, "yes"},
		// Latency quantiles no spec took, found generically; stream mode's
		// p99 gets the 5 s target.
		{"IntegrationCommitToQueryableStream p99-ms", 6100, -1, "no"},
		{"IntegrationCommitToQueryableLoad p99-ms", 70000, -1, ""},
	}
	if len(rows) != len(wants) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(wants), rows)
	}
	for i, w := range wants {
		r := rows[i]
		if r.Metric != w.metric {
			t.Errorf("row %d: metric %q, want %q", i, r.Metric, w.metric)
		}
		if (r.Measured == nil) != (w.measured < 0) || (r.Measured != nil && *r.Measured != w.measured) {
			t.Errorf("row %d: measured %v, want %v", i, r.Measured, w.measured)
		}
		if (r.Ratio == nil) != (w.ratio < 0) || (r.Ratio != nil && *r.Ratio != w.ratio) {
			t.Errorf("row %d: ratio %v, want %v", i, r.Ratio, w.ratio)
		}
		met := ""
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "no"}[*r.Met]
		}
		if met != w.met {
			t.Errorf("row %d: met %q, want %q", i, met, w.met)
		}
	}
	var out bytes.Buffer
	if err := Print(&out, rows); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"41,000 capture-rows/s", "50,000 recvlogical-rows/s (ref)", "0.820", "ratio >= 0.8", "not measured", "NO"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed table lacks %q:\n%s", s, out.String())
		}
	}
}

func TestHuman(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.06647, "0.0665"}, {244.5, "244"}, {999.4, "999"}, {1000, "1,000"}, {1234567.8, "1,234,568"}, {-4096, "-4,096"},
	} {
		if got := Human(c.in); got != c.want {
			t.Errorf("Human(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPostgresVersion(t *testing.T) {
	for num, want := range map[int]string{150018: "15.18", 170002: "17.2", 90624: "9.6.24"} {
		if got := PostgresVersion(num); got != want {
			t.Errorf("PostgresVersion(%d) = %q, want %q", num, got, want)
		}
	}
}

func TestTargetMet(t *testing.T) {
	for _, c := range []struct {
		t    Target
		v    float64
		want bool
	}{
		{Target{Op: "<", Bound: 2000}, 1999, true}, {Target{Op: "<", Bound: 2000}, 2000, false},
		{Target{Op: "<=", Bound: 256}, 256, true}, {Target{Op: ">=", Bound: 0.8}, 0.79, false},
		{Target{Op: ">", Bound: 1}, 1.5, true}, {Target{Op: "?", Bound: 1}, 1.5, false},
	} {
		if got := c.t.Met(c.v); got != c.want {
			t.Errorf("%v met by %v = %v, want %v", c.t, c.v, got, c.want)
		}
	}
}

func TestFailures(t *testing.T) {
	out := "BenchmarkA-2 1 5 ns/op\n--- FAIL: BenchmarkB\n    b_test.go:9: session ended\nFAIL\n--- FAIL: BenchmarkC\nFAIL\n"
	if got, want := Failures(out), ": BenchmarkB: b_test.go:9: session ended; BenchmarkC"; got != want {
		t.Errorf("Failures = %q, want %q", got, want)
	}
	if got := Failures("PASS\n"); got != "" {
		t.Errorf("Failures of a passing run = %q", got)
	}
}
