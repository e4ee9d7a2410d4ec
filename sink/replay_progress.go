package sink

import "time"

// ReplayProgress is a replay's state, reported as it goes (the Progress
// option of ReplayOptions and TopicReplayOptions).
type ReplayProgress struct {
	Table string
	// Step is "loading" (objects into the aside changelog), "applying"
	// (the current state), "swapping", "publishing" (--to-topic) or "done".
	Step string
	// Objects and Rows are the selected objects and the rows their
	// metadata counts (duplicates and changes outside the range included);
	// ObjectsDone and RowsDone what has been loaded, or read to publish.
	Objects, ObjectsDone int
	Rows, RowsDone       int64
	// RowsPerSecond is RowsDone over the time until the last of them was
	// done (the loading or publishing rate, kept through the later steps);
	// ETA the time the rows left take at that rate (0 when unknown, and in
	// the steps after loading).
	RowsPerSecond float64
	ETA           time.Duration
	Elapsed       time.Duration
	Done          bool
}

// replayProgress computes and reports ReplayProgress; with a nil fn it
// does nothing.
type replayProgress struct {
	fn     func(ReplayProgress)
	start  time.Time
	last   time.Time
	rowsAt time.Time // when RowsDone last grew
	p      ReplayProgress
}

func newReplayProgress(fn func(ReplayProgress), table string) *replayProgress {
	return &replayProgress{fn: fn, start: time.Now(), p: ReplayProgress{Table: table}}
}

// selected sets the totals.
func (r *replayProgress) selected(objs []ReplayObject) {
	r.p.Objects = len(objs)
	for _, o := range objs {
		r.p.Rows += o.Rows
	}
}

// step reports a new step, or progress in one (done: objects and rows).
func (r *replayProgress) step(step string, objects int, rows int64) {
	if r.fn == nil {
		return
	}
	r.p.Step, r.p.ObjectsDone, r.p.RowsDone = step, r.p.ObjectsDone+objects, r.p.RowsDone+rows
	r.p.Done = step == "done"
	r.p.Elapsed = time.Since(r.start)
	if rows > 0 || r.rowsAt.IsZero() {
		r.rowsAt = time.Now()
	}
	r.p.RowsPerSecond, r.p.ETA = 0, 0
	if s := r.rowsAt.Sub(r.start).Seconds(); s > 0 {
		r.p.RowsPerSecond = float64(r.p.RowsDone) / s
	}
	if (step == "loading" || step == "publishing") && r.p.RowsPerSecond > 0 && r.p.Rows > r.p.RowsDone {
		r.p.ETA = time.Duration(float64(r.p.Rows-r.p.RowsDone) / r.p.RowsPerSecond * float64(time.Second))
	}
	r.last = time.Now()
	r.fn(r.p)
}

// read counts rows read while publishing, reporting at most twice a second.
func (r *replayProgress) read(objects int, rows int64) {
	if r.fn == nil {
		return
	}
	if time.Since(r.last) < 500*time.Millisecond {
		r.p.ObjectsDone, r.p.RowsDone = r.p.ObjectsDone+objects, r.p.RowsDone+rows
		if rows > 0 {
			r.rowsAt = time.Now()
		}
		return
	}
	r.step("publishing", objects, rows)
}
