package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"1B", 1, ""},
		{"64MiB", 64 << 20, ""},
		{"64 MiB", 64 << 20, ""},
		{"1KiB", 1024, ""},
		{"2GiB", 2 << 30, ""},
		{"1TiB", 1 << 40, ""},
		{"1KB", 1000, ""},
		{"1MB", 1e6, ""},
		{"1GB", 1e9, ""},
		{"3TB", 3e12, ""},
		{"", 0, `"" is not a size (` + sizeHint + ")"},
		{"MiB", 0, `"MiB" is not a size (` + sizeHint + ")"},
		{"-1MiB", 0, `"-1MiB" is not a size (` + sizeHint + ")"},
		{"1.5GiB", 0, `"1.5GiB" is not a size: unknown unit ".5GiB" (` + sizeHint + ")"},
		{"64mib", 0, `"64mib" is not a size: unknown unit "mib" (` + sizeHint + ")"},
		{"64XB", 0, `"64XB" is not a size: unknown unit "XB" (` + sizeHint + ")"},
		{"9223372036854775808", 0, `"9223372036854775808" is not a size: too large`},
		{"9000000TiB", 0, `"9000000TiB" is not a size: too large`},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseSize(%q) error = %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{64 << 20, "64MiB"},
		{1e9, "1GB"},
		{3 << 30, "3GiB"},
		{5e12, "5TB"},
		{2 << 40, "2TiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(tt.in.String()); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in.String(), back, err, tt.in)
		}
	}
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"10s", 10 * time.Second, ""},
		{"1m", time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{`"2s"`, 2 * time.Second, ""},
		{"10", 0, `"10" is not a duration (write e.g. 500ms, 10s, 1m, 1h30m)`},
		{"1d", 0, `"1d" is not a duration (write e.g. 500ms, 10s, 1m, 1h30m)`},
		{"[1s]", 0, "must be a duration such as 10s, not a list"},
	}
	for _, tt := range tests {
		var d Duration
		err := yaml.Unmarshal([]byte(tt.in), &d)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("decoding %q: error = %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || time.Duration(d) != tt.want {
			t.Errorf("decoding %q = %v, %v; want %v", tt.in, d, err, tt.want)
		}
	}
	out, err := yaml.Marshal(struct{ D Duration }{Duration(90 * time.Second)})
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
}

func TestDSNRedacted(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"url", "postgres://user:secret@host:5432/db?sslmode=require",
			"postgres://user:xxxxx@host:5432/db?sslmode=require"},
		{"postgresql scheme", "postgresql://user:secret@host/db", "postgresql://user:xxxxx@host/db"},
		{"url without password", "postgres://user@host/db", "postgres://user@host/db"},
		{"url without user", "postgres://host/db", "postgres://host/db"},
		{"url, escaped password", "postgres://user:s%40cret@host/db", "postgres://user:xxxxx@host/db"},
		{"url, unescaped @ in password", "postgres://user:se@cret@host/db", "postgres://user:xxxxx@host/db"},
		{"url, unescaped / in password", "postgres://user:se/cret@host/db", "postgres://user:xxxxx@host/db"},
		{"url, unescaped ? in password", "postgres://user:12?34@host/db", "postgres://user:xxxxx@host/db"},
		{"query password", "postgres://user@host/db?sslmode=require&password=secret&x=1",
			"postgres://user@host/db?sslmode=require&password=xxxxx&x=1"},
		{"query password first", "postgres://host/db?password=secret", "postgres://host/db?password=xxxxx"},
		{"query sslpassword", "postgres://host/db?sslpassword=secret#frag", "postgres://host/db?sslpassword=xxxxx#frag"},
		{"query and user password", "postgres://u:secret@host/db?PASSWORD=secret",
			"postgres://u:xxxxx@host/db?PASSWORD=xxxxx"},
		{"key=value", "host=h user=u password=secret dbname=d", "host=h user=u password=xxxxx dbname=d"},
		{"key=value, spaces around =", "host=h password = secret dbname=d", "host=h password = xxxxx dbname=d"},
		{"key=value, quoted", `host=h password='se cr\'et' dbname=d`, "host=h password=xxxxx dbname=d"},
		{"key=value, escaped space", `password=se\ cret dbname=d`, "password=xxxxx dbname=d"},
		{"key=value, unterminated quote", `host=h password='se cret`, "host=h password=xxxxx"},
		{"key=value, sslpassword", "host=h sslpassword=secret", "host=h sslpassword=xxxxx"},
		{"key=value, no password", "host=h user=u", "host=h user=u"},
		// libpq skips spaces after =, so the password here is "host=h".
		{"key=value, space after =", "password= host=h", "password= xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DSN(tt.in)
			if got := d.Redacted(); got != tt.want {
				t.Errorf("Redacted() = %q, want %q", got, tt.want)
			}
			if d.Reveal() != tt.in {
				t.Errorf("Reveal() = %q, want %q", d.Reveal(), tt.in)
			}
		})
	}
}

// TestDSNNeverPrinted checks every way a DSN gets printed: fmt verbs, a struct holding it, JSON,
// YAML and slog.
func TestDSNNeverPrinted(t *testing.T) {
	const secret = "s3cr3t"
	d := DSN("postgres://user:" + secret + "@host/db?password=" + secret)
	var c Config
	c.Postgres.URL = d
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out = append(out, fmt.Sprintf(verb, d), fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	y, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, nil))
	l.Info("connecting", "dsn", d, "postgres", c.Postgres)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("connecting", "dsn", d)
	out = append(out, string(j), string(y), logs.String())
	for _, s := range out {
		if strings.Contains(s, secret) {
			t.Errorf("printed the password: %s", s)
		}
	}
	if !strings.Contains(logs.String(), `postgres://user:xxxxx@host/db?password=xxxxx`) {
		t.Errorf("log lacks the redacted DSN: %s", logs.String())
	}
}

func TestParseTableName(t *testing.T) {
	tests := []struct {
		in      string
		want    TableName
		str     string // String(); empty means in
		wantErr string
	}{
		{"public.orders", TableName{"public", "orders"}, "", ""},
		{"Public.Orders", TableName{"public", "orders"}, "public.orders", ""},
		{`public."Orders"`, TableName{"public", "Orders"}, "", ""},
		{`"public"."orders"`, TableName{"public", "orders"}, "public.orders", ""},
		{`public."Order Items"`, TableName{"public", "Order Items"}, "", ""},
		{`public."a.b"`, TableName{"public", "a.b"}, "", ""},
		{`"my.schema"."a.b.c"`, TableName{"my.schema", "a.b.c"}, "", ""},
		{`public."say ""hi"""`, TableName{"public", `say "hi"`}, "", ""},
		{`public.""""`, TableName{"public", `"`}, "", ""},
		{"s1.t_$2", TableName{"s1", "t_$2"}, "", ""},
		{"_s._t", TableName{"_s", "_t"}, "", ""},
		{"público.tabla", TableName{"público", "tabla"}, "", ""},
		{"PÚBLICO.x", TableName{"pÚblico", "x"}, "pÚblico.x", ""}, // only ASCII folds
		{`public."1st"`, TableName{"public", "1st"}, "", ""},
		{"orders", TableName{}, "", `"orders" is not a table name: want schema.table, as in public.orders`},
		{"a.b.c", TableName{}, "", `"a.b.c" is not a table name: want schema.table, as in public.orders`},
		{"", TableName{}, "", `"" is not a table name: empty part`},
		{"public.", TableName{}, "", `"public." is not a table name: empty part`},
		{".orders", TableName{}, "", `".orders" is not a table name: empty part`},
		{`public.""`, TableName{}, "", `"public.\"\"" is not a table name: zero-length quoted identifier ""`},
		{`public."orders`, TableName{}, "", `"public.\"orders" is not a table name: unterminated quoted identifier`},
		{`public."a"b`, TableName{}, "", `"public.\"a\"b" is not a table name: a quote in the middle of an identifier; quote the whole part, doubling quotes inside ("")`},
		{`public.a"b"`, TableName{}, "", `"public.a\"b\"" is not a table name: a quote in the middle of an identifier; quote the whole part, doubling quotes inside ("")`},
		{"public.order-items", TableName{}, "", `"public.order-items" is not a table name: "order-items" needs double quotes (it has '-')`},
		{"public.1st", TableName{}, "", `"public.1st" is not a table name: "1st" needs double quotes (it has '1')`},
		{"public. orders", TableName{}, "", `"public. orders" is not a table name: " orders" needs double quotes (it has ' ')`},
		{"public." + strings.Repeat("x", 64), TableName{}, "", `"public.` + strings.Repeat("x", 64) + `" is not a table name: identifier longer than 63 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTableName(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %#v, %v; want %#v", got, err, tt.want)
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			if got.String() != str {
				t.Errorf("String() = %q, want %q", got.String(), str)
			}
			if back, err := ParseTableName(got.String()); err != nil || back != got {
				t.Errorf("ParseTableName(String()) = %#v, %v", back, err)
			}
			if back, err := ParseTableName(got.Quoted()); err != nil || back != got {
				t.Errorf("ParseTableName(Quoted()) = %#v, %v", back, err)
			}
		})
	}
}

func TestTableNameQuoted(t *testing.T) {
	if got := (TableName{"public", `a "b"`}).Quoted(); got != `"public"."a ""b"""` {
		t.Errorf("Quoted() = %s", got)
	}
}

func TestAddFlags(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f := AddFlags(fs)
	err := fs.Parse([]string{"--config", "other.yaml", "--set", "postgres.tables=[public.a, public.b]", "--set", `sink.tables["public.a"].mode=stream`})
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != "other.yaml" {
		t.Errorf("Path = %q", f.Path)
	}
	want := []string{"postgres.tables=[public.a, public.b]", `sink.tables["public.a"].mode=stream`}
	if strings.Join(f.Overrides, "\n") != strings.Join(want, "\n") {
		t.Errorf("Overrides = %q, want %q", f.Overrides, want)
	}
	if def := AddFlags(pflag.NewFlagSet("x", pflag.ContinueOnError)); def.Path != DefaultPath {
		t.Errorf("default Path = %q", def.Path)
	}
}
