package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
)

func newVerifyCmd() *cobra.Command {
	var table string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Compare Postgres with BigQuery's current state",
		Long: `verify compares each published table (or --table) with its current-state table in
BigQuery, row for row in canonical form: counts and digests per key bucket, then the exact
keys and columns of the buckets that differ. It lists every discrepancy (missing, extra,
different). Exit status: 0 equal, 1 different, 2 error.

It compares the two sides as they are when it reads them: run it when the pipeline has
caught up (capture's /healthz lag, the sink's last load).`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&table, "table", "", "only this table (schema.table)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as one JSON object")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		equal, err := runVerify(cmd.Context(), cfg, table, asJSON, cmd.OutOrStdout())
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

func runVerify(ctx context.Context, cfg *config.Config, only string, asJSON bool, out io.Writer) (bool, error) {
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
		return equal, json.NewEncoder(out).Encode(map[string]any{"equal": equal, "tables": results})
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
