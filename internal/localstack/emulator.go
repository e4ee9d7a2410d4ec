package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/api/option"
)

// EmulatorVersion is the goccy/bigquery-emulator release the stack runs.
const EmulatorVersion = "v0.6.6"

// CacheDir is where built tools are kept between runs: $TRIBUTARY_CACHE, else
// $XDG_CACHE_HOME/tributary, else ~/.cache/tributary.
func CacheDir() string {
	if d := os.Getenv("TRIBUTARY_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "tributary")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "tributary-cache")
	}
	return filepath.Join(home, ".cache", "tributary")
}

// EmulatorBinary returns the path of the BigQuery emulator: $TRIBUTARY_BQEMU,
// else the cached build of EmulatorVersion.
func EmulatorBinary() (string, error) {
	path := os.Getenv("TRIBUTARY_BQEMU")
	if path == "" {
		path = filepath.Join(CacheDir(), "bigquery-emulator-"+EmulatorVersion)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("finding the BigQuery emulator %s at %s: %w (build it once with `make bqemu`; it takes about 20 minutes)", EmulatorVersion, path, err)
	}
	return path, nil
}

type emulatorConfig struct {
	Project, Dataset string
	Database         string // sqlite file; empty keeps it in memory
	GCSHost          string // http://host:port of fake-gcs-server, for load jobs
	Log              string
}

type emulator struct {
	cmd      *exec.Cmd
	url      string
	grpcAddr string
	done     chan error
}

func startEmulator(ctx context.Context, bin string, cfg emulatorConfig) (*emulator, error) {
	for attempt := 0; ; attempt++ {
		e, err := tryStartEmulator(ctx, bin, cfg)
		if err == nil || attempt == 2 || ctx.Err() != nil {
			return e, err
		}
	}
}

func tryStartEmulator(ctx context.Context, bin string, cfg emulatorConfig) (*emulator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", cfg.Log, err)
	}
	defer logf.Close()
	args := []string{
		"--project=" + cfg.Project, "--dataset=" + cfg.Dataset, "--host=127.0.0.1",
		"--port=" + strconv.Itoa(port), "--grpc-port=" + strconv.Itoa(grpcPort), "--log-level=warn",
	}
	if cfg.Database != "" {
		args = append(args, "--database="+cfg.Database)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "STORAGE_EMULATOR_HOST="+cfg.GCSHost)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a terminal's Ctrl-C reaches tributary first;
	// and killed with us should we die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the BigQuery emulator: %w", err)
	}
	e := &emulator{
		cmd: cmd, url: "http://127.0.0.1:" + strconv.Itoa(port),
		grpcAddr: "127.0.0.1:" + strconv.Itoa(grpcPort), done: make(chan error, 1),
	}
	go func() { e.done <- cmd.Wait() }()
	ready := httpReady(e.url + "/bigquery/v2/projects/" + cfg.Project + "/datasets")
	err = waitFor(ctx, "the BigQuery emulator", 60*time.Second, func(ctx context.Context) error {
		select {
		case err := <-e.done:
			e.done <- err
			return fmt.Errorf("the BigQuery emulator exited (%v); see %s", err, cfg.Log)
		default:
		}
		return ready(ctx)
	})
	if err != nil {
		_ = e.stop()
		return nil, err
	}
	return e, nil
}

// stop sends SIGTERM and waits up to 10s before SIGKILL.
func (e *emulator) stop() error {
	if e == nil || e.cmd.Process == nil {
		return nil
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		err := <-e.done
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil
		}
		return err
	}
}

// gcsClientOptions point a storage client at fake-gcs-server without touching
// this process's environment.
func gcsClientOptions(url string) []option.ClientOption {
	return []option.ClientOption{option.WithEndpoint(url + "/storage/v1/"), option.WithoutAuthentication()}
}
