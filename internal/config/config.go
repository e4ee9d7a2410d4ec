package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file. Default gives every default; Load gives a validated
// Config. docs/config.md documents each key.
type Config struct {
	// Project is the Google Cloud project ID for Pub/Sub, GCS and BigQuery. Required.
	Project  string   `yaml:"project"`
	Postgres Postgres `yaml:"postgres"`
	PubSub   PubSub   `yaml:"pubsub"`
	GCS      GCS      `yaml:"gcs"`
	BigQuery BigQuery `yaml:"bigquery"`
	Sink     Sink     `yaml:"sink"`
	HTTP     HTTP     `yaml:"http"`
	Log      Log      `yaml:"log"`
}

// Postgres says where to capture changes from.
type Postgres struct {
	// URL is the connection string. Required. It is redacted wherever it is printed.
	URL DSN `yaml:"url"`
	// Slot is the logical replication slot, [a-z0-9_]{1,63}. Default "tributary".
	Slot string `yaml:"slot"`
	// Publication is the publication to stream, a lower-case identifier of at most 63 bytes.
	// Default "tributary".
	Publication string `yaml:"publication"`
	// Tables limits capture to these tables. At most one of Tables and Schemas may be set;
	// neither means every table.
	Tables []TableName `yaml:"tables,omitempty"`
	// Schemas limits capture to the tables of these schemas, folded as Postgres folds
	// identifiers.
	Schemas []string `yaml:"schemas,omitempty"`
	// StandbyTimeout is the longest time between standby status updates to the server.
	// Default 10s.
	StandbyTimeout Duration `yaml:"standby_timeout"`
	// InitialSnapshot makes capture (and run) read every published table once
	// into BigQuery, as a backfill named "initial-<slot>": the first start reads
	// them all, a restart resumes, a table added later is read when it first
	// appears. Default true.
	InitialSnapshot bool `yaml:"initial_snapshot"`
}

// PubSub names the Pub/Sub resources between capture and sink and bounds the memory they use.
type PubSub struct {
	// Topic receives the change events. Default "tributary-changes".
	Topic string `yaml:"topic"`
	// Subscription is the sink's subscription to Topic. Default "tributary-sink".
	Subscription string `yaml:"subscription"`
	// DeadLetterTopic receives events the sink cannot apply. Default "tributary-dead-letter".
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// OrderingBuckets is the number of ordering keys rows are hashed into, 1..4096. Default 32.
	OrderingBuckets int `yaml:"ordering_buckets"`
	// MaxOutstandingBytes is the flow-control byte limit of publisher and subscriber.
	// Default 64MiB.
	MaxOutstandingBytes Size `yaml:"max_outstanding_bytes"`
}

// GCS says where the sink writes Avro files.
type GCS struct {
	// Bucket is the bucket name. Required.
	Bucket string `yaml:"bucket"`
	// Prefix is the object name prefix, without leading or trailing slash; empty for the
	// bucket's root. Default "tributary".
	Prefix string `yaml:"prefix"`
}

// BigQuery says where the tables are loaded.
type BigQuery struct {
	// Dataset is the dataset ID, [A-Za-z0-9_]{1,1024}. Required.
	Dataset string `yaml:"dataset"`
	// Location is the dataset's location, such as US, EU or europe-west4. Default "US".
	Location string `yaml:"location"`
}

// Mode is how the sink writes a table to BigQuery.
type Mode string

const (
	// ModeLoad writes Avro files to GCS and loads them with load jobs.
	ModeLoad Mode = "load"
	// ModeStream writes Avro files to GCS as ModeLoad does and also inserts the rows into
	// BigQuery as they arrive (streaming inserts); their files are never loaded.
	ModeStream Mode = "stream"
)

// Sink says when the sink flushes and how it writes each table.
type Sink struct {
	// FlushBytes flushes a table's buffer at this size. Default 64MiB.
	FlushBytes Size `yaml:"flush_bytes"`
	// FlushRows flushes a table's buffer at this many rows. Default 100000.
	FlushRows int `yaml:"flush_rows"`
	// MaxBufferedMessages bounds the messages received and not yet written
	// (acked), over every table. Default 200000.
	MaxBufferedMessages int `yaml:"max_buffered_messages"`
	// FlushAge flushes a table's buffer when its oldest row is this old. Default 10s.
	FlushAge Duration `yaml:"flush_age"`
	// LoadInterval is the time between load jobs of one table. Default 1m.
	LoadInterval Duration `yaml:"load_interval"`
	// Mode is the mode of tables that Tables does not set. Default load.
	Mode Mode `yaml:"mode"`
	// StreamApplyInterval is the time between current-state applies of a stream-mode table.
	// Default 5s.
	StreamApplyInterval Duration `yaml:"stream_apply_interval"`
	// Tables overrides settings per table. After Load its keys are TableName.String() of the
	// table; use Table to look one up.
	Tables map[string]TableSink `yaml:"tables,omitempty"`
}

// TableSink holds one table's sink settings.
type TableSink struct {
	// Mode overrides Sink.Mode; empty means Sink.Mode.
	Mode Mode `yaml:"mode,omitempty"`
	// SoftDelete keeps deleted rows in BigQuery, marked as deleted, instead of removing them.
	// Default false.
	SoftDelete bool `yaml:"soft_delete,omitempty"`
}

// Table gives the settings for table t, with Mode filled in from Sink.Mode when not overridden.
func (s Sink) Table(t TableName) TableSink {
	ts := s.Tables[t.String()]
	if ts.Mode == "" {
		ts.Mode = s.Mode
	}
	return ts
}

// HTTP is the server for /healthz and /metrics.
type HTTP struct {
	// Listen is the host:port to listen on; port 0 picks a free one. Default ":8080".
	Listen string `yaml:"listen"`
	// MaxLagBytes is the WAL the slot may hold back before /healthz fails. Default 1GiB.
	MaxLagBytes Size `yaml:"max_lag_bytes"`
	// MaxLag is how long a published transaction may wait for Pub/Sub before /healthz fails.
	// Default 5m.
	MaxLag Duration `yaml:"max_lag"`
}

// Log sets up logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
}

// SlogLevel gives Level as a slog.Level; Load has checked that it is one.
func (l Log) SlogLevel() slog.Level {
	var v slog.Level
	_ = v.UnmarshalText([]byte(l.Level))
	return v
}

// Default gives the configuration with every default filled in. Project, Postgres.URL,
// GCS.Bucket and BigQuery.Dataset have none and are left empty.
func Default() Config {
	return Config{
		Postgres: Postgres{
			Slot:            "tributary",
			Publication:     "tributary",
			StandbyTimeout:  Duration(10 * time.Second),
			InitialSnapshot: true,
		},
		PubSub: PubSub{
			Topic:               "tributary-changes",
			Subscription:        "tributary-sink",
			DeadLetterTopic:     "tributary-dead-letter",
			OrderingBuckets:     32,
			MaxOutstandingBytes: 64 * mib,
		},
		GCS:      GCS{Prefix: "tributary"},
		BigQuery: BigQuery{Location: "US"},
		Sink: Sink{
			FlushBytes:          64 * mib,
			FlushRows:           100000,
			MaxBufferedMessages: 200000,
			FlushAge:            Duration(10 * time.Second),
			LoadInterval:        Duration(time.Minute),
			Mode:                ModeLoad,
			StreamApplyInterval: Duration(5 * time.Second),
		},
		HTTP: HTTP{Listen: ":8080", MaxLagBytes: 1 << 30, MaxLag: Duration(5 * time.Minute)},
		Log:  Log{Level: "info", Format: "json"},
	}
}

// Load reads the file at path and gives the configuration it describes, with ${VAR} taken from
// the environment and the --set overrides applied; see LoadBytes.
func Load(path string, overrides []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return LoadBytes(path, data, os.LookupEnv, overrides)
}

// LoadBytes gives the configuration that data describes. name names the file in messages;
// lookup finds environment variables (nil means os.LookupEnv); overrides are key.path=value
// strings as given to --set.
//
// The steps: parse the YAML; apply the overrides to its node tree; decode onto Default(),
// replacing ${VAR} in the file's values and rejecting unknown keys and values of the wrong kind;
// then validate. Every problem found is returned, joined with errors.Join, each as an *Error
// whose message starts with the key path. The Config is returned only when there is none.
func LoadBytes(name string, data []byte, lookup func(string) (string, bool), overrides []string) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	p := newProblems(name)
	root, err := parseDocument(data)
	if err != nil {
		return nil, &Error{Source: p.file, Err: err}
	}
	fromFlags := map[*yaml.Node]bool{}
	for _, o := range overrides {
		if err := applyOverride(root, o, fromFlags); err != nil {
			p.errs = append(p.errs, &Error{Source: flagSource, Err: err})
		}
	}
	cfg := Default()
	d := &decoder{lookup: lookup, fromFlags: fromFlags, p: p}
	d.decode("", root, reflect.ValueOf(&cfg).Elem())
	cfg.validate(p)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return &cfg, nil
}

// parseDocument parses data into the mapping node at its top; an empty file gives an empty one.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("the file must hold one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the top level must be a mapping of keys, not %s", root.Line, kindName(root))
	}
	return root, nil
}

// Redacted gives the configuration as YAML, with the DSN's password replaced by xxxxx, fit to
// print or log.
func (c *Config) Redacted() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return b.Bytes(), nil
}
