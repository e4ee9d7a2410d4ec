package schema

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// headFields are the envelope fields an event schema begins with, in order,
// and their Avro types: what DecodeHead reads.
var headFields = []struct{ name, typ string }{
	{"op", "string"}, {"commit_lsn", "long"}, {"lsn", "long"}, {"seq", "long"}, {"xid", "long"},
	{"commit_ts", "long"}, {"schema", "string"}, {"table", "string"},
}

// hasHead reports whether the event schema avsc begins with headFields.
func hasHead(avsc string) bool {
	var env struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if json.Unmarshal([]byte(avsc), &env) != nil || len(env.Fields) < len(headFields) {
		return false
	}
	for i, h := range headFields {
		f := env.Fields[i]
		var typ string
		if json.Unmarshal(f.Type, &typ) != nil {
			var logical struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(f.Type, &logical) != nil {
				return false
			}
			typ = logical.Type
		}
		if f.Name != h.name || typ != h.typ {
			return false
		}
	}
	return true
}

// DecodeHead reads the envelope of a single-object encoded event written
// with this schema — op, positions, xid, commit time, schema and table —
// without its row images: what routing a change needs, at a fraction of
// Decode's cost. The rows are not checked; Decode reads them. Before, After
// and Unchanged are nil. A schema that does not begin with the envelope
// (none NewEventSchema made) is decoded whole.
func (s *EventSchema) DecodeHead(data []byte) (*Event, error) {
	if !s.head {
		e, err := s.Decode(data)
		if e != nil {
			e.Before, e.After, e.Unchanged = nil, nil, nil
		}
		return e, err
	}
	fp, err := SingleObjectFingerprint(data)
	if err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	if fp != s.Fingerprint {
		return nil, fmt.Errorf("decoding event: written with schema %016x, not %016x", fp, s.Fingerprint)
	}
	r := headReader{b: data[10:]}
	e := &Event{Op: r.op()}
	e.CommitLSN, e.LSN, e.Seq, e.Xid = uint64(r.long()), uint64(r.long()), r.long(), r.long()
	e.CommitTime = time.UnixMicro(r.long()).UTC()
	e.Schema, e.Table = r.str(), r.str()
	if r.err != nil {
		return nil, fmt.Errorf("decoding event: %w", r.err)
	}
	return e, nil
}

// headReader reads Avro longs and strings from b, keeping the first error.
type headReader struct {
	b   []byte
	err error
}

var errShortEvent = errors.New("the event ends inside its envelope")

func (r *headReader) long() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b) // Avro's zig-zag varint
	if n <= 0 {
		r.err = errShortEvent
		return 0
	}
	r.b = r.b[n:]
	return v
}

// op reads the op string: one of the constant ones when it is (no copy is
// made, so a buffered change holds none).
func (r *headReader) op() string {
	if len(r.b) >= 2 && r.b[0] == 2 { // a one-byte string
		for _, op := range []string{"c", "u", "d", "t", "r"} {
			if r.b[1] == op[0] {
				r.b = r.b[2:]
				return op
			}
		}
	}
	return r.str()
}

func (r *headReader) str() string {
	n := r.long()
	if r.err != nil {
		return ""
	}
	if n < 0 || n > int64(len(r.b)) {
		r.err = errShortEvent
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
