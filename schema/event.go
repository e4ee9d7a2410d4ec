package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/linkedin/goavro/v2"
)

// Event is one row change, the contract between capture and every consumer.
// Before and After are goavro native row records of the table's AvroSchema
// (nil when absent); Unchanged names the columns whose TOASTed values
// Postgres did not send because an update left them as they were: their
// After value is null and must never overwrite a real value downstream.
type Event struct {
	Op         string    // c insert, u update, d delete, t truncate, r snapshot read
	CommitLSN  uint64    // LSN of the transaction's commit record
	LSN        uint64    // LSN of the change's own WAL record
	Seq        int64     // position within the transaction, from 0
	Xid        int64     // transaction id
	CommitTime time.Time // commit timestamp, microsecond precision
	Schema     string    // Postgres schema, as spelled there
	Table      string    // Postgres table, as spelled there
	Before     map[string]any
	After      map[string]any
	Unchanged  []string // row-record field names (Mapping.Name), not Postgres names
}

// Identity returns "commit_lsn:seq", which names a change uniquely: a
// duplicate delivered after a restart carries the same identity.
func (e *Event) Identity() string {
	return strconv.FormatUint(e.CommitLSN, 10) + ":" + strconv.FormatInt(e.Seq, 10)
}

// EventSchema is one version of a table's event schema: the envelope around
// the table's row record. Its Fingerprint (CRC-64-AVRO of the parsing
// canonical form) names it on the wire and in the schema store.
type EventSchema struct {
	Table       *Table
	JSON        string
	Codec       *goavro.Codec
	Fingerprint uint64
	rowName     string // full name of the row record, for union branches
	head        bool   // the schema begins with headFields: DecodeHead reads them alone
}

// NewEventSchema wraps t's row record in the event envelope. Every field of
// the row record is nullable with default null, so files written with one
// version read with a later one that added columns.
func NewEventSchema(t *Table) (*EventSchema, error) {
	var row map[string]any
	if err := json.Unmarshal([]byte(t.AvroSchema), &row); err != nil {
		return nil, fmt.Errorf("reading row schema of %s.%s: %w", quoteIdent(t.Schema), quoteIdent(t.Name), err)
	}
	rowName, _ := row["name"].(string)
	envelope := map[string]any{
		"type":      "record",
		"name":      rowName + "_event",
		"doc":       fmt.Sprintf("A change of Postgres table %s.%s", quoteIdent(t.Schema), quoteIdent(t.Name)),
		"tributary": map[string]any{"schema": t.Schema, "table": t.Name},
		"fields": []any{
			map[string]any{"name": "op", "type": "string", "doc": "c insert, u update, d delete, t truncate, r snapshot read"},
			map[string]any{"name": "commit_lsn", "type": "long", "doc": "LSN of the commit record"},
			map[string]any{"name": "lsn", "type": "long", "doc": "LSN of the change's own WAL record"},
			map[string]any{"name": "seq", "type": "long", "doc": "position within the transaction"},
			map[string]any{"name": "xid", "type": "long"},
			map[string]any{"name": "commit_ts", "type": map[string]any{"type": "long", "logicalType": "timestamp-micros"}},
			map[string]any{"name": "schema", "type": "string"},
			map[string]any{"name": "table", "type": "string"},
			map[string]any{"name": "unchanged", "type": map[string]any{"type": "array", "items": "string"}, "default": []any{},
				"doc": "columns whose unchanged TOASTed values were not sent: keep their old values"},
			map[string]any{"name": "before", "type": []any{"null", row}, "default": nil,
				"doc": "replica-identity columns of the old row (every column under REPLICA IDENTITY FULL)"},
			map[string]any{"name": "after", "type": []any{"null", rowName}, "default": nil},
		},
	}
	b, err := json.Marshal(envelope)
	if err != nil {
		return nil, err
	}
	return ParseEventSchema(string(b), t)
}

// ParseEventSchema reads a stored event schema (an .avsc written by
// NewEventSchema). t may be nil when the reader has no mapping at hand.
func ParseEventSchema(avsc string, t *Table) (*EventSchema, error) {
	codec, err := goavro.NewCodec(avsc)
	if err != nil {
		return nil, fmt.Errorf("parsing event schema: %w", err)
	}
	s := &EventSchema{Table: t, JSON: avsc, Codec: codec, Fingerprint: codec.Rabin, head: hasHead(avsc)}
	if s.rowName, err = afterBranch(avsc); err != nil {
		return nil, err
	}
	return s, nil
}

// FingerprintHex is the fingerprint as 16 lower-case hex digits, the name of
// the schema's .avsc in the store.
func (s *EventSchema) FingerprintHex() string { return fmt.Sprintf("%016x", s.Fingerprint) }

// Native returns e as the goavro native datum of this schema.
func (s *EventSchema) Native(e *Event) map[string]any {
	unchanged := make([]any, len(e.Unchanged))
	for i, u := range e.Unchanged {
		unchanged[i] = u
	}
	return map[string]any{
		"op": e.Op, "commit_lsn": int64(e.CommitLSN), "lsn": int64(e.LSN), "seq": e.Seq, "xid": e.Xid,
		"commit_ts": e.CommitTime.UTC(), "schema": e.Schema, "table": e.Table, "unchanged": unchanged,
		"before": s.row(e.Before), "after": s.row(e.After),
	}
}

func (s *EventSchema) row(r map[string]any) any {
	if r == nil {
		return nil
	}
	return goavro.Union(s.rowName, r)
}

// afterBranch finds the full name of the row record: the non-null branch of
// the envelope's "after" field.
func afterBranch(avsc string) (string, error) {
	var env struct {
		Namespace string `json:"namespace"`
		Fields    []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(avsc), &env); err != nil {
		return "", fmt.Errorf("reading event schema: %w", err)
	}
	for _, f := range env.Fields {
		var t []string
		if f.Name == "after" && json.Unmarshal(f.Type, &t) == nil && len(t) == 2 {
			return t[1], nil
		}
	}
	return "", errors.New("reading event schema: no [\"null\", row] field named after")
}

// Encode returns e in Avro single-object encoding: 0xC3 0x01, the 8-byte
// little-endian fingerprint, then the datum.
func (s *EventSchema) Encode(buf []byte, e *Event) ([]byte, error) {
	out, err := s.Codec.SingleFromNative(buf, s.Native(e))
	if err != nil {
		return nil, fmt.Errorf("encoding event %s of %s.%s: %w", e.Identity(), quoteIdent(e.Schema), quoteIdent(e.Table), err)
	}
	return out, nil
}

// ErrNotSingleObject reports data that does not start with the single-object
// marker.
var ErrNotSingleObject = errors.New("not Avro single-object encoding")

// SingleObjectFingerprint returns the writer schema fingerprint of a
// single-object encoded message.
func SingleObjectFingerprint(data []byte) (uint64, error) {
	if len(data) < 10 || data[0] != 0xC3 || data[1] != 0x01 {
		return 0, ErrNotSingleObject
	}
	var fp uint64
	for i := 9; i >= 2; i-- {
		fp = fp<<8 | uint64(data[i])
	}
	return fp, nil
}

// Decode reads a single-object encoded event written with this schema.
func (s *EventSchema) Decode(data []byte) (*Event, error) {
	native, _, err := s.Codec.NativeFromSingle(data)
	if err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding event: datum is %T, not a record", native)
	}
	e := &Event{
		Op: m["op"].(string), CommitLSN: uint64(m["commit_lsn"].(int64)), LSN: uint64(m["lsn"].(int64)),
		Seq: m["seq"].(int64), Xid: m["xid"].(int64), CommitTime: m["commit_ts"].(time.Time),
		Schema: m["schema"].(string), Table: m["table"].(string),
		Before: unwrapRow(m["before"]), After: unwrapRow(m["after"]),
	}
	for _, u := range m["unchanged"].([]any) {
		e.Unchanged = append(e.Unchanged, u.(string))
	}
	return e, nil
}

func unwrapRow(v any) map[string]any {
	u, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for _, r := range u {
		if row, ok := r.(map[string]any); ok {
			return row
		}
	}
	return nil
}

// StoredColumn is a row field as a stored event schema describes it.
type StoredColumn struct {
	Field    string // Avro field name in the row record
	PGColumn string // the Postgres column, as spelled there
	PGType   string // the Postgres type, as mapped
	// BigQuery is the column's BigQuery field schema in REST JSON form.
	BigQuery json.RawMessage
	// Avro is the field's Avro type (["null", T]).
	Avro json.RawMessage
	// Key is set for replica-identity columns.
	Key bool
}

// Columns lists the row record's fields with the Postgres columns they hold,
// read from the schema text alone: what a consumer without a connection to
// Postgres knows.
func (s *EventSchema) Columns() ([]StoredColumn, error) {
	var env struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(s.JSON), &env); err != nil {
		return nil, fmt.Errorf("reading event schema: %w", err)
	}
	for _, f := range env.Fields {
		if f.Name != "before" {
			continue
		}
		var union []json.RawMessage
		if err := json.Unmarshal(f.Type, &union); err != nil || len(union) != 2 {
			return nil, errors.New("reading event schema: before is not [null, row]")
		}
		var row struct {
			Fields []struct {
				Name     string          `json:"name"`
				PGColumn string          `json:"pg_column"`
				PGType   string          `json:"pg_type"`
				BigQuery json.RawMessage `json:"bigquery"`
				Type     json.RawMessage `json:"type"`
				Key      bool            `json:"pg_key"`
			} `json:"fields"`
		}
		if err := json.Unmarshal(union[1], &row); err != nil {
			return nil, fmt.Errorf("reading row schema: %w", err)
		}
		out := make([]StoredColumn, len(row.Fields))
		for i, rf := range row.Fields {
			out[i] = StoredColumn{Field: rf.Name, PGColumn: rf.PGColumn, PGType: rf.PGType, BigQuery: rf.BigQuery, Avro: rf.Type, Key: rf.Key}
		}
		return out, nil
	}
	return nil, errors.New("reading event schema: no before field")
}
