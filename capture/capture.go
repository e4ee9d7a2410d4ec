package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/schema"
)

// Config is what capture needs to run. DSN is a secret: it is never logged.
type Config struct {
	DSN         string
	Slot        string
	Publication string
	Tables      []TableName
	Schemas     []string
	// StandbyTimeout is the longest gap between status updates to Postgres;
	// default 10s.
	StandbyTimeout time.Duration
	Project        string
	Topic          string
	Bucket         string
	Prefix         string
	// OrderingBuckets is N in "<schema>.<table>/<hash of key mod N>"; default 32.
	OrderingBuckets int
	// MaxOutstandingBytes bounds messages handed to Pub/Sub but not yet
	// accepted; reading from the slot blocks beyond it. Default 64 MiB.
	MaxOutstandingBytes int64
	// MaxPendingTransactions bounds transactions published but not yet
	// confirmed; default 100000.
	MaxPendingTransactions int
	// SpillDir holds streamed in-progress transactions; default a directory
	// under the system temp dir named after the slot.
	SpillDir string
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StandbyTimeout <= 0 {
		c.StandbyTimeout = 10 * time.Second
	}
	if c.OrderingBuckets <= 0 {
		c.OrderingBuckets = 32
	}
	if c.MaxOutstandingBytes <= 0 {
		c.MaxOutstandingBytes = 64 << 20
	}
	if c.MaxPendingTransactions <= 0 {
		c.MaxPendingTransactions = 100000
	}
	if c.SpillDir == "" {
		c.SpillDir = filepath.Join(os.TempDir(), "tributary-spill-"+c.Slot)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Capturer reads one slot and publishes to one topic.
type Capturer struct {
	cfg    Config
	pubsub *pubsub.Client
	gcs    *storage.Client
	log    *slog.Logger

	confirmed atomic.Uint64 // last LSN confirmed to Postgres
	published atomic.Int64
	dead      atomic.Int64
	restarts  atomic.Int64
	tracker   atomic.Pointer[AckTracker] // the current session's
}

// New returns a Capturer using the given long-lived clients.
func New(cfg Config, ps *pubsub.Client, gcs *storage.Client) *Capturer {
	cfg.setDefaults()
	return &Capturer{cfg: cfg, pubsub: ps, gcs: gcs, log: cfg.Logger}
}

// Stats is a snapshot of the capturer's progress.
type Stats struct {
	// Acked is the newest position such that Pub/Sub holds every change up
	// to it; Confirmed the newest reported to Postgres (at most a status
	// interval behind Acked).
	Acked       pglogrepl.LSN
	Confirmed   pglogrepl.LSN
	Published   int64
	DeadLetters int64
	Restarts    int64
}

// Stats returns the capturer's progress so far.
func (c *Capturer) Stats() Stats {
	st := Stats{Confirmed: pglogrepl.LSN(c.confirmed.Load()), Published: c.published.Load(), DeadLetters: c.dead.Load(), Restarts: c.restarts.Load()}
	st.Acked = st.Confirmed
	if t := c.tracker.Load(); t != nil {
		st.Acked, _ = t.Confirmed()
	}
	return st
}

// Run captures until ctx ends, reconnecting after retryable errors with
// backoff. On return every change it published has been accepted by Pub/Sub
// and the position covering them has been confirmed to Postgres.
func (c *Capturer) Run(ctx context.Context) error {
	if err := c.EnsureTopic(ctx); err != nil {
		return err
	}
	if err := c.waitForSubscription(ctx); err != nil {
		return err
	}
	backoff := 250 * time.Millisecond
	for {
		started := time.Now()
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !Retryable(err) {
			return err
		}
		if time.Since(started) > time.Minute {
			backoff = 250 * time.Millisecond
		}
		c.restarts.Add(1)
		c.log.Warn("capture interrupted; resuming from the slot", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (c *Capturer) topicName() string {
	return "projects/" + c.cfg.Project + "/topics/" + c.cfg.Topic
}

// EnsureTopic creates the topic when absent. Without the permission to
// create topics it takes the topic as provisioned elsewhere.
func (c *Capturer) EnsureTopic(ctx context.Context) error {
	_, err := c.pubsub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: c.topicName()})
	switch status.Code(err) {
	case codes.AlreadyExists:
		err = nil
	case codes.PermissionDenied:
		// Least privilege: the topic is managed elsewhere (Terraform) and
		// capture may only publish. A missing topic fails the first publish.
		c.log.Info("not allowed to create topics; using the topic as provisioned", "topic", c.topicName())
		err = nil
	}
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", c.topicName(), err)
	}
	return nil
}

// waitForSubscription holds capture back while the topic has no
// subscription: Pub/Sub drops what a topic without subscriptions receives,
// and a change confirmed to Postgres but dropped would be lost. Without the
// permission to list subscriptions it goes on (the topic is then provisioned
// with its subscription, as deploy/terraform does).
func (c *Capturer) waitForSubscription(ctx context.Context) error {
	lastLog := time.Now() // a subscriber starting alongside gets a moment first
	for {
		it := c.pubsub.TopicAdminClient.ListTopicSubscriptions(ctx, &pubsubpb.ListTopicSubscriptionsRequest{Topic: c.topicName()})
		_, err := it.Next()
		switch {
		case err == nil:
			return nil
		case status.Code(err) == codes.PermissionDenied:
			c.log.Info("not allowed to list the topic's subscriptions; assuming it has one", "topic", c.topicName())
			return nil
		case !errors.Is(err, iterator.Done):
			return fmt.Errorf("listing subscriptions of %s: %w", c.topicName(), err)
		}
		if time.Since(lastLog) > 5*time.Second {
			c.log.Warn("waiting for a subscription on the topic: Pub/Sub would drop what capture publishes now", "topic", c.topicName())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// replicationConfig parses the DSN and sets the session parameters that make
// pgoutput print every value in the one form package schema reads.
func (c *Capturer) replicationConfig() (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(c.cfg.DSN)
	if err != nil {
		// pgconn's parse errors can quote the DSN: never pass them on.
		return nil, fatal(errors.New("parsing postgres.url failed"), "check the connection string's syntax")
	}
	for k, v := range schema.SessionSettings {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	return cfg, nil
}

// maxInFlight bounds the messages handed to the publisher whose results the
// ack loop has not read yet: the results queue holds that many, and the
// publisher's flow control admits that many besides its byte limit. Left
// unset, that count is the client's default of 1,000 messages: less than
// one full batch (CountThreshold) in flight across all ordering keys, so
// each batch would wait for the one before it to be accepted.
const maxInFlight = 1 << 14

func (c *Capturer) runOnce(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(c.cfg.DSN)
	if err != nil {
		return fatal(errors.New("parsing postgres.url failed"), "check the connection string's syntax")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := preflight(ctx, conn); err != nil {
		return err
	}
	if err := ensurePublication(ctx, conn, c.cfg.Publication, c.cfg.Tables, c.cfg.Schemas); err != nil {
		return err
	}
	rcfg, err := c.replicationConfig()
	if err != nil {
		return err
	}
	repl, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		return fmt.Errorf("opening replication connection: %w", err)
	}
	defer repl.Close(context.WithoutCancel(ctx))
	existing, err := readSlot(ctx, conn, c.cfg.Slot)
	if err != nil {
		return err
	}
	if !existing.exists {
		recorded, err := c.slotRecorded(ctx)
		if err != nil {
			return err
		}
		if recorded {
			return fatal(fmt.Errorf("replication slot %q is gone but this pipeline created it before: the changes since its last confirmed position are lost to capture", c.cfg.Slot),
				fmt.Sprintf("find out why (failover to a server without the slot?); to start over, delete gs://%s/%s, restart capture and backfill every table", c.cfg.Bucket, c.slotRecordName()))
		}
	}
	slot, err := ensureSlot(ctx, conn, repl, c.cfg.Slot)
	if err != nil {
		return err
	}
	if err := c.recordSlot(ctx, slot); err != nil {
		return err
	}
	c.confirmed.Store(uint64(slot.confirmed))

	cat := pgcatalog.New(c.cfg.DSN)
	defer cat.Close(context.WithoutCancel(ctx))
	r := &reader{
		c: c, conn: repl, tracker: NewAckTracker(slot.confirmed, c.cfg.MaxPendingTransactions),
		enc: &encoder{
			resolver: schema.Chain(schema.Builtin, cat), forget: cat.Forget, store: schema.NewStore(c.gcs, c.cfg.Bucket, c.cfg.Prefix),
			deadLetter: c.gcs.Bucket(c.cfg.Bucket), prefix: c.cfg.Prefix, buckets: c.cfg.OrderingBuckets,
			tables: map[uint32]*tableVersion{},
		},
		spills: map[uint32]*spill{},
	}
	c.tracker.Store(r.tracker)
	r.pub = c.pubsub.Publisher(c.topicName())
	r.pub.EnableMessageOrdering = true
	r.pub.PublishSettings.FlowControlSettings = pubsub.FlowControlSettings{
		MaxOutstandingBytes: int(c.cfg.MaxOutstandingBytes), MaxOutstandingMessages: maxInFlight,
		LimitExceededBehavior: pubsub.FlowControlBlock,
	}
	r.pub.PublishSettings.CountThreshold = 1000
	r.pub.PublishSettings.DelayThreshold = 10 * time.Millisecond
	r.results = make(chan pending, maxInFlight)
	r.outbox = make(chan []outgoing, outboxDepth)
	var ackers, publishers sync.WaitGroup
	ackers.Add(1)
	go func() { defer ackers.Done(); r.ackLoop(ctx) }()
	publishers.Add(1)
	go func() { defer publishers.Done(); r.publishLoop(ctx) }()

	err = r.stream(ctx, slot.confirmed)

	// Stop intake, flush what was handed to Pub/Sub, then confirm it.
	r.handoff()
	close(r.outbox)
	publishers.Wait()
	r.pub.Stop()
	close(r.results)
	ackers.Wait()
	for _, s := range r.spills {
		_ = s.remove()
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := r.sendStatus(stopCtx); serr != nil && err == nil && ctx.Err() == nil {
		err = serr
	}
	return err
}
