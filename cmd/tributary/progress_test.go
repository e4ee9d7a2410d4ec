package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/internal/backfill"
	"github.com/tributary-cdc/tributary/sink"
)

func TestProgressLines(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"bar unknown total", progressBar(5, 0), ""},
		{"bar empty", progressBar(0, 10), "[" + strings.Repeat(" ", 30) + "] "},
		{"bar half", progressBar(5, 10), "[" + strings.Repeat("=", 15) + strings.Repeat(" ", 15) + "] "},
		{"bar beyond the estimate", progressBar(12, 10), "[" + strings.Repeat("=", 30) + "] "},
		{"eta unknown", etaText(0, false), "?"},
		{"eta", etaText(1500*time.Millisecond, false), "2s"},
		{"eta done", etaText(time.Second, true), "done"},
		{"backfill", backfillLine(backfill.Progress{Schema: "public", Table: "orders", Rows: 250, EstimatedRows: 1000, RowsPerSecond: 125.4, ETA: 6 * time.Second}),
			"public.orders [" + strings.Repeat("=", 7) + strings.Repeat(" ", 23) + "] 250 rows  125 rows/s  6s   "},
		{"replay loading", replayLine(sink.ReplayProgress{Table: "public.orders", Step: "loading", Objects: 40, ObjectsDone: 10, Rows: 4000, RowsDone: 1000, RowsPerSecond: 500, ETA: 6 * time.Second}),
			"public.orders loading    [" + strings.Repeat("=", 7) + strings.Repeat(" ", 23) + "] 10/40 objects  1000/4000 rows  500 rows/s  6s   "},
		{"replay done", replayLine(sink.ReplayProgress{Table: "t.x", Step: "done", Objects: 2, ObjectsDone: 2, Rows: 9, RowsDone: 9, RowsPerSecond: 3, Done: true}),
			"t.x done       [" + strings.Repeat("=", 30) + "] 2/2 objects  9/9 rows  3 rows/s  done   "},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, tt.got, tt.want)
		}
	}
}

// Not on a terminal: a log line at the first report, then at most one per
// 10 s, and always the last.
func TestProgressDisplayLogsWhenNotATerminal(t *testing.T) {
	var errOut, logs bytes.Buffer
	d := newProgressDisplay(&errOut, slog.New(slog.NewTextHandler(&logs, nil)), "replay progress")
	d.show("line 1", false, "rows", 1)
	d.show("line 2", false, "rows", 2)
	d.show("line 3", true, "rows", 3)
	if errOut.Len() != 0 {
		t.Errorf("drew %q on a writer that is not a terminal", errOut.String())
	}
	if got := strings.Count(logs.String(), `msg="replay progress"`); got != 2 || !strings.Contains(logs.String(), "rows=1") || !strings.Contains(logs.String(), "rows=3") {
		t.Errorf("logged:\n%s\nwant the first and the last report", logs.String())
	}
}
