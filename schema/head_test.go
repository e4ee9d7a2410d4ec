package schema

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// DecodeHead reads exactly the envelope Decode reads, for every op and
// position (LSNs above 2^63 included), and refuses what is cut short or
// written with another schema; a schema not beginning with the envelope is
// decoded whole.
func TestDecodeHeadReadsTheEnvelopeDecodeReads(t *testing.T) {
	tbl := testTable(t)
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if !es.head {
		t.Fatal("NewEventSchema's schema does not begin with the envelope")
	}
	row, err := tbl.Record([][]byte{[]byte("7"), []byte("a note"), []byte("12.50")})
	if err != nil {
		t.Fatal(err)
	}
	events := []*Event{
		{Op: "c", CommitLSN: 0x16B3748, LSN: 0x16B3700, Seq: 0, Xid: 771, CommitTime: time.Date(2026, 11, 21, 10, 0, 0, 123456000, time.UTC), Schema: "public", Table: "Order Items", After: row},
		{Op: "u", CommitLSN: math.MaxUint64 - 5, LSN: 1 << 63, Seq: math.MaxInt64, Xid: -1, CommitTime: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Schema: "public", Table: "Order Items", Before: row, After: row, Unchanged: []string{tbl.Columns[1].Name}},
		{Op: "d", CommitLSN: 1, LSN: 0, Seq: 1, Xid: 0, CommitTime: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), Schema: "public", Table: "Order Items", Before: row},
		{Op: "t", CommitLSN: 42, LSN: 41, Seq: 2, Xid: 5, CommitTime: time.Unix(0, 0).UTC(), Schema: "public", Table: "Order Items"},
		{Op: "r", CommitLSN: 42, LSN: 42, Seq: 1 << 40, Xid: 1 << 32, CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Schema: "public", Table: "Order Items", After: row},
	}
	for _, in := range events {
		data, err := es.Encode(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		full, err := es.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		head, err := es.DecodeHead(data)
		if err != nil {
			t.Fatalf("%s: %v", in.Op, err)
		}
		if head.Op != full.Op || head.CommitLSN != full.CommitLSN || head.LSN != full.LSN || head.Seq != full.Seq || head.Xid != full.Xid ||
			!head.CommitTime.Equal(full.CommitTime) || head.CommitTime.Location() != full.CommitTime.Location() || head.Schema != full.Schema || head.Table != full.Table {
			t.Errorf("%s: head %+v, Decode %+v", in.Op, head, full)
		}
		if head.Before != nil || head.After != nil || head.Unchanged != nil {
			t.Errorf("%s: the head carries rows: %+v", in.Op, head)
		}
		// Cut anywhere: an error or the right head, never a wrong one; cut
		// right after the header, an error.
		for cut := 10; cut < len(data); cut++ {
			h, err := es.DecodeHead(data[:cut])
			if err == nil && (h.Table != full.Table || h.Schema != full.Schema || h.Seq != full.Seq) {
				t.Fatalf("%s cut at %d: %+v without an error", in.Op, cut, h)
			}
			if cut == 10 && err == nil {
				t.Errorf("%s: an event with no envelope was read", in.Op)
			}
		}
	}

	// Another schema's event.
	other, err := NewEventSchema(mustTable(t, "other"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := other.Encode(nil, &Event{Op: "t", CommitLSN: 1, Schema: "public", Table: "other", CommitTime: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := es.DecodeHead(data); err == nil {
		t.Error("an event of another schema was read")
	}

	// A schema whose fields are in another order is decoded whole.
	var avsc map[string]any
	if err := json.Unmarshal([]byte(es.JSON), &avsc); err != nil {
		t.Fatal(err)
	}
	fields := avsc["fields"].([]any)
	fields[1], fields[2] = fields[2], fields[1]
	b, _ := json.Marshal(avsc)
	swapped, err := ParseEventSchema(string(b), tbl)
	if err != nil {
		t.Fatal(err)
	}
	if swapped.head {
		t.Fatal("a schema with lsn before commit_lsn is taken as beginning with the envelope")
	}
	data, err = swapped.Encode(nil, events[0])
	if err != nil {
		t.Fatal(err)
	}
	if h, err := swapped.DecodeHead(data); err != nil || h.CommitLSN != events[0].CommitLSN || h.LSN != events[0].LSN || h.After != nil {
		t.Errorf("the swapped schema's head: %+v, %v", h, err)
	}
}

func mustTable(t *testing.T, name string) *Table {
	t.Helper()
	tbl, err := MapTable("public", name, []Column{{Name: "id", TypeOID: 23, TypeMod: -1, Key: true}}, Builtin)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}
