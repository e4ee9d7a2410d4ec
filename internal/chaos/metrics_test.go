package chaos

import (
	"strings"
	"testing"
)

func TestSumSamples(t *testing.T) {
	const text = `# HELP tributary_sink_errors_total GCS and BigQuery failures.
# TYPE tributary_sink_errors_total counter
tributary_sink_errors_total{kind="retryable",table="public.a"} 3
tributary_sink_errors_total{kind="retryable",table="public.b"} 4
tributary_sink_errors_total{kind="permanent",table="public.a"} 1
tributary_sink_errors_total_extra{kind="retryable"} 100
tributary_capture_restarts_total 2
tributary_sink_dead_letters_total{table="public.x,y"} 5
`
	for _, tc := range []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"one label over tables", "tributary_sink_errors_total", []string{`kind="retryable"`}, 7},
		{"two labels", "tributary_sink_errors_total", []string{`kind="retryable"`, `table="public.b"`}, 4},
		{"no labels asked", "tributary_sink_errors_total", nil, 8},
		{"no label set", "tributary_capture_restarts_total", nil, 2},
		{"absent", "tributary_nothing_total", nil, 0},
		{"label absent", "tributary_sink_errors_total", []string{`kind="schema_mismatch"`}, 0},
		{"comma in a value", "tributary_sink_dead_letters_total", []string{`table="public.x,y"`}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sumSamples(strings.NewReader(text), tc.metric, tc.labels...)
			if err != nil || got != tc.want {
				t.Fatalf("sumSamples = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := sumSamples(strings.NewReader("m{a=\"b\" 1\n"), "m"); err == nil {
		t.Fatal("a sample without its closing brace was accepted")
	}
}
