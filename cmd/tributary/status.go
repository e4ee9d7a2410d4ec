package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/status"
)

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show slot lag and per-table progress",
		Long: `status reads the pipeline's state from Postgres (the slot: active, confirmed LSN, WAL held
back), GCS (each table's data objects, newest flush, objects waiting to load, dead-letters) and
BigQuery (last load, newest commit loaded, current-state rows). It needs no access to the
running processes.`,
		Args: cobra.NoArgs,
	}
	flags := config.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.Load()
		if err != nil {
			return err
		}
		return runStatus(cmd.Context(), cfg, asJSON, cmd.OutOrStdout())
	}
	return cmd
}

func runStatus(ctx context.Context, cfg *config.Config, asJSON bool, out io.Writer) error {
	conn, err := pgx.Connect(ctx, cfg.Postgres.URL.Reveal())
	if err != nil {
		return fmt.Errorf("connecting to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	clients, err := gcp.Open(ctx, cfg.Project)
	if err != nil {
		return err
	}
	defer clients.Close()
	gcs, bq := clients.Storage, clients.BigQuery
	db, err := databaseName(cfg)
	if err != nil {
		return err
	}
	tables, err := verifyTables(ctx, conn, cfg, "")
	if err != nil {
		return err
	}
	names := make([][2]string, len(tables))
	for i, t := range tables {
		names[i] = [2]string{t.Schema, t.Name}
	}
	rep, err := status.Read(ctx, status.Source{
		Postgres: conn, GCS: gcs, BigQuery: bq, Bucket: cfg.GCS.Bucket, Prefix: cfg.GCS.Prefix, Database: db,
		Dataset: cfg.BigQuery.Dataset, Slot: cfg.Postgres.Slot,
		Mode: func(s, t string) string { return string(cfg.Sink.Table(config.TableName{Schema: s, Name: t}).Mode) },
	}, names)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(rep)
	}
	s := rep.Slot
	switch {
	case !s.Exists:
		fmt.Fprintf(out, "slot %s: absent\n", s.Name)
	default:
		state := "inactive"
		if s.Active {
			state = "active"
		}
		fmt.Fprintf(out, "slot %s: %s, confirmed %s, %s of WAL held back", s.Name, state, s.ConfirmedLSN, bytesText(s.LagBytes))
		if s.WALStatus != "" {
			fmt.Fprintf(out, ", WAL %s", s.WALStatus)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "\n%-28s %-6s %8s %-9s %-9s %-9s %8s %10s %6s\n", "table", "mode", "objects", "flushed", "event", "loaded", "pending", "rows", "dead")
	for _, t := range rep.Tables {
		rows := "-"
		if t.Rows != nil {
			rows = fmt.Sprint(*t.Rows)
		}
		fmt.Fprintf(out, "%-28s %-6s %8d %-9s %-9s %-9s %8d %10s %6d\n", t.Table, t.Mode, t.Objects, ago(t.LastFlush), ago(t.LastEvent), ago(t.LastLoad), t.PendingObjects, rows, t.DeadLetters)
	}
	return nil
}

// ago renders a time as how long ago it was, "-" when unknown.
func ago(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return time.Since(*t).Round(time.Second).String() + " ago"
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
