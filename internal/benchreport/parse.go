package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Result is one benchmark's result line: its name without the GOMAXPROCS
// suffix, that suffix, the iterations and each reported value by unit
// (ns/op, B/op, allocs/op and the b.ReportMetric units), in line order.
type Result struct {
	Name    string   `json:"name"`
	Procs   int      `json:"procs"`
	N       int64    `json:"iterations"`
	Metrics []Metric `json:"metrics"`
}

// Metric is one value of a result line.
type Metric struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Get returns the value reported in unit.
func (r Result) Get(unit string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

var (
	// benchLine starts with a benchmark's name: the whole result
	// ("BenchmarkX-2   1   123 ns/op   4.5 unit …") or only the name, printed
	// before the benchmark ran, followed by whatever it wrote meanwhile;
	// its figures then start a later line.
	benchLine = regexp.MustCompile(`^(Benchmark\S+)\s*(.*)$`)
	// figures is a result line's part after the name.
	figures     = regexp.MustCompile(`^\s*(\d+)\s+([-+0-9.eE]+\s+\S+.*)$`)
	procsSuffix = regexp.MustCompile(`-(\d+)$`)
)

// Parse reads `go test -bench` output and returns its result lines. Lines
// that are not results (logs, PASS, ok …) are skipped; a result line whose
// figures do not parse is an error naming the line.
func Parse(r io.Reader) ([]Result, error) {
	var out []Result
	pending := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		var name string
		var fig []string
		if m := benchLine.FindStringSubmatch(text); m != nil {
			if fig = figures.FindStringSubmatch(m[2]); fig == nil {
				pending = m[1]
				continue
			}
			name = m[1]
		} else if fig = figures.FindStringSubmatch(text); fig != nil && pending != "" {
			name = pending
		} else {
			continue
		}
		pending = ""
		res, err := parseResult(name, fig[1], fig[2])
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", line, text, err)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading benchmark output: %w", err)
	}
	return out, nil
}

func parseResult(name, iters, figures string) (Result, error) {
	res := Result{Name: name, Procs: 1}
	if m := procsSuffix.FindStringSubmatch(name); m != nil {
		res.Name = strings.TrimSuffix(name, m[0])
		res.Procs, _ = strconv.Atoi(m[1])
	}
	var err error
	if res.N, err = strconv.ParseInt(iters, 10, 64); err != nil {
		return Result{}, fmt.Errorf("iterations: %w", err)
	}
	f := strings.Fields(figures)
	if len(f)%2 != 0 {
		return Result{}, fmt.Errorf("figures are not value-unit pairs")
	}
	for i := 0; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, fmt.Errorf("value %q: %w", f[i], err)
		}
		res.Metrics = append(res.Metrics, Metric{Value: v, Unit: f[i+1]})
	}
	return res, nil
}

// Failures returns the "--- FAIL" lines of go test output, each with the
// message line after it, as one string starting with ": ", or "".
func Failures(out string) string {
	lines := strings.Split(out, "\n")
	var fails []string
	for i, l := range lines {
		if !strings.HasPrefix(l, "--- FAIL") {
			continue
		}
		f := strings.TrimPrefix(l, "--- FAIL: ")
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") {
			f += ": " + strings.TrimSpace(lines[i+1])
		}
		fails = append(fails, f)
	}
	if len(fails) == 0 {
		return ""
	}
	return ": " + strings.Join(fails, "; ")
}
