package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/localstack"
)

func newDevCmd() *cobra.Command {
	var dir string
	var check bool
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the local stack: Postgres and the Pub/Sub, GCS and BigQuery emulators",
		Long: `dev starts a throwaway Postgres cluster (wal_level=logical), the Pub/Sub fake,
fake-gcs-server and the BigQuery emulator on free loopback ports, keeps their data
under --dir, writes --dir/tributary.yaml and --dir/env, and stops everything
cleanly on Ctrl-C or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), cmd, dir, check, duration)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".tributary-dev", "directory for the stack's data, config and logs")
	cmd.Flags().BoolVar(&check, "check", false, "drive one real round trip through each service and print what it measured")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: run until Ctrl-C or SIGTERM)")
	return cmd
}

func runDev(ctx context.Context, cmd *cobra.Command, dir string, check bool, duration time.Duration) error {
	start := time.Now()
	stack, err := localstack.Start(ctx, localstack.Options{Dir: dir, Logger: newLogger()})
	if err != nil {
		return fmt.Errorf("starting the local stack: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		if err := stack.Close(stopCtx); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "stopping the local stack: %v\n", err)
			return
		}
		fmt.Fprintln(cmd.OutOrStdout(), "local stack stopped")
	}()
	if err := stack.WriteFiles(); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "local stack ready in %s\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "  postgres  %s  (data %s)\n", stack.Postgres.DSN(stack.Database), filepath.Join(stack.Dir, "postgres"))
	fmt.Fprintf(out, "  pubsub    %s\n", stack.PubSubAddr)
	fmt.Fprintf(out, "  gcs       %s  (bucket %s, objects under %s)\n", stack.GCSURL, stack.Bucket, filepath.Join(stack.Dir, "gcs"))
	fmt.Fprintf(out, "  bigquery  %s  (project %s, dataset %s)\n", stack.BigQueryURL, stack.Project, stack.Dataset)
	fmt.Fprintf(out, "  logs      %s\n", filepath.Join(stack.Dir, "logs"))
	fmt.Fprintf(out, "\nnext, in another shell:\n  source %s\n  tributary run --config %s\n\nCtrl-C stops everything.\n",
		filepath.Join(stack.Dir, "env"), filepath.Join(stack.Dir, "tributary.yaml"))
	if check {
		failed := 0
		fmt.Fprintln(out, "\nround trips:")
		for _, r := range stack.Check(ctx) {
			if r.Err != nil {
				failed++
				fmt.Fprintf(out, "  %-9s FAILED after %s: %v\n", r.Service, r.Took.Round(time.Millisecond), r.Err)
				continue
			}
			fmt.Fprintf(out, "  %-9s %s in %s\n", r.Service, r.What, r.Took.Round(time.Millisecond))
		}
		fmt.Fprintf(out, "round trips done: %d failed\n", failed)
		if failed > 0 {
			return &exitError{code: 1, err: fmt.Errorf("%d of the stack's round trips failed", failed)}
		}
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	<-ctx.Done()
	fmt.Fprintln(out, "stopping the local stack")
	return nil
}
