package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"cloud.google.com/go/storage"
	"github.com/spf13/cobra"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/internal/backfill"
	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/sink"
)

type backfillOptions struct {
	table     string
	where     string
	chunkRows int
	parallel  int
	runID     string
	asJSON    bool
	wait      time.Duration
}

func newBackfillCmd() *cobra.Command {
	var o backfillOptions
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Re-read a table (or part of it) into BigQuery while the stream keeps running",
		Long: `backfill reads a table in chunks by primary key (ctid ranges for a table without one),
each chunk in its own short transaction, and writes each chunk as an Avro object where the sink
writes its own, so the running sink loads it like streamed data. Chunk rows carry the WAL
position read with their snapshot: any change the stream carries for the same row afterwards
wins, so a row changed during the backfill ends in its latest state. The stream is never
paused. Progress is kept on GCS: run again with the same --run-id to resume after the last
finished chunk. A progress bar on a terminal, log lines otherwise; --json prints a summary.`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.table, "table", "", "the table, schema.table (required)")
	cmd.Flags().StringVar(&o.where, "where", "", "only rows matching this SQL condition")
	cmd.Flags().IntVar(&o.chunkRows, "chunk-rows", backfill.DefaultChunkRows, "rows per chunk (one short transaction, one object)")
	cmd.Flags().IntVar(&o.parallel, "parallel", 4, "ranges read at once")
	cmd.Flags().StringVar(&o.runID, "run-id", "", "name of the run; the same name resumes it (default: a new run)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print a summary as one JSON object at the end")
	cmd.Flags().DurationVar(&o.wait, "wait", 30*time.Minute, "wait up to this long for the sink to load and apply what the backfill wrote (0: do not wait)")
	_ = cmd.MarkFlagRequired("table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		return runBackfill(cmd.Context(), cfg, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return cmd
}

func runBackfill(ctx context.Context, cfg *config.Config, o backfillOptions, out, errOut io.Writer) error {
	t, err := config.ParseTableName(o.table)
	if err != nil {
		return fmt.Errorf("--table: %w", err)
	}
	db, err := databaseName(cfg)
	if err != nil {
		return err
	}
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		return err
	}
	defer gcs.Close()
	log := loggerFor(cfg)
	display := newProgressDisplay(errOut, log, "backfill progress")
	sum, err := backfill.Run(ctx, cfg.Postgres.URL.Reveal(), gcs, backfill.Options{
		Schema: t.Schema, Table: t.Name, Where: o.where, ChunkRows: o.chunkRows, Parallel: o.parallel, RunID: o.runID,
		Bucket: cfg.GCS.Bucket, Prefix: cfg.GCS.Prefix, Database: db, Logger: log,
		Progress: func(p backfill.Progress) {
			display.show(backfillLine(p), p.Done, "table", t.String(), "run", p.RunID, "rows", p.Rows, "chunks", p.Chunks,
				"rows_per_second", int64(p.RowsPerSecond), "eta", p.ETA.Round(time.Second).String(), "done", p.Done)
		},
	})
	if err != nil {
		return fmt.Errorf("backfilling %s (run %s; run again with --run-id %s to resume): %w", t, sum.RunID, sum.RunID, err)
	}
	if o.wait > 0 && len(sum.ObjectNames) > 0 {
		wctx, cancel := context.WithTimeout(ctx, o.wait)
		defer cancel()
		log.Info("waiting for the sink to load the backfill", "table", t.String(), "objects", len(sum.ObjectNames))
		if err := waitLoaded(wctx, gcs.Bucket(cfg.GCS.Bucket), sink.Layout{Prefix: cfg.GCS.Prefix, Database: db}, t.Schema, t.Name, sum.ObjectNames); err != nil {
			return fmt.Errorf("backfilled %s, but waiting for the sink to load it: %w (is the sink running?)", t, err)
		}
	}
	if o.asJSON {
		return json.NewEncoder(out).Encode(sum)
	}
	fmt.Fprintf(out, "backfilled %s: %d rows in %d chunks, %d objects, %.1fs (run %s)\n", t, sum.Rows, sum.Chunks, sum.Objects, sum.Seconds, sum.RunID)
	return nil
}

// backfillLine renders one line: a bar when the total is estimated, rows,
// rate and time left.
func backfillLine(p backfill.Progress) string {
	return fmt.Sprintf("%s.%s %s%d rows  %.0f rows/s  %s   ", p.Schema, p.Table, progressBar(p.Rows, p.EstimatedRows), p.Rows, p.RowsPerSecond, etaText(p.ETA, p.Done))
}

// waitLoaded waits until none of objects waits for a load: no pending marker
// names it and no load manifest lists it (a manifest is deleted once its
// load and apply are done).
func waitLoaded(ctx context.Context, bucket *storage.BucketHandle, layout sink.Layout, pgSchema, table string, objects []string) error {
	ours := map[string]bool{}
	markers := map[string]bool{}
	for _, o := range objects {
		ours[o] = true
		markers[layout.PendingMarker(pgSchema, table, o)] = true
	}
	for {
		waiting, err := stillWaiting(ctx, bucket, layout, pgSchema, table, ours, markers)
		if err != nil {
			return err
		}
		if !waiting {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func stillWaiting(ctx context.Context, bucket *storage.BucketHandle, layout sink.Layout, pgSchema, table string, ours, markers map[string]bool) (bool, error) {
	it := bucket.Objects(ctx, &storage.Query{Prefix: layout.PendingDir(pgSchema, table)})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return false, err
		}
		if markers[a.Name] {
			return true, nil
		}
	}
	it = bucket.Objects(ctx, &storage.Query{Prefix: layout.LoadDir(pgSchema, table)})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		r, err := bucket.Object(a.Name).NewReader(ctx)
		if errors.Is(err, storage.ErrObjectNotExist) {
			continue // loaded meanwhile
		}
		if err != nil {
			return false, err
		}
		var m struct {
			Objects []string `json:"objects"`
		}
		err = json.NewDecoder(r).Decode(&m)
		r.Close()
		if err != nil {
			return false, fmt.Errorf("reading load manifest %s: %w", a.Name, err)
		}
		for _, o := range m.Objects {
			if ours[o] {
				return true, nil
			}
		}
	}
}
