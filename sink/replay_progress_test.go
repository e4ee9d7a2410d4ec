package sink

import (
	"testing"
	"time"
)

func TestReplayProgress(t *testing.T) {
	var got []ReplayProgress
	p := newReplayProgress(func(r ReplayProgress) { got = append(got, r) }, "public.orders")
	p.selected([]ReplayObject{{Rows: 600}, {Rows: 300}, {Rows: 100}})
	p.start = time.Now().Add(-2 * time.Second) // two seconds in
	p.step("loading", 2, 900)
	p.step("applying", 0, 0)
	p.step("done", 0, 0)
	if len(got) != 3 {
		t.Fatalf("%d reports", len(got))
	}
	l := got[0]
	if l.Objects != 3 || l.Rows != 1000 || l.ObjectsDone != 2 || l.RowsDone != 900 || l.Done {
		t.Fatalf("loading: %+v", l)
	}
	// 900 rows in ~2 s: ~450 rows/s, the 100 left in ~0.22 s.
	if l.RowsPerSecond < 400 || l.RowsPerSecond > 450 || l.ETA < 200*time.Millisecond || l.ETA > 250*time.Millisecond {
		t.Fatalf("loading rate %.0f rows/s, ETA %s", l.RowsPerSecond, l.ETA)
	}
	// Later steps keep the loading rate and have no ETA.
	if got[1].ETA != 0 || got[1].Step != "applying" || got[1].RowsPerSecond != l.RowsPerSecond || !got[2].Done || got[2].RowsPerSecond != l.RowsPerSecond {
		t.Fatalf("later steps: %+v", got[1:])
	}

	// Reading to publish reports at most twice a second but counts all.
	got = nil
	p = newReplayProgress(func(r ReplayProgress) { got = append(got, r) }, "t")
	p.step("publishing", 0, 0)
	for i := 0; i < 1000; i++ {
		p.read(0, 1)
	}
	p.read(1, 0)
	p.step("done", 0, 0)
	if len(got) != 2 || got[1].RowsDone != 1000 || got[1].ObjectsDone != 1 {
		t.Fatalf("publishing reports %+v", got)
	}
	newReplayProgress(nil, "t").step("done", 0, 0) // no callback: nothing to do
}
