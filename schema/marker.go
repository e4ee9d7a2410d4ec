package schema

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/linkedin/goavro/v2"
)

// MarkerPrefix is the prefix of the logical decoding messages
// (pg_logical_emit_message) that ask capture to publish a marker. Messages
// with any other prefix (a backfill's chunk watermarks, other applications')
// are not capture's to publish.
const MarkerPrefix = "tributary.marker"

// OpMarker is the op attribute of a marker message. A marker is not a row
// change: it is published on every ordering key of a table to say "every
// change before this point on this key has been sent".
const OpMarker = "m"

// MarkerRequest is the content of a marker message: JSON
// {"id": "...", "tables": [{"schema": "public", "table": "orders"}]}.
// Without tables, capture marks the tables it is configured with.
type MarkerRequest struct {
	ID     string        `json:"id"`
	Tables []MarkerTable `json:"tables,omitempty"`
}

// MarkerTable names a Postgres table as spelled there.
type MarkerTable struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
}

func (t MarkerTable) String() string { return QuoteIdent(t.Schema) + "." + QuoteIdent(t.Table) }

// maxMarkerID bounds a marker ID: it is a GCS path segment.
const maxMarkerID = 64

// ParseMarkerRequest reads the content of a marker message. The ID must be
// 1 to 64 letters, digits, '-', '_' or '.' (not only dots): it names objects.
func ParseMarkerRequest(content []byte) (*MarkerRequest, error) {
	var r MarkerRequest
	if err := json.Unmarshal(content, &r); err != nil {
		return nil, fmt.Errorf("reading marker request %q: %w", truncate(content, 200), err)
	}
	if err := ValidMarkerID(r.ID); err != nil {
		return nil, fmt.Errorf("reading marker request %q: %w", truncate(content, 200), err)
	}
	for i, t := range r.Tables {
		if t.Schema == "" || t.Table == "" {
			return nil, fmt.Errorf("reading marker request %s: tables[%d] lacks its schema or table", r.ID, i)
		}
	}
	return &r, nil
}

// ValidMarkerID checks that id can name a marker.
func ValidMarkerID(id string) error {
	if id == "" || len(id) > maxMarkerID {
		return fmt.Errorf("marker id %q: want 1 to %d characters", id, maxMarkerID)
	}
	dots := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
		default:
			return fmt.Errorf("marker id %q: character %q is not a letter, digit, '-', '_' or '.'", id, c)
		}
	}
	if dots == len(id) {
		return fmt.Errorf("marker id %q: not only dots", id)
	}
	return nil
}

// NewMarkerID returns a fresh marker ID: the UTC time and 8 random hex digits.
func NewMarkerID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// Marker is the event capture publishes for a marker request: once on each
// ordering key of each marked table, in the marker transaction's place in
// commit order.
type Marker struct {
	ID         string
	CommitLSN  uint64 // commit LSN of the transaction that wrote the marker
	LSN        uint64 // LSN of the marker message itself
	CommitTime time.Time
	Schema     string
	Table      string
	Bucket     int // the ordering key's bucket
	Buckets    int // how many buckets the table's keys are hashed into
}

// MarkerSchemaJSON is the Avro schema of a marker message. It is stored in
// the schema store like every event schema, so a marker decodes with GCS
// alone; it has no "after" row, so a consumer that reads it as a row change
// fails to and does not mistake it for one.
const MarkerSchemaJSON = `{"type":"record","name":"marker","namespace":"tributary",` +
	`"doc":"A marker: every change published before it on its ordering key precedes it in commit order",` +
	`"fields":[{"name":"op","type":"string"},{"name":"id","type":"string"},` +
	`{"name":"commit_lsn","type":"long"},{"name":"lsn","type":"long"},` +
	`{"name":"commit_ts","type":{"type":"long","logicalType":"timestamp-micros"}},` +
	`{"name":"schema","type":"string"},{"name":"table","type":"string"},` +
	`{"name":"bucket","type":"int"},{"name":"buckets","type":"int"}]}`

var markerCodec = func() *goavro.Codec {
	c, err := goavro.NewCodec(MarkerSchemaJSON)
	if err != nil {
		panic(err)
	}
	return c
}()

// MarkerFingerprint is the fingerprint of MarkerSchemaJSON, the one a marker
// message carries.
var MarkerFingerprint = markerCodec.Rabin

// MarkerSchema is the marker schema as the schema store keeps it (Store.Put).
func MarkerSchema() *EventSchema {
	return &EventSchema{JSON: MarkerSchemaJSON, Codec: markerCodec, Fingerprint: MarkerFingerprint}
}

// IsMarker reports whether data is a single-object encoded marker.
func IsMarker(data []byte) bool {
	fp, err := SingleObjectFingerprint(data)
	return err == nil && fp == MarkerFingerprint
}

// Encode returns m in Avro single-object encoding.
func (m *Marker) Encode(buf []byte) ([]byte, error) {
	out, err := markerCodec.SingleFromNative(buf, map[string]any{
		"op": OpMarker, "id": m.ID, "commit_lsn": int64(m.CommitLSN), "lsn": int64(m.LSN), "commit_ts": m.CommitTime.UTC(),
		"schema": m.Schema, "table": m.Table, "bucket": int32(m.Bucket), "buckets": int32(m.Buckets),
	})
	if err != nil {
		return nil, fmt.Errorf("encoding marker %s of %s.%s: %w", m.ID, QuoteIdent(m.Schema), QuoteIdent(m.Table), err)
	}
	return out, nil
}

// ErrNotMarker reports data that is not a marker message.
var ErrNotMarker = errors.New("not a marker message")

// DecodeMarker reads a marker message.
func DecodeMarker(data []byte) (*Marker, error) {
	if !IsMarker(data) {
		return nil, ErrNotMarker
	}
	native, _, err := markerCodec.NativeFromSingle(data)
	if err != nil {
		return nil, fmt.Errorf("decoding marker: %w", err)
	}
	r := native.(map[string]any)
	m := &Marker{
		ID: r["id"].(string), CommitLSN: uint64(r["commit_lsn"].(int64)), LSN: uint64(r["lsn"].(int64)),
		CommitTime: r["commit_ts"].(time.Time), Schema: r["schema"].(string), Table: r["table"].(string),
		Bucket: int(r["bucket"].(int32)), Buckets: int(r["buckets"].(int32)),
	}
	if err := ValidMarkerID(m.ID); err != nil {
		return nil, fmt.Errorf("decoding marker: %w", err)
	}
	if m.Buckets <= 0 || m.Bucket < 0 || m.Bucket >= m.Buckets {
		return nil, fmt.Errorf("decoding marker %s: bucket %d of %d", m.ID, m.Bucket, m.Buckets)
	}
	return m, nil
}
