package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/internal/backfill"
	"github.com/tributary-cdc/tributary/internal/config"
)

// snapshotter reads every published table once into BigQuery, as the
// backfill run "initial-<slot>" of each table: the first start reads them
// all, a restart resumes each run where it stopped, and a finished run is a
// no-op, so a table added to the publication later is read when it first
// appears. It starts once capture's slot streams, so the stream covers every
// change after each chunk's watermark.
type snapshotter struct {
	cfg *config.Config
	gcs *storage.Client
	log *slog.Logger

	mu    sync.Mutex
	state map[string]string // table → "waiting", "reading", "done" or "failed: …"
}

func newSnapshotter(cfg *config.Config, gcs *storage.Client, log *slog.Logger) *snapshotter {
	return &snapshotter{cfg: cfg, gcs: gcs, log: log.With("component", "snapshot"), state: map[string]string{}}
}

// health is the snapshot's part of /healthz: unhealthy while a table's read
// has failed (the next start resumes it).
func (s *snapshotter) health(context.Context) (bool, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	healthy := true
	for t, st := range s.state {
		out[t] = st
		if len(st) > 6 && st[:6] == "failed" {
			healthy = false
		}
	}
	return healthy, out
}

func (s *snapshotter) set(table, state string) {
	s.mu.Lock()
	s.state[table] = state
	s.mu.Unlock()
}

// run waits for the slot to stream, then reads the tables one at a time
// until done or ctx ends.
func (s *snapshotter) run(ctx context.Context) {
	if !s.cfg.Postgres.InitialSnapshot {
		return
	}
	conn, err := pgx.Connect(ctx, s.cfg.Postgres.URL.Reveal())
	if err != nil {
		s.log.Error("initial snapshot: connecting to postgres", "err", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var active bool
		if conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", s.cfg.Postgres.Slot).Scan(&active) == nil && active {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	tables, err := verifyTables(ctx, conn, s.cfg, "")
	if err != nil {
		s.log.Error("initial snapshot: listing the published tables", "err", err)
		return
	}
	db, err := databaseName(s.cfg)
	if err != nil {
		s.log.Error("initial snapshot", "err", err)
		return
	}
	for _, t := range tables {
		s.set(t.String(), "waiting")
	}
	for _, t := range tables {
		if ctx.Err() != nil {
			return
		}
		s.set(t.String(), "reading")
		sum, err := backfill.Run(ctx, s.cfg.Postgres.URL.Reveal(), s.gcs, backfill.Options{
			Schema: t.Schema, Table: t.Name, RunID: "initial-" + s.cfg.Postgres.Slot,
			Bucket: s.cfg.GCS.Bucket, Prefix: s.cfg.GCS.Prefix, Database: db, Logger: s.log,
		})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.set(t.String(), fmt.Sprintf("failed: %v", err))
			s.log.Error("initial snapshot of a table failed; the next start resumes it", "table", t.String(), "err", err)
		default:
			s.set(t.String(), "done")
			if sum.Rows > 0 {
				s.log.Info("initial snapshot of a table read", "table", t.String(), "rows", sum.Rows, "objects", sum.Objects, "seconds", sum.Seconds)
			}
		}
	}
}
