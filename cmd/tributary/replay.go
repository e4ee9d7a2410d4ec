package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/sink"
)

func newReplayCmd() *cobra.Command {
	var table, from, to, into, toTopic string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Rebuild a table in BigQuery, or re-publish its changes, from the Avro objects on GCS",
		Long: `replay rebuilds a table's changelog and current-state table in BigQuery from its Avro
objects on GCS alone, each read with the schema version it was written with. It works when
the BigQuery tables were dropped, after a table failed and was fixed, and across schema
versions. It reads data objects only: a running sink's bookkeeping is left alone.

--from and --to bound the changes by commit LSN (0/16B3748 or a decimal) or commit time
(RFC 3339), both inclusive. The current state is the state as of --to. With --from, the
target changelog's rows before --from are kept and the rest is reloaded from GCS.

The rebuild is built aside (<table>__changelog_replay, <table>__replay) and swapped in with
one transaction, so readers never see a half-built table. --into builds into another
dataset (created when absent), e.g. a point-in-time copy with --to. Changes the sink loads
into the target tables while replay runs are replaced by the swap: stop that table's sink
or replay again afterwards.

--to-topic TOPIC publishes the table's changes in the range to a Pub/Sub topic instead
(created when absent), for a new consumer: in (commit LSN, seq) order, each change once, in
the event contract of docs/events.md (Avro single-object encoding with the event schema the
object was written with, the same attributes, message ordering on). Each event is rebuilt
from the changelog record, so before carries the key columns only (what capture sends under
the default replica identity; under REPLICA IDENTITY FULL capture sends the whole old row).
The ordering key is <schema>.<table>/<bucket>, bucket a hash of the row's key values mod
32: consistent within the replayed topic (a row's changes share a key and arrive in commit
order on an ordered subscription) but not equal to the live topic's keys. A truncate is
published on every key. Create the consumer's subscription, with message ordering, before
replaying. --to-topic and --into exclude each other; BigQuery is not touched.

Progress (objects and rows done of the total, rows/s, time left) is a line redrawn on a
terminal, a log line every 10 s otherwise.

Exit status: 0 rebuilt or published, 2 error.`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&table, "table", "", "the table to rebuild or re-publish (schema.table)")
	cmd.Flags().StringVar(&from, "from", "", "first change replayed: commit LSN (0/16B3748 or decimal) or RFC 3339 time")
	cmd.Flags().StringVar(&to, "to", "", "last change replayed: commit LSN (0/16B3748 or decimal) or RFC 3339 time")
	cmd.Flags().StringVar(&into, "into", "", "BigQuery dataset to rebuild into (default: the configured one)")
	cmd.Flags().StringVar(&toTopic, "to-topic", "", "Pub/Sub topic to re-publish the changes to, instead of rebuilding BigQuery")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a summary as one JSON object")
	cmd.MarkFlagsMutuallyExclusive("into", "to-topic")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts, err := replayOptions(table, from, to, into)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		cfg, err := flags.Load()
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if toTopic != "" {
			err = runReplayToTopic(cmd.Context(), cfg, opts, toTopic, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		} else {
			err = runReplay(cmd.Context(), cfg, opts, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		return nil
	}
	return cmd
}

// replayOptions reads the flags.
func replayOptions(table, from, to, into string) (sink.ReplayOptions, error) {
	if table == "" {
		return sink.ReplayOptions{}, errors.New("--table is required")
	}
	t, err := config.ParseTableName(table)
	if err != nil {
		return sink.ReplayOptions{}, fmt.Errorf("--table: %w", err)
	}
	opts := sink.ReplayOptions{Schema: t.Schema, Table: t.Name, Into: into}
	if opts.From, err = sink.ParseBound(from); err != nil {
		return sink.ReplayOptions{}, fmt.Errorf("--from: %w", err)
	}
	if opts.To, err = sink.ParseBound(to); err != nil {
		return sink.ReplayOptions{}, fmt.Errorf("--to: %w", err)
	}
	return opts, nil
}

func runReplay(ctx context.Context, cfg *config.Config, opts sink.ReplayOptions, asJSON bool, out, errOut io.Writer) error {
	db, err := databaseName(cfg)
	if err != nil {
		return err
	}
	scfg := sink.Config{
		Project: cfg.Project, Bucket: cfg.GCS.Bucket, Prefix: cfg.GCS.Prefix, Database: db,
		Dataset: cfg.BigQuery.Dataset, Logger: loggerFor(cfg),
	}
	clients, err := gcp.Open(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer clients.Close()
	gcs, bq := clients.Storage, clients.BigQuery
	opts.Progress = replayProgress(errOut, scfg.Logger)
	res, err := sink.Replay(ctx, scfg, gcs, bq, opts)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprintf(out, "%s: %d objects (%d schema versions, %d rows) → %s.%s: changelog %d rows (%d kept from before --from), current state %d rows, in %.1fs\n",
		res.Table, res.Objects, res.SchemaVersions, res.RowsRead, res.Dataset, res.Tables[1], res.ChangelogRows, res.RowsKept, res.CurrentRows, res.Seconds)
	return nil
}

// runReplayToTopic re-publishes the table's changes to a topic.
func runReplayToTopic(ctx context.Context, cfg *config.Config, opts sink.ReplayOptions, topic string, asJSON bool, out, errOut io.Writer) error {
	db, err := databaseName(cfg)
	if err != nil {
		return err
	}
	scfg := sink.Config{
		Project: cfg.Project, Bucket: cfg.GCS.Bucket, Prefix: cfg.GCS.Prefix, Database: db,
		Dataset: cfg.BigQuery.Dataset, Logger: loggerFor(cfg),
	}
	clients, err := gcp.Open(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer clients.Close()
	res, err := sink.ReplayToTopic(ctx, scfg, clients.PubSub, clients.Storage, sink.TopicReplayOptions{
		Schema: opts.Schema, Table: opts.Table, From: opts.From, To: opts.To, Topic: topic,
		Progress: replayProgress(errOut, scfg.Logger),
	})
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(res)
	}
	fmt.Fprintf(out, "%s: %d objects → %s: %d events published (%d messages), %d duplicates dropped, in %.1fs\n",
		res.Table, res.Objects, res.Topic, res.Events, res.Messages, res.Duplicates, res.Seconds)
	return nil
}

// replayProgress shows a replay's progress on errOut.
func replayProgress(errOut io.Writer, log *slog.Logger) func(sink.ReplayProgress) {
	display := newProgressDisplay(errOut, log, "replay progress")
	return func(p sink.ReplayProgress) {
		display.show(replayLine(p), p.Done, "table", p.Table, "step", p.Step, "objects", p.ObjectsDone, "objects_total", p.Objects,
			"rows", p.RowsDone, "rows_total", p.Rows, "rows_per_second", int64(p.RowsPerSecond), "eta", p.ETA.Round(time.Second).String(), "done", p.Done)
	}
}

// replayLine renders one line: step, a bar of rows done, objects and rows
// done of the total, rate and time left.
func replayLine(p sink.ReplayProgress) string {
	return fmt.Sprintf("%s %-10s %s%d/%d objects  %d/%d rows  %.0f rows/s  %s   ",
		p.Table, p.Step, progressBar(p.RowsDone, p.Rows), p.ObjectsDone, p.Objects, p.RowsDone, p.Rows, p.RowsPerSecond, etaText(p.ETA, p.Done))
}
