package config

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	projectRE     = regexp.MustCompile(`^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	slotRE        = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	publicationRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	pubsubNameRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)
	datasetRE     = regexp.MustCompile(`^[A-Za-z0-9_]+$`) // and at most 1024 bytes
	locationRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)
)

// oneOf checks that v is one of allowed and says so otherwise, as in
// `"strem" is not one of load, stream`.
func (p *problems) oneOf(path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.check(path, false, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// required checks that a string is set.
func (p *problems) required(path, v string) bool {
	p.check(path, v != "", "is required")
	return v != ""
}

// validate checks every value, records what is wrong in p, and brings table and schema names
// to canonical form.
func (c *Config) validate(p *problems) {
	if p.required("project", c.Project) {
		p.check("project", projectRE.MatchString(c.Project),
			"%q is not a project ID (6 to 30 lower-case letters, digits and hyphens, starting with a letter)", c.Project)
	}
	c.Postgres.validate(p)
	c.PubSub.validate(p)
	c.GCS.validate(p)
	c.BigQuery.validate(p)
	c.Sink.validate(p, c.Postgres)
	c.HTTP.validate(p)
	p.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "json", "text")
}

func (pg *Postgres) validate(p *problems) {
	if err := pg.URL.check(); err != nil {
		p.check("postgres.url", false, "%w", err)
	}
	p.check("postgres.slot", slotRE.MatchString(pg.Slot),
		"%q is not a slot name (1 to 63 of a-z, 0-9 and _)", pg.Slot)
	p.check("postgres.publication", publicationRE.MatchString(pg.Publication),
		"%q is not a publication name (a lower-case identifier of at most 63 bytes: a-z or _, then a-z, 0-9 or _)", pg.Publication)
	if len(pg.Tables) > 0 && len(pg.Schemas) > 0 {
		p.check("postgres", false, "set tables or schemas, not both")
	}
	seen := map[TableName]int{}
	for i, t := range pg.Tables {
		path := joinIndex("postgres.tables", i)
		if t.IsZero() {
			continue // failed to decode, already reported
		}
		if j, dup := seen[t]; dup {
			p.check(path, false, "%s is listed twice (also at [%d])", t, j)
		}
		seen[t] = i
	}
	seenSchema := map[string]int{}
	for i, s := range pg.Schemas {
		path := joinIndex("postgres.schemas", i)
		id, err := parseIdent(s)
		if err != nil {
			p.check(path, false, "%w", err)
			continue
		}
		pg.Schemas[i] = id
		if j, dup := seenSchema[id]; dup {
			p.check(path, false, "%s is listed twice (also at [%d])", quoteIfNeeded(id), j)
		}
		seenSchema[id] = i
	}
	p.check("postgres.standby_timeout", pg.StandbyTimeout > 0, "must be more than 0, not %s", pg.StandbyTimeout)
}

func (ps *PubSub) validate(p *problems) {
	for _, f := range []struct{ path, v string }{
		{"pubsub.topic", ps.Topic},
		{"pubsub.subscription", ps.Subscription},
		{"pubsub.dead_letter_topic", ps.DeadLetterTopic},
	} {
		p.check(f.path, pubsubNameRE.MatchString(f.v) && !strings.HasPrefix(f.v, "goog"),
			"%q is not a Pub/Sub name (3 to 255 letters, digits and - _ . ~ + %%, starting with a letter, not with goog)", f.v)
	}
	p.check("pubsub.ordering_buckets", 1 <= ps.OrderingBuckets && ps.OrderingBuckets <= 4096,
		"%d is not between 1 and 4096", ps.OrderingBuckets)
	p.check("pubsub.max_outstanding_bytes", ps.MaxOutstandingBytes > 0, "must be more than 0")
}

func (g *GCS) validate(p *problems) {
	if p.required("gcs.bucket", g.Bucket) {
		if msg := bucketProblem(g.Bucket); msg != "" {
			p.check("gcs.bucket", false, "%q is not a bucket name: %s", g.Bucket, msg)
		}
	}
	switch {
	case strings.HasPrefix(g.Prefix, "/") || strings.HasSuffix(g.Prefix, "/"):
		p.check("gcs.prefix", false, "%q must not start or end with /", g.Prefix)
	case strings.Contains(g.Prefix, "//"):
		p.check("gcs.prefix", false, "%q must not hold an empty path segment (//)", g.Prefix)
	case strings.ContainsAny(g.Prefix, "\r\n"):
		p.check("gcs.prefix", false, "%q must not hold a line break", g.Prefix)
	case len(g.Prefix) > 512:
		p.check("gcs.prefix", false, "is longer than 512 bytes")
	}
}

// bucketProblem says what is wrong with a GCS bucket name, following
// https://cloud.google.com/storage/docs/buckets#naming, or gives "".
func bucketProblem(b string) string {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "use only a-z, 0-9, -, _ and ."
		}
	}
	isAlnum := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	switch {
	case len(b) < 3:
		return "shorter than 3 characters"
	case !strings.Contains(b, ".") && len(b) > 63:
		return "longer than 63 characters"
	case len(b) > 222:
		return "longer than 222 characters"
	case !isAlnum(b[0]) || !isAlnum(b[len(b)-1]):
		return "must start and end with a letter or digit"
	case net.ParseIP(b) != nil:
		return "must not be an IP address"
	case strings.HasPrefix(b, "goog"):
		return `must not start with "goog"`
	}
	for _, bad := range []string{"google", "g00gle", "go0gle", "g0ogle"} {
		if strings.Contains(b, bad) {
			return fmt.Sprintf("must not contain %q", bad)
		}
	}
	for _, part := range strings.Split(b, ".") {
		if part == "" {
			return "must not hold an empty dot-separated part"
		}
		if len(part) > 63 {
			return "a dot-separated part is longer than 63 characters"
		}
	}
	return ""
}

func (bq *BigQuery) validate(p *problems) {
	if p.required("bigquery.dataset", bq.Dataset) {
		p.check("bigquery.dataset", datasetRE.MatchString(bq.Dataset) && len(bq.Dataset) <= 1024,
			"%q is not a dataset ID (1 to 1024 letters, digits and _)", bq.Dataset)
	}
	p.check("bigquery.location", locationRE.MatchString(bq.Location),
		"%q is not a location (such as US, EU or europe-west4)", bq.Location)
}

func (s *Sink) validate(p *problems, pg Postgres) {
	p.check("sink.flush_bytes", s.FlushBytes > 0, "must be more than 0")
	p.check("sink.flush_rows", s.FlushRows > 0, "%d is not more than 0", s.FlushRows)
	p.check("sink.max_buffered_messages", s.MaxBufferedMessages > 0, "%d is not more than 0", s.MaxBufferedMessages)
	p.check("sink.flush_age", s.FlushAge > 0, "must be more than 0, not %s", s.FlushAge)
	p.check("sink.load_interval", s.LoadInterval > 0, "must be more than 0, not %s", s.LoadInterval)
	p.oneOf("sink.mode", string(s.Mode), string(ModeLoad), string(ModeStream))
	p.check("sink.stream_apply_interval", s.StreamApplyInterval > 0, "must be more than 0, not %s", s.StreamApplyInterval)
	if len(s.Tables) == 0 {
		return
	}
	captured := map[TableName]bool{}
	for _, t := range pg.Tables {
		captured[t] = true
	}
	schemas := map[string]bool{}
	for _, sc := range pg.Schemas {
		schemas[sc] = true
	}
	canonical := make(map[string]TableSink, len(s.Tables))
	from := map[string]string{}
	for _, key := range sortedKeys(s.Tables) {
		ts := s.Tables[key]
		path := joinMapKey("sink.tables", key)
		if ts.Mode != "" {
			p.oneOf(path+".mode", string(ts.Mode), string(ModeLoad), string(ModeStream))
		}
		t, err := ParseTableName(key)
		if err != nil {
			p.check(path, false, "%w", err)
			continue
		}
		switch {
		case len(captured) > 0 && !captured[t]:
			p.check(path, false, "%s is not in postgres.tables", t)
		case len(schemas) > 0 && !schemas[t.Schema]:
			p.check(path, false, "schema %s is not in postgres.schemas", quoteIfNeeded(t.Schema))
		}
		name := t.String()
		if other, dup := from[name]; dup {
			p.check(path, false, "names the same table as %s", joinMapKey("sink.tables", other))
			continue
		}
		from[name] = key
		canonical[name] = ts
	}
	s.Tables = canonical
}

func (h *HTTP) validate(p *problems) {
	_, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		p.check("http.listen", false, "%q is not host:port", h.Listen)
		return
	}
	n, err := strconv.ParseUint(port, 10, 16)
	p.check("http.listen", err == nil && n <= 65535, "%q: port %q is not a number from 0 to 65535", h.Listen, port)
	p.check("http.max_lag_bytes", h.MaxLagBytes > 0, "%s must be more than 0", h.MaxLagBytes)
	p.check("http.max_lag", h.MaxLag > 0, "%s must be more than 0", h.MaxLag)
}

// sortedKeys gives a map's keys in order, so that messages come in the same order every run.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
