package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
)

func newCaptureCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Read logical replication and publish every row change to Pub/Sub",
		Long: `capture reads the configured slot (creating it and the publication when absent) and
publishes one message per committed row change. It confirms a WAL position to Postgres
only once Pub/Sub holds every change up to it. SIGTERM or Ctrl-C: stop reading, flush,
confirm, exit 0.`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		return runCapture(cmd.Context(), cfg)
	}
	return cmd
}

// captureConfig maps the file's settings onto capture's.
func captureConfig(cfg *config.Config) capture.Config {
	tables := make([]capture.TableName, len(cfg.Postgres.Tables))
	for i, t := range cfg.Postgres.Tables {
		tables[i] = capture.TableName{Schema: t.Schema, Name: t.Name}
	}
	return capture.Config{
		DSN: cfg.Postgres.URL.Reveal(), Slot: cfg.Postgres.Slot, Publication: cfg.Postgres.Publication,
		Tables: tables, Schemas: cfg.Postgres.Schemas, StandbyTimeout: time.Duration(cfg.Postgres.StandbyTimeout),
		Project: cfg.Project, Topic: cfg.PubSub.Topic, Bucket: cfg.GCS.Bucket, Prefix: cfg.GCS.Prefix,
		OrderingBuckets: cfg.PubSub.OrderingBuckets, MaxOutstandingBytes: int64(cfg.PubSub.MaxOutstandingBytes),
	}
}

func runCapture(ctx context.Context, cfg *config.Config) error {
	log := loggerFor(cfg)
	clients, err := gcp.Open(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer clients.Close()
	ps, gcs := clients.PubSub, clients.Storage
	ccfg := captureConfig(cfg)
	ccfg.Logger = log
	c := capture.New(ccfg, ps, gcs)
	snap := newSnapshotter(cfg, gcs, log)
	addr, err := serveOps(ctx, log, cfg.HTTP.Listen, map[string]healthFunc{
		"snapshot": snap.health,
		"capture": func(ctx context.Context) (bool, any) {
			h := c.Health(ctx, capture.HealthThresholds{MaxLagBytes: int64(cfg.HTTP.MaxLagBytes), MaxLag: time.Duration(cfg.HTTP.MaxLag)})
			return h.Healthy, h
		},
	}, c.Collectors()...)
	if err != nil {
		return fmt.Errorf("listening on %s for /healthz and /metrics: %w", cfg.HTTP.Listen, err)
	}
	log.Info("capture starting", "slot", ccfg.Slot, "topic", ccfg.Topic, "http", addr)
	snapCtx, stopSnap := context.WithCancel(ctx)
	defer stopSnap()
	go snap.run(snapCtx)
	if err := c.Run(ctx); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	st := c.Stats()
	log.Info("capture stopped", "confirmed_lsn", st.Confirmed.String(), "published", st.Published, "dead_letters", st.DeadLetters)
	return nil
}
