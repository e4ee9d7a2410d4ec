package capture

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
)

// pgTuple builds TupleData: "n" null, "u" unchanged TOAST, anything else
// a text value ("t:" prefix stripped, so "t:" is the empty string).
func pgTuple(values ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(values)))
	for _, v := range values {
		switch v {
		case "n", "u":
			b = append(b, v[0])
		default:
			v = strings.TrimPrefix(v, "t:")
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

// pgRow builds a row message: its type, the xid when streamed, the
// relation id, then (marker, tuple) pairs.
func pgRow(typ byte, streamed bool, parts ...any) []byte {
	b := []byte{typ}
	if streamed {
		b = binary.BigEndian.AppendUint32(b, 7777)
	}
	b = binary.BigEndian.AppendUint32(b, 16385)
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case []byte:
			b = append(b, p...)
		}
	}
	return b
}

// columns is a decoded tuple as kinds and texts, for comparison.
func columns(tuple []*pglogrepl.TupleDataColumn) []string {
	if tuple == nil {
		return nil
	}
	out := make([]string, len(tuple))
	for i, c := range tuple {
		out[i] = string(c.DataType)
		if c.DataType == colText {
			if c.Data == nil {
				out[i] += "<nil>"
			}
			out[i] += ":" + string(c.Data)
		}
	}
	return out
}

func TestRowMessageDecodesAsPglogrepl(t *testing.T) {
	tuple := pgTuple("1", "t:", "n", "u", "héllo")
	other := pgTuple("0", "n", "n", "n", "n")
	for _, tc := range []struct {
		name     string
		streamed bool
		msg      []byte
		op       pglogrepl.MessageType
	}{
		{"insert", false, pgRow('I', false, byte('N'), tuple), pglogrepl.MessageTypeInsert},
		{"insert streamed", true, pgRow('I', true, byte('N'), tuple), pglogrepl.MessageTypeInsert},
		{"update", false, pgRow('U', false, byte('N'), tuple), pglogrepl.MessageTypeUpdate},
		{"update with key", false, pgRow('U', false, byte('K'), other, byte('N'), tuple), pglogrepl.MessageTypeUpdate},
		{"update with old row", true, pgRow('U', true, byte('O'), other, byte('N'), tuple), pglogrepl.MessageTypeUpdate},
		{"delete by key", false, pgRow('D', false, byte('K'), tuple), pglogrepl.MessageTypeDelete},
		{"delete full", true, pgRow('D', true, byte('O'), tuple), pglogrepl.MessageTypeDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m rowMessage
			if err := m.Decode(tc.msg, tc.streamed); err != nil {
				t.Fatal(err)
			}
			want, err := pglogrepl.ParseV2(tc.msg, tc.streamed)
			if err != nil {
				t.Fatal(err)
			}
			var relID, xid uint32
			var old, new *pglogrepl.TupleData
			switch w := want.(type) {
			case *pglogrepl.InsertMessageV2:
				relID, xid, new = w.RelationID, w.Xid, w.Tuple
			case *pglogrepl.UpdateMessageV2:
				relID, xid, old, new = w.RelationID, w.Xid, w.OldTuple, w.NewTuple
			case *pglogrepl.DeleteMessageV2:
				relID, xid, old = w.RelationID, w.Xid, w.OldTuple
			default:
				t.Fatalf("pglogrepl parsed %T", want)
			}
			if m.Type != tc.op || m.RelationID != relID || m.Xid != xid {
				t.Errorf("type %q relation %d xid %d, want %q %d %d", m.Type, m.RelationID, m.Xid, tc.op, relID, xid)
			}
			for _, side := range []struct {
				name string
				got  []*pglogrepl.TupleDataColumn
				want *pglogrepl.TupleData
			}{{"old", m.Old, old}, {"new", m.New, new}} {
				var want []string
				if side.want != nil {
					want = columns(side.want.Columns)
				}
				if got := columns(side.got); strings.Join(got, "|") != strings.Join(want, "|") || (got == nil) != (want == nil) {
					t.Errorf("%s tuple %q, want %q", side.name, got, want)
				}
			}
		})
	}
}

// A table without columns has rows all the same: pglogrepl refuses the
// message as too short; its tuple is empty, not absent.
func TestRowMessageWithoutColumns(t *testing.T) {
	var m rowMessage
	if err := m.Decode(pgRow('I', false, byte('N'), pgTuple()), false); err != nil {
		t.Fatal(err)
	}
	if m.New == nil || len(m.New) != 0 || m.Old != nil {
		t.Fatalf("new %q (nil: %v), old %q", columns(m.New), m.New == nil, columns(m.Old))
	}
}

func TestRowMessageReusesItsStorage(t *testing.T) {
	var m rowMessage
	first := pgRow('I', false, byte('N'), pgTuple("a", "b", "c"))
	if err := m.Decode(first, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.New[2].Data, []byte("c")) || &m.New[2].Data[0] != &first[len(first)-1] {
		t.Fatal("the column's data is not a slice of the message")
	}
	if err := m.Decode(pgRow('D', false, byte('K'), pgTuple("x", "n")), false); err != nil {
		t.Fatal(err)
	}
	if m.New != nil || len(m.Old) != 2 || string(m.Old[0].Data) != "x" || m.Old[1].Data != nil {
		t.Fatalf("after a delete: new %q, old %q", columns(m.New), columns(m.Old))
	}
	if got := testing.AllocsPerRun(100, func() { _ = m.Decode(first, false) }); got != 0 {
		t.Errorf("Decode allocates %.0f times per message once its storage has grown", got)
	}
}

func TestRowMessageRejectsMalformed(t *testing.T) {
	tuple := pgTuple("1", "two")
	for _, tc := range []struct {
		name     string
		msg      []byte
		streamed bool
		want     string
	}{
		{"empty", nil, false, "empty"},
		{"not a row message", pgRow('B', false), false, "not I, U or D"},
		{"short relation id", []byte{'I', 0, 0}, false, "bytes needed"},
		{"short xid", []byte{'I', 0, 0, 0}, true, "bytes needed"},
		{"insert without tuple", pgRow('I', false), false, "no new tuple"},
		{"delete without tuple", pgRow('D', false), false, "no old tuple"},
		{"insert with old tuple", pgRow('I', false, byte('K'), tuple), false, "unexpected tuple marker 'K'"},
		{"delete with new tuple", pgRow('D', false, byte('N'), tuple), false, "unexpected tuple marker 'N'"},
		{"two new tuples", pgRow('U', false, byte('N'), tuple, byte('N'), tuple), false, "unexpected tuple marker 'N'"},
		{"old after new", pgRow('U', false, byte('N'), tuple, byte('K'), tuple), false, "unexpected tuple marker 'K'"},
		{"unknown marker", pgRow('I', false, byte('X'), tuple), false, "unexpected tuple marker 'X'"},
		{"short column count", pgRow('I', false, byte('N'), []byte{0}), false, "bytes needed"},
		{"missing column", pgRow('I', false, byte('N'), tuple[:len(tuple)-8]), false, "bytes needed"},
		{"short value", pgRow('I', false, byte('N'), tuple[:len(tuple)-1]), false, "bytes needed"},
		{"huge length", pgRow('I', false, byte('N'), []byte{0, 1, 't', 0xff, 0xff, 0xff, 0xff, 'x'}), false, "bytes needed"},
		{"unknown kind", pgRow('I', false, byte('N'), []byte{0, 1, 'z'}), false, "unknown kind 'z'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m rowMessage
			err := m.Decode(tc.msg, tc.streamed)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestSlabCopies(t *testing.T) {
	var s slab
	for _, tc := range []struct {
		name string
		n    int
	}{
		{"empty", 0},
		{"small", 10},
		{"fills the block", slabBlock / 4},
		{"own allocation", slabBlock/4 + 1},
		{"small again", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := bytes.Repeat([]byte{byte(tc.n)}, tc.n)
			got := s.copy(src)
			if !bytes.Equal(got, src) {
				t.Fatalf("copy of %d bytes: %d bytes", tc.n, len(got))
			}
			if tc.n > 0 && &got[0] == &src[0] {
				t.Fatal("the copy shares the source's bytes")
			}
			// Appending to a copy must not overwrite the next one.
			next := s.copy([]byte("next"))
			_ = append(got, 'X')
			if string(next) != "next" {
				t.Fatalf("the next copy reads %q after an append to this one", next)
			}
		})
	}
}
