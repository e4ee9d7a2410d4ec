package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

func newVerifyCmd() *cobra.Command {
	var table string
	var asJSON, noWait bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Compare Postgres with BigQuery's current state",
		Long: `verify compares each published table (or --table) with its current-state table in
BigQuery, row for row in canonical form: counts and digests per key bucket, then the exact
keys and columns of the buckets that differ. It lists every discrepancy (missing, extra,
different). Exit status: 0 equal, 1 different, 2 error.

First it writes a marker through the WAL (a transactional logical decoding message naming
the tables) and waits until the pipeline has applied it: capture publishes the marker on
every ordering key of each table, and the sink records it per key once every change before
it is loaded and applied to the current state. Then BigQuery holds every change committed
before verify started, and the comparison begins. Changes committed while verify runs may
show as differences: compare when writes to the tables have paused for an exact answer.
--wait-timeout bounds the wait (exit 2 naming the tables and ordering-key buckets not yet
recorded); --no-wait compares the two sides as they are at once. Markers need Postgres 14
or later.`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&table, "table", "", "only this table (schema.table)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as one JSON object")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "compare at once, without a marker")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 10*time.Minute, "longest wait for the pipeline to apply the marker")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if !noWait && waitTimeout <= 0 {
			return &exitError{code: 2, err: fmt.Errorf("--wait-timeout %s: want a positive duration (or --no-wait)", waitTimeout)}
		}
		if noWait {
			waitTimeout = 0
		}
		equal, err := runVerify(cmd.Context(), cfg, table, waitTimeout, asJSON, cmd.OutOrStdout())
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if !equal {
			return &exitError{code: 1, err: fmt.Errorf("Postgres and BigQuery differ")}
		}
		return nil
	}
	return cmd
}

// runVerify compares the tables; with wait > 0 it first waits, at most that
// long, until the pipeline has applied a marker written now.
func runVerify(ctx context.Context, cfg *config.Config, only string, wait time.Duration, asJSON bool, out io.Writer) (bool, error) {
	pcfg, err := schema.ConnConfig(cfg.Postgres.URL.Reveal())
	if err != nil {
		return false, fmt.Errorf("parsing postgres.url failed: check the connection string's syntax")
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return false, fmt.Errorf("connecting to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	bq, err := gcp.BigQuery(ctx, cfg.Project)
	if err != nil {
		return false, err
	}
	defer bq.Close()
	cat := pgcatalog.New(cfg.Postgres.URL.Reveal())
	defer cat.Close(context.WithoutCancel(ctx))
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		return false, err
	}
	defer gcs.Close()
	src := verify.Source{Postgres: conn, Resolver: schema.Chain(schema.Builtin, cat), BigQuery: bq, Dataset: cfg.BigQuery.Dataset,
		Store: schema.NewStore(gcs, cfg.GCS.Bucket, cfg.GCS.Prefix)}

	tables, err := verifyTables(ctx, conn, cfg, only)
	if err != nil {
		return false, err
	}
	var mark *markerReport
	if wait > 0 {
		if mark, err = waitForMarker(ctx, cfg, conn, tables, wait); err != nil {
			return false, err
		}
	}
	var results []*verify.Result
	equal := true
	for _, t := range tables {
		res, err := verify.Table(ctx, src, t.Schema, t.Name)
		if err != nil {
			return false, fmt.Errorf("verifying %s: %w", t, err)
		}
		results = append(results, res)
		equal = equal && res.Equal()
	}
	if asJSON {
		doc := map[string]any{"equal": equal, "tables": results}
		if mark != nil {
			doc["marker"] = mark
		}
		return equal, json.NewEncoder(out).Encode(doc)
	}
	if mark != nil {
		fmt.Fprintf(out, "marker %s at %s applied by the pipeline after %.1fs\n", mark.ID, mark.LSN, mark.WaitedSeconds)
	}
	for _, r := range results {
		state := "equal"
		if !r.Equal() {
			state = fmt.Sprintf("DIFFERENT (%d discrepancies)", len(r.Discrepancies))
		}
		fmt.Fprintf(out, "%s: Postgres %d rows, BigQuery %d rows: %s\n", r.Table, r.PostgresRows, r.BigQueryRows, state)
		for _, d := range r.Discrepancies {
			key, _ := json.Marshal(d.Key)
			if d.Kind == "different" {
				fmt.Fprintf(out, "  different  %s  columns %s\n", key, strings.Join(d.Columns, ", "))
			} else {
				fmt.Fprintf(out, "  %-9s  %s\n", d.Kind, key)
			}
		}
	}
	return equal, nil
}

// markerReport is the marker verify waited for, as reported.
type markerReport struct {
	*verify.Point
	WaitedSeconds float64 `json:"waited_seconds"`
}

// MarshalJSON keeps the Point's own fields (its LSN in text form).
func (m *markerReport) MarshalJSON() ([]byte, error) {
	p, err := json.Marshal(m.Point)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(p, &doc); err != nil {
		return nil, err
	}
	doc["waited_seconds"] = m.WaitedSeconds
	return json.Marshal(doc)
}

// waitForMarker writes a marker for tables and waits until the sink has
// recorded it on every ordering key bucket of each.
func waitForMarker(ctx context.Context, cfg *config.Config, conn *pgx.Conn, tables []config.TableName, wait time.Duration) (*markerReport, error) {
	db, err := databaseName(cfg)
	if err != nil {
		return nil, err
	}
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		return nil, err
	}
	defer gcs.Close()
	marked := make([]schema.MarkerTable, len(tables))
	for i, t := range tables {
		marked[i] = schema.MarkerTable{Schema: t.Schema, Table: t.Name}
	}
	p, err := verify.WriteMarker(ctx, conn, marked, cfg.PubSub.OrderingBuckets)
	if err != nil {
		return nil, err
	}
	log := loggerFor(cfg)
	log.Info("waiting for the pipeline to apply a marker", "marker", p.ID, "lsn", p.LSN.String(), "tables", len(tables), "timeout", wait.String())
	rec := verify.Records{Bucket: gcs.Bucket(cfg.GCS.Bucket), Layout: sink.Layout{Prefix: cfg.GCS.Prefix, Database: db}}
	waited, err := rec.Wait(ctx, p, wait, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	if err := rec.Remove(ctx, p); err != nil {
		log.Warn("removing the records of a marker", "marker", p.ID, "err", err)
	}
	return &markerReport{Point: p, WaitedSeconds: waited.Seconds()}, nil
}

// verifyTables is --table, else the configured tables, else the tables the
// publication holds.
func verifyTables(ctx context.Context, conn *pgx.Conn, cfg *config.Config, only string) ([]config.TableName, error) {
	if only != "" {
		t, err := config.ParseTableName(only)
		if err != nil {
			return nil, fmt.Errorf("--table: %w", err)
		}
		return []config.TableName{t}, nil
	}
	if len(cfg.Postgres.Tables) > 0 {
		return cfg.Postgres.Tables, nil
	}
	rows, err := conn.Query(ctx, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2", cfg.Postgres.Publication)
	if err != nil {
		return nil, fmt.Errorf("listing publication %q: %w", cfg.Postgres.Publication, err)
	}
	defer rows.Close()
	var out []config.TableName
	for rows.Next() {
		var t config.TableName
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("publication %q holds no tables", cfg.Postgres.Publication)
	}
	return out, nil
}
