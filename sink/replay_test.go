package sink

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
)

func TestParseBound(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		in      string
		want    Bound
		wantErr string
	}{
		{in: "", want: Bound{}},
		{in: "0/16B3748", want: Bound{LSN: 0x16B3748}},
		{in: "1/0", want: Bound{LSN: 1 << 32}},
		{in: "A/ff", want: Bound{LSN: 0xA<<32 | 0xFF}},
		{in: " 23803720 ", want: Bound{LSN: 23803720}},
		{in: "2026-01-02T15:04:05Z", want: Bound{Time: ts("2026-01-02T15:04:05Z")}},
		{in: "2026-01-02T17:04:05.123456789+02:00", want: Bound{Time: ts("2026-01-02T15:04:05.123456789Z")}},
		{in: "0/0", wantErr: "LSN 0"},
		{in: "0", wantErr: "LSN 0"},
		{in: "/16", wantErr: "not an LSN"},
		{in: "0/xyz", wantErr: "not an LSN"},
		{in: "100000000/0", wantErr: "not an LSN"},
		{in: "FFFFFFFF/FFFFFFFF", wantErr: "INT64"},
		{in: "99999999999999999999", wantErr: "not an LSN"},
		{in: "2026-01-02", wantErr: "RFC 3339"},
		{in: "yesterday", wantErr: "RFC 3339"},
	}
	for _, tt := range tests {
		got, err := ParseBound(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseBound(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.LSN != tt.want.LSN || !got.Time.Equal(tt.want.Time) {
			t.Errorf("ParseBound(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		// String gives back what ParseBound reads.
		if again, err := ParseBound(got.String()); err != nil || again.LSN != got.LSN || !again.Time.Equal(got.Time) {
			t.Errorf("ParseBound(%q).String() = %q reads back as %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestCheckRange(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		from, to Bound
		ok       bool
	}{
		{Bound{}, Bound{}, true},
		{Bound{LSN: 5}, Bound{LSN: 5}, true},
		{Bound{LSN: 6}, Bound{LSN: 5}, false},
		{Bound{Time: t0}, Bound{Time: t0.Add(time.Second)}, true},
		{Bound{Time: t0.Add(time.Second)}, Bound{Time: t0}, false},
		{Bound{LSN: 6}, Bound{Time: t0}, true}, // different kinds: not comparable here
	}
	for _, tt := range tests {
		if err := checkRange(tt.from, tt.to); (err == nil) != tt.ok {
			t.Errorf("checkRange(%v, %v) = %v, want ok %v", tt.from, tt.to, err, tt.ok)
		}
	}
}

func TestParseDataObject(t *testing.T) {
	l := Layout{Prefix: "cdc", Database: "shop"}
	commit := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	name := l.DataObject("public", "Line Items", commit, 0x16B3748, 0x1_0000_0001, "ab12cd34.1")
	o, err := ParseDataObject(name)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != name || o.First != 0x16B3748 || o.Last != 0x1_0000_0001 || !o.Hour.Equal(time.Date(2026, 3, 4, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseDataObject(%q) = %+v", name, o)
	}
	for _, bad := range []string{
		"cdc/shop/public.t/dt=2026-03-04/hh=05/0000000000000001-0000000000000002-w.json",
		"cdc/shop/public.t/dt=2026-03-04/hh=05/1-2-w.avro",
		"cdc/shop/public.t/dt=2026-03-04/hh=05/0000000000000003-0000000000000002-w.avro",
		"cdc/shop/public.t/dt=2026-03-04/0000000000000001-0000000000000002-w.avro",
		"cdc/shop/public.t/dt=2026-03-04/hh=05/0000000000000001-0000000000000002-.avro",
		"cdc/shop/public.t/dt=2026-03-04/hh=05/000000000000000g-0000000000000002-w.avro",
	} {
		if o, err := ParseDataObject(bad); err == nil {
			t.Errorf("ParseDataObject(%q) = %+v, want an error", bad, o)
		}
	}
}

func TestSelectObjects(t *testing.T) {
	h := func(hour int) time.Time { return time.Date(2026, 1, 2, hour, 0, 0, 0, time.UTC) }
	objs := []ReplayObject{ // unordered, as a listing may be
		{Name: "d", First: 400, Last: 500, Hour: h(12)},
		{Name: "a", First: 100, Last: 150, Hour: h(10)},
		{Name: "c", First: 300, Last: 300, Hour: h(11)},
		{Name: "b2", First: 200, Last: 260, Hour: h(10)},
		{Name: "b1", First: 200, Last: 250, Hour: h(10)},
	}
	names := func(os []ReplayObject) string {
		var n []string
		for _, o := range os {
			n = append(n, o.Name)
		}
		return strings.Join(n, ",")
	}
	tests := []struct {
		what     string
		from, to Bound
		want     string
	}{
		{"everything, in LSN order", Bound{}, Bound{}, "a,b1,b2,c,d"},
		{"from inside an object keeps it", Bound{LSN: 255}, Bound{}, "b2,c,d"},
		{"from at an object's last LSN keeps it", Bound{LSN: 300}, Bound{}, "c,d"},
		{"to at an object's first LSN keeps it", Bound{}, Bound{LSN: 300}, "a,b1,b2,c"},
		{"to before every object", Bound{}, Bound{LSN: 99}, ""},
		{"LSN window", Bound{LSN: 151}, Bound{LSN: 399}, "b1,b2,c"},
		{"to time inside an hour keeps that hour's partition", Bound{}, Bound{Time: h(11).Add(59 * time.Minute)}, "a,b1,b2,c"},
		{"to time at an hour's start keeps it", Bound{}, Bound{Time: h(11)}, "a,b1,b2,c"},
		{"to time before the first partition's end", Bound{}, Bound{Time: h(10).Add(-time.Nanosecond)}, ""},
		{"from time selects nothing by name", Bound{Time: h(12)}, Bound{}, "a,b1,b2,c,d"},
	}
	for _, tt := range tests {
		if got := names(SelectObjects(objs, tt.from, tt.to)); got != tt.want {
			t.Errorf("%s: SelectObjects(%v, %v) = %q, want %q", tt.what, tt.from, tt.to, got, tt.want)
		}
	}
}

func TestRangeSQL(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", -3600))
	tests := []struct {
		from, to      Bound
		outside, bfor string
	}{
		{Bound{}, Bound{}, "", ""},
		{Bound{LSN: 100}, Bound{}, "_tributary_commit_lsn < 100", "_tributary_commit_lsn < 100"},
		{Bound{}, Bound{LSN: 200}, "_tributary_commit_lsn > 200", ""},
		{Bound{LSN: 100}, Bound{LSN: 200}, "_tributary_commit_lsn < 100 OR _tributary_commit_lsn > 200", "_tributary_commit_lsn < 100"},
		// Microseconds: from rounds up, to down.
		{Bound{Time: t0}, Bound{Time: t0},
			"_tributary_commit_ts < TIMESTAMP '2026-01-02 04:04:05.123457+00' OR _tributary_commit_ts > TIMESTAMP '2026-01-02 04:04:05.123456+00'",
			"_tributary_commit_ts < TIMESTAMP '2026-01-02 04:04:05.123457+00'"},
		{Bound{Time: t0.Truncate(time.Second)}, Bound{}, "_tributary_commit_ts < TIMESTAMP '2026-01-02 04:04:05.000000+00'", "_tributary_commit_ts < TIMESTAMP '2026-01-02 04:04:05.000000+00'"},
		{Bound{LSN: 100}, Bound{Time: t0}, "_tributary_commit_lsn < 100 OR _tributary_commit_ts > TIMESTAMP '2026-01-02 04:04:05.123456+00'", "_tributary_commit_lsn < 100"},
	}
	for _, tt := range tests {
		if got := OutsideSQL(tt.from, tt.to); got != tt.outside {
			t.Errorf("OutsideSQL(%v, %v) =\n  %s\nwant\n  %s", tt.from, tt.to, got, tt.outside)
		}
		if got := BeforeSQL(tt.from); got != tt.bfor {
			t.Errorf("BeforeSQL(%v) = %s, want %s", tt.from, got, tt.bfor)
		}
	}
}

func TestSwapSQL(t *testing.T) {
	got := swapSQL("p", "d", []swap{
		{Target: "public__t__changelog", Aside: "public__t__changelog_replay", Columns: []string{"_tributary_op", "id"}},
		{Target: "public__t", Aside: "public__t__replay", Columns: []string{"_tributary_key", "id"}},
	})
	want := "BEGIN TRANSACTION;\n" +
		"DELETE FROM `p.d.public__t__changelog` WHERE true;\n" +
		"INSERT INTO `p.d.public__t__changelog` (`_tributary_op`, `id`)\nSELECT `_tributary_op`, `id` FROM `p.d.public__t__changelog_replay`;\n" +
		"DELETE FROM `p.d.public__t` WHERE true;\n" +
		"INSERT INTO `p.d.public__t` (`_tributary_key`, `id`)\nSELECT `_tributary_key`, `id` FROM `p.d.public__t__replay`;\n" +
		"COMMIT TRANSACTION;"
	if got != want {
		t.Errorf("swapSQL =\n%s\nwant\n%s", got, want)
	}
}

func TestReplayJobID(t *testing.T) {
	objs := []string{"p/db/public.t/dt=2026-01-02/hh=03/0000000000000001-0000000000000002-w.avro"}
	a, b := replayJobID("run1", objs), replayJobID("run2", objs)
	if a == b || a == LoadJobID(objs) || !strings.HasPrefix(a, "tributary_replay_run1_") {
		t.Errorf("replay job IDs %q, %q; the sink's %q", a, b, LoadJobID(objs))
	}
	if a != replayJobID("run1", objs) {
		t.Error("replayJobID is not deterministic")
	}
}

func TestMergeSchema(t *testing.T) {
	have := bigquery.Schema{{Name: "a", Type: bigquery.IntegerFieldType, Required: true}, {Name: "B", Type: bigquery.StringFieldType}}
	add := bigquery.Schema{{Name: "b", Type: bigquery.StringFieldType}, {Name: "c", Type: bigquery.DateFieldType, Required: true}, {Name: "a", Type: bigquery.IntegerFieldType}}
	got := mergeSchema(have, add)
	var desc []string
	for _, f := range got {
		desc = append(desc, fmt.Sprintf("%s:%s:%v", f.Name, f.Type, f.Required))
	}
	if want := "a:INTEGER:true B:STRING:false c:DATE:false"; strings.Join(desc, " ") != want {
		t.Errorf("mergeSchema = %s, want %s", strings.Join(desc, " "), want)
	}
	if !add[1].Required {
		t.Error("mergeSchema changed its argument")
	}
}
