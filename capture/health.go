package capture

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Health is what /healthz reports, in the spirit of a database doctor: each
// check's numbers, and the first failing check when unhealthy.
type Health struct {
	Healthy        bool    `json:"healthy"`
	Slot           string  `json:"slot"`
	SlotActive     bool    `json:"slot_active"`
	ConfirmedLSN   string  `json:"confirmed_lsn"`
	LagBytes       int64   `json:"lag_bytes"`
	LagSeconds     float64 `json:"lag_seconds"`
	PublishBacklog int     `json:"publish_backlog_transactions"`
	Published      int64   `json:"published"`
	DeadLetters    int64   `json:"dead_letters"`
	FailingCheck   string  `json:"failing_check,omitempty"`
}

// HealthThresholds bound what counts as healthy.
type HealthThresholds struct {
	MaxLagBytes int64         // default 1 GiB of WAL held by the slot
	MaxLag      time.Duration // default 5m between a commit and its confirmation
}

// Health checks the slot in Postgres and the capturer's own state.
func (c *Capturer) Health(ctx context.Context, th HealthThresholds) Health {
	if th.MaxLagBytes <= 0 {
		th.MaxLagBytes = 1 << 30
	}
	if th.MaxLag <= 0 {
		th.MaxLag = 5 * time.Minute
	}
	st := c.Stats()
	h := Health{Slot: c.cfg.Slot, ConfirmedLSN: st.Confirmed.String(), Published: st.Published, DeadLetters: st.DeadLetters}
	if t := c.tracker.Load(); t != nil {
		var at time.Time
		h.PublishBacklog, at = t.Pending()
		if !at.IsZero() && h.PublishBacklog > 0 {
			h.LagSeconds = time.Since(at).Seconds()
		}
	}
	fail := func(check string) Health {
		if h.FailingCheck == "" {
			h.FailingCheck = check
		}
		return h
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.cfg.DSN)
	if err != nil {
		return fail("postgres reachable")
	}
	defer conn.Close(ctx)
	var confirmed *string
	err = conn.QueryRow(ctx, `SELECT active, confirmed_flush_lsn::text, COALESCE(pg_current_wal_lsn() - confirmed_flush_lsn, 0)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, c.cfg.Slot).Scan(&h.SlotActive, &confirmed, &h.LagBytes)
	if err != nil {
		return fail("slot present")
	}
	if confirmed != nil {
		if lsn, err := pglogrepl.ParseLSN(*confirmed); err == nil {
			h.ConfirmedLSN = lsn.String()
		}
	}
	switch {
	case !h.SlotActive:
		return fail("slot active")
	case h.LagBytes > th.MaxLagBytes:
		return fail(fmt.Sprintf("lag below %d bytes", th.MaxLagBytes))
	case h.LagSeconds > th.MaxLag.Seconds():
		return fail(fmt.Sprintf("lag below %s", th.MaxLag))
	}
	h.Healthy = true
	return h
}

// Collectors returns the capturer's Prometheus metrics.
func (c *Capturer) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_capture_events_published_total",
			Help: "Row-change events accepted by Pub/Sub."}, func() float64 { return float64(c.published.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_capture_dead_letters_total",
			Help: "Rows written to the dead-letter because they cannot be represented."}, func() float64 { return float64(c.dead.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tributary_capture_confirmed_lsn",
			Help: "WAL position confirmed to Postgres, as a number."}, func() float64 { return float64(c.confirmed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_capture_restarts_total",
			Help: "Replication sessions restarted after a retryable error."}, func() float64 { return float64(c.restarts.Load()) }),
	}
}
