package backfill

import (
	"reflect"
	"testing"
)

func TestKeyChunkSQL(t *testing.T) {
	cols := []column{{TypeSQL: "integer"}, {TypeSQL: "text"}, {TypeSQL: "text"}}
	cols[0].Name, cols[1].Name, cols[2].Name = "id", "Name", "v"
	tests := []struct {
		name                string
		keys, types         []string
		after, lower, upper []string
		where               string
		want                string
		args                []any
	}{
		{name: "whole table", keys: []string{"id"}, types: []string{"integer"},
			want: `SELECT "id", "Name", "v" FROM "s"."t" ORDER BY "id" LIMIT 10`},
		{name: "first chunk of a middle range", keys: []string{"id"}, types: []string{"integer"}, lower: []string{"5"}, upper: []string{"9"},
			want: `SELECT "id", "Name", "v" FROM "s"."t" WHERE ("id") >= ($1::text::integer) AND ("id") < ($2::text::integer) ORDER BY "id" LIMIT 10`,
			args: []any{"5", "9"}},
		{name: "after a chunk: lower no longer needed", keys: []string{"id"}, types: []string{"integer"}, after: []string{"7"}, lower: []string{"5"},
			want: `SELECT "id", "Name", "v" FROM "s"."t" WHERE ("id") > ($1::text::integer) ORDER BY "id" LIMIT 10`,
			args: []any{"7"}},
		{name: "composite key and a filter", keys: []string{"id", "Name"}, types: []string{"integer", "text"}, after: []string{"1", "a'b"}, where: "v <> 'x' OR true",
			want: `SELECT "id", "Name", "v" FROM "s"."t" WHERE ("id", "Name") > ($1::text::integer, $2::text::text) AND (v <> 'x' OR true) ORDER BY "id", "Name" LIMIT 10`,
			args: []any{"1", "a'b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, args := keyChunkSQL(`"s"."t"`, cols, tt.keys, tt.types, tt.after, tt.lower, tt.upper, tt.where, 10)
			if q != tt.want {
				t.Errorf("sql\n got %s\nwant %s", q, tt.want)
			}
			if !reflect.DeepEqual(args, tt.args) {
				t.Errorf("args = %v, want %v", args, tt.args)
			}
		})
	}
}

func TestCtidChunkSQL(t *testing.T) {
	cols := []column{{}}
	cols[0].Name = "a"
	if got, want := ctidChunkSQL(`"s"."t"`, cols, 10, 20, ""), `SELECT "a" FROM "s"."t" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if got, want := ctidChunkSQL(`"s"."t"`, cols, 0, 1, "a > 1"), `SELECT "a" FROM "s"."t" WHERE ctid >= '(0,0)'::tid AND ctid < '(1,0)'::tid AND (a > 1)`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestSampleSQL(t *testing.T) {
	got := sampleSQL(`"s"."t"`, []string{"a", "B"}, 2.5)
	want := `SELECT t."a"::text, t."B"::text FROM "s"."t" AS t TABLESAMPLE SYSTEM (2.5) ORDER BY t."a", t."B"`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestSplitSample(t *testing.T) {
	k := func(s ...string) []string { return s }
	tests := []struct {
		name   string
		sample [][]string
		n      int
		want   [][]string
	}{
		{"one range", [][]string{k("1"), k("2")}, 1, nil},
		{"empty sample", nil, 4, nil},
		{"even", [][]string{k("1"), k("2"), k("3"), k("4"), k("5"), k("6"), k("7"), k("8")}, 4, [][]string{k("3"), k("5"), k("7")}},
		{"repeats dropped", [][]string{k("1"), k("1"), k("1"), k("1"), k("2"), k("2")}, 3, [][]string{k("1"), k("2")}},
		{"fewer keys than ranges", [][]string{k("9")}, 4, [][]string{k("9")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitSample(tt.sample, tt.n); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSplitBlocks(t *testing.T) {
	tests := []struct {
		blocks uint32
		n      int
		want   [][2]uint32
	}{
		{0, 4, [][2]uint32{{0, 0}}},
		{3, 4, [][2]uint32{{0, 1}, {1, 2}, {2, 3}}},
		{10, 4, [][2]uint32{{0, 2}, {2, 5}, {5, 7}, {7, 10}}},
	}
	for _, tt := range tests {
		if got := splitBlocks(tt.blocks, tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitBlocks(%d, %d) = %v, want %v", tt.blocks, tt.n, got, tt.want)
		}
	}
}

func TestProgressObject(t *testing.T) {
	if got, want := ProgressObject("/p/", "db", "public", "t", "run1"), "p/_backfill/db/public.t/run1.json"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := ProgressObject("", "db", "public", "t", "run1"), "_backfill/db/public.t/run1.json"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
