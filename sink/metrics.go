package sink

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// decodeLabel is the table label of messages that could not be decoded
// (their table is not known for sure).
const decodeLabel = "_undecodable"

// metrics are the sink's Prometheus metrics, labelled by table
// ("schema.table" as Postgres spells it).
type metrics struct {
	received, rowsWritten, objects, rowsLoaded, loads, deadLetters *prometheus.CounterVec
	errors                                                         *prometheus.CounterVec
	lastCommit, lastLoad, pending                                  *prometheus.GaugeVec
}

func newMetrics() *metrics {
	counter := func(o prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(o, append([]string{"table"}, labels...))
	}
	gauge := func(o prometheus.GaugeOpts) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(o, []string{"table"})
	}
	return &metrics{
		received: counter(prometheus.CounterOpts{Name: "tributary_sink_events_received_total",
			Help: "Change events taken from the subscription (redeliveries included)."}),
		rowsWritten: counter(prometheus.CounterOpts{Name: "tributary_sink_rows_written_total",
			Help: "Changes written to GCS in Avro object files."}),
		objects: counter(prometheus.CounterOpts{Name: "tributary_sink_objects_written_total",
			Help: "Avro object files written to GCS."}),
		rowsLoaded: counter(prometheus.CounterOpts{Name: "tributary_sink_rows_loaded_total",
			Help: "Changelog rows that reached BigQuery (counted when their load and the current-state apply finish)."}),
		loads: counter(prometheus.CounterOpts{Name: "tributary_sink_loads_total",
			Help: "Loads into the changelog applied to the current state."}),
		deadLetters: counter(prometheus.CounterOpts{Name: "tributary_sink_dead_letters_total",
			Help: "Changes written to a dead-letter object instead of BigQuery."}),
		errors: counter(prometheus.CounterOpts{Name: "tributary_sink_errors_total",
			Help: "GCS and BigQuery failures, by kind: retryable, permanent, schema_mismatch."}, "kind"),
		lastCommit: gauge(prometheus.GaugeOpts{Name: "tributary_sink_last_commit_timestamp_seconds",
			Help: "Commit time of the newest change in the current-state table, as Unix seconds."}),
		lastLoad: gauge(prometheus.GaugeOpts{Name: "tributary_sink_last_load_timestamp_seconds",
			Help: "When the latest load finished, as Unix seconds."}),
		pending: gauge(prometheus.GaugeOpts{Name: "tributary_sink_pending_objects",
			Help: "Avro object files written to GCS and not yet loaded into BigQuery."}),
	}
}

// Collectors returns the sink's Prometheus metrics, for registering once.
// Every metric has a table label, "schema.table" as Postgres spells it
// ("_undecodable" for messages whose table is unknown).
func (s *Sink) Collectors() []prometheus.Collector {
	m := s.metrics
	return []prometheus.Collector{m.received, m.rowsWritten, m.objects, m.rowsLoaded, m.loads, m.deadLetters, m.errors, m.lastCommit, m.lastLoad, m.pending}
}

// tableStats are a table's numbers for Health, beside its metrics.
type tableStats struct {
	received, rowsWritten, objects, rowsLoaded, deadLetters atomic.Int64
	lastFlush, lastLoad, lastCommit                         atomic.Int64 // Unix nanoseconds; 0 never
}

// countReceived counts an event taken from the subscription.
func (t *table) countReceived() {
	t.stats.received.Add(1)
	t.s.metrics.received.WithLabelValues(t.label).Inc()
}

// countWritten counts an object of rows written to GCS, pending its load.
func (t *table) countWritten(object string, rows int) {
	t.stats.objects.Add(1)
	t.stats.rowsWritten.Add(int64(rows))
	t.stats.lastFlush.Store(time.Now().UnixNano())
	t.s.metrics.objects.WithLabelValues(t.label).Inc()
	t.s.metrics.rowsWritten.WithLabelValues(t.label).Add(float64(rows))
	t.addPending(object)
}

// countLoaded counts a finished load of m.
func (t *table) countLoaded(m *manifest) {
	now := time.Now()
	t.stats.rowsLoaded.Add(m.Rows)
	t.stats.lastLoad.Store(now.UnixNano())
	t.s.metrics.loads.WithLabelValues(t.label).Inc()
	t.s.metrics.rowsLoaded.WithLabelValues(t.label).Add(float64(m.Rows))
	t.s.metrics.lastLoad.WithLabelValues(t.label).Set(float64(now.UnixNano()) / 1e9)
	if m.LastCommitMicros > 0 {
		for {
			old := t.stats.lastCommit.Load()
			ns := m.LastCommitMicros * 1000
			if ns <= old || t.stats.lastCommit.CompareAndSwap(old, ns) {
				break
			}
		}
		t.s.metrics.lastCommit.WithLabelValues(t.label).Set(float64(t.stats.lastCommit.Load()) / 1e9)
	}
	t.donePending(m.Objects)
}

// countDeadLetters counts n changes dead-lettered.
func (t *table) countDeadLetters(n int64) {
	t.stats.deadLetters.Add(n)
	t.s.metrics.deadLetters.WithLabelValues(t.label).Add(float64(n))
}

// countError counts a failure by its class.
func (t *table) countError(err error) {
	kind := Classify(err).String()
	t.mu.Lock()
	t.errCounts[kind]++
	t.lastErr, t.lastErrAt = err.Error(), time.Now()
	t.mu.Unlock()
	t.s.metrics.errors.WithLabelValues(t.label, kind).Inc()
}

// addPending notes objects written and not yet loaded.
func (t *table) addPending(objects ...string) {
	t.mu.Lock()
	if len(t.pending) == 0 && len(objects) > 0 {
		t.pendingSince = time.Now()
	}
	for _, o := range objects {
		t.pending[o] = true
	}
	n := len(t.pending)
	t.mu.Unlock()
	t.s.metrics.pending.WithLabelValues(t.label).Set(float64(n))
}

// donePending notes objects loaded (or dead-lettered).
func (t *table) donePending(objects []string) {
	t.mu.Lock()
	for _, o := range objects {
		delete(t.pending, o)
	}
	n := len(t.pending)
	t.mu.Unlock()
	t.s.metrics.pending.WithLabelValues(t.label).Set(float64(n))
}

// HealthReport is what Health reports: whether the sink is healthy, the
// first failing check, and each table's numbers.
type HealthReport struct {
	Healthy      bool   `json:"healthy"`
	Receiving    bool   `json:"receiving"`
	FailingCheck string `json:"failing_check,omitempty"`
	// Undecodable counts messages dead-lettered because they could not be
	// decoded (their table is not known for sure).
	Undecodable int64         `json:"undecodable_dead_letters"`
	Tables      []TableHealth `json:"tables"`
}

// TableHealth is one table's share of a HealthReport. Times are zero when
// the event has not happened in this process.
type TableHealth struct {
	Table          string           `json:"table"`
	LastFlush      time.Time        `json:"last_flush,omitzero"`
	LastLoad       time.Time        `json:"last_load,omitzero"`
	LastCommit     time.Time        `json:"last_commit,omitzero"`
	EventsReceived int64            `json:"events_received"`
	ObjectsWritten int64            `json:"objects_written"`
	RowsWritten    int64            `json:"rows_written"`
	RowsLoaded     int64            `json:"rows_loaded"`
	PendingObjects int              `json:"pending_objects"`
	DeadLetters    int64            `json:"dead_letters"`
	Errors         map[string]int64 `json:"errors,omitempty"`
	LastError      string           `json:"last_error,omitempty"`
	LastErrorAt    time.Time        `json:"last_error_at,omitzero"`
}

// Health reports the sink's state (a HealthReport) and whether it is
// healthy: its receive loop is running (or Run has not got to it yet), and
// no table has had objects waiting for longer than three LoadIntervals (and
// at least a minute: a load job and its apply can take that long on a busy
// BigQuery) without a load finishing (counted from the later of its latest
// load and the moment its backlog last became non-empty).
func (s *Sink) Health(ctx context.Context) (bool, any) {
	h := HealthReport{Healthy: true, Receiving: s.receiving.Load(), Undecodable: s.undecodable.Load()}
	fail := func(check string) {
		if h.Healthy {
			h.Healthy, h.FailingCheck = false, check
		}
	}
	if s.recvExited.Load() {
		fail("receive loop running")
	}
	s.mu.Lock()
	tables := make([]*table, 0, len(s.tables))
	for _, t := range s.tables {
		tables = append(tables, t)
	}
	s.mu.Unlock()
	sort.Slice(tables, func(i, j int) bool { return tables[i].label < tables[j].label })
	limit := max(3*s.cfg.LoadInterval, time.Minute)
	for _, t := range tables {
		th := t.health()
		h.Tables = append(h.Tables, th)
		t.mu.Lock()
		since := t.pendingSince
		t.mu.Unlock()
		if th.LastLoad.After(since) {
			since = th.LastLoad
		}
		if th.PendingObjects > 0 && time.Since(since) > limit {
			fail("table " + t.label + " loaded within " + limit.String())
		}
	}
	return h.Healthy, h
}

func (t *table) health() TableHealth {
	at := func(ns int64) time.Time {
		if ns == 0 {
			return time.Time{}
		}
		return time.Unix(0, ns).UTC()
	}
	st := &t.stats
	h := TableHealth{
		Table: t.label, LastFlush: at(st.lastFlush.Load()), LastLoad: at(st.lastLoad.Load()), LastCommit: at(st.lastCommit.Load()),
		EventsReceived: st.received.Load(), ObjectsWritten: st.objects.Load(), RowsWritten: st.rowsWritten.Load(),
		RowsLoaded: st.rowsLoaded.Load(), DeadLetters: st.deadLetters.Load(),
	}
	t.mu.Lock()
	h.PendingObjects = len(t.pending)
	if len(t.errCounts) > 0 {
		h.Errors = make(map[string]int64, len(t.errCounts))
		for k, v := range t.errCounts {
			h.Errors[k] = v
		}
	}
	h.LastError, h.LastErrorAt = t.lastErr, t.lastErrAt
	t.mu.Unlock()
	return h
}
