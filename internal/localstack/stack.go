package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/tributary-cdc/tributary/internal/bqavro"
)

// Options configures Start. The zero value is usable.
type Options struct {
	// Dir holds everything the stack keeps: postgres/ (the cluster), gcs/
	// (the buckets' objects), bigquery.db and logs/. Empty means a temporary
	// directory that Close removes.
	Dir string
	// Project, Dataset and Bucket name the Google side; defaults
	// "tributary-local", "tributary" and "tributary".
	Project, Dataset, Bucket string
	// Database is created in Postgres when absent; default "tributary".
	Database string
	// Logger receives progress lines; default discards them.
	Logger *slog.Logger
}

// Stack is a running local stack. Close stops it.
type Stack struct {
	Dir                      string
	Project, Dataset, Bucket string
	Database                 string
	Postgres                 *Postgres
	PubSubAddr               string // host:port of the Pub/Sub fake
	GCSURL                   string // http://host:port of fake-gcs-server
	BigQueryURL              string // http://host:port of the emulator behind the AVRO-load proxy
	BigQueryGRPCAddr         string // host:port of the emulator's Storage API
	ownDir                   bool
	log                      *slog.Logger
	pubsub                   *pstest.Server
	gcs                      *fakestorage.Server
	bq                       *emulator
	proxy                    *http.Server
	closeOnce                sync.Once
	closeErr                 error
}

// Start starts Postgres, the Pub/Sub fake, fake-gcs-server and the BigQuery
// emulator behind the AVRO-load proxy, and creates the database, the bucket
// and the dataset. On error, whatever had started is stopped again.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	s := &Stack{
		Dir: opts.Dir, Project: or(opts.Project, "tributary-local"), Dataset: or(opts.Dataset, "tributary"),
		Bucket: or(opts.Bucket, "tributary"), Database: or(opts.Database, "tributary"), log: opts.Logger,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "tributary-stack-"); err != nil {
			return nil, fmt.Errorf("creating the stack directory: %w", err)
		}
		s.ownDir = true
		// Traversable, so an unprivileged server can keep its data inside.
		if err := os.Chmod(s.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	if s.Dir, err = filepath.Abs(s.Dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
		}
	}()
	logs := filepath.Join(s.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", logs, err)
	}
	// Postgres and the BigQuery emulator start in parallel: they are the slow ones.
	bin, err := EmulatorBinary()
	if err != nil {
		return nil, err
	}
	var pgErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		if s.Postgres, pgErr = startPostgres(ctx, filepath.Join(s.Dir, "postgres"), logs); pgErr == nil {
			pgErr = s.createDatabase(ctx)
		}
		s.log.Info("postgres ready", "port", s.portOf(), "took", time.Since(start).Round(time.Millisecond))
	}()
	if err := s.startGCS(); err != nil {
		wg.Wait()
		return nil, err
	}
	if err := s.startPubSub(); err != nil {
		wg.Wait()
		return nil, err
	}
	start := time.Now()
	s.bq, err = startEmulator(ctx, bin, emulatorConfig{
		Project: s.Project, Dataset: s.Dataset, Database: filepath.Join(s.Dir, "bigquery.db"),
		GCSHost: s.GCSURL, Log: filepath.Join(logs, "bigquery-emulator.log"),
	})
	if err == nil {
		s.BigQueryGRPCAddr = s.bq.grpcAddr
		err = s.startProxy(ctx)
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if pgErr != nil {
		return nil, pgErr
	}
	s.log.Info("bigquery emulator ready", "url", s.BigQueryURL, "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

func (s *Stack) portOf() int {
	if s.Postgres == nil {
		return 0
	}
	return s.Postgres.Port
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (s *Stack) createDatabase(ctx context.Context) error {
	return createDatabaseIfMissing(ctx, s.Postgres.DSN(""), s.Database)
}

func (s *Stack) startGCS() (err error) {
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.tryStartGCS(); err == nil {
			return nil
		}
	}
	return err
}

func (s *Stack) tryStartGCS() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	root := filepath.Join(s.Dir, "gcs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", root, err)
	}
	s.gcs, err = fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", Port: uint16(port), StorageRoot: root,
		PublicHost: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Writer:     discard{},
	})
	if err != nil {
		return fmt.Errorf("starting fake-gcs-server: %w", err)
	}
	s.GCSURL = s.gcs.URL()
	if _, err := s.gcs.Backend().GetBucket(s.Bucket); err != nil {
		s.gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: s.Bucket, VersioningEnabled: false})
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// startPubSub serves the fake on a port the kernel picks, so there is no race.
func (s *Stack) startPubSub() error {
	s.pubsub = pstest.NewServerWithAddress("127.0.0.1:0")
	s.PubSubAddr = s.pubsub.Addr
	return nil
}

// ClearPubSubMessages drops every message the Pub/Sub fake holds. The fake
// keeps each published message for inspection, even on a topic without
// subscriptions, so a benchmark publishing millions calls this to keep the
// stack's memory bounded; undelivered messages of every subscription go too.
func (s *Stack) ClearPubSubMessages() { s.pubsub.ClearMessages() }

func (s *Stack) startProxy(ctx context.Context) error {
	target, err := url.Parse(s.bq.url)
	if err != nil {
		return err
	}
	gcs, err := storage.NewClient(ctx, gcsClientOptions(s.GCSURL)...)
	if err != nil {
		return fmt.Errorf("creating the proxy's storage client: %w", err)
	}
	p, err := bqavro.New(target, gcs, s.Bucket)
	if err != nil {
		return fmt.Errorf("creating the AVRO-load proxy: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for the AVRO-load proxy: %w", err)
	}
	s.proxy = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.proxy.Serve(l) }()
	s.BigQueryURL = "http://" + l.Addr().String()
	return waitFor(ctx, "the AVRO-load proxy", 10*time.Second,
		httpReady(s.BigQueryURL+"/bigquery/v2/projects/"+s.Project+"/datasets"))
}

// Env returns the environment that points clients at this stack.
func (s *Stack) Env() map[string]string {
	return map[string]string{
		"DATABASE_URL":           s.Postgres.DSN(s.Database),
		"PUBSUB_EMULATOR_HOST":   s.PubSubAddr,
		"STORAGE_EMULATOR_HOST":  s.GCSURL,
		"BIGQUERY_EMULATOR_HOST": s.BigQueryURL,
		"TRIBUTARY_PROJECT":      s.Project,
		"TRIBUTARY_DATASET":      s.Dataset,
		"TRIBUTARY_BUCKET":       s.Bucket,
	}
}

// Setenv points this process's clients at the stack.
func (s *Stack) Setenv() error {
	for k, v := range s.Env() {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}

// EnvFile renders Env as shell exports, sorted by name.
func (s *Stack) EnvFile() string {
	env := s.Env()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	return b.String()
}

func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// ConfigYAML renders a complete tributary config for this stack.
func (s *Stack) ConfigYAML() string {
	return fmt.Sprintf(`# tributary config for the local stack in %s.
# Clients reach the emulators through the variables in ./env.
project: %s
postgres:
  url: %s
  slot: tributary
  publication: tributary
pubsub:
  topic: tributary-changes
  subscription: tributary-sink
  dead_letter_topic: tributary-dead-letter
gcs:
  bucket: %s
  prefix: tributary
bigquery:
  dataset: %s
http:
  listen: 127.0.0.1:8080
`, s.Dir, s.Project, s.Postgres.DSN(s.Database), s.Bucket, s.Dataset)
}

// WriteFiles writes Dir/tributary.yaml and Dir/env.
func (s *Stack) WriteFiles() error {
	if err := os.WriteFile(filepath.Join(s.Dir, "tributary.yaml"), []byte(s.ConfigYAML()), 0o644); err != nil {
		return fmt.Errorf("writing tributary.yaml: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "env"), []byte(s.EnvFile()), 0o644); err != nil {
		return fmt.Errorf("writing env: %w", err)
	}
	return nil
}

// Close stops everything in reverse order of dependence and, when the stack
// made its own directory, removes it. Safe to call twice.
func (s *Stack) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.proxy != nil {
			errs = append(errs, s.proxy.Shutdown(ctx))
		}
		if s.bq != nil {
			errs = append(errs, s.bq.stop())
		}
		if s.pubsub != nil {
			errs = append(errs, s.pubsub.Close())
		}
		if s.gcs != nil {
			s.gcs.Stop()
		}
		if s.Postgres != nil {
			errs = append(errs, s.Postgres.Stop(ctx))
		}
		if s.ownDir {
			if target, err := os.Readlink(filepath.Join(s.Dir, "postgres")); err == nil {
				errs = append(errs, os.RemoveAll(filepath.Dir(target)))
			}
			errs = append(errs, os.RemoveAll(s.Dir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
