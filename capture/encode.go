package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"github.com/jackc/pglogrepl"
	"google.golang.org/api/googleapi"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/schema"
)

// tableVersion is the current mapping of one relation.
type tableVersion struct {
	rel    *Relation
	table  *schema.Table
	events *schema.EventSchema
	// enc encodes events straight from the tuples' texts; nil if it could
	// not be compiled, and then events take Table.Record and
	// EventSchema.Encode, whose output it reproduces byte for byte.
	enc         *schema.Encoder
	name        string   // the table attribute: schema.table, quoted where needed
	fingerprint string   // the schema_fingerprint attribute
	keys        []string // the ordering key of each bucket
}

// encoder turns changes into Pub/Sub messages. It keeps the current schema
// version of every relation, stores each new version in GCS before the first
// message that uses it, and writes rows that cannot be represented to the
// dead-letter.
type encoder struct {
	resolver   schema.TypeResolver
	forget     func() // drops the resolver's cached catalog answers
	store      *schema.Store
	deadLetter *storage.BucketHandle
	prefix     string
	buckets    int
	tables     map[uint32]*tableVersion
	buf        []byte
	slab       slab // the messages' data
	deadCount  int64
	// Scratch row images, reused from change to change: the texts they
	// point to are only valid while one change is encoded.
	before, after [][]byte
	// The commit_lsn attribute of the transaction seen last.
	lsn     pglogrepl.LSN
	lsnText string
	// markerStored is set once the marker schema is in the store.
	markerStored bool
}

func (e *encoder) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	rel := newRelation(m)
	if e.forget != nil {
		e.forget() // a composite or domain may have changed with the table
	}
	cols := make([]schema.Column, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = schema.Column{Name: c.Name, TypeOID: c.DataType, TypeMod: c.TypeModifier, Key: c.Flags&1 != 0}
	}
	table, err := schema.MapTable(m.Namespace, m.RelationName, cols, e.resolver)
	if err != nil {
		if Retryable(err) { // the catalog lookup lost its connection: try again
			return err
		}
		return fatal(err, "see docs/type-mapping.md for the column's type; a lookup error above names its own cause")
	}
	es, err := schema.NewEventSchema(table)
	if err != nil {
		return err
	}
	if err := e.store.Put(ctx, es); err != nil {
		return err
	}
	tv := &tableVersion{rel: rel, table: table, events: es,
		name: quoteIdent(m.Namespace) + "." + quoteIdent(m.RelationName), fingerprint: es.FingerprintHex(),
		keys: make([]string, max(e.buckets, 1))}
	for b := range tv.keys {
		tv.keys[b] = OrderingKey(rel, b)
	}
	if tv.enc, err = schema.NewEncoder(es); err != nil {
		tv.enc = nil // not expected for a schema NewEventSchema made; the general path is always right
	}
	e.tables[m.RelationID] = tv
	return nil
}

// Message attribute names: the contract consumers filter and route on.
const (
	AttrTable       = "table"
	AttrOp          = "op"
	AttrCommitLSN   = "commit_lsn"
	AttrSeq         = "seq"
	AttrFingerprint = "schema_fingerprint"
)

// message encodes ch. A nil message with a nil error means the row went to
// the dead-letter.
func (e *encoder) message(ctx context.Context, ch *Change) (*pubsub.Message, error) {
	tv, ok := e.tables[ch.Relation.ID]
	if !ok {
		return nil, fmt.Errorf("change to relation %d before its Relation message", ch.Relation.ID)
	}
	data, err := e.encode(tv, ch)
	var dl *schema.DeadLetterError
	if errors.As(err, &dl) {
		return nil, e.deadLettered(ctx, tv, ch, dl)
	}
	if err != nil {
		return nil, err
	}
	e.buf = data
	if ch.CommitLSN != e.lsn || e.lsnText == "" {
		e.lsn, e.lsnText = ch.CommitLSN, ch.CommitLSN.String()
	}
	return &pubsub.Message{
		Data:        e.slab.copy(data),
		OrderingKey: tv.keys[ch.Bucket(len(tv.keys))],
		Attributes: map[string]string{
			AttrTable: tv.name, AttrOp: string(ch.Op),
			AttrCommitLSN: e.lsnText, AttrSeq: strconv.FormatInt(ch.Seq, 10), AttrFingerprint: tv.fingerprint,
		},
	}, nil
}

// encode appends ch's event to e.buf in single-object encoding. Unchanged
// TOAST values are null in the row image and named in the event's
// unchanged list.
func (e *encoder) encode(tv *tableVersion, ch *Change) ([]byte, error) {
	ev := &schema.TextEvent{
		Op: string(ch.Op), CommitLSN: uint64(ch.CommitLSN), LSN: uint64(ch.LSN), Seq: ch.Seq, Xid: int64(ch.Xid),
		CommitTime: ch.CommitTime, Schema: ch.Relation.Namespace, Table: ch.Relation.Name,
	}
	ev.Before = texts(&e.before, len(tv.table.Columns), ch.Before)
	ev.After = texts(&e.after, len(tv.table.Columns), ch.After)
	for i, c := range ch.After {
		if c.DataType == colUnchanged && i < len(tv.table.Columns) {
			ev.Unchanged = append(ev.Unchanged, tv.table.Columns[i].Name)
		}
	}
	if tv.enc != nil {
		return tv.enc.Encode(e.buf[:0], ev)
	}
	full := &schema.Event{Op: ev.Op, CommitLSN: ev.CommitLSN, LSN: ev.LSN, Seq: ev.Seq, Xid: ev.Xid, CommitTime: ev.CommitTime,
		Schema: ev.Schema, Table: ev.Table, Unchanged: ev.Unchanged}
	var err error
	if ev.Before != nil {
		if full.Before, err = tv.table.Record(ev.Before); err != nil {
			return nil, err
		}
	}
	if ev.After != nil {
		if full.After, err = tv.table.Record(ev.After); err != nil {
			return nil, err
		}
	}
	return tv.events.Encode(e.buf[:0], full)
}

// texts is a tuple's row image as schema reads it, in *scratch: the text of
// each of n columns, nil for NULL and for an unchanged TOAST value; nil
// for an absent tuple.
func texts(scratch *[][]byte, n int, tuple []*pglogrepl.TupleDataColumn) [][]byte {
	if tuple == nil {
		return nil
	}
	if *scratch == nil || cap(*scratch) < n { // non-nil even for a table without columns
		*scratch = make([][]byte, n)
	}
	values := (*scratch)[:n]
	clear(values)
	for i, c := range tuple {
		if i < n && c.DataType == colText {
			values[i] = c.Data
		}
	}
	return values
}

// deadLetter is the object written for a row that cannot be represented: the
// whole row as Postgres printed it, so nothing is lost, and why.
type deadLetter struct {
	Table     string            `json:"table"`
	Op        string            `json:"op"`
	CommitLSN string            `json:"commit_lsn"`
	Seq       int64             `json:"seq"`
	Key       map[string]string `json:"key"`
	Column    string            `json:"column"`
	Value     string            `json:"value"`
	Reason    string            `json:"reason"`
	Before    map[string]any    `json:"before,omitempty"`
	After     map[string]any    `json:"after,omitempty"`
}

func (e *encoder) deadLettered(ctx context.Context, tv *tableVersion, ch *Change, dl *schema.DeadLetterError) error {
	d := deadLetter{
		Table: quoteIdent(ch.Relation.Namespace) + "." + quoteIdent(ch.Relation.Name), Op: string(ch.Op),
		CommitLSN: ch.CommitLSN.String(), Seq: ch.Seq, Key: map[string]string{},
		Column: dl.Column, Value: dl.Value, Reason: dl.Reason,
		Before: textRow(tv.rel, ch.Before), After: textRow(tv.rel, ch.After),
	}
	key := ch.After
	if key == nil {
		key = ch.Before
	}
	for _, i := range tv.rel.KeyIdx {
		if i < len(key) && key[i].DataType == colText {
			d.Key[tv.rel.Columns[i].Name] = string(key[i].Data)
		}
	}
	body, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	name := fmt.Sprintf("_deadletter/%s/%016x-%08d.json", schema.GCSSegment(ch.Relation.Namespace, ch.Relation.Name), uint64(ch.CommitLSN), ch.Seq)
	if e.prefix != "" {
		name = e.prefix + "/" + name
	}
	err = gcp.WriteNew(ctx, e.deadLetter.Object(name), "application/json", body, nil)
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed {
		err = nil // written before this restart: the same change, the same object
	}
	if err != nil {
		return fmt.Errorf("writing dead-letter %s: %w", name, err)
	}
	e.deadCount++
	return nil
}

// textRow is a tuple as Postgres printed it: text, null, or marked unchanged.
func textRow(rel *Relation, tuple []*pglogrepl.TupleDataColumn) map[string]any {
	if tuple == nil {
		return nil
	}
	out := make(map[string]any, len(tuple))
	for i, c := range tuple {
		if i >= len(rel.Columns) {
			break
		}
		switch c.DataType {
		case colText:
			out[rel.Columns[i].Name] = string(c.Data)
		case colNull:
			out[rel.Columns[i].Name] = nil
		case colUnchanged:
			out[rel.Columns[i].Name] = map[string]bool{"unchanged": true}
		}
	}
	return out
}

// slab hands out copies of byte slices carved from larger blocks, so that
// many small messages cost one allocation. A block stays in memory while
// any message carved from it does.
type slab struct {
	block []byte
}

// slabBlock is the size of a slab's blocks; larger data get their own.
const slabBlock = 64 << 10

// copy returns a copy of b that shares no bytes with any other copy.
func (s *slab) copy(b []byte) []byte {
	n := len(b)
	if n > slabBlock/4 {
		return append([]byte(nil), b...)
	}
	if cap(s.block)-len(s.block) < n {
		s.block = make([]byte, 0, slabBlock)
	}
	start := len(s.block)
	s.block = append(s.block, b...)
	return s.block[start : start+n : start+n]
}
