package sink

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
)

// stack is the local stack every TestIntegration… test of the package
// shares; nil when the tests run with -short.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	// Benchmarks alone (-run '^$') without a cached emulator: run them
	// without the stack; those that need it skip.
	flag.Parse()
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "^$" {
		if _, err := localstack.EmulatorBinary(); err != nil {
			fmt.Fprintln(os.Stderr, "sink: benchmarks on the local stack skip:", err)
			os.Exit(m.Run())
		}
	}
	stacktest.Main(m, func(s *localstack.Stack) { stack = s })
}

// needStack skips t when the stack was not started.
func needStack(t *testing.T) {
	t.Helper()
	if stack == nil {
		t.Skip("the local stack is not running (-short or -skip TestIntegration)")
	}
}
