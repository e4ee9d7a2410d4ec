package schema

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// referenceChangelog is the path the backfill took before the
// ChangelogEncoder: convert each row image with Table.Record, flatten the
// Event with Changelog.Record, encode it with goavro.
func referenceChangelog(cl *Changelog, buf []byte, ev *TextEvent) ([]byte, error) {
	full := &Event{Op: ev.Op, CommitLSN: ev.CommitLSN, LSN: ev.LSN, Seq: ev.Seq, Xid: ev.Xid, CommitTime: ev.CommitTime,
		Schema: ev.Schema, Table: ev.Table, Unchanged: ev.Unchanged}
	var err error
	if ev.Before != nil {
		if full.Before, err = cl.Events.Table.Record(ev.Before); err != nil {
			return nil, err
		}
	}
	if ev.After != nil {
		if full.After, err = cl.Events.Table.Record(ev.After); err != nil {
			return nil, err
		}
	}
	return cl.Codec.BinaryFromNative(buf, cl.Record(full))
}

// checkSameRecord encodes ev both ways after the same prefix and fails
// unless the bytes, or the errors, are the same; and unless the fast path
// took the event exactly when the reference succeeded. It returns the
// reference's error.
func checkSameRecord(t *testing.T, enc *ChangelogEncoder, ev *TextEvent, what string) error {
	t.Helper()
	prefix := []byte("prefix")
	want, wantErr := referenceChangelog(enc.cl, bytes.Clone(prefix), ev)
	got, gotErr := enc.Encode(bytes.Clone(prefix), ev)
	switch {
	case wantErr == nil && gotErr == nil:
		if !bytes.Equal(got, want) {
			t.Errorf("%s: bytes differ\n fast      % x\n reference % x", what, short(got), short(want))
		}
		// And goavro reads the bytes back as the record it was given.
		if _, rest, err := enc.cl.Codec.NativeFromBinary(got[len(prefix):]); err != nil || len(rest) != 0 {
			t.Errorf("%s: goavro reads the record back with %v and %d bytes left", what, err, len(rest))
		}
	case wantErr == nil || gotErr == nil:
		t.Errorf("%s: error %v, reference error %v", what, gotErr, wantErr)
	default:
		if gotErr.Error() != wantErr.Error() {
			t.Errorf("%s: error %q, reference %q", what, gotErr, wantErr)
		}
		var g, w *DeadLetterError
		if errors.As(gotErr, &g) != errors.As(wantErr, &w) || g != nil && *g != *w {
			t.Errorf("%s: dead-letter %+v, reference %+v", what, g, w)
		}
	}
	if enc.fast {
		if _, fast := enc.appendRecord(nil, ev); fast != (wantErr == nil) {
			t.Errorf("%s: fast path took it: %v; reference error: %v", what, fast, wantErr)
		}
	}
	return wantErr
}

// fastencChangelogs are the changelogs of the type zoo table: columns named
// like their fields, and with some renamed (as after a type change).
func fastencChangelogs(t *testing.T, tbl *Table) map[string]*ChangelogEncoder {
	t.Helper()
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*ChangelogEncoder{}
	for name, renamed := range map[string]map[string]string{
		"plain":   nil,
		"renamed": {tbl.Columns[0].Name: tbl.Columns[0].Name + "_v2", tbl.Columns[5].Name: tbl.Columns[5].Name + "_v3"},
	} {
		cl, err := NewChangelogColumns(es, renamed)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := NewChangelogEncoder(cl)
		if err != nil {
			t.Fatal(err)
		}
		if !enc.Fast() {
			t.Fatalf("%s: the changelog encoder disagreed with the general path on its probe events", name)
		}
		out[name] = enc
	}
	return out
}

// TestChangelogEncoderMatchesGeneralPathPerValue puts each value of every
// type of the zoo alone in a snapshot read's row (the others NULL), the
// backfill's event, and compares the record encodings and the errors of
// the values that go to the dead-letter.
func TestChangelogEncoderMatchesGeneralPathPerValue(t *testing.T) {
	tbl := fastencTable(t)
	for name, enc := range fastencChangelogs(t, tbl) {
		var ok, dead, handWritten int
		for i, vals := range caseValues() {
			m := tbl.Columns[i]
			for _, v := range vals {
				row := make([][]byte, len(tbl.Columns))
				if string(v) != nul {
					row[i] = v
				}
				ev := fastencEvent(tbl)
				ev.Op, ev.After = "r", row
				what := fmt.Sprintf("%s: %s %q", name, m.PG, truncateUTF8(string(v), 60))
				if err := checkSameRecord(t, enc, ev, what); err != nil {
					var dl *DeadLetterError
					if !errors.As(err, &dl) {
						t.Errorf("%s: reference error is not a dead-letter: %v", what, err)
					}
					dead++
					continue
				}
				ok++
				if enc.enc.cols[i].kind != kGeneral {
					handWritten++
				}
			}
		}
		t.Logf("%s: %d values encoded alike (%d by the hand-written appends), %d dead-lettered alike", name, ok, handWritten, dead)
		if handWritten < 150 || dead < 60 {
			t.Errorf("%s: too few cases exercised: %d hand-written, %d dead-lettered", name, handWritten, dead)
		}
	}
}

// TestChangelogEncoderMatchesGeneralPathRandomRows draws whole rows from
// the zoo's values (NULLs and some dead-lettered values included), with
// every op, before images and unchanged columns.
func TestChangelogEncoderMatchesGeneralPathRandomRows(t *testing.T) {
	tbl := fastencTable(t)
	rng := rand.New(rand.NewPCG(5, 8))
	row := randomRows(tbl, rng)
	for name, enc := range fastencChangelogs(t, tbl) {
		var ok, dead int
		for n := range 500 {
			ev := fastencEvent(tbl)
			ev.Seq, ev.Xid = int64(n), rng.Int64N(1<<40)
			ev.CommitTime = time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9))
			switch n % 5 {
			case 0:
				ev.Op, ev.After = "r", row()
			case 1:
				ev.After = row()
			case 2:
				ev.Op, ev.Before, ev.After = "u", row(), row()
				for i := range ev.After {
					if ev.After[i] == nil && rng.IntN(3) == 0 {
						ev.Unchanged = append(ev.Unchanged, tbl.Columns[i].Name)
					}
				}
			case 3:
				ev.Op, ev.Before = "d", row()
			case 4:
				ev.Op = "t"
			}
			if err := checkSameRecord(t, enc, ev, fmt.Sprintf("%s: random event %d (op %s)", name, n, ev.Op)); err != nil {
				dead++
			} else {
				ok++
			}
		}
		t.Logf("%s: %d random events encoded alike, %d failed alike", name, ok, dead)
		if ok < 250 || dead < 25 {
			t.Errorf("%s: too few of each: %d encoded, %d failed", name, ok, dead)
		}
	}
}

// TestChangelogEncoderWithoutKey covers a table without a replica identity
// (no before-key field) and one without columns.
func TestChangelogEncoderWithoutKey(t *testing.T) {
	for _, cols := range [][]Column{
		{{Name: "a", TypeOID: 23, TypeMod: -1}, {Name: "b", TypeOID: 25, TypeMod: -1}, {Name: "c", TypeOID: 1700, TypeMod: numericTypmod(12, 2)}},
		{},
	} {
		tbl, err := MapTable("public", "nokey", cols, fastencResolver)
		if err != nil {
			t.Fatal(err)
		}
		es, err := NewEventSchema(tbl)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := NewChangelog(es)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := NewChangelogEncoder(cl)
		if err != nil {
			t.Fatal(err)
		}
		if !enc.Fast() {
			t.Fatalf("%d columns: the changelog encoder disagreed with the general path on its probe events", len(cols))
		}
		row := [][]byte{[]byte("7"), []byte("note"), []byte("12.50")}[:len(cols)]
		bad := [][]byte{[]byte("x"), []byte("note"), []byte("12.50")}[:len(cols)]
		for _, ev := range []*TextEvent{
			{Op: "r", After: row}, {Op: "c", After: row}, {Op: "u", Before: row, After: row}, {Op: "d", Before: row},
			{Op: "d", Before: row, After: bad}, {Op: "u", Before: bad, After: row}, {Op: "t"},
		} {
			ev.CommitLSN, ev.LSN, ev.Seq, ev.Xid, ev.CommitTime, ev.Schema, ev.Table = 99, 98, 1, 2, time.Unix(1, 5000), "public", "nokey"
			checkSameRecord(t, enc, ev, fmt.Sprintf("%d columns, op %s", len(cols), ev.Op))
		}
	}
}

// TestChangelogEncoderFallsBack gives the encoder a changelog whose columns
// are not its table's: the check finds it and every event takes the
// general path, which encodes what the reference does.
func TestChangelogEncoderFallsBack(t *testing.T) {
	tbl := testTable(t)
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewChangelog(es)
	if err != nil {
		t.Fatal(err)
	}
	other := *cl
	other.Columns = append([]StoredColumn(nil), cl.Columns...)
	other.Columns[1].Avro = []byte(`["null","long"]`)
	enc, err := NewChangelogEncoder(&other)
	if err != nil {
		t.Fatal(err)
	}
	if enc.Fast() {
		t.Fatal("the fast path was kept for columns it does not write")
	}
	ev := fastencEvent(tbl)
	ev.After = [][]byte{[]byte("7"), []byte("note"), []byte("12.50")}
	got, err := enc.Encode(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	want, err := referenceChangelog(&other, nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("general path of a slow encoder: % x, reference % x", got, want)
	}
	if _, err := NewChangelogEncoder(&Changelog{}); err == nil {
		t.Error("NewChangelogEncoder of a changelog without an event schema succeeded")
	}
}
