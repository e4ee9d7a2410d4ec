package capture

import (
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
)

// AckTracker decides which WAL position may be confirmed to Postgres. Each
// committed transaction is registered in commit order with the number of
// events it published; Ack is called once per event as Pub/Sub accepts it.
// Confirmed returns the end LSN of the newest transaction such that it and
// every earlier one are fully acknowledged — never "the last one sent".
//
// The tracker holds at most Cap transactions; Begin blocks when it is full,
// so a slow Pub/Sub slows the reader instead of growing the heap.
type AckTracker struct {
	mu        sync.Mutex
	notFull   *sync.Cond
	cap       int
	pending   []*txAck // in commit order
	confirmed pglogrepl.LSN
	// confirmedAt is the commit time of the newest confirmed transaction.
	confirmedAt time.Time
	failed      error
}

type txAck struct {
	end         pglogrepl.LSN
	commitTime  time.Time
	outstanding int
	sealed      bool
}

// TxHandle acknowledges the events of one transaction.
type TxHandle struct {
	t  *AckTracker
	tx *txAck
}

// NewAckTracker returns a tracker that starts confirmed at start and holds up
// to capacity unfinished transactions.
func NewAckTracker(start pglogrepl.LSN, capacity int) *AckTracker {
	if capacity < 1 {
		capacity = 1
	}
	t := &AckTracker{cap: capacity, confirmed: start}
	t.notFull = sync.NewCond(&t.mu)
	return t
}

// Begin registers the next transaction in commit order. Events are added
// with Add before they are published; Seal marks that no more will come and
// names the transaction's end LSN.
func (t *AckTracker) Begin() *TxHandle {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.pending) >= t.cap && t.failed == nil {
		t.notFull.Wait()
	}
	tx := &txAck{}
	t.pending = append(t.pending, tx)
	return &TxHandle{t: t, tx: tx}
}

// Add counts n more events in flight for the transaction.
func (h *TxHandle) Add(n int) {
	h.t.mu.Lock()
	h.tx.outstanding += n
	h.t.mu.Unlock()
}

// Seal records the transaction's end LSN: once its events are all acked (and
// all earlier transactions are), that position may be confirmed.
func (h *TxHandle) Seal(end pglogrepl.LSN, commitTime time.Time) {
	h.t.mu.Lock()
	h.tx.end, h.tx.commitTime, h.tx.sealed = end, commitTime, true
	h.t.advance()
	h.t.mu.Unlock()
}

// Ack acknowledges one event. A non-nil err marks the tracker failed: nothing
// after the failed event's transaction is confirmed again, and the reader
// must restart from the last confirmed position.
func (h *TxHandle) Ack(err error) {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	if err != nil {
		if h.t.failed == nil {
			h.t.failed = err
		}
		h.t.notFull.Broadcast()
		return
	}
	h.tx.outstanding--
	if h.tx.outstanding < 0 {
		panic(fmt.Sprintf("capture: transaction ending at %s acknowledged more events than it published", h.tx.end))
	}
	h.t.advance()
}

// advance pops finished transactions from the front. Caller holds mu.
func (t *AckTracker) advance() {
	if t.failed != nil {
		return
	}
	n := 0
	for _, tx := range t.pending {
		if !tx.sealed || tx.outstanding > 0 {
			break
		}
		if tx.end > t.confirmed {
			t.confirmed, t.confirmedAt = tx.end, tx.commitTime
		}
		n++
	}
	if n > 0 {
		t.pending = append(t.pending[:0], t.pending[n:]...)
		t.notFull.Broadcast()
	}
}

// Confirmed returns the position safe to report as flushed to Postgres and
// the first publish error, if any.
func (t *AckTracker) Confirmed() (pglogrepl.LSN, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.confirmed, t.failed
}

// Pending returns how many transactions are published but not yet confirmed
// and the commit time of the newest confirmed one.
func (t *AckTracker) Pending() (int, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending), t.confirmedAt
}

// Idle reports whether no transaction is in flight: then a keepalive's WAL
// end may be confirmed, so a quiet publication does not pin WAL.
func (t *AckTracker) Idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) == 0 && t.failed == nil
}

// AdvanceIdle confirms lsn when nothing is in flight and lsn is ahead.
func (t *AckTracker) AdvanceIdle(lsn pglogrepl.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 && t.failed == nil && lsn > t.confirmed {
		t.confirmed = lsn
	}
}
