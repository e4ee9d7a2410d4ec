package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// root is the repository's root, seen from this package's directory.
const root = ".."

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildFlags are the go build flags of the image's builder stage; the test
// that reads the Dockerfile checks that it uses them.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags", "-s -w"}

// binary builds ./cmd/tributary once per run, as the image does: static
// (CGO_ENABLED=0), trimmed, stripped.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "tributary-deploy-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "tributary")
		args := append([]string{"build"}, buildFlags...)
		args = append(args, "-o", binPath, "./cmd/tributary")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building tributary: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runResult is what one run of the binary did.
type runResult struct {
	out  string
	code int
}

// run runs the binary with args in an empty directory and a minimal
// environment, so that nothing on this machine (a tributary.yaml, emulator
// hosts) changes what it does.
func run(t *testing.T, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return runResult{out: out.String()}
	case errors.As(err, &ee) && ctx.Err() == nil:
		return runResult{out: out.String(), code: ee.ExitCode()}
	default:
		t.Fatalf("running tributary %s: %v\n%s", strings.Join(args, " "), err, out.String())
		return runResult{}
	}
}

// readFile reads a file of the repository, by a path relative to its root.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
