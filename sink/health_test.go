package sink

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	s := &Sink{cfg: Config{LoadInterval: time.Minute}.withDefaults(), tables: map[tableKey]*table{}, metrics: newMetrics()}
	if ok, h := s.Health(context.Background()); !ok {
		t.Fatalf("a sink not started yet is unhealthy: %+v", h)
	}
	tb := newTable(s, tableKey{"public", "t"})
	s.tables[tb.key] = tb
	tb.countWritten("a.avro", 3)
	if ok, h := s.Health(context.Background()); !ok {
		t.Fatalf("a fresh backlog is unhealthy: %+v", h)
	}
	tb.mu.Lock()
	tb.pendingSince = time.Now().Add(-4 * time.Minute)
	tb.mu.Unlock()
	ok, h := s.Health(context.Background())
	if rep := h.(HealthReport); ok || rep.FailingCheck == "" || rep.Tables[0].PendingObjects != 1 || rep.Tables[0].RowsWritten != 3 {
		t.Fatalf("a backlog older than 3 load intervals: healthy %v, %+v", ok, h)
	}
	tb.countError(&permanentError{errors.New("bad")})
	tb.countLoaded(&manifest{Objects: []string{"a.avro"}, Rows: 3, LastCommitMicros: 1_700_000_000_000_000})
	ok, h = s.Health(context.Background())
	rep := h.(HealthReport)
	if th := rep.Tables[0]; !ok || th.PendingObjects != 0 || th.RowsLoaded != 3 || th.Errors["permanent"] != 1 || th.LastCommit.Unix() != 1_700_000_000 {
		t.Fatalf("after the load: healthy %v, %+v", ok, rep)
	}
	s.recvExited.Store(true)
	if ok, h := s.Health(context.Background()); ok {
		t.Fatalf("a dead receive loop is healthy: %+v", h)
	}
}
