package sink

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tributary-cdc/tributary/schema"
)

// Sink pulls one subscription and writes every change to GCS and BigQuery.
// Create it with New, start it with Run.
type Sink struct {
	cfg    Config
	log    *slog.Logger
	layout Layout
	ps     *pubsub.Client
	bq     *bigquery.Client
	bucket *storage.BucketHandle
	store  *schema.Store

	mu          sync.Mutex
	tables      map[tableKey]*table
	changelogs  map[uint64]*schema.Changelog
	workers     sync.WaitGroup
	flushers    sync.WaitGroup
	workCtx     context.Context // flushers and loaders; cancelled by an abrupt stop
	drain       chan struct{}   // closed to flush and load everything, then stop
	flushed     chan struct{}   // closed once every flusher has drained
	draining    atomic.Bool
	metrics     *metrics
	receiving   atomic.Bool  // the receive loop runs
	recvExited  atomic.Bool  // it returned while the sink was not stopping
	undecodable atomic.Int64 // messages dead-lettered undecoded

	stopOnce  sync.Once
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when Run returns
	started   atomic.Bool
	abortWork context.CancelFunc
}

// New returns a sink; it uses the clients but does not own them.
func New(cfg Config, ps *pubsub.Client, gcs *storage.Client, bq *bigquery.Client) *Sink {
	cfg = cfg.withDefaults()
	return &Sink{
		cfg: cfg, log: cfg.Logger, layout: Layout{Prefix: cfg.Prefix, Database: cfg.Database},
		ps: ps, bq: bq, bucket: gcs.Bucket(cfg.Bucket), store: schema.NewStore(gcs, cfg.Bucket, cfg.Prefix),
		tables: map[tableKey]*table{}, changelogs: map[uint64]*schema.Changelog{}, metrics: newMetrics(),
		drain: make(chan struct{}), flushed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Run pulls messages until ctx ends or Close is called, then stops in
// stages: new messages are refused (nacked), every buffer is written and
// its messages acked, every written object is loaded, and Run returns. It
// returns early with an error only if the subscription cannot be set up or
// pulled. Run may be called once.
func (s *Sink) Run(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("sink: Run called twice")
	}
	defer close(s.done)
	if err := s.ensureSubscription(ctx); err != nil {
		return err
	}
	workCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	s.mu.Lock()
	s.workCtx, s.abortWork = workCtx, abort
	s.mu.Unlock()
	if err := s.resume(ctx); err != nil {
		return err
	}

	recvCtx, stopRecv := context.WithCancel(workCtx)
	defer stopRecv()
	sub := s.ps.Subscriber(s.cfg.Subscription)
	sub.ReceiveSettings.NumGoroutines = s.cfg.NumGoroutines
	sub.ReceiveSettings.MaxOutstandingBytes = perStream(s.cfg.MaxOutstandingBytes, s.cfg.NumGoroutines)
	sub.ReceiveSettings.MaxOutstandingMessages = perStream(s.cfg.MaxOutstandingMessages, s.cfg.NumGoroutines)
	sub.ReceiveSettings.ShutdownOptions = &pubsub.ShutdownOptions{Behavior: pubsub.ShutdownBehaviorWaitForProcessing, Timeout: 10 * time.Second}
	recvErr := make(chan error, 1)
	s.receiving.Store(true)
	go func() {
		err := sub.Receive(recvCtx, s.receive)
		s.receiving.Store(false)
		if !s.draining.Load() {
			s.recvExited.Store(true)
		}
		recvErr <- err
	}()

	// Objects written by other processes (a backfill, a replay of a repair)
	// leave pending markers for tables this sink may not be receiving: look
	// for them every LoadInterval, not only at start.
	go func() {
		tick := time.NewTicker(s.cfg.LoadInterval)
		defer tick.Stop()
		for {
			select {
			case <-recvCtx.Done():
				return
			case <-s.drain:
				return
			case <-tick.C:
				if s.draining.Load() {
					return
				}
				if err := s.resume(recvCtx); err != nil && recvCtx.Err() == nil {
					s.log.Warn("looking for pending objects", "err", err)
				}
			}
		}
	}()

	var err error
	select {
	case <-ctx.Done():
	case <-s.stop:
	case err = <-recvErr:
		recvErr <- nil
		if err != nil {
			err = fmt.Errorf("pulling %s: %w", s.cfg.Subscription, err)
		}
	}
	// Stop intake, flush, load, stop.
	s.draining.Store(true)
	s.mu.Lock()
	close(s.drain)
	s.mu.Unlock()
	s.flushers.Wait()
	close(s.flushed)
	stopRecv()
	<-recvErr
	s.workers.Wait()
	return err
}

// Close stops a running Run as ctx ending would and waits for it to return
// (or for ctx to end). It is safe to call twice, and before or without Run.
func (s *Sink) Close(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	if !s.started.Load() {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// halt stops abruptly, as a crash would: nothing buffered is written or
// acked; Pub/Sub redelivers it to the next sink.
func (s *Sink) halt() {
	s.mu.Lock()
	abort := s.abortWork
	s.mu.Unlock()
	if abort != nil {
		abort()
	}
	s.stopOnce.Do(func() { close(s.stop) })
}

// receive decodes a message and routes it to its table's buffer. A message
// that cannot be decoded is written to a dead-letter object and acked.
func (s *Sink) receive(ctx context.Context, m *pubsub.Message) {
	if s.draining.Load() {
		m.Nack()
		return
	}
	if schema.IsMarker(m.Data) {
		s.receiveMarker(ctx, m)
		return
	}
	// The envelope alone routes the change; its rows are decoded (and
	// checked) once, when its buffer is written.
	ev, es, err := s.store.DecodeHead(ctx, m.Data)
	if err != nil && Classify(err) == Retryable {
		m.Nack() // the schema store was unreachable: try again later
		return
	}
	if err != nil {
		s.deadLetterMessage(ctx, m, err)
		return
	}
	t := s.table(tableKey{ev.Schema, ev.Table})
	if t == nil {
		m.Nack()
		return
	}
	t.countReceived()
	if ev.Op == "u" || ev.Op == "d" {
		t.warnKeyless(es)
	}
	// The buffer keeps the message and the change's envelope, so what it
	// holds is the message's bytes and a small, fixed overhead per message.
	m.Attributes = nil // all said again in the data, and a map per message
	t.add(received{msg: m, ev: envelopeOf(ev), es: es})
}

// deadLetterMessage writes an undecodable message with its attributes and
// the reason, then acks it; if that write fails the message is nacked. It
// reports whether the message was acked.
func (s *Sink) deadLetterMessage(ctx context.Context, m *pubsub.Message, cause error) bool {
	body, err := json.MarshalIndent(map[string]any{
		"message_id": m.ID, "ordering_key": m.OrderingKey, "publish_time": m.PublishTime, "attributes": m.Attributes,
		"reason": cause.Error(), "data_base64": base64.StdEncoding.EncodeToString(m.Data),
	}, "", "  ")
	if err == nil {
		name := s.layout.DeadLetter("_undecodable", "msg-"+strings.ReplaceAll(m.ID, "/", "_"))
		s.log.Error("dead-lettering an undecodable message", "object", name, "attributes", m.Attributes, "err", cause)
		if err = s.writeObject(ctx, name, "application/json", body, nil); isPreconditionFailed(err) {
			err = nil
		}
	}
	if err != nil {
		s.log.Error("writing a dead-letter", "err", err)
		s.metrics.errors.WithLabelValues(decodeLabel, Classify(err).String()).Inc()
		m.Nack()
		return false
	}
	s.metrics.deadLetters.WithLabelValues(decodeLabel).Inc()
	s.undecodable.Add(1)
	m.Ack()
	return true
}

// table returns the table's worker, starting it on first use; nil once the
// sink is stopping.
func (s *Sink) table(k tableKey) *table {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tables[k]; ok {
		return t
	}
	select {
	case <-s.drain:
		return nil
	default:
	}
	t := newTable(s, k)
	s.tables[k] = t
	s.workers.Add(2)
	s.flushers.Add(1)
	go func() {
		defer s.workers.Done()
		defer s.flushers.Done()
		t.flushLoop(s.workCtx, s.drain)
	}()
	go func() {
		defer s.workers.Done()
		t.loadLoop(s.workCtx, s.drain, s.flushed)
	}()
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		t.applyLoop(s.workCtx, s.drain, s.flushed) // streamed changes (stream.go)
	}()
	return t
}

// resume starts the tables that have objects waiting to be loaded from an
// earlier run.
func (s *Sink) resume(ctx context.Context) error {
	for _, root := range []string{s.layout.PendingRoot(), s.layout.LoadRoot()} {
		attrs, err := s.list(ctx, root)
		if err != nil {
			return err
		}
		for _, a := range attrs {
			if a.Metadata["schema"] != "" {
				s.table(tableKey{a.Metadata["schema"], a.Metadata["table"]})
				continue
			}
			m, err := s.manifestAt(ctx, a.Name)
			if err != nil {
				return err
			}
			s.table(tableKey{m.Schema, m.Table})
		}
	}
	return nil
}

func (s *Sink) manifestAt(ctx context.Context, name string) (*manifest, error) {
	r, err := s.bucket.Object(name).NewReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	m := &manifest{}
	if err := json.NewDecoder(r).Decode(m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return m, nil
}

// changelog returns the flat changelog record of es, built once, with the
// column names its table's schema history gives it (schema.Store.Changelog):
// the names the objects of es are written with, whichever process writes
// or reads them.
func (s *Sink) changelog(ctx context.Context, es *schema.EventSchema) (*schema.Changelog, error) {
	s.mu.Lock()
	cl, ok := s.changelogs[es.Fingerprint]
	s.mu.Unlock()
	if ok {
		return cl, nil
	}
	cl, err := s.store.Changelog(ctx, es)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.changelogs[es.Fingerprint] = cl
	s.mu.Unlock()
	return cl, nil
}

// keyFields returns the BigQuery names of the key columns of table k: from
// Config.Keys, else from the stored schema's "pg_key" field attributes;
// none for a table with neither.
func (s *Sink) keyFields(k tableKey, cl *schema.Changelog) ([]string, error) {
	byPG := map[string]string{}
	for _, c := range cl.Columns {
		byPG[c.PGColumn] = cl.Column(c.Field)
	}
	if cols, ok := s.cfg.Keys[k.String()]; ok {
		out := make([]string, len(cols))
		for i, c := range cols {
			f, ok := byPG[c]
			if !ok {
				return nil, fmt.Errorf("key column %q of %s is not in its schema", c, k)
			}
			out[i] = f
		}
		return out, nil
	}
	key := storedKey(cl.Events.JSON)
	for i, f := range key {
		key[i] = cl.Column(f)
	}
	return key, nil
}

// storedKey reads key columns marked "pg_key": true on the row fields of a
// stored event schema (schemas written before capture marked them have
// none).
func storedKey(avsc string) []string {
	var env struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if json.Unmarshal([]byte(avsc), &env) != nil {
		return nil
	}
	for _, f := range env.Fields {
		var union []json.RawMessage
		if f.Name != "before" || json.Unmarshal(f.Type, &union) != nil || len(union) != 2 {
			continue
		}
		var row struct {
			Fields []struct {
				Name string `json:"name"`
				Key  bool   `json:"pg_key"`
			} `json:"fields"`
		}
		if json.Unmarshal(union[1], &row) != nil {
			return nil
		}
		var key []string
		for _, rf := range row.Fields {
			if rf.Key {
				key = append(key, rf.Name)
			}
		}
		return key
	}
	return nil
}

// warnKeyless logs once when a table the sink knows no key for gets updates
// or deletes: its current-state table cannot follow them.
func (t *table) warnKeyless(es *schema.EventSchema) {
	t.mu.Lock()
	warned := t.keyless
	t.keyless = true
	t.mu.Unlock()
	if warned {
		return
	}
	if _, ok := t.s.cfg.Keys[t.key.String()]; ok || len(storedKey(es.JSON)) > 0 {
		return
	}
	t.s.log.Warn("updates and deletes of a table with no known key: its current-state table keeps every inserted row; set its key columns in the config",
		"table", t.key)
}

// ensureSubscription creates the subscription when absent: ordered, with a
// retry policy and, when configured, a dead-letter policy.
func (s *Sink) ensureSubscription(ctx context.Context) error {
	name := "projects/" + s.cfg.Project + "/subscriptions/" + s.cfg.Subscription
	_, err := s.ps.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err == nil {
		return nil
	}
	if status.Code(err) != codes.NotFound {
		return fmt.Errorf("reading subscription %s: %w", name, err)
	}
	if s.cfg.Topic == "" {
		return fmt.Errorf("subscription %s does not exist and no topic is configured to create it on", name)
	}
	sub := &pubsubpb.Subscription{
		Name: name, Topic: "projects/" + s.cfg.Project + "/topics/" + s.cfg.Topic,
		EnableMessageOrdering: true, AckDeadlineSeconds: int32(s.cfg.AckDeadline / time.Second),
		RetryPolicy: &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(10 * time.Second), MaximumBackoff: durationpb.New(10 * time.Minute)},
	}
	if s.cfg.DeadLetterTopic != "" {
		sub.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     "projects/" + s.cfg.Project + "/topics/" + s.cfg.DeadLetterTopic,
			MaxDeliveryAttempts: DefaultMaxDeliveryAttempts,
		}
	}
	if _, err := s.ps.SubscriptionAdminClient.CreateSubscription(ctx, sub); err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("creating subscription %s: %w", name, err)
	}
	s.log.Info("created subscription", "subscription", name, "dead_letter_topic", s.cfg.DeadLetterTopic)
	return nil
}

// perStream is one pull stream's share of a flow-control bound over all of
// them. The client counts a message against its own flow control only
// while the callback runs, and the sink's returns once the message is
// buffered; what holds unacknowledged messages to the bound is the
// server's flow control, which each stream asks for on its own. So each
// stream asks for its share (rounded up, at least 1), and the streams
// together for the bound.
func perStream(bound, streams int) int {
	if streams < 1 {
		streams = 1
	}
	return max(1, (bound+streams-1)/streams)
}
