package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/demo"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
)

type demoOptions struct {
	dir      string
	rate     int
	duration time.Duration
	every    time.Duration
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Stream a marketplace from Postgres into BigQuery on the local stack, and show it",
		Long: `demo starts the local stack, creates a small marketplace (customers, pros, requests,
quotes, job preferences as jsonb, reviews partitioned by month), runs capture and sink, seeds
it and runs a workload of inserts, updates and deletes. Every --every it prints, measured:
rows per table in Postgres and BigQuery, commit→BigQuery lag p50/p99, objects written to GCS
and an analyst's query on BigQuery. On Ctrl-C or after --duration it stops the workload,
waits for BigQuery to catch up, verifies every table and stops everything. Exit 0 when
BigQuery equals Postgres at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), cmd.OutOrStdout(), o) },
	}
	cmd.Flags().StringVar(&o.dir, "dir", ".demo", "directory for the local stack's data")
	cmd.Flags().IntVar(&o.rate, "rate", 20, "workload transactions per second")
	cmd.Flags().DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	cmd.Flags().DurationVar(&o.every, "every", 10*time.Second, "time between reports")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	started := time.Now()
	fmt.Fprintln(out, "starting the local stack…")
	stack, err := localstack.Start(ctx, localstack.Options{Dir: o.dir, Database: "marketplace"})
	if err != nil {
		return fmt.Errorf("starting the local stack: %w", err)
	}
	defer stack.Close(context.WithoutCancel(ctx))
	if err := stack.Setenv(); err != nil {
		return err
	}
	if err := stack.WriteFiles(); err != nil {
		return err
	}
	yaml := strings.Replace(stack.ConfigYAML(), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1) +
		"sink:\n  flush_age: 2s\n  load_interval: 5s\nlog:\n  level: warn\n  format: text\n"
	cfg, err := config.LoadBytes(filepath.Join(o.dir, "demo.yaml"), []byte(yaml), nil, nil)
	if err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	if err := demo.Schema(ctx, db, time.Now().UTC()); err != nil {
		return err
	}

	// The pipeline, in this process: what `tributary run` does.
	pipeCtx, stopPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipe()
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- runBoth(pipeCtx, cfg) }()
	if err := waitSlot(ctx, db, cfg.Postgres.Slot, pipeDone); err != nil {
		return err
	}
	if err := demo.Seed(ctx, db); err != nil {
		return err
	}
	fmt.Fprintf(out, "stack, schema and pipeline up in %s; workload at %d transactions/s\n", time.Since(started).Round(time.Millisecond), o.rate)
	fmt.Fprintf(out, "  BigQuery %s (dataset %s), GCS %s, Postgres %s\n\n", stack.BigQueryURL, stack.Dataset, stack.GCSURL, stack.Postgres.DSN(stack.Database))

	bq, err := gcp.BigQuery(ctx, stack.Project)
	if err != nil {
		return err
	}
	defer bq.Close()
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		return err
	}
	defer gcs.Close()

	runCtx := ctx
	if o.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	wl := &demo.Workload{Rate: o.rate}
	wlDone := make(chan error, 1)
	wlConn, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		return err
	}
	defer wlConn.Close(context.WithoutCancel(ctx))
	go func() { wlDone <- wl.Run(runCtx, wlConn) }()

	lag := demo.NewLag()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	report := time.NewTicker(o.every)
	defer report.Stop()
	wlStart := time.Now()
	var wlTime time.Duration // how long the workload ran, once it stopped
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case err := <-pipeDone:
			return fmt.Errorf("the pipeline stopped: %w", err)
		case err := <-wlDone:
			if err != nil {
				return err
			}
			break loop
		case <-poll.C:
			if err := lag.Poll(ctx, bq, stack.Dataset); err != nil && ctx.Err() == nil {
				fmt.Fprintf(out, "  (lag poll: %v)\n", err)
			}
		case <-report.C:
			printReport(ctx, out, db, bq, gcs, stack, lag, wl, time.Since(wlStart), time.Since(wlStart))
		}
	}
	wlTime = time.Since(wlStart)

	// Stop the workload, let BigQuery catch up, verify, stop.
	drain, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancelDrain()
	fmt.Fprintf(out, "\nworkload stopped after %d transactions; waiting for BigQuery to catch up…\n", wl.Ops.Load())
	equal, results, err := waitEqual(drain, bq, stack)
	if err != nil {
		return err
	}
	_ = lag.Poll(drain, bq, stack.Dataset)
	printReport(drain, out, db, bq, gcs, stack, lag, wl, time.Since(wlStart), wlTime)
	fmt.Fprintln(out, "\nverify (every table, row for row):")
	for _, r := range results {
		state := "equal"
		if !r.Equal() {
			state = fmt.Sprintf("DIFFERENT: %d discrepancies", len(r.Discrepancies))
		}
		fmt.Fprintf(out, "  %-22s postgres %6d  bigquery %6d  %s\n", r.Table, r.PostgresRows, r.BigQueryRows, state)
	}
	stopPipe()
	if err := <-pipeDone; err != nil {
		return fmt.Errorf("stopping the pipeline: %w", err)
	}
	fmt.Fprintln(out, "pipeline stopped; stopping the local stack")
	if !equal {
		return &exitError{code: 1, err: errors.New("BigQuery did not come to equal Postgres")}
	}
	return nil
}

func waitSlot(ctx context.Context, db *pgx.Conn, slot string, pipeDone chan error) error {
	for deadline := time.Now().Add(time.Minute); ; {
		var active bool
		if db.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active) == nil && active {
			return nil
		}
		select {
		case err := <-pipeDone:
			return fmt.Errorf("the pipeline stopped before streaming: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the pipeline did not start streaming within a minute")
		}
	}
}

// waitEqual verifies every demo table until all are equal or ctx ends.
func waitEqual(ctx context.Context, bq *bigquery.Client, stack *localstack.Stack) (bool, []*verify.Result, error) {
	vconn, err := verifyConn(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		return false, nil, err
	}
	defer vconn.Close(context.WithoutCancel(ctx))
	cat := pgcatalog.New(stack.Postgres.DSN(stack.Database))
	defer cat.Close(context.WithoutCancel(ctx))
	src := verify.Source{Postgres: vconn, Resolver: schema.Chain(schema.Builtin, cat), BigQuery: bq, Dataset: stack.Dataset}
	var results []*verify.Result
	for {
		results = results[:0]
		equal := true
		for _, t := range demo.Tables {
			r, err := verify.Table(ctx, src, "public", t)
			if err != nil {
				equal = false
				results = append(results, &verify.Result{Table: "public." + t})
				break
			}
			results = append(results, r)
			equal = equal && r.Equal()
		}
		if equal {
			return true, results, nil
		}
		select {
		case <-ctx.Done():
			return false, results, nil
		case <-time.After(2 * time.Second):
		}
	}
}

func verifyConn(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := schema.ConnConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// printReport prints one report; elapsed is the time since the workload
// started, ran how long it has been (or had been) running.
func printReport(ctx context.Context, out io.Writer, db *pgx.Conn, bq *bigquery.Client, gcs *storage.Client, stack *localstack.Stack, lag *demo.Lag, wl *demo.Workload, elapsed, ran time.Duration) {
	pg, err := demo.PostgresCounts(ctx, db)
	if err != nil {
		fmt.Fprintf(out, "  (postgres counts: %v)\n", err)
		return
	}
	bqc, err := demo.BigQueryCounts(ctx, bq, stack.Dataset)
	if err != nil {
		fmt.Fprintf(out, "  (bigquery counts: %v)\n", err)
	}
	objs, _ := demo.Objects(ctx, gcs, stack.Bucket, "tributary", stack.Database)
	p50, p99, n := lag.Percentiles()
	ops := wl.Ops.Load()
	fmt.Fprintf(out, "[%s] workload %d transactions (%.1f/s) | GCS objects %d | commit→BigQuery lag p50 %s p99 %s (%d changes, polled every 1s)\n",
		elapsed.Round(time.Second), ops, float64(ops)/ran.Seconds(), objs, p50.Round(100*time.Millisecond), p99.Round(100*time.Millisecond), n)
	fmt.Fprintf(out, "  %-18s %9s %9s\n", "table", "postgres", "bigquery")
	for _, t := range demo.Tables {
		b := "-"
		if v, ok := bqc[t]; ok {
			b = fmt.Sprint(v)
		}
		fmt.Fprintf(out, "  %-18s %9d %9s\n", t, pg[t], b)
	}
	rows, err := demo.HourlyQuotes(ctx, bq, stack.Dataset, 6)
	if err != nil {
		fmt.Fprintf(out, "  quotes per request category per hour: not queryable yet (%v)\n", shortErr(err))
		return
	}
	fmt.Fprintln(out, "  quotes per request category per hour (BigQuery):")
	for _, r := range rows {
		fmt.Fprintf(out, "    %s  %-11s %5v\n", r[0], r[1], r[2])
	}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
