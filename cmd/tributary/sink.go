package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/sink"
)

func newSinkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Write changes from Pub/Sub to Avro on GCS and load them into BigQuery",
		Long: `sink pulls the subscription (creating it with message ordering when absent), writes each
table's changes as immutable Avro object files to GCS — acknowledging messages only once the
object holding them is written — then loads them into the table's changelog in BigQuery and
applies them to its current-state table. SIGTERM or Ctrl-C: stop pulling, write and load what
is buffered, exit 0.`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		return runSink(cmd.Context(), cfg)
	}
	return cmd
}

// sinkConfig maps the file's settings onto the sink's.
func sinkConfig(cfg *config.Config) (sink.Config, error) {
	tables := map[string]sink.TableConfig{}
	for name, t := range cfg.Sink.Tables {
		tn, err := config.ParseTableName(name)
		if err != nil {
			return sink.Config{}, fmt.Errorf("sink.tables[%q]: %w", name, err)
		}
		tables[tn.Schema+"."+tn.Name] = sink.TableConfig{Mode: sink.Mode(t.Mode), SoftDelete: t.SoftDelete}
	}
	db, err := databaseName(cfg)
	if err != nil {
		return sink.Config{}, err
	}
	return sink.Config{
		Project: cfg.Project, Subscription: cfg.PubSub.Subscription, Topic: cfg.PubSub.Topic,
		DeadLetterTopic: cfg.PubSub.DeadLetterTopic, Bucket: cfg.GCS.Bucket, Prefix: cfg.GCS.Prefix,
		Database: db, Dataset: cfg.BigQuery.Dataset,
		FlushBytes: int(cfg.Sink.FlushBytes), FlushRows: cfg.Sink.FlushRows, FlushAge: time.Duration(cfg.Sink.FlushAge),
		LoadInterval: time.Duration(cfg.Sink.LoadInterval), StreamApplyInterval: time.Duration(cfg.Sink.StreamApplyInterval),
		Mode: sink.Mode(cfg.Sink.Mode), Tables: tables,
		// The subscriber's budget must hold a full buffer per table being flushed.
		MaxOutstandingBytes:    max(int(cfg.PubSub.MaxOutstandingBytes), 2*int(cfg.Sink.FlushBytes)),
		MaxOutstandingMessages: cfg.Sink.MaxBufferedMessages,
	}, nil
}

// databaseName is the source database named in object paths: the DSN's.
func databaseName(cfg *config.Config) (string, error) {
	pc, err := pgconn.ParseConfig(cfg.Postgres.URL.Reveal())
	if err != nil || pc.Database == "" {
		return "", errors.New("postgres.url: no database name in the connection string")
	}
	return pc.Database, nil
}

func runSink(ctx context.Context, cfg *config.Config) error {
	log := loggerFor(cfg)
	scfg, err := sinkConfig(cfg)
	if err != nil {
		return err
	}
	scfg.Logger = log
	clients, err := gcp.Open(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer clients.Close()
	s := sink.New(scfg, clients.PubSub, clients.Storage, clients.BigQuery)
	addr, err := serveOps(ctx, log, cfg.HTTP.Listen, sinkHealth(s), sinkCollectors(s)...)
	if err != nil {
		return fmt.Errorf("listening on %s for /healthz and /metrics: %w", cfg.HTTP.Listen, err)
	}
	log.Info("sink starting", "subscription", scfg.Subscription, "dataset", scfg.Dataset, "http", addr)
	if err := s.Run(ctx); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	log.Info("sink stopped")
	return nil
}
