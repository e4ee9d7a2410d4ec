package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `tributary demo --duration` runs the marketplace on the local stack, prints
// measured counts and lag, stops by itself, and ends with every table equal
// in Postgres and BigQuery (exit 0).
func TestIntegrationDemo(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "demo")
	out, err := exec.Command(bin, "demo", "--dir", dir, "--duration", "12s", "--every", "5s", "--rate", "15").CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	s := string(out)
	for _, table := range []string{"customers", "pros", "requests", "quotes", "job_preferences", "reviews"} {
		if !regexp.MustCompile(`public\.` + table + `\s+postgres\s+(\d+)\s+bigquery\s+(\d+)\s+equal`).MatchString(s) {
			t.Errorf("no equal verify line for %s", table)
		}
	}
	if !regexp.MustCompile(`commit→BigQuery lag p50 \S+ p99 \S+ \([1-9]\d* changes`).MatchString(s) {
		t.Errorf("no measured lag in the output")
	}
	if !strings.Contains(s, "quotes per request category per hour (BigQuery):") {
		t.Errorf("no analyst query result in the output")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", s)
	}
}
