package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// progressDisplay shows a long command's progress on errOut: one line
// redrawn in place on a terminal, otherwise a log line every 10 s and at
// the end. backfill and replay share it.
type progressDisplay struct {
	w    io.Writer
	term bool
	log  *slog.Logger
	msg  string // the log message
	last time.Time
}

func newProgressDisplay(errOut io.Writer, log *slog.Logger, msg string) *progressDisplay {
	return &progressDisplay{w: errOut, term: isTerminal(errOut), log: log, msg: msg}
}

// show draws line on a terminal, or logs attrs when a line is due.
func (d *progressDisplay) show(line string, done bool, attrs ...any) {
	switch {
	case d.term:
		fmt.Fprintf(d.w, "\r%s", line)
		if done {
			fmt.Fprintln(d.w)
		}
	case done || time.Since(d.last) >= 10*time.Second:
		d.last = time.Now()
		d.log.Info(d.msg, attrs...)
	}
}

// progressBar renders "[=====     ] " for done of total; "" when the total
// is unknown.
func progressBar(done, total int64) string {
	const width = 30
	if total <= 0 {
		return ""
	}
	n := max(0, min(width, int(float64(width)*float64(done)/float64(total))))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "] "
}

// etaText is the time left as shown: "?" unknown, "done" at the end.
func etaText(eta time.Duration, done bool) string {
	switch {
	case done:
		return "done"
	case eta > 0:
		return eta.Round(time.Second).String()
	}
	return "?"
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
