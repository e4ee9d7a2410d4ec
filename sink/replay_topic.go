package sink

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"math/big"
	"sort"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tributary-cdc/tributary/schema"
)

// DefaultReplayBuckets is the number of ordering buckets of a replayed
// topic.
const DefaultReplayBuckets = 32

// TopicReplayOptions say what ReplayToTopic publishes, and where.
type TopicReplayOptions struct {
	// Schema and Table name the Postgres table, spelled as in Postgres.
	Schema, Table string
	// From and To bound the changes by commit LSN or commit time, both
	// inclusive; zero Bounds are open.
	From, To Bound
	// Topic is the Pub/Sub topic ID published to (created when absent).
	Topic string
	// Buckets is N in the ordering key "<schema>.<table>/<bucket>";
	// default DefaultReplayBuckets.
	Buckets int
	// MaxOutstandingBytes bounds the bytes handed to the publisher and not
	// yet confirmed (flow control blocks beyond it); default 64 MiB.
	MaxOutstandingBytes int
	// Progress, when set, is called as records are read (at most twice a
	// second) and once done.
	Progress func(ReplayProgress)
}

// TopicReplayResult summarises a replay to a topic.
type TopicReplayResult struct {
	Table string `json:"table"`
	Topic string `json:"topic"`
	// Objects is how many data objects were read.
	Objects int `json:"objects"`
	// Events is how many changes were published; Messages counts the
	// messages, which is more when a truncate is published on every key.
	Events   int64 `json:"events"`
	Messages int64 `json:"messages"`
	// Duplicates is how many records repeated a change already published
	// (same commit_lsn and seq) and were dropped.
	Duplicates int64   `json:"duplicates"`
	Seconds    float64 `json:"seconds"`
}

// ReplayToTopic re-publishes a table's changes to a Pub/Sub topic, in
// (commit_lsn, seq) order, from its Avro objects on GCS alone, in the event
// contract of docs/events.md: each message is the change in Avro
// single-object encoding with the event schema the object was written with
// (read from the schema store), with the attributes table, op, commit_lsn,
// seq and schema_fingerprint, published with message ordering.
//
// Each event is rebuilt from the flat changelog record: the envelope
// fields; after is the row for inserts, updates and snapshot reads; before
// is the row as written for deletes, and the old key
// (_tributary_before_key) for updates that carry one. The changelog keeps
// only the key columns of the old row, so before carries the key columns
// only, as capture sends it under the default replica identity (under
// REPLICA IDENTITY FULL capture sent the whole old row; a replay does not).
//
// The ordering key is "<schema>.<table>/<bucket>", bucket a stable FNV-1a
// hash of the canonical encoding of the row's key column values (every
// column for a table without a key) modulo Buckets. It is computed from the
// decoded values, not from Postgres' text as capture's is, so a replayed
// topic's keys are consistent within the replay but differ from the live
// topic's. Every change of one row lands on one key, so a row's changes
// arrive in commit order on an ordered subscription. A truncate is
// published on every key, as capture does.
//
// Objects are read with a merge by (commit_lsn, seq): those whose LSN ranges
// overlap (written by several sink instances) are interleaved, and records
// of the same change (redelivered at the sink) are published once. Every
// publish result is checked; the first failure stops the replay, and what
// was published before it stays published.
func ReplayToTopic(ctx context.Context, cfg Config, ps *pubsub.Client, gcs *storage.Client, opts TopicReplayOptions) (*TopicReplayResult, error) {
	started := time.Now()
	switch {
	case opts.Schema == "" || opts.Table == "":
		return nil, errors.New("replay: no table given")
	case opts.Topic == "":
		return nil, errors.New("replay: no topic given")
	}
	if err := checkRange(opts.From, opts.To); err != nil {
		return nil, err
	}
	if opts.Buckets <= 0 {
		opts.Buckets = DefaultReplayBuckets
	}
	if opts.MaxOutstandingBytes <= 0 {
		opts.MaxOutstandingBytes = 64 << 20
	}
	s := New(cfg, ps, gcs, nil)
	r := &replay{s: s, key: tableKey{opts.Schema, opts.Table}, opts: ReplayOptions{Schema: opts.Schema, Table: opts.Table, From: opts.From, To: opts.To}}
	tr := &topicReplay{replay: r, opts: opts, topic: "projects/" + cfg.Project + "/topics/" + opts.Topic}
	res, err := tr.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("replaying %s to %s: %w", r.key, tr.topic, err)
	}
	res.Seconds = time.Since(started).Seconds()
	return res, nil
}

type topicReplay struct {
	*replay
	opts  TopicReplayOptions
	topic string
}

func (r *topicReplay) run(ctx context.Context) (*TopicReplayResult, error) {
	s, log := r.s, r.s.log
	res := &TopicReplayResult{Table: r.key.String(), Topic: r.topic}
	objs, err := r.objects(ctx)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no data objects under gs://%s/%s/ in the range", s.cfg.Bucket, s.layout.TableDir(r.key.Schema, r.key.Table))
	}
	res.Objects = len(objs)
	log.Info("replay: objects selected", "table", r.key, "objects", len(objs), "topic", r.topic)
	if err := r.ensureTopic(ctx); err != nil {
		return nil, err
	}

	pub := s.ps.Publisher(r.topic)
	pub.EnableMessageOrdering = true
	pub.PublishSettings.FlowControlSettings = pubsub.FlowControlSettings{
		MaxOutstandingBytes: r.opts.MaxOutstandingBytes, LimitExceededBehavior: pubsub.FlowControlBlock,
	}
	pub.PublishSettings.CountThreshold = 1000
	pub.PublishSettings.DelayThreshold = 10 * time.Millisecond

	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make(chan pendingPublish, 1<<14)
	var checked sync.WaitGroup
	checked.Add(1)
	go func() {
		defer checked.Done()
		for p := range results {
			if _, err := p.res.Get(context.WithoutCancel(ctx)); err != nil {
				// The key is paused after a failed ordered publish: resume it
				// so the publisher can be stopped, and end the replay.
				pub.ResumePublish(p.key)
				cancel(fmt.Errorf("publishing %s on ordering key %s: %w", p.id, p.key, err))
			}
		}
	}()
	prog := newReplayProgress(r.opts.Progress, r.key.String())
	prog.selected(objs)
	prog.step("publishing", 0, 0)
	err = r.publishAll(pctx, pub, objs, res, results, prog)
	close(results)
	checked.Wait()
	pub.Stop()
	if cause := context.Cause(pctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return nil, cause // a publish failed: that is the error to report
	}
	if err != nil {
		return nil, err
	}
	log.Info("replay: published", "table", r.key, "topic", r.topic, "events", res.Events, "messages", res.Messages, "duplicates", res.Duplicates)
	prog.step("done", 0, 0)
	return res, nil
}

type pendingPublish struct {
	res *pubsub.PublishResult
	key string
	id  string
}

// ensureTopic creates the topic when absent; without the permission to
// create topics it takes the topic as provisioned elsewhere.
func (r *topicReplay) ensureTopic(ctx context.Context) error {
	_, err := r.s.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: r.topic})
	switch status.Code(err) {
	case codes.OK, codes.AlreadyExists:
		return nil
	case codes.PermissionDenied:
		r.s.log.Info("not allowed to create topics; using the topic as provisioned", "topic", r.topic)
		return nil
	}
	return fmt.Errorf("creating topic %s: %w", r.topic, err)
}

// publishAll merges the objects' records by (commit_lsn, seq) and publishes
// each change in the range once.
func (r *topicReplay) publishAll(ctx context.Context, pub *pubsub.Publisher, objs []ReplayObject, res *TopicReplayResult, results chan<- pendingPublish, prog *replayProgress) error {
	tableAttr := schema.QuoteIdent(r.key.Schema) + "." + schema.QuoteIdent(r.key.Table)
	m := &objectMerge{}
	defer m.close()
	next := 0
	var last recordPos
	var buf []byte
	for {
		// Open every object that may hold a change at or before the
		// smallest head: its changes are all at or after its first LSN.
		for next < len(objs) && (m.Len() == 0 || objs[next].First <= m.cursors[0].pos.lsn) {
			c, err := r.open(ctx, objs[next])
			if err != nil {
				return err
			}
			next++
			if c != nil {
				heap.Push(m, c)
			}
		}
		if m.Len() == 0 {
			return nil
		}
		c := m.cursors[0]
		rec, pos := c.rec, c.pos
		if err := c.advance(); err != nil {
			return err
		}
		if c.rec == nil {
			heap.Pop(m)
			c.close()
			prog.read(1, 1)
		} else {
			heap.Fix(m, 0)
			prog.read(0, 1)
		}
		ev, err := replayEvent(c.cl, rec, r.key)
		if err != nil {
			return fmt.Errorf("reading a record of %s: %w", c.name, err)
		}
		if !inRange(ev, r.opts.From, r.opts.To) {
			continue
		}
		// The merge yields every record of one change in a row (no LSN is
		// 0, so the zero last matches nothing).
		if pos == last {
			res.Duplicates++
			continue
		}
		last = pos
		if buf, err = c.cl.Events.Encode(buf[:0], ev); err != nil {
			return err
		}
		msg := &pubsub.Message{
			Data: append([]byte(nil), buf...),
			Attributes: map[string]string{
				"table": tableAttr, "op": ev.Op, "commit_lsn": lsnText(ev.CommitLSN),
				"seq": strconv.FormatInt(ev.Seq, 10), "schema_fingerprint": c.cl.Events.FingerprintHex(),
			},
		}
		keys := []string{tableAttr + "/" + strconv.Itoa(ReplayBucket(c.cl, ev, r.opts.Buckets))}
		if ev.Op == "t" {
			keys = keys[:0]
			for b := 0; b < r.opts.Buckets; b++ {
				keys = append(keys, tableAttr+"/"+strconv.Itoa(b))
			}
		}
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return err
			}
			mk := *msg
			mk.OrderingKey = k
			results <- pendingPublish{res: pub.Publish(ctx, &mk), key: k, id: ev.Identity()}
			res.Messages++
		}
		res.Events++
	}
}

// inRange reports whether ev lies in [from, to]; the changelog's times have
// microsecond precision.
func inRange(ev *schema.Event, from, to Bound) bool {
	switch {
	case from.LSN != 0 && ev.CommitLSN < from.LSN,
		to.LSN != 0 && ev.CommitLSN > to.LSN,
		!from.Time.IsZero() && ev.CommitTime.Before(from.Time),
		!to.Time.IsZero() && ev.CommitTime.After(to.Time):
		return false
	}
	return true
}

// open starts reading an object; nil when it holds no record.
func (r *topicReplay) open(ctx context.Context, o ReplayObject) (*objectCursor, error) {
	fp, err := strconv.ParseUint(o.Fingerprint, 16, 64)
	if err != nil {
		return nil, fmt.Errorf("bad schema fingerprint %q on %s", o.Fingerprint, o.Name)
	}
	es, err := r.s.store.Get(ctx, fp)
	if err != nil {
		return nil, err
	}
	cl, err := r.s.changelog(ctx, es)
	if err != nil {
		return nil, err
	}
	rd, err := r.s.bucket.Object(o.Name).NewReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.Name, err)
	}
	ocf, err := goavro.NewOCFReader(rd)
	if err != nil {
		rd.Close()
		return nil, fmt.Errorf("reading %s: %w", o.Name, err)
	}
	c := &objectCursor{name: o.Name, cl: cl, rd: rd, ocf: ocf}
	if err := c.advance(); err != nil {
		c.close()
		return nil, err
	}
	if c.rec == nil {
		c.close()
		return nil, nil
	}
	return c, nil
}

// recordPos is a change's place in the table's order.
type recordPos struct {
	lsn uint64
	seq int64
}

func (p recordPos) less(q recordPos) bool {
	if p.lsn != q.lsn {
		return p.lsn < q.lsn
	}
	return p.seq < q.seq
}

// objectCursor is an open data object and its next record.
type objectCursor struct {
	name string
	cl   *schema.Changelog
	rd   *storage.Reader
	ocf  *goavro.OCFReader
	rec  map[string]any // nil once the object is read to its end
	pos  recordPos
}

func (c *objectCursor) advance() error {
	c.rec = nil
	if !c.ocf.Scan() {
		if err := c.ocf.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", c.name, err)
		}
		return nil
	}
	v, err := c.ocf.Read()
	if err != nil {
		return fmt.Errorf("reading %s: %w", c.name, err)
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("reading %s: a record is %T", c.name, v)
	}
	lsn, ok1 := rec[schema.ColCommitLSN].(int64)
	seq, ok2 := rec[schema.ColSeq].(int64)
	if !ok1 || !ok2 {
		return fmt.Errorf("reading %s: a record lacks %s or %s", c.name, schema.ColCommitLSN, schema.ColSeq)
	}
	c.rec, c.pos = rec, recordPos{uint64(lsn), seq}
	return nil
}

func (c *objectCursor) close() {
	if c.rd != nil {
		_ = c.rd.Close()
		c.rd = nil
	}
}

// objectMerge is a heap of open objects by their next record; ties go to
// the object opened first.
type objectMerge struct {
	cursors []*objectCursor
	opened  map[*objectCursor]int
	n       int
}

func (m *objectMerge) Len() int { return len(m.cursors) }
func (m *objectMerge) Less(i, j int) bool {
	a, b := m.cursors[i], m.cursors[j]
	if a.pos != b.pos {
		return a.pos.less(b.pos)
	}
	return m.opened[a] < m.opened[b]
}
func (m *objectMerge) Swap(i, j int) { m.cursors[i], m.cursors[j] = m.cursors[j], m.cursors[i] }
func (m *objectMerge) Push(x any) {
	if m.opened == nil {
		m.opened = map[*objectCursor]int{}
	}
	c := x.(*objectCursor)
	m.opened[c] = m.n
	m.n++
	m.cursors = append(m.cursors, c)
}
func (m *objectMerge) Pop() any {
	c := m.cursors[len(m.cursors)-1]
	m.cursors = m.cursors[:len(m.cursors)-1]
	delete(m.opened, c)
	return c
}

func (m *objectMerge) close() {
	for _, c := range m.cursors {
		c.close()
	}
}

// replayEvent rebuilds the event a changelog record was flattened from (see
// schema.Changelog.Record): after is the row for c, u and r; before is the
// row as written for d, and the old key for u when the record has one.
func replayEvent(cl *schema.Changelog, rec map[string]any, k tableKey) (*schema.Event, error) {
	ev := &schema.Event{Schema: k.Schema, Table: k.Table}
	var ok [6]bool
	ev.Op, ok[0] = rec[schema.ColOp].(string)
	var lsn, commitLSN int64
	commitLSN, ok[1] = rec[schema.ColCommitLSN].(int64)
	lsn, ok[2] = rec[schema.ColLSN].(int64)
	ev.Seq, ok[3] = rec[schema.ColSeq].(int64)
	ev.Xid, ok[4] = rec[schema.ColXid].(int64)
	ev.CommitTime, ok[5] = rec[schema.ColCommitTS].(time.Time)
	for i, present := range ok {
		if !present {
			return nil, fmt.Errorf("envelope field %d missing or of another type", i)
		}
	}
	ev.CommitLSN, ev.LSN, ev.CommitTime = uint64(commitLSN), uint64(lsn), ev.CommitTime.UTC()
	if u, isList := rec[schema.ColUnchanged].([]any); isList {
		for _, f := range u {
			if name, isText := f.(string); isText {
				ev.Unchanged = append(ev.Unchanged, cl.Field(name))
			}
		}
	}
	row := func() map[string]any {
		out := make(map[string]any, len(cl.Columns))
		for _, c := range cl.Columns {
			out[c.Field] = rec[cl.Column(c.Field)]
		}
		return out
	}
	switch ev.Op {
	case "c", "r":
		ev.After = row()
	case "u":
		ev.After = row()
		if bk := unionRecord(rec[schema.ColBeforeKey]); bk != nil {
			ev.Before = make(map[string]any, len(cl.Columns))
			for _, c := range cl.Columns {
				ev.Before[c.Field] = nil
			}
			for _, key := range cl.Keys {
				ev.Before[key.Field] = bk[cl.Column(key.Field)]
			}
		}
	case "d":
		ev.Before = row()
	case "t":
	default:
		return nil, fmt.Errorf("unknown op %q", ev.Op)
	}
	return ev, nil
}

// unionRecord unwraps a ["null", record] value as goavro decodes it.
func unionRecord(v any) map[string]any {
	u, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for _, r := range u {
		if rec, ok := r.(map[string]any); ok {
			return rec
		}
	}
	return nil
}

// ReplayBucket is the ordering bucket of ev's row in a replayed topic, in
// [0, n): an FNV-1a hash of the canonical encoding of its key columns'
// values (of after, or of before for deletes; every column for a table
// without a key). The values are those decoded from the changelog, so the
// bucket is stable across replays and schema versions that keep the key,
// but is not capture's (which hashes pgoutput's text).
func ReplayBucket(cl *schema.Changelog, ev *schema.Event, n int) int {
	row := ev.After
	if row == nil {
		row = ev.Before
	}
	if row == nil || n <= 1 {
		return 0
	}
	cols := cl.Keys
	if len(cols) == 0 {
		cols = cl.Columns
	}
	h := fnv.New64a()
	for _, c := range cols {
		hashValue(h, row[c.Field])
	}
	return int(h.Sum64() % uint64(n))
}

// hashValue writes a canonical encoding of a goavro native value: a kind
// byte, then a length-prefixed or fixed-width body. Union wrappers are
// skipped (the branch name depends on the schema's names, not the value);
// record fields are written in name order.
func hashValue(h hash.Hash64, v any) {
	var b [9]byte
	put := func(kind byte, n uint64) {
		b[0] = kind
		binary.LittleEndian.PutUint64(b[1:], n)
		h.Write(b[:])
	}
	switch v := v.(type) {
	case nil:
		put(0, 0)
	case bool:
		n := uint64(0)
		if v {
			n = 1
		}
		put(1, n)
	case int32:
		put(2, uint64(int64(v)))
	case int64:
		put(2, uint64(v))
	case int:
		put(2, uint64(int64(v)))
	case float32:
		put(3, math.Float64bits(float64(v)))
	case float64:
		put(3, math.Float64bits(v))
	case string:
		put(4, uint64(len(v)))
		h.Write([]byte(v))
	case []byte:
		put(5, uint64(len(v)))
		h.Write(v)
	case time.Time:
		put(6, uint64(v.UnixMicro()))
	case time.Duration:
		put(7, uint64(v))
	case *big.Rat:
		s := v.RatString()
		put(8, uint64(len(s)))
		h.Write([]byte(s))
	case []any:
		put(9, uint64(len(v)))
		for _, x := range v {
			hashValue(h, x)
		}
	case map[string]any:
		if len(v) == 1 {
			for _, x := range v { // a union branch
				if _, isRecord := x.(map[string]any); !isRecord {
					hashValue(h, x)
					return
				}
			}
		}
		names := make([]string, 0, len(v))
		for k := range v {
			names = append(names, k)
		}
		sort.Strings(names)
		put(10, uint64(len(names)))
		for _, k := range names {
			put(4, uint64(len(k)))
			h.Write([]byte(k))
			hashValue(h, v[k])
		}
	default:
		s := fmt.Sprint(v)
		put(11, uint64(len(s)))
		h.Write([]byte(s))
	}
}
