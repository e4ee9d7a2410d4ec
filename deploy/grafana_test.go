package deploy_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// definedMetrics finds every metric name the module's code defines: the Name
// (with Namespace and Subsystem) of each prometheus.*Opts literal outside
// tests.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "deploy" || n == "airflow" || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			parts := map[string]string{}
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				k, ok1 := kv.Key.(*ast.Ident)
				v, ok2 := kv.Value.(*ast.BasicLit)
				if ok1 && ok2 && v.Kind == token.STRING {
					s, err := strconv.Unquote(v.Value)
					if err == nil {
						parts[k.Name] = s
					}
				}
			}
			if parts["Name"] == "" {
				return true
			}
			var full []string
			for _, k := range []string{"Namespace", "Subsystem", "Name"} {
				if parts[k] != "" {
					full = append(full, parts[k])
				}
			}
			names[strings.Join(full, "_")] = true
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// runtimeMetrics are the names of the Go and process collectors the binary
// registers beside its own (cmd/tributary's serveOps).
func runtimeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}

var metricName = regexp.MustCompile(`\b(?:tributary|go|process)_[a-z0-9_]+\b`)

// TestGrafanaDashboard parses the dashboard, checks every metric it
// queries against the metrics the binary defines, and that it shows every
// tributary_ metric the code defines.
func TestGrafanaDashboard(t *testing.T) {
	var dash struct {
		Title  string            `json:"title"`
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
	}
	data := readFile(t, "deploy/grafana/tributary.json")
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana/tributary.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatal("the dashboard needs a title, a uid and panels")
	}
	type target struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	}
	type panel struct {
		ID         int                       `json:"id"`
		Type       string                    `json:"type"`
		Title      string                    `json:"title"`
		Datasource json.RawMessage           `json:"datasource"`
		GridPos    *struct{ H, W, X, Y int } `json:"gridPos"`
		Targets    []target                  `json:"targets"`
		Panels     []json.RawMessage         `json:"panels"`
	}
	var exprs []string
	ids := map[int]bool{}
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("a panel: %v", err)
			}
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %q has no gridPos", p.Title)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Datasource) == 0 || len(p.Targets) == 0 {
				t.Errorf("panel %q has no datasource or no targets", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
					t.Errorf("panel %q has a target without expr or refId", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(dash.Panels)

	defined := definedMetrics(t)
	runtime := runtimeMetrics(t)
	for _, n := range []string{"tributary_capture_events_published_total", "tributary_capture_confirmed_lsn"} {
		if !defined[n] {
			t.Fatalf("the metric scan misses %s, which capture defines: the scan is broken", n)
		}
	}
	for _, n := range []string{"tributary_sink_events_received_total", "tributary_sink_errors_total"} {
		if !defined[n] {
			t.Fatalf("the metric scan misses %s, which the sink defines: the scan is broken", n)
		}
	}
	known := func(n string) bool {
		if defined[n] || runtime[n] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && defined[base] {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			if !seen[n] && !known(n) {
				t.Errorf("the dashboard queries %s, which the binary does not expose", n)
			}
			seen[n] = true
		}
	}
	// Every metric of tributary's own is on the dashboard.
	var unshown []string
	for n := range defined {
		if strings.HasPrefix(n, "tributary_") && !seen[n] {
			unshown = append(unshown, n)
		}
	}
	sort.Strings(unshown)
	if len(unshown) > 0 {
		t.Errorf("metrics the binary exposes and the dashboard does not show: %v", unshown)
	}
}
