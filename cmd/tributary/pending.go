package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notBuilt is the honest answer of a subcommand whose work has not landed
// yet: it names what is missing and exits non-zero rather than pretending.
func notBuilt(use, short, what string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			return &exitError{code: 2, err: fmt.Errorf("%s is not built yet: %s", cmd.Name(), what)}
		},
	}
}

func newBackfillCmd() *cobra.Command {
	return notBuilt("backfill", "Re-read a table while the stream keeps running", "backfill has not landed")
}
