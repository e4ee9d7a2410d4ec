package schema

import (
	"regexp"
	"strings"
	"testing"
)

// nastyNames are Postgres identifiers that are legal once quoted.
var nastyNames = []string{
	"order", "Order", "ORDER", "oRdEr", "select", "from", "_", "__", "a", "A",
	"first name", " leading", "trailing ", "a.b", "a_b", "a__b", `"quoted"`, `back\slash`, "back`tick",
	"1st", "123", "größe", "Größe", "名前", "emoji😀", "𝄞clef", "tab\there", "new\nline",
	"_PARTITIONTIME", "_partitiondate", "_table_suffix", "_file_name", "__root__", "_colon_x",
	"_CHANGE_TYPE", "_tributary_lsn", "x__deadbeef", "x__DEADBEEF", "x__deadbee",
	strings.Repeat("x", 63), strings.Repeat("😀", 15) + "abc", strings.Repeat("Ä", 31) + "a",
}

var (
	avroNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	bqTableRE  = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

func TestAvroName(t *testing.T) {
	seen := map[string]string{}
	for _, n := range nastyNames {
		got := AvroName(n)
		if !avroNameRE.MatchString(got) {
			t.Errorf("AvroName(%q) = %q, not an Avro name", n, got)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("AvroName(%q) = AvroName(%q) = %q", n, prev, got)
		}
		seen[got] = n
		if got != AvroName(n) {
			t.Errorf("AvroName(%q) is not deterministic", n)
		}
	}
	for in, want := range map[string]string{
		"order": "order", "Order": "Order", "a b": "a_b__" + nameHash("a b"), "1st": "_1st__" + nameHash("1st"),
		"x__deadbeef": "x__deadbeef__" + nameHash("x__deadbeef"),
	} {
		if got := AvroName(in); got != want {
			t.Errorf("AvroName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBigQueryColumnName(t *testing.T) {
	seen := map[string]string{}
	for _, n := range nastyNames {
		got := BigQueryColumnName(n)
		if !avroNameRE.MatchString(got) || len(got) > 300 {
			t.Errorf("BigQueryColumnName(%q) = %q, not a BigQuery column name", n, got)
		}
		if hasReservedPrefix(got) {
			t.Errorf("BigQueryColumnName(%q) = %q starts with a reserved prefix", n, got)
		}
		// BigQuery compares column names without regard to case.
		key := strings.ToLower(got)
		if prev, dup := seen[key]; dup {
			t.Errorf("BigQueryColumnName(%q) and (%q) collide as %q", n, prev, got)
		}
		seen[key] = n
	}
	for in, want := range map[string]string{
		"order":          "order",
		"select":         "select",
		"created_at":     "created_at",
		"Order":          "Order__" + nameHash("Order"),
		"first name":     "first_name__" + nameHash("first name"),
		"_PARTITIONTIME": "c_PARTITIONTIME__" + nameHash("_PARTITIONTIME"),
		"_tributary_lsn": "c_tributary_lsn__" + nameHash("_tributary_lsn"),
		"größe":          "gr__e__" + nameHash("größe"),
		"emoji😀":         "emoji___" + nameHash("emoji😀"),
	} {
		if got := BigQueryColumnName(in); got != want {
			t.Errorf("BigQueryColumnName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBigQueryTableName(t *testing.T) {
	seen := map[string][2]string{}
	schemas := []string{"public", "Public", "sales", "my schema", "a", "a_"}
	for _, s := range schemas {
		for _, n := range append(nastyNames, "_b", "b", "orders") {
			got := BigQueryTableName(s, n, "")
			if !bqTableRE.MatchString(got) {
				t.Errorf("BigQueryTableName(%q, %q) = %q, not a table name", s, n, got)
			}
			key := strings.ToLower(got)
			if prev, dup := seen[key]; dup {
				t.Errorf("BigQueryTableName(%q, %q) and %q collide as %q", s, n, prev, got)
			}
			seen[key] = [2]string{s, n}
			if withSuffix := BigQueryTableName(s, n, "staging"); withSuffix != got+"__staging" {
				t.Errorf("BigQueryTableName(%q, %q, staging) = %q", s, n, withSuffix)
			}
		}
	}
	if got := BigQueryTableName("public", "orders", ""); got != "public__orders" {
		t.Errorf("clean name = %q", got)
	}
	if got := BigQueryTableName("public", "Orders", ""); got != "public__Orders__"+nameHash("public\x00Orders") {
		t.Errorf("upper-case name = %q", got)
	}
	for _, bad := range []string{"Staging", "deadbeef", "a__b", "_x", "1x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("BigQueryTableName with suffix %q did not panic", bad)
				}
			}()
			BigQueryTableName("public", "t", bad)
		}()
	}
}

func TestGCSSegment(t *testing.T) {
	seen := map[string][2]string{}
	for _, s := range []string{"public", "Public", "a.b", "a"} {
		for _, n := range append(nastyNames, "b.c", "b") {
			got := GCSSegment(s, n)
			if strings.ContainsAny(got, "/\r\n#[]*?") || got == "." || got == ".." {
				t.Errorf("GCSSegment(%q, %q) = %q, not a safe path segment", s, n, got)
			}
			if prev, dup := seen[got]; dup {
				t.Errorf("GCSSegment(%q, %q) and %q collide as %q", s, n, prev, got)
			}
			seen[got] = [2]string{s, n}
		}
	}
	if got := GCSSegment("public", "orders"); got != "public.orders" {
		t.Errorf("clean segment = %q", got)
	}
}

func TestQuoteBigQuery(t *testing.T) {
	for in, want := range map[string]string{
		"orders":      "`orders`",
		"my-project":  "`my-project`",
		"a`b":         "`a\\`b`",
		`a\b`:         "`a\\\\b`",
		"line\nbreak": "`line\\nbreak`",
		"名前":          "`名前`",
	} {
		if got := QuoteBigQuery(in); got != want {
			t.Errorf("QuoteBigQuery(%q) = %s, want %s", in, got, want)
		}
	}
}
