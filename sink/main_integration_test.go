package sink

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/internal/localstack"
)

// stack is the local stack every TestIntegration… test of the package
// shares; nil when the tests run with -short.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	if !integrationWanted() {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var err error
	stack, err = localstack.Start(ctx, localstack.Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the local stack: %v\n", err)
		os.Exit(1)
	}
	if err := stack.Setenv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := stack.Close(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the local stack: %v\n", err)
	}
	os.Exit(code)
}

// integrationWanted reports whether this run may include TestIntegration…
// tests: not with -short, nor when -skip names them (as make unit does), so
// the unit tests run without starting the stack.
func integrationWanted() bool {
	flag.Parse()
	if testing.Short() {
		return false
	}
	if f := flag.Lookup("test.skip"); f != nil && strings.Contains(f.Value.String(), "TestIntegration") {
		return false
	}
	return true
}

// needStack skips t when the stack was not started.
func needStack(t *testing.T) {
	t.Helper()
	if stack == nil {
		t.Skip("the local stack is not running (-short or -skip TestIntegration)")
	}
}
