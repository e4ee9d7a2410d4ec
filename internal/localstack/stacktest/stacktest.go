// Package stacktest starts the one local stack a package's integration
// tests share. Test code only.
package stacktest

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

// Main runs the package's tests, first starting a local stack (and pointing
// this process's clients at it) unless the run wants no integration tests:
// -short, or -skip naming TestIntegration as `make unit` does. set receives
// the stack before any test runs. The stack is stopped afterwards; Main
// exits the process.
func Main(m *testing.M, set func(*localstack.Stack)) {
	if !IntegrationWanted() {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	stack, err := localstack.Start(ctx, localstack.Options{})
	cancel()
	if err == nil {
		err = stack.Setenv()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the local stack: %v\n", err)
		if stack != nil {
			_ = stack.Close(context.Background())
		}
		os.Exit(1)
	}
	set(stack)
	code := m.Run()
	if err := stack.Close(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the local stack: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// IntegrationWanted reports whether this run may include TestIntegration…
// tests.
func IntegrationWanted() bool {
	flag.Parse()
	if testing.Short() {
		return false
	}
	if f := flag.Lookup("test.skip"); f != nil && strings.Contains(f.Value.String(), "TestIntegration") {
		return false
	}
	return true
}

// WaitUntil polls cond every 200ms until it holds, failing t at the deadline
// with the last error cond returned.
func WaitUntil(t testing.TB, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %v)", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
