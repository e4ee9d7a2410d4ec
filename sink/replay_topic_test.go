package sink

import (
	"bytes"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/schema"
)

// Events flattened into changelog records (and through their Avro binary
// form, as an object holds them) are rebuilt byte for byte as capture
// encoded them, when before holds the key columns only.
func TestReplayEventRebuildsCaptureEncoding(t *testing.T) {
	tbl, err := schema.MapTable("public", "Line Items", []schema.Column{
		{Name: "order_id", TypeOID: 20, TypeMod: -1, Key: true},
		{Name: "line", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "Note", TypeOID: 25, TypeMod: -1},
		{Name: "amount", TypeOID: 1700, TypeMod: (12<<16 | 2) + 4},
	}, schema.Builtin)
	if err != nil {
		t.Fatal(err)
	}
	es, err := schema.NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := schema.NewChangelog(es)
	if err != nil {
		t.Fatal(err)
	}
	row := func(vals ...string) map[string]any {
		b := make([][]byte, len(vals))
		for i, v := range vals {
			if v != "" {
				b[i] = []byte(v)
			}
		}
		r, err := tbl.Record(b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	at := time.Date(2026, 11, 21, 10, 0, 0, 123456000, time.UTC)
	ev := func(op string, seq int64, before, after map[string]any, unchanged ...string) *schema.Event {
		return &schema.Event{Op: op, CommitLSN: 0x16B3748, LSN: 0x16B3700 + uint64(seq), Seq: seq, Xid: 771, CommitTime: at,
			Schema: "public", Table: "Line Items", Before: before, After: after, Unchanged: unchanged}
	}
	events := []*schema.Event{
		ev("c", 0, nil, row("7", "1", "first", "12.50")),
		ev("u", 1, nil, row("7", "1", "", "13.00"), tbl.Columns[2].Name),
		ev("u", 2, row("7", "1", "", ""), row("8", "1", "moved", "13.00")),
		ev("d", 3, row("8", "1", "", ""), nil),
		ev("t", 4, nil, nil),
		ev("r", 5, nil, row("9", "2", "", "")),
	}
	key := tableKey{"public", "Line Items"}
	for _, in := range events {
		bin, err := cl.Codec.BinaryFromNative(nil, cl.Record(in))
		if err != nil {
			t.Fatal(err)
		}
		native, _, err := cl.Codec.NativeFromBinary(bin)
		if err != nil {
			t.Fatal(err)
		}
		out, err := replayEvent(cl, native.(map[string]any), key)
		if err != nil {
			t.Fatalf("%s: %v", in.Identity(), err)
		}
		want, err := es.Encode(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := es.Encode(nil, out)
		if err != nil {
			t.Fatalf("%s: %v", in.Identity(), err)
		}
		if !bytes.Equal(got, want) {
			dec, _ := es.Decode(got)
			t.Errorf("op %s: rebuilt event differs:\n got %+v\nwant %+v", in.Op, dec, in)
		}
	}
}

// Every change of one row gets one bucket, from the key alone; other
// columns do not move it.
func TestReplayBucket(t *testing.T) {
	tbl, err := schema.MapTable("public", "t", []schema.Column{
		{Name: "a", TypeOID: 20, TypeMod: -1, Key: true},
		{Name: "b", TypeOID: 25, TypeMod: -1, Key: true},
		{Name: "v", TypeOID: 25, TypeMod: -1},
	}, schema.Builtin)
	if err != nil {
		t.Fatal(err)
	}
	es, err := schema.NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := schema.NewChangelog(es)
	if err != nil {
		t.Fatal(err)
	}
	row := func(a, b, v string) map[string]any {
		r, err := tbl.Record([][]byte{[]byte(a), []byte(b), []byte(v)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	seen := map[int]bool{}
	for i := range 200 {
		a := string(rune('0' + i%10))
		b := string(rune('a' + i/10))
		ins := ReplayBucket(cl, &schema.Event{Op: "c", After: row(a, b, "x")}, 32)
		upd := ReplayBucket(cl, &schema.Event{Op: "u", After: row(a, b, "y")}, 32)
		del := ReplayBucket(cl, &schema.Event{Op: "d", Before: row(a, b, "")}, 32)
		if ins != upd || ins != del || ins < 0 || ins >= 32 {
			t.Fatalf("row %s/%s: buckets %d, %d, %d", a, b, ins, upd, del)
		}
		seen[ins] = true
	}
	if len(seen) < 16 {
		t.Errorf("200 rows spread over %d of 32 buckets", len(seen))
	}
	// ("ab","c") and ("a","bc") are different keys.
	if ReplayBucket(cl, &schema.Event{After: row("1", "ab", "")}, 1<<30) == ReplayBucket(cl, &schema.Event{After: row("1", "a", "")}, 1<<30) {
		t.Error("different keys share a bucket of 2^30")
	}
}

func TestReplayQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{"orders": "orders", "Line Items": `"Line Items"`, `a"b`: `"a""b"`, "t1$": "t1$", "1t": `"1t"`} {
		if got := schema.QuoteIdent(in); got != want {
			t.Errorf("schema.QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}
