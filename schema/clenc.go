package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"time"
)

// ChangelogEncoder writes the flat changelog records of one Changelog in
// Avro binary (the record alone, as an object file's block holds it)
// straight from the Postgres text of their columns. Its output is what
// cl.Codec.BinaryFromNative writes of cl.Record of the Event whose row
// images Table.Record converts from the same texts: the same bytes, and for
// a row that cannot be represented the same *DeadLetterError.
//
// The row fields are appended by the Encoder's column encoders (the
// changelog's columns are the event's row fields, with the same Avro
// types); an event any of whose values they do not take is encoded whole
// by the general path (Table.Record, Changelog.Record, goavro), which also
// produces its error. A ChangelogEncoder is safe for concurrent use.
type ChangelogEncoder struct {
	cl   *Changelog
	enc  *Encoder
	key  []bool // by column: a replica-identity column (in the before key)
	fast bool   // false if the fast path disagreed with the general one when built
}

// NewChangelogEncoder compiles the record encoder of cl, whose event schema
// must carry the Table it was made from (NewEventSchema's do). As
// NewEncoder does, it compares the fast and the general path on a probe
// event (absent and all-NULL row images) and keeps the general path for
// every event should they differ; so it does if the changelog's columns are
// not the table's, field for field and type for type.
func NewChangelogEncoder(cl *Changelog) (*ChangelogEncoder, error) {
	if cl == nil || cl.Events == nil {
		return nil, errors.New("compiling changelog encoder: the changelog has no event schema")
	}
	enc, err := NewEncoder(cl.Events)
	if err != nil {
		return nil, err
	}
	tbl := cl.Events.Table
	e := &ChangelogEncoder{cl: cl, enc: enc, key: make([]bool, len(tbl.Columns)), fast: sameColumns(cl, tbl)}
	for i, m := range tbl.Columns {
		e.key[i] = m.Key
	}
	nulls := make([][]byte, len(tbl.Columns))
	for _, op := range []string{"u", "d", "r"} {
		probe := &TextEvent{Op: op, CommitLSN: 1 << 40, LSN: 1<<40 - 1, Seq: 300, Xid: 1 << 31,
			CommitTime: time.Date(2026, 11, 22, 3, 4, 5, 678901000, time.UTC), Schema: tbl.Schema, Table: tbl.Name, After: nulls}
		if op != "r" {
			probe.Before = nulls
		}
		if len(tbl.Columns) > 0 {
			probe.Unchanged = []string{tbl.Columns[0].Name}
		}
		fast, ok := e.appendRecord(nil, probe)
		general, err := e.general(nil, probe)
		if !ok || err != nil || !bytes.Equal(fast, general) {
			e.fast = false
		}
	}
	return e, nil
}

// sameColumns reports whether cl's columns are tbl's: the same row fields
// in the same order with the same Avro types, and its keys tbl's keys.
func sameColumns(cl *Changelog, tbl *Table) bool {
	if len(cl.Columns) != len(tbl.Columns) {
		return false
	}
	keys := 0
	for i, c := range cl.Columns {
		m := tbl.Columns[i]
		if c.Field != m.Name || c.Key != m.Key {
			return false
		}
		if m.Key {
			if keys >= len(cl.Keys) || cl.Keys[keys].Field != m.Name {
				return false
			}
			keys++
		}
		var stored, mapped any
		b, err := json.Marshal([]any{"null", m.Avro})
		if err != nil || json.Unmarshal(c.Avro, &stored) != nil || json.Unmarshal(b, &mapped) != nil || !reflect.DeepEqual(stored, mapped) {
			return false
		}
	}
	return keys == len(cl.Keys)
}

// Fast reports whether the encoder uses its fast path (see
// NewChangelogEncoder).
func (e *ChangelogEncoder) Fast() bool { return e.fast }

// Encode appends the changelog record of ev to buf and returns the extended
// buffer: what cl.Codec.BinaryFromNative appends of cl.Record of the Event
// with the same envelope and the row images Table.Record makes of ev's
// texts, errors included (Record's first, before then after).
func (e *ChangelogEncoder) Encode(buf []byte, ev *TextEvent) ([]byte, error) {
	if e.fast {
		if out, ok := e.appendRecord(buf, ev); ok {
			return out, nil
		}
	}
	return e.general(buf, ev)
}

// general is the path of goavro natives: Table.Record, Changelog.Record and
// the changelog codec.
func (e *ChangelogEncoder) general(buf []byte, ev *TextEvent) ([]byte, error) {
	full, err := e.cl.Events.Table.event(ev)
	if err != nil {
		return nil, err
	}
	return e.cl.Codec.BinaryFromNative(buf, e.cl.Record(full))
}

// appendRecord is the fast path: false when a value needs the general path.
// The fields in the changelog's order: the envelope, the before key, then
// the row (After; Before for a delete). Every value of both row images is
// checked, as the general path converts both, even those not written.
func (e *ChangelogEncoder) appendRecord(buf []byte, ev *TextEvent) ([]byte, bool) {
	buf = appendAvroString(buf, ev.Op)
	buf = appendAvroLong(buf, int64(ev.CommitLSN))
	buf = appendAvroLong(buf, ev.Seq)
	// goavro's timestamp-micros of a time.Time, which never overflows.
	buf = appendAvroLong(buf, ev.CommitTime.Unix()*1e6+int64(ev.CommitTime.Nanosecond()/1e3))
	buf = appendAvroLong(buf, ev.Xid)
	buf = appendAvroLong(buf, int64(ev.LSN))
	if n := len(ev.Unchanged); n > 0 { // one block, then the empty block that ends an array
		buf = appendAvroLong(buf, int64(n))
		for _, u := range ev.Unchanged {
			buf = appendAvroString(buf, e.cl.Column(u))
		}
	}
	buf = append(buf, 0)
	var ok bool
	if ev.Before != nil {
		switch {
		case len(e.cl.Keys) > 0:
			buf, ok = e.appendImage(append(buf, 2), ev.Before, keepKeys)
		case ev.Op != "d": // checked only: nothing of it is written
			_, ok = e.appendImage(buf, ev.Before, keepNone)
		default: // written, and checked, as the row
			ok = true
		}
		if !ok {
			return nil, false
		}
	} else if len(e.cl.Keys) > 0 {
		buf = append(buf, 0) // the union's null branch
	}
	row := ev.After
	if ev.Op == "d" {
		row = ev.Before
		if ev.After != nil { // checked only
			if _, ok = e.appendImage(buf, ev.After, keepNone); !ok {
				return nil, false
			}
		}
	}
	if row == nil {
		for range e.enc.cols {
			buf = append(buf, 0)
		}
		return buf, true
	}
	return e.appendImage(buf, row, keepAll)
}

// keep says which fields of a row image appendImage writes.
type keep uint8

const (
	keepAll  keep = iota
	keepKeys      // the replica-identity columns: the before key
	keepNone      // none: the image is only checked
)

// appendImage appends the fields of row image img that k keeps, checking
// every value; false when one needs the general path.
func (e *ChangelogEncoder) appendImage(buf []byte, img [][]byte, k keep) ([]byte, bool) {
	if len(img) != len(e.enc.cols) {
		return nil, false
	}
	for i := range e.enc.cols {
		n := len(buf)
		var ok bool
		if buf, ok = e.enc.cols[i].append(buf, img[i]); !ok {
			return nil, false
		}
		if k == keepNone || k == keepKeys && !e.key[i] {
			buf = buf[:n]
		}
	}
	return buf, true
}
