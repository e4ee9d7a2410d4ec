// Command tributary streams Postgres changes into Google Cloud: capture reads
// logical replication into Pub/Sub, sink writes Avro to GCS and loads it into
// BigQuery. One binary, one subcommand per job.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit status chosen by a subcommand (verify
// exits 1 on a difference and 2 on an error, for example).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	pprof.StopCPUProfile()
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "tributary: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tributary",
		Short: "Stream Postgres changes into Pub/Sub, GCS and BigQuery",
		Long: `tributary captures every committed row change from Postgres logical replication,
publishes it to Pub/Sub in key order, keeps it as Avro on GCS (the system of record)
and mirrors it into BigQuery as a changelog and a current-state table.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuProfile string
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("creating CPU profile: %w", err)
		}
		return pprof.StartCPUProfile(f)
	}
	root.AddCommand(
		newCaptureCmd(), newSinkCmd(), newRunCmd(),
		newBackfillCmd(), newReplayCmd(), newVerifyCmd(),
		newCatCmd(), newStatusCmd(), newDevCmd(), newDemoCmd(),
	)
	return root
}

func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
