package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// base is a minimal valid file; tests append to it or replace parts of it.
const base = `
project: my-gcp-project
postgres:
  url: postgres://user:${PGPASSWORD}@host:5432/db?sslmode=require
gcs:
  bucket: my-bucket
bigquery:
  dataset: tributary
`

const password = "s3cr3t-pw"

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

var stdEnv = env(map[string]string{"PGPASSWORD": password})

func mustLoad(t *testing.T, yml string, overrides ...string) *Config {
	t.Helper()
	c, err := LoadBytes("tributary.yaml", []byte(yml), stdEnv, overrides)
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	return c
}

// lines splits a joined error into its messages.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, base)
	want := Default()
	want.Project = "my-gcp-project"
	want.Postgres.URL = DSN("postgres://user:" + password + "@host:5432/db?sslmode=require")
	want.GCS.Bucket = "my-bucket"
	want.BigQuery.Dataset = "tributary"
	if c.Postgres.URL != want.Postgres.URL {
		t.Errorf("url = %q, want %q", c.Postgres.URL.Reveal(), want.Postgres.URL.Reveal())
	}
	c.Postgres.URL = want.Postgres.URL
	if got, _ := c.Redacted(); string(got) != string(must(want.Redacted())) {
		t.Errorf("config =\n%s\nwant\n%s", got, must(want.Redacted()))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestLoadFullFile(t *testing.T) {
	c := mustLoad(t, `
project: my-gcp-project
postgres:
  url: postgres://user:${PGPASSWORD}@host:5432/db?sslmode=require
  slot: slot_2
  publication: pub_2
  tables: [public.orders, "public.\"Order Items\"", Sales.Returns]
  standby_timeout: 30s
pubsub:
  topic: t-changes
  subscription: t-sink
  dead_letter_topic: t-dead
  ordering_buckets: 64
  max_outstanding_bytes: 1GB
gcs:
  bucket: my-bucket
  prefix: a/b
bigquery:
  dataset: ds_1
  location: europe-west4
sink:
  flush_bytes: 16MiB
  flush_rows: 5000
  flush_age: 1m30s
  load_interval: 5m
  mode: stream
  stream_apply_interval: 2s
  tables:
    public.orders: {mode: load, soft_delete: true}
    '"public"."Order Items"': {soft_delete: true}
http:
  listen: 127.0.0.1:0
log:
  level: debug
  format: text
`)
	checks := []struct {
		name      string
		got, want any
	}{
		{"slot", c.Postgres.Slot, "slot_2"},
		{"publication", c.Postgres.Publication, "pub_2"},
		{"tables", len(c.Postgres.Tables), 3},
		{"tables[1]", c.Postgres.Tables[1], TableName{"public", "Order Items"}},
		{"tables[2]", c.Postgres.Tables[2], TableName{"sales", "returns"}},
		{"standby_timeout", time.Duration(c.Postgres.StandbyTimeout), 30 * time.Second},
		{"ordering_buckets", c.PubSub.OrderingBuckets, 64},
		{"max_outstanding_bytes", c.PubSub.MaxOutstandingBytes, Size(1e9)},
		{"prefix", c.GCS.Prefix, "a/b"},
		{"location", c.BigQuery.Location, "europe-west4"},
		{"flush_bytes", c.Sink.FlushBytes, 16 * mib},
		{"flush_rows", c.Sink.FlushRows, 5000},
		{"flush_age", time.Duration(c.Sink.FlushAge), 90 * time.Second},
		{"load_interval", time.Duration(c.Sink.LoadInterval), 5 * time.Minute},
		{"stream_apply_interval", time.Duration(c.Sink.StreamApplyInterval), 2 * time.Second},
		{"orders", c.Sink.Table(TableName{"public", "orders"}), TableSink{Mode: ModeLoad, SoftDelete: true}},
		{"order items", c.Sink.Table(TableName{"public", "Order Items"}), TableSink{Mode: ModeStream, SoftDelete: true}},
		{"other table", c.Sink.Table(TableName{"sales", "returns"}), TableSink{Mode: ModeStream}},
		{"canonical key", len(c.Sink.Tables[`public."Order Items"`].Mode), 0},
		{"listen", c.HTTP.Listen, "127.0.0.1:0"},
		{"level", c.Log.SlogLevel().String(), "DEBUG"},
		{"format", c.Log.Format, "text"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if _, ok := c.Sink.Tables[`public."Order Items"`]; !ok {
		t.Errorf("sink.tables keys = %v, want canonical names", sortedKeys(c.Sink.Tables))
	}
}

func TestInterpolation(t *testing.T) {
	tests := []struct {
		name    string
		value   string // the value of project, in YAML
		env     map[string]string
		want    string
		wantErr string
	}{
		{"set", "${P}", map[string]string{"P": "proj-one"}, "proj-one", ""},
		{"inside text", "proj-${P}-x", map[string]string{"P": "one"}, "proj-one-x", ""},
		{"quoted", `"${P}"`, map[string]string{"P": "proj-one"}, "proj-one", ""},
		{"default when unset", "${P:-proj-def}", nil, "proj-def", ""},
		{"default when empty", "${P:-proj-def}", map[string]string{"P": ""}, "proj-def", ""},
		{"set wins over default", "${P:-proj-def}", map[string]string{"P": "proj-one"}, "proj-one", ""},
		{"empty default", "proj-one${P:-}", nil, "proj-one", ""},
		{"set but empty", "proj-one${P}", map[string]string{"P": ""}, "proj-one", ""},
		{"two variables", "${A}-${B}", map[string]string{"A": "proj", "B": "one"}, "proj-one", ""},
		{"unset", "${P}", nil, "",
			"config tributary.yaml: project: environment variable P is not set (write ${P:-default} for a default)"},
		{"unterminated", "proj-${P", map[string]string{"P": "x"}, "", `config tributary.yaml: project: "${" without a closing "}"`},
		{"bad name", "proj-${1P}", nil, "", `config tributary.yaml: project: "${...}" does not hold a variable name (write $$ for a literal $)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"PGPASSWORD": password}
			for k, v := range tt.env {
				vars[k] = v
			}
			yml := strings.Replace(base, "project: my-gcp-project", "project: "+tt.value, 1)
			c, err := LoadBytes("tributary.yaml", []byte(yml), env(vars), nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Project != tt.want {
				t.Errorf("project = %q, want %q", c.Project, tt.want)
			}
		})
	}
}

func TestInterpolateEscapes(t *testing.T) {
	lookup := env(map[string]string{"X": "x"})
	tests := []struct{ in, want string }{
		{"$$", "$"},
		{"$${X}", "${X}"},
		{"$$$${X}", "$${X}"},
		{"$$${X}", "$x"},
		{"a$b", "a$b"},
		{"trailing$", "trailing$"},
		{"${X:-a:-b}", "x"},
		{"${Y:-a:-b}", "a:-b"},
		{"no dollar", "no dollar"},
	}
	for _, tt := range tests {
		got, err := interpolate(tt.in, lookup)
		if err != nil || got != tt.want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestInterpolationTypes checks that an interpolated value is read by the type of its key, not
// by how the text looked before: "${N}" may become an integer.
func TestInterpolationTypes(t *testing.T) {
	c, err := LoadBytes("tributary.yaml", []byte(base+`
pubsub:
  ordering_buckets: ${N}
  max_outstanding_bytes: "${SIZE}"
sink:
  flush_age: ${AGE:-20s}
`), env(map[string]string{"PGPASSWORD": password, "N": "128", "SIZE": "2MiB"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.PubSub.OrderingBuckets != 128 || c.PubSub.MaxOutstandingBytes != 2*mib || c.Sink.FlushAge != Duration(20*time.Second) {
		t.Errorf("got %d, %v, %v", c.PubSub.OrderingBuckets, c.PubSub.MaxOutstandingBytes, c.Sink.FlushAge)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		yml  string // appended to base; later keys are reported as set twice, so tests use new sections
		want []string
	}{
		{"unknown top-level key", "projekt: x\n",
			[]string{"config tributary.yaml: projekt: unknown key (did you mean project?)"}},
		{"unknown nested key", "log:\n  levle: info\n",
			[]string{"config tributary.yaml: log.levle: unknown key (did you mean level?)"}},
		{"unknown key in table", "sink:\n  tables:\n    public.orders: {mod: stream}\n",
			[]string{`config tributary.yaml: sink.tables["public.orders"].mod: unknown key (did you mean mode?)`}},
		{"unknown key, nothing near", "zzz: 1\n",
			[]string{"config tributary.yaml: zzz: unknown key"}},
		{"mode", "sink:\n  tables:\n    public.orders: {mode: strem}\n",
			[]string{`config tributary.yaml: sink.tables["public.orders"].mode: "strem" is not one of load, stream`}},
		{"default mode", "sink:\n  mode: fast\n",
			[]string{`config tributary.yaml: sink.mode: "fast" is not one of load, stream`}},
		{"not an integer", "pubsub:\n  ordering_buckets: many\n",
			[]string{`config tributary.yaml: pubsub.ordering_buckets: "many" is not an integer`}},
		{"out of range", "pubsub:\n  ordering_buckets: 5000\n",
			[]string{`config tributary.yaml: pubsub.ordering_buckets: 5000 is not between 1 and 4096`}},
		{"zero buckets", "pubsub:\n  ordering_buckets: 0\n",
			[]string{`config tributary.yaml: pubsub.ordering_buckets: 0 is not between 1 and 4096`}},
		{"bad size", "pubsub:\n  max_outstanding_bytes: 64XB\n",
			[]string{`config tributary.yaml: pubsub.max_outstanding_bytes: "64XB" is not a size: unknown unit "XB" (` + sizeHint + ")"}},
		{"zero size", "sink:\n  flush_bytes: 0\n",
			[]string{`config tributary.yaml: sink.flush_bytes: must be more than 0`}},
		{"bad duration", "postgres:\n  url: x=y\n  standby_timeout: 10\n",
			[]string{`config tributary.yaml: postgres.standby_timeout: "10" is not a duration (write e.g. 500ms, 10s, 1m, 1h30m)`}},
		{"negative duration", "sink:\n  flush_age: -1s\n",
			[]string{`config tributary.yaml: sink.flush_age: must be more than 0, not -1s`}},
		{"bad bool", "sink:\n  tables:\n    public.orders: {soft_delete: maybe}\n",
			[]string{`config tributary.yaml: sink.tables["public.orders"].soft_delete: "maybe" is not true or false`}},
		{"list for a string", "log:\n  level: [info]\n",
			[]string{`config tributary.yaml: log.level: must be a string, not a list`}},
		{"scalar for a mapping", "http: yes\n",
			[]string{`config tributary.yaml: http: must be a mapping of keys, not a scalar`}},
		{"scalar for a list", "postgres:\n  url: x=y\n  schemas: public\n",
			[]string{`config tributary.yaml: postgres.schemas: must be a list, not a scalar`}},
		{"slot", "postgres:\n  url: x=y\n  slot: My-Slot\n",
			[]string{`config tributary.yaml: postgres.slot: "My-Slot" is not a slot name (1 to 63 of a-z, 0-9 and _)`}},
		{"publication", "postgres:\n  url: x=y\n  publication: 1pub\n",
			[]string{`config tributary.yaml: postgres.publication: "1pub" is not a publication name (a lower-case identifier of at most 63 bytes: a-z or _, then a-z, 0-9 or _)`}},
		{"tables and schemas", "postgres:\n  url: x=y\n  tables: [public.a]\n  schemas: [public]\n",
			[]string{`config tributary.yaml: postgres: set tables or schemas, not both`}},
		{"bad table name", "postgres:\n  url: x=y\n  tables: [public.a, orders, 'public.\"unterminated']\n",
			[]string{
				`config tributary.yaml: postgres.tables[1]: "orders" is not a table name: want schema.table, as in public.orders`,
				`config tributary.yaml: postgres.tables[2]: "public.\"unterminated" is not a table name: unterminated quoted identifier`,
			}},
		{"duplicate table", "postgres:\n  url: x=y\n  tables: [public.a, PUBLIC.A]\n",
			[]string{`config tributary.yaml: postgres.tables[1]: public.a is listed twice (also at [0])`}},
		{"bad schema", "postgres:\n  url: x=y\n  schemas: [a.b]\n",
			[]string{`config tributary.yaml: postgres.schemas[0]: "a.b" is not an identifier: it has a dot; quote it to keep the dot`}},
		{"bad sink table key", "sink:\n  tables:\n    orders: {mode: load}\n",
			[]string{`config tributary.yaml: sink.tables["orders"]: "orders" is not a table name: want schema.table, as in public.orders`}},
		{"sink table not captured", "postgres:\n  url: x=y\n  tables: [public.a]\nsink:\n  tables:\n    public.b: {mode: load}\n",
			[]string{`config tributary.yaml: sink.tables["public.b"]: public.b is not in postgres.tables`}},
		{"sink table schema not captured", "postgres:\n  url: x=y\n  schemas: [public]\nsink:\n  tables:\n    sales.b: {mode: load}\n",
			[]string{`config tributary.yaml: sink.tables["sales.b"]: schema sales is not in postgres.schemas`}},
		{"same sink table twice", "sink:\n  tables:\n    public.a: {mode: load}\n    '\"public\".a': {mode: stream}\n",
			[]string{`config tributary.yaml: sink.tables["public.a"]: names the same table as sink.tables["\"public\".a"]`}},
		{"bucket", "gcs:\n  bucket: My_Bucket\n",
			[]string{`config tributary.yaml: gcs.bucket: "My_Bucket" is not a bucket name: use only a-z, 0-9, -, _ and .`}},
		{"bucket google", "gcs:\n  bucket: my-google-bucket\n",
			[]string{`config tributary.yaml: gcs.bucket: "my-google-bucket" is not a bucket name: must not contain "google"`}},
		{"prefix", "gcs:\n  bucket: my-bucket\n  prefix: /a/\n",
			[]string{`config tributary.yaml: gcs.prefix: "/a/" must not start or end with /`}},
		{"dataset", "bigquery:\n  dataset: my-ds\n",
			[]string{`config tributary.yaml: bigquery.dataset: "my-ds" is not a dataset ID (1 to 1024 letters, digits and _)`}},
		{"topic", "pubsub:\n  topic: goog-x\n",
			[]string{`config tributary.yaml: pubsub.topic: "goog-x" is not a Pub/Sub name (3 to 255 letters, digits and - _ . ~ + %, starting with a letter, not with goog)`}},
		{"listen", "http:\n  listen: localhost\n",
			[]string{`config tributary.yaml: http.listen: "localhost" is not host:port`}},
		{"listen port", "http:\n  listen: :99999\n",
			[]string{`config tributary.yaml: http.listen: ":99999": port "99999" is not a number from 0 to 65535`}},
		{"log", "log:\n  level: verbose\n  format: xml\n",
			[]string{
				`config tributary.yaml: log.level: "verbose" is not one of debug, info, warn, error`,
				`config tributary.yaml: log.format: "xml" is not one of json, text`,
			}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n",
			[]string{`config tributary.yaml: log.level: set twice (lines 10 and 11)`}},
		{"merge key", "log:\n  <<: {level: info}\n",
			[]string{`config tributary.yaml: log.<<: merge keys are not supported`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yml := base + tt.yml
			if strings.HasPrefix(tt.yml, "postgres:") {
				// Replace the base's postgres section; the tests give their own url.
				yml = strings.Replace(base, "postgres:\n  url: postgres://user:${PGPASSWORD}@host:5432/db?sslmode=require\n", "", 1) + tt.yml
			}
			if strings.HasPrefix(tt.yml, "gcs:") {
				yml = strings.Replace(base, "gcs:\n  bucket: my-bucket\n", "", 1) + tt.yml
			}
			if strings.HasPrefix(tt.yml, "bigquery:") {
				yml = strings.Replace(base, "bigquery:\n  dataset: tributary\n", "", 1) + tt.yml
			}
			c, err := LoadBytes("tributary.yaml", []byte(yml), stdEnv, nil)
			if c != nil || err == nil {
				t.Fatalf("LoadBytes gave no error")
			}
			if got := lines(err); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			var e *Error
			if !errors.As(err, &e) || e.Path == "" {
				t.Errorf("errors.As(*Error) = %v, %+v; want an *Error with a path", errors.As(err, &e), e)
			}
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	_, err := LoadBytes("tributary.yaml", []byte(`
projekt: x
postgres:
  slot: BAD
  url: ${NOPE}
pubsub:
  ordering_buckets: 0
sink:
  mode: strem
  tables:
    public.orders: {mode: strem}
`), env(nil), nil)
	want := []string{
		"config tributary.yaml: projekt: unknown key (did you mean project?)",
		"config tributary.yaml: postgres.url: environment variable NOPE is not set (write ${NOPE:-default} for a default)",
		"config tributary.yaml: project: is required",
		`config tributary.yaml: postgres.slot: "BAD" is not a slot name (1 to 63 of a-z, 0-9 and _)`,
		"config tributary.yaml: pubsub.ordering_buckets: 0 is not between 1 and 4096",
		"config tributary.yaml: gcs.bucket: is required",
		"config tributary.yaml: bigquery.dataset: is required",
		`config tributary.yaml: sink.mode: "strem" is not one of load, stream`,
		`config tributary.yaml: sink.tables["public.orders"].mode: "strem" is not one of load, stream`,
	}
	if got := lines(err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct{ name, yml, want string }{
		{"syntax", "project: [x\n", "config tributary.yaml: line 1: did not find expected ',' or ']'"},
		{"top level list", "- a\n", "config tributary.yaml: line 1: the top level must be a mapping of keys, not a list"},
		{"two documents", "project: a\n---\nproject: b\n", "config tributary.yaml: the file must hold one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes("tributary.yaml", []byte(tt.yml), stdEnv, nil)
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestEmptyFileWithOverrides(t *testing.T) {
	c, err := LoadBytes("tributary.yaml", nil, stdEnv, []string{
		"project=my-gcp-project",
		"postgres.url=host=h user=u password=" + password,
		"gcs.bucket=my-bucket",
		"bigquery.dataset=ds",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Postgres.URL.Reveal() != "host=h user=u password="+password {
		t.Errorf("url = %q", c.Postgres.URL.Reveal())
	}
}

func TestOverrides(t *testing.T) {
	yml := base + `
sink:
  mode: load
  tables:
    public.orders: {mode: load}
    '"public"."Order Items"': {mode: load}
`
	tests := []struct {
		name      string
		overrides []string
		check     func(*Config) bool
	}{
		{"simple", []string{"postgres.slot=s2"}, func(c *Config) bool { return c.Postgres.Slot == "s2" }},
		{"value from the file", []string{"sink.mode=stream"}, func(c *Config) bool { return c.Sink.Mode == ModeStream }},
		{"last wins", []string{"sink.mode=stream", "sink.mode=load"}, func(c *Config) bool { return c.Sink.Mode == ModeLoad }},
		{"quoted table key", []string{`sink.tables["public.orders"].mode=stream`},
			func(c *Config) bool { return c.Sink.Table(TableName{"public", "orders"}).Mode == ModeStream }},
		{"quoted table key with quotes", []string{`sink.tables["\"public\".\"Order Items\""].soft_delete=true`},
			func(c *Config) bool {
				ts := c.Sink.Table(TableName{"public", "Order Items"})
				return ts.SoftDelete && ts.Mode == ModeLoad
			}},
		{"new table key", []string{`sink.tables["public.refunds"].mode=stream`},
			func(c *Config) bool { return c.Sink.Table(TableName{"public", "refunds"}).Mode == ModeStream }},
		{"whole table entry", []string{`sink.tables["public.orders"]={mode: stream, soft_delete: true}`},
			func(c *Config) bool {
				return c.Sink.Table(TableName{"public", "orders"}) == TableSink{Mode: ModeStream, SoftDelete: true}
			}},
		{"list", []string{`postgres.tables=[public.orders, '"public"."Order Items"', sales.returns]`},
			func(c *Config) bool {
				return len(c.Postgres.Tables) == 3 && c.Postgres.Tables[2] == TableName{"sales", "returns"}
			}},
		{"list element", []string{"postgres.schemas=[sales, b]", "postgres.schemas[1]=Public"},
			func(c *Config) bool { return len(c.Postgres.Schemas) == 2 && c.Postgres.Schemas[1] == "public" }},
		{"new section", []string{"http.listen=127.0.0.1:9090"}, func(c *Config) bool { return c.HTTP.Listen == "127.0.0.1:9090" }},
		{"integer", []string{"pubsub.ordering_buckets=7"}, func(c *Config) bool { return c.PubSub.OrderingBuckets == 7 }},
		{"size and duration", []string{"sink.flush_bytes=1KB", "sink.flush_age=3s"},
			func(c *Config) bool { return c.Sink.FlushBytes == 1000 && c.Sink.FlushAge == Duration(3*time.Second) }},
		{"empty keeps default", []string{"postgres.slot="}, func(c *Config) bool { return c.Postgres.Slot == "tributary" }},
		{"literal value", []string{"gcs.prefix=a#b: c"}, func(c *Config) bool { return c.GCS.Prefix == "a#b: c" }},
		{"quoted value", []string{`gcs.prefix="a b"`}, func(c *Config) bool { return c.GCS.Prefix == "a b" }},
		{"no interpolation", []string{"gcs.prefix=a${X}"}, func(c *Config) bool { return c.GCS.Prefix == "a${X}" }},
		{"replaces an unset variable", []string{"postgres.url=postgres://h/db"},
			func(c *Config) bool { return c.Postgres.URL.Reveal() == "postgres://h/db" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadBytes("tributary.yaml", []byte(yml), env(map[string]string{"PGPASSWORD": "x", "X": "y"}), tt.overrides)
			if tt.name == "replaces an unset variable" {
				c, err = LoadBytes("tributary.yaml", []byte(yml), env(nil), tt.overrides)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				b, _ := c.Redacted()
				t.Errorf("override not applied:\n%s", b)
			}
		})
	}
}

func TestOverrideErrors(t *testing.T) {
	tests := []struct {
		override string
		want     string
	}{
		{"postgres.slott=x", "--set: postgres.slott: unknown key (did you mean slot?)"},
		{"sink.mode=strem", `--set: sink.mode: "strem" is not one of load, stream`},
		{`sink.tables["public.orders"].mode=strem`, `--set: sink.tables["public.orders"].mode: "strem" is not one of load, stream`},
		{"sink.tables.orders.mode=stream", `--set: sink.tables["orders"]: "orders" is not a table name: want schema.table, as in public.orders`},
		{"pubsub.ordering_buckets=x", `--set: pubsub.ordering_buckets: "x" is not an integer`},
		{"postgres.slot", "--set: postgres.slot: want key.path=value"},
		{"=x", "--set: want key.path=value, as in postgres.slot=s2"},
		{"postgres..slot=x", "--set: postgres.: want a key after the dot"},
		{`sink.tables["public.orders].mode=x`, "--set: sink.tables: unterminated quoted key"},
		{"postgres.tables[3]=public.a", "--set: postgres.tables[3]: postgres.tables has no element 3 to set"},
		{"project.x=1", "--set: project.x: project is a scalar, not a mapping"},
		{"postgres.tables=[a", "--set: postgres.tables: the value is not valid YAML"},
		// The value is never echoed: it may be a password.
		{"postgres://user:" + password + "@host/db", "--set: postgres: want key.path=value"},
	}
	for _, tt := range tests {
		t.Run(tt.override, func(t *testing.T) {
			_, err := LoadBytes("tributary.yaml", []byte(base), stdEnv, []string{tt.override})
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestRedactedConfig(t *testing.T) {
	c := mustLoad(t, base+"sink:\n  tables:\n    public.orders: {mode: stream}\n")
	b, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), password) {
		t.Fatalf("Redacted shows the password:\n%s", b)
	}
	for _, want := range []string{"url: postgres://user:xxxxx@host:5432/db?sslmode=require", "max_outstanding_bytes: 64MiB", "flush_age: 10s", "mode: stream"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Redacted lacks %q:\n%s", want, b)
		}
	}
	// The printed config loads back to the same config, but for the password.
	c2, err := LoadBytes("printed.yaml", b, env(nil), nil)
	if err != nil {
		t.Fatalf("loading the printed config: %v", err)
	}
	c2.Postgres.URL = c.Postgres.URL
	if b2, _ := c2.Redacted(); string(b2) != string(b) {
		t.Errorf("round trip:\n%s\nwant\n%s", b2, b)
	}
}

func TestErrorsHideThePassword(t *testing.T) {
	for _, url := range []string{
		"postgres://user:" + password + "@host:port/db", // bad port
		"postgres://user:pa/" + password + "@host/db",   // unescaped slash
		"postgres://user:" + password + "%zz@host/db",   // bad escape
		"postgres://user@host/db?password=" + password + "%zz",
		"host=h password='" + password,               // unterminated quote
		"host=h password " + password,                // missing =
		"postgres:/user:" + password + "@host/db",    // neither form
		"postgresql://user:" + password + "@[::1/db", // bad IPv6 host
	} {
		t.Run(url, func(t *testing.T) {
			yml := strings.Replace(base, "postgres://user:${PGPASSWORD}@host:5432/db?sslmode=require", "'"+strings.ReplaceAll(url, "'", "''")+"'", 1)
			_, err := LoadBytes("tributary.yaml", []byte(yml), stdEnv, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "postgres.url") {
				t.Errorf("error does not name the key: %v", err)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "3cr3t") {
				t.Errorf("error shows the password: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestDocsExample loads the example of docs/config.md.
func TestDocsExample(t *testing.T) {
	c := mustLoad(t, `
project: my-gcp-project
postgres:
  url: postgres://tributary:${PGPASSWORD}@db.internal:5432/shop?sslmode=require
  tables: [public.orders, 'public."Order Items"', '"my.schema"."a ""quoted"" name"']
gcs:
  bucket: my-bucket
bigquery:
  dataset: shop_raw
sink:
  tables:
    public.orders: {mode: stream, soft_delete: true}
`, "sink.flush_rows=10")
	if got := c.Postgres.Tables[2]; got != (TableName{"my.schema", `a "quoted" name`}) {
		t.Errorf("tables[2] = %#v", got)
	}
	if c.Sink.FlushRows != 10 {
		t.Errorf("flush_rows = %d", c.Sink.FlushRows)
	}
}

// TestOverrideIntoEmptySection checks that --set can put a key under a section the file left
// empty.
func TestOverrideIntoEmptySection(t *testing.T) {
	c := mustLoad(t, base+"sink:\nlog:\n", "sink.mode=stream", "log.level=debug")
	if c.Sink.Mode != ModeStream || c.Log.Level != "debug" {
		t.Errorf("sink.mode = %s, log.level = %s", c.Sink.Mode, c.Log.Level)
	}
}
