package main

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Figure names one value a benchmark reports.
type Figure struct {
	Bench string // benchmark name without the GOMAXPROCS suffix
	Unit  string
}

// Target is what a row must meet: its ratio or its measured value compared
// with a bound.
type Target struct {
	OnRatio bool
	Op      string // "<", "<=", ">=", ">"
	Bound   float64
}

// Met reports whether v meets t.
func (t Target) Met(v float64) bool {
	switch t.Op {
	case "<":
		return v < t.Bound
	case "<=":
		return v <= t.Bound
	case ">":
		return v > t.Bound
	case ">=":
		return v >= t.Bound
	}
	return false
}

func (t Target) String() string {
	on := "measured"
	if t.OnRatio {
		on = "ratio"
	}
	return on + " " + t.Op + " " + strconv.FormatFloat(t.Bound, 'g', -1, 64)
}

// Spec is one row of the report: a measured figure, optionally the
// reference measured beside it in the same run, and a target.
type Spec struct {
	Metric    string
	Measured  Figure
	Reference *Figure
	RefLabel  string // what the reference is
	Target    *Target
}

// Row is a Spec with its values from a run. Measured and Reference are nil
// when the run did not report them (a benchmark failed or was not run).
type Row struct {
	Metric    string   `json:"metric"`
	Unit      string   `json:"unit"`
	Bench     string   `json:"benchmark"`
	Measured  *float64 `json:"measured"`
	Reference *float64 `json:"reference,omitempty"`
	RefUnit   string   `json:"reference_unit,omitempty"`
	RefLabel  string   `json:"reference_label,omitempty"`
	Ratio     *float64 `json:"ratio,omitempty"`
	Target    string   `json:"target,omitempty"`
	Met       *bool    `json:"met,omitempty"`
}

// latencyUnit matches units of latency quantiles in milliseconds, as a
// commit→queryable benchmark reports them (p50-ms, p99-ms, ms-p99 …).
var latencyUnit = regexp.MustCompile(`(?i)(^|[-_/])p(50|90|95|99|999)([-_/]|$)`)

// Build evaluates specs against results, then appends a row for every
// latency quantile in milliseconds that no spec took (so benchmarks added
// later appear without a change here); such a row from a benchmark named
// for stream mode with a p99 gets the target, p99 < 5 s.
func Build(specs []Spec, results []Result) []Row {
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	get := func(f Figure) *float64 {
		r, ok := byName[f.Bench]
		if !ok {
			return nil
		}
		v, ok := r.Get(f.Unit)
		if !ok {
			return nil
		}
		return &v
	}
	used := map[Figure]bool{}
	var rows []Row
	for _, s := range specs {
		used[s.Measured] = true
		row := Row{Metric: s.Metric, Unit: s.Measured.Unit, Bench: s.Measured.Bench, Measured: get(s.Measured), RefLabel: s.RefLabel}
		if s.Reference != nil {
			used[*s.Reference] = true
			row.Reference, row.RefUnit = get(*s.Reference), s.Reference.Unit
			if row.Measured != nil && row.Reference != nil && *row.Reference != 0 {
				r := *row.Measured / *row.Reference
				row.Ratio = &r
			}
		}
		if s.Target != nil {
			row.Target = s.Target.String()
			v := row.Measured
			if s.Target.OnRatio {
				v = row.Ratio
			}
			if v != nil {
				met := s.Target.Met(*v)
				row.Met = &met
			}
		}
		rows = append(rows, row)
	}
	for _, r := range results {
		for _, m := range r.Metrics {
			f := Figure{r.Name, m.Unit}
			if used[f] || !strings.Contains(strings.ToLower(m.Unit), "ms") || !latencyUnit.MatchString(m.Unit) {
				continue
			}
			used[f] = true
			v := m.Value
			row := Row{Metric: strings.TrimPrefix(r.Name, "Benchmark") + " " + m.Unit, Unit: m.Unit, Bench: r.Name, Measured: &v}
			if strings.Contains(strings.ToLower(r.Name), "stream") && strings.Contains(strings.ToLower(m.Unit), "p99") {
				t := Target{Op: "<", Bound: 5000}
				row.Target = t.String()
				met := t.Met(v)
				row.Met = &met
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// Print writes rows as an aligned table.
func Print(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tmeasured\treference\tratio\ttarget\tmet?")
	for _, r := range rows {
		ref := "—"
		if r.Reference != nil {
			ref = Human(*r.Reference) + " " + r.RefUnit
			if r.RefLabel != "" {
				ref += " (" + r.RefLabel + ")"
			}
		} else if r.RefLabel != "" {
			ref = "not measured (" + r.RefLabel + ")"
		}
		meas := "not measured"
		if r.Measured != nil {
			meas = Human(*r.Measured) + " " + r.Unit
		}
		ratio := "—"
		if r.Ratio != nil {
			ratio = strconv.FormatFloat(*r.Ratio, 'f', 3, 64)
		}
		target, met := "—", "—"
		if r.Target != "" {
			target = r.Target
			met = "?"
			if r.Met != nil {
				met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Metric, meas, ref, ratio, target, met)
	}
	return tw.Flush()
}

// Human formats v for reading: thousands separated from 1,000 up, three
// significant digits below.
func Human(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if math.Abs(v) < 1000 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	s := strconv.FormatInt(int64(math.Round(math.Abs(v))), 10)
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
