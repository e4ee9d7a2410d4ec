package capture

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// rowMessage is a pgoutput Insert ('I'), Update ('U') or Delete ('D')
// message, decoded without copying: the Data of its columns are slices of
// the bytes it was decoded from, and a later Decode reuses its storage, so
// both are only valid until then. Old is the old row's replica identity
// ('K') or, under REPLICA IDENTITY FULL, the whole old row ('O'); New the
// new row; either is nil when the message has none (and empty, not nil,
// for a table without columns).
type rowMessage struct {
	Type       pglogrepl.MessageType
	Xid        uint32 // the (sub)transaction, in a streamed transaction only
	RelationID uint32
	Old, New   []*pglogrepl.TupleDataColumn

	old, new tupleStore
}

// tupleStore is the reusable storage of one decoded tuple.
type tupleStore struct {
	cols []pglogrepl.TupleDataColumn
	ptrs []*pglogrepl.TupleDataColumn
}

// isRowMessage reports whether a pgoutput message of type t is one
// rowMessage decodes.
func isRowMessage(t byte) bool {
	switch pglogrepl.MessageType(t) {
	case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete:
		return true
	}
	return false
}

// Decode reads src, a whole message starting with its type byte; streamed
// says whether it was sent inside a stream block (protocol version 2),
// where the transaction id follows the type byte. Every length is checked
// against src.
func (m *rowMessage) Decode(src []byte, streamed bool) error {
	m.Old, m.New = nil, nil
	if len(src) == 0 {
		return fmt.Errorf("decoding row message: empty")
	}
	m.Type = pglogrepl.MessageType(src[0])
	if !isRowMessage(src[0]) {
		return fmt.Errorf("decoding row message: type %q is not I, U or D", src[0])
	}
	d := decoder{src: src, off: 1}
	m.Xid = 0
	if streamed {
		m.Xid = d.uint32()
	}
	m.RelationID = d.uint32()
	var hasOld, hasNew bool
	for d.err == nil && d.off < len(d.src) {
		switch kind := d.byte(); {
		case d.err != nil:
		case (kind == 'K' || kind == 'O') && m.Type != pglogrepl.MessageTypeInsert && !hasOld && !hasNew:
			m.Old, hasOld = d.tuple(&m.old), true
		case kind == 'N' && m.Type != pglogrepl.MessageTypeDelete && !hasNew:
			m.New, hasNew = d.tuple(&m.new), true
		default:
			return fmt.Errorf("decoding %q message: unexpected tuple marker %q at byte %d", src[0], kind, d.off-1)
		}
	}
	if d.err != nil {
		return fmt.Errorf("decoding %q message: %w", src[0], d.err)
	}
	switch {
	case m.Type == pglogrepl.MessageTypeDelete && !hasOld:
		return fmt.Errorf("decoding %q message: no old tuple", src[0])
	case m.Type != pglogrepl.MessageTypeDelete && !hasNew:
		return fmt.Errorf("decoding %q message: no new tuple", src[0])
	}
	return nil
}

// decoder reads big-endian fields from src; the first read past its end
// sets err, and every read after that returns zero.
type decoder struct {
	src []byte
	off int
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || len(d.src)-d.off < n {
		d.err = fmt.Errorf("%d bytes needed at byte %d of %d", n, d.off, len(d.src))
		return false
	}
	return true
}

func (d *decoder) byte() byte {
	if !d.need(1) {
		return 0
	}
	d.off++
	return d.src[d.off-1]
}

func (d *decoder) uint16() uint16 {
	if !d.need(2) {
		return 0
	}
	d.off += 2
	return binary.BigEndian.Uint16(d.src[d.off-2:])
}

func (d *decoder) uint32() uint32 {
	if !d.need(4) {
		return 0
	}
	d.off += 4
	return binary.BigEndian.Uint32(d.src[d.off-4:])
}

// tuple reads TupleData into s: the column count, then each column's kind
// and, for text and binary values, its length and bytes.
func (d *decoder) tuple(s *tupleStore) []*pglogrepl.TupleDataColumn {
	n := int(d.uint16())
	if d.err != nil {
		return nil
	}
	if s.ptrs == nil || cap(s.cols) < n { // non-nil even for a table without columns
		s.cols = make([]pglogrepl.TupleDataColumn, n)
		s.ptrs = make([]*pglogrepl.TupleDataColumn, n)
	}
	cols, ptrs := s.cols[:n], s.ptrs[:n]
	for i := range cols {
		c := &cols[i]
		*c = pglogrepl.TupleDataColumn{DataType: d.byte()}
		switch c.DataType {
		case colText, colBinary:
			c.Length = d.uint32()
			if d.need(int(c.Length)) {
				c.Data = d.src[d.off : d.off+int(c.Length) : d.off+int(c.Length)]
				d.off += int(c.Length)
			}
		case colNull, colUnchanged:
		default:
			if d.err == nil {
				d.err = fmt.Errorf("column %d: unknown kind %q", i, c.DataType)
			}
		}
		if d.err != nil {
			return nil
		}
		ptrs[i] = c
	}
	return ptrs
}
