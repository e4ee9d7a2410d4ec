package capture

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

func col(kind byte, s string) *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: kind, Data: []byte(s), Length: uint32(len(s))}
}

func rel(keys ...int) *Relation {
	cols := []*pglogrepl.RelationMessageColumn{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	r := &Relation{Namespace: "public", Name: "t", Columns: cols}
	for _, k := range keys {
		cols[k].Flags = 1
	}
	r.KeyIdx = keys
	return r
}

func TestBucketFollowsTheKeyOnly(t *testing.T) {
	r := rel(0, 1)
	insert := &Change{Op: OpInsert, Relation: r, After: []*pglogrepl.TupleDataColumn{col('t', "1"), col('t', "x"), col('t', "v1")}}
	update := &Change{Op: OpUpdate, Relation: r, After: []*pglogrepl.TupleDataColumn{col('t', "1"), col('t', "x"), col('t', "v2")}}
	del := &Change{Op: OpDelete, Relation: r, Before: []*pglogrepl.TupleDataColumn{col('t', "1"), col('t', "x"), col('n', "")}}
	b := insert.Bucket(32)
	if update.Bucket(32) != b || del.Bucket(32) != b {
		t.Fatalf("one row's changes landed in buckets %d, %d, %d", b, update.Bucket(32), del.Bucket(32))
	}
	// A change decoded afresh (another Relation, as after a reconnect) with
	// the same key lands in the same bucket; other keys spread.
	spread := map[int]bool{}
	for i := range 200 {
		k := string(rune('0'+i%10)) + string(rune('a'+i/10))
		a := &Change{Op: OpInsert, Relation: rel(0, 1), After: []*pglogrepl.TupleDataColumn{col('t', k), col('t', "x"), col('t', "v1")}}
		d := &Change{Op: OpDelete, Relation: rel(0, 1), Before: []*pglogrepl.TupleDataColumn{col('t', k), col('t', "x"), col('n', "")}}
		if a.Bucket(32) != d.Bucket(32) {
			t.Fatalf("key %q: insert in bucket %d, delete in %d", k, a.Bucket(32), d.Bucket(32))
		}
		spread[a.Bucket(32)] = true
	}
	if len(spread) < 16 {
		t.Fatalf("200 keys spread over %d of 32 buckets", len(spread))
	}
}

func TestBucketSeparatesAmbiguousConcatenations(t *testing.T) {
	r := rel(0, 1)
	spread := map[int]bool{}
	for _, kv := range [][2]string{{"ab", "c"}, {"a", "bc"}, {"abc", ""}} {
		c := &Change{Relation: r, After: []*pglogrepl.TupleDataColumn{col('t', kv[0]), col('t', kv[1]), col('n', "")}}
		spread[c.Bucket(1<<20)] = true
	}
	if len(spread) != 3 {
		t.Fatalf("composite keys that concatenate to the same text share a bucket: %v", spread)
	}
}

func TestBucketWithoutKeyUsesWholeRow(t *testing.T) {
	r := rel()
	buckets := map[int]bool{}
	for i := 0; i < 200; i++ {
		c := &Change{Relation: r, After: []*pglogrepl.TupleDataColumn{col('t', string(rune('a'+i%26))), col('t', string(rune('a'+i/26))), col('n', "")}}
		buckets[c.Bucket(32)] = true
	}
	if len(buckets) < 16 {
		t.Fatalf("keyless rows spread over only %d of 32 buckets", len(buckets))
	}
}

func TestOrderingKey(t *testing.T) {
	tests := []struct {
		ns, name string
		bucket   int
		want     string
	}{
		{"public", "orders", 3, "public.orders/3"},
		{"public", "Order Items", 0, `public."Order Items"/0`},
		{"my.schema", `a"b`, 31, `"my.schema"."a""b"/31`},
		{"public", "1st", 1, `public."1st"/1`},
	}
	for _, tt := range tests {
		if got := OrderingKey(&Relation{Namespace: tt.ns, Name: tt.name}, tt.bucket); got != tt.want {
			t.Errorf("OrderingKey(%q, %q, %d) = %q, want %q", tt.ns, tt.name, tt.bucket, got, tt.want)
		}
	}
}

func TestUnchangedNamesToastedColumns(t *testing.T) {
	c := &Change{Relation: rel(0), After: []*pglogrepl.TupleDataColumn{col('t', "1"), col('u', ""), col('n', "")}}
	got := c.Unchanged()
	if len(got) != 1 || got[0] != "b" {
		t.Fatalf("Unchanged() = %v, want [b]", got)
	}
}
