package capture

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestAckTrackerConfirmsOnlyContiguousPrefix(t *testing.T) {
	type step struct {
		op   string // begin, add, seal, ack, fail
		tx   int
		n    int
		want pglogrepl.LSN
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{
			{op: "begin", tx: 0}, {op: "add", tx: 0, n: 2}, {op: "seal", tx: 0, n: 100, want: 10},
			{op: "ack", tx: 0, want: 10}, {op: "ack", tx: 0, want: 100},
		}},
		{"later transaction acked first waits for the earlier one", []step{
			{op: "begin", tx: 0}, {op: "add", tx: 0, n: 1}, {op: "seal", tx: 0, n: 100},
			{op: "begin", tx: 1}, {op: "add", tx: 1, n: 1}, {op: "seal", tx: 1, n: 200},
			{op: "ack", tx: 1, want: 10}, {op: "ack", tx: 0, want: 200},
		}},
		{"unsealed transaction holds back even when all its events are acked", []step{
			{op: "begin", tx: 0}, {op: "add", tx: 0, n: 1}, {op: "ack", tx: 0, want: 10},
			{op: "seal", tx: 0, n: 150, want: 150},
		}},
		{"empty transaction confirms at seal", []step{
			{op: "begin", tx: 0}, {op: "seal", tx: 0, n: 120, want: 120},
		}},
		{"a failed publish stops confirmation for good", []step{
			{op: "begin", tx: 0}, {op: "add", tx: 0, n: 2}, {op: "seal", tx: 0, n: 100},
			{op: "fail", tx: 0, want: 10}, {op: "ack", tx: 0, want: 10},
			{op: "begin", tx: 1}, {op: "seal", tx: 1, n: 300, want: 10},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewAckTracker(10, 16)
			hs := map[int]*TxHandle{}
			for i, s := range tt.steps {
				switch s.op {
				case "begin":
					hs[s.tx] = tr.Begin()
				case "add":
					hs[s.tx].Add(s.n)
				case "seal":
					hs[s.tx].Seal(pglogrepl.LSN(s.n), time.Time{})
				case "ack":
					hs[s.tx].Ack(nil)
				case "fail":
					hs[s.tx].Ack(errors.New("publish failed"))
				}
				if s.want != 0 {
					got, _ := tr.Confirmed()
					if got != s.want {
						t.Fatalf("step %d (%s tx %d): confirmed %s, want %s", i, s.op, s.tx, got, s.want)
					}
				}
			}
		})
	}
}

func TestAckTrackerIdleAdvance(t *testing.T) {
	tr := NewAckTracker(50, 4)
	tr.AdvanceIdle(80)
	if got, _ := tr.Confirmed(); got != 80 {
		t.Fatalf("idle advance: confirmed %s, want 0/50", got)
	}
	h := tr.Begin()
	h.Add(1)
	tr.AdvanceIdle(500)
	if got, _ := tr.Confirmed(); got != 80 {
		t.Fatalf("advance with a transaction in flight moved confirmed to %s", got)
	}
	h.Seal(90, time.Time{})
	h.Ack(nil)
	if got, _ := tr.Confirmed(); got != 90 {
		t.Fatalf("confirmed %s, want 90", got)
	}
}

func TestAckTrackerBeginBlocksWhenFull(t *testing.T) {
	tr := NewAckTracker(0, 1)
	h := tr.Begin()
	h.Add(1)
	h.Seal(10, time.Time{})
	began := make(chan struct{})
	go func() { tr.Begin(); close(began) }()
	select {
	case <-began:
		t.Fatal("Begin returned while the tracker was full")
	case <-time.After(100 * time.Millisecond):
	}
	h.Ack(nil)
	select {
	case <-began: // unblocked once the first transaction is acknowledged
	case <-time.After(10 * time.Second):
		t.Fatal("Begin still blocked after the full tracker's transaction was acknowledged")
	}
}
