package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/sink"
)

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run capture and sink in one process",
		Long: `run is capture and sink in one process sharing one set of clients and one /healthz and
/metrics server. When either stops with an error the other is stopped too. SIGTERM or Ctrl-C
stops both in order: capture flushes and confirms, the sink writes and loads what it holds.`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		return runBoth(cmd.Context(), cfg)
	}
	return cmd
}

func runBoth(ctx context.Context, cfg *config.Config) error {
	log := loggerFor(cfg)
	scfg, err := sinkConfig(cfg)
	if err != nil {
		return err
	}
	scfg.Logger = log.With("component", "sink")
	ccfg := captureConfig(cfg)
	ccfg.Logger = log.With("component", "capture")
	clients, err := gcp.Open(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer clients.Close()
	ps, gcs, bq := clients.PubSub, clients.Storage, clients.BigQuery
	c := capture.New(ccfg, ps, gcs)
	s := sink.New(scfg, ps, gcs, bq)
	snap := newSnapshotter(cfg, gcs, log)
	health := sinkHealth(s)
	health["snapshot"] = snap.health
	health["capture"] = func(ctx context.Context) (bool, any) {
		h := c.Health(ctx, capture.HealthThresholds{MaxLagBytes: int64(cfg.HTTP.MaxLagBytes), MaxLag: time.Duration(cfg.HTTP.MaxLag)})
		return h.Healthy, h
	}
	addr, err := serveOps(ctx, log, cfg.HTTP.Listen, health, append(c.Collectors(), sinkCollectors(s)...)...)
	if err != nil {
		return fmt.Errorf("listening on %s for /healthz and /metrics: %w", cfg.HTTP.Listen, err)
	}
	log.Info("run starting", "slot", ccfg.Slot, "topic", ccfg.Topic, "dataset", scfg.Dataset, "http", addr)

	// The topics exist before the sink subscribes to them; capture waits
	// for the sink's subscription before it publishes (a topic without
	// subscriptions drops what it receives).
	if err := c.EnsureTopic(ctx); err != nil {
		return err
	}
	if err := ensureTopic(ctx, ps, cfg.Project, cfg.PubSub.DeadLetterTopic); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- s.Run(ctx) }()
	captureDone := make(chan error, 1)
	go func() { captureDone <- c.Run(ctx) }()
	go snap.run(ctx)

	var capErr, sinkErr error
	select {
	case capErr = <-captureDone:
		stop()
		sinkErr = <-sinkDone
	case sinkErr = <-sinkDone:
		stop()
		capErr = <-captureDone
	}
	if capErr != nil {
		capErr = fmt.Errorf("capture: %w", capErr)
	}
	if sinkErr != nil {
		sinkErr = fmt.Errorf("sink: %w", sinkErr)
	}
	if err := errors.Join(capErr, sinkErr); err != nil {
		return err
	}
	st := c.Stats()
	log.Info("run stopped", "confirmed_lsn", st.Confirmed.String(), "published", st.Published, "dead_letters", st.DeadLetters)
	return nil
}

// ensureTopic creates a topic when absent; without the permission to, it
// takes the topic as provisioned.
func ensureTopic(ctx context.Context, ps *pubsub.Client, project, topic string) error {
	if topic == "" {
		return nil
	}
	name := "projects/" + project + "/topics/" + topic
	_, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name})
	switch status.Code(err) {
	case codes.OK, codes.AlreadyExists, codes.PermissionDenied:
		return nil
	}
	return fmt.Errorf("creating topic %s: %w", name, err)
}
