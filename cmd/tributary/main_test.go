package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/internal/config"
)

// buildBinary builds the tributary binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tributary")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("building tributary: %v\n%s", err, out)
	}
	return bin
}

func TestHelpListsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"capture", "sink", "run", "backfill", "replay", "verify", "cat", "status", "dev"} {
		if !strings.Contains(out.String(), "\n  "+name+" ") {
			t.Errorf("--help does not list %q:\n%s", name, out.String())
		}
	}
}

// `tributary dev --dir D` starts the stack, writes D/tributary.yaml (a config
// that loads) and D/env, serves a database that accepts connections, and
// stops everything on SIGINT with exit status 0.
func TestIntegrationDevCommand(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "stack")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--dir", dir, "--check")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var printed []string
	waitLine := func(prefix string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("dev exited before printing %q:\n%s\n%s", prefix, strings.Join(printed, "\n"), stderr.String())
				}
				printed = append(printed, l)
				if strings.HasPrefix(strings.TrimSpace(l), prefix) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %q line within the deadline:\n%s\n%s", prefix, strings.Join(printed, "\n"), stderr.String())
			}
		}
	}
	waitLine("local stack ready")
	t.Logf("dev: ready after %s", time.Since(started).Round(time.Millisecond))
	waitLine("round trips done")
	for _, l := range printed {
		if strings.Contains(l, "FAILED") {
			t.Errorf("round trip failed: %s", l)
		}
	}

	env := readEnvFile(t, filepath.Join(dir, "env"))
	for _, k := range []string{"DATABASE_URL", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "TRIBUTARY_PROJECT", "TRIBUTARY_DATASET", "TRIBUTARY_BUCKET"} {
		if env[k] == "" {
			t.Errorf("env file lacks %s", k)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "tributary.yaml"), nil)
	if err != nil {
		t.Fatalf("the generated config does not load: %v", err)
	}
	if cfg.Postgres.URL.Reveal() != env["DATABASE_URL"] || cfg.BigQuery.Dataset != env["TRIBUTARY_DATASET"] || cfg.GCS.Bucket != env["TRIBUTARY_BUCKET"] {
		t.Errorf("config and env disagree: config %+v, env %v", cfg, env)
	}
	conn, err := pgx.Connect(ctx, env["DATABASE_URL"])
	if err != nil {
		t.Fatalf("connecting to the stack's postgres: %v", err)
	}
	conn.Close(ctx)

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dev exited with %v after SIGINT:\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("postgres still running after dev stopped (postmaster.pid: %v)", err)
	}
	if _, err := pgx.Connect(ctx, env["DATABASE_URL"]); err == nil {
		t.Fatalf("postgres still accepts connections after dev stopped")
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(l, "export "), "=")
		if ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}
