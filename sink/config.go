package sink

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/linkedin/goavro/v2"
)

// Defaults of the Config settings left zero.
const (
	DefaultFlushBytes             = 64 << 20 // encoded event bytes buffered per table
	DefaultFlushRows              = 100_000
	DefaultFlushAge               = 10 * time.Second
	DefaultLoadInterval           = 2 * time.Minute
	DefaultMaxOutstandingBytes    = 512 << 20
	DefaultMaxOutstandingMessages = 200_000
	DefaultNumGoroutines          = 8
	DefaultAckDeadline            = 60 * time.Second
	DefaultCompression            = goavro.CompressionSnappyLabel
	DefaultMaxDeliveryAttempts    = 20
	DefaultStreamApplyInterval    = 5 * time.Second
)

// Mode is how a table's changes reach its BigQuery changelog.
type Mode string

const (
	// ModeLoad loads the table's Avro objects with load jobs every
	// LoadInterval.
	ModeLoad Mode = "load"
	// ModeStream inserts the rows of each object, once it is written, with
	// streaming inserts, and applies them to the current state every
	// StreamApplyInterval; the objects stay on GCS and are never loaded.
	ModeStream Mode = "stream"
)

// TableConfig is one table's settings.
type TableConfig struct {
	// Mode is the table's mode; empty means Config.Mode.
	Mode Mode
	// SoftDelete keeps deleted rows in the current-state table, with
	// ColDeleted set and their last values, instead of removing them.
	SoftDelete bool
}

// Config configures a Sink. Zero settings take the Default… constants.
type Config struct {
	// Project is the Google Cloud project of the subscription.
	Project string
	// Subscription is the Pub/Sub subscription pulled (its ID). Run creates
	// it on Topic when absent, with message ordering, a retry policy and,
	// when DeadLetterTopic is set, a dead-letter policy.
	Subscription string
	// Topic is the topic capture publishes to (its ID); needed only to create
	// the subscription.
	Topic string
	// DeadLetterTopic (an ID) receives the messages Pub/Sub failed to
	// deliver DefaultMaxDeliveryAttempts times. Empty: no policy. The sink
	// itself never nacks a message it could not handle: it writes it to a
	// dead-letter object and acks it.
	DeadLetterTopic string

	// Bucket and Prefix say where objects go: data files under
	// <Prefix>/<Database>/, dead-letters under <Prefix>/_deadletter/sink/,
	// load bookkeeping under <Prefix>/_sink/. Prefix is also where capture
	// keeps the schema store (<Prefix>/_schemas/).
	Bucket, Prefix string
	// Database names the source database in object paths.
	Database string
	// Dataset is the BigQuery dataset of the changelog and current-state
	// tables (in Project).
	Dataset string
	// WriterID names this process in object names; default a random 8 hex
	// digits per Sink, so two processes (or a restarted one) never race for
	// a name.
	WriterID string
	// Keys overrides the key columns (Postgres names) of current-state
	// tables, by "schema.table" as Postgres spells them. Without an entry a
	// table is keyed by its replica identity, as marked ("pg_key") in its
	// stored schema: the primary key or replica-identity index, or every
	// column under REPLICA IDENTITY FULL (then rows are keyed by their whole
	// value, and identical rows are one). Give the primary key here for a
	// FULL table that has one. A table with neither keeps every inserted
	// row in its current-state table.
	Keys map[string][]string
	// Mode is the mode of tables Tables does not set; default ModeLoad.
	Mode Mode
	// Tables holds per-table settings by "schema.table" as Postgres spells
	// them.
	Tables map[string]TableConfig

	// FlushBytes, FlushRows and FlushAge bound a table's buffer: it is
	// written to GCS when any is reached (age counted from its first
	// event). Defaults 64 MiB, 100,000 rows, 10 s.
	FlushBytes int
	FlushRows  int
	FlushAge   time.Duration
	// LoadInterval is how often each table's written objects are loaded
	// into BigQuery; default 2 minutes (BigQuery allows 1,500 load jobs per
	// table per day).
	LoadInterval time.Duration
	// StreamApplyInterval is how often a stream-mode table's newly
	// streamed changes are applied to its current state; default 5 s.
	StreamApplyInterval time.Duration
	// MaxOutstandingBytes bounds the bytes of messages received and not yet
	// acknowledged (Pub/Sub flow control, blocking): the sink's memory
	// bound. Default 512 MiB; it should exceed FlushBytes.
	MaxOutstandingBytes int
	// MaxOutstandingMessages bounds the messages received and not yet
	// written, with MaxOutstandingBytes: a buffered change costs its
	// message's bytes plus about 320, so with small rows this is the bound
	// that holds memory. Default 200000.
	MaxOutstandingMessages int
	// NumGoroutines is the number of Pub/Sub pull streams; default 8. The
	// two bounds above are over all of them: each stream asks Pub/Sub for
	// its share.
	NumGoroutines int
	// AckDeadline is the ack deadline of a subscription Run creates;
	// default 60 s. The client extends it while a message is buffered.
	AckDeadline time.Duration
	// Compression is the OCF codec: "snappy" (default) or "deflate".
	Compression string

	// Logger receives progress and failures; default discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.FlushBytes <= 0 {
		c.FlushBytes = DefaultFlushBytes
	}
	if c.FlushRows <= 0 {
		c.FlushRows = DefaultFlushRows
	}
	if c.FlushAge <= 0 {
		c.FlushAge = DefaultFlushAge
	}
	if c.LoadInterval <= 0 {
		c.LoadInterval = DefaultLoadInterval
	}
	if c.StreamApplyInterval <= 0 {
		c.StreamApplyInterval = DefaultStreamApplyInterval
	}
	if c.Mode == "" {
		c.Mode = ModeLoad
	}
	if c.MaxOutstandingBytes <= 0 {
		c.MaxOutstandingBytes = DefaultMaxOutstandingBytes
	}
	if c.MaxOutstandingMessages <= 0 {
		c.MaxOutstandingMessages = DefaultMaxOutstandingMessages
	}
	if c.NumGoroutines <= 0 {
		c.NumGoroutines = DefaultNumGoroutines
	}
	if c.AckDeadline <= 0 {
		c.AckDeadline = DefaultAckDeadline
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.WriterID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.WriterID = hex.EncodeToString(b[:])
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// table gives the settings of table k, its mode filled in.
func (c Config) table(k tableKey) TableConfig {
	tc := c.Tables[k.String()]
	if tc.Mode == "" {
		tc.Mode = c.Mode
	}
	return tc
}
