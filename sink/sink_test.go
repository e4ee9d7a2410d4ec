package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestClassify(t *testing.T) {
	g := func(code int, reason, msg string) error {
		e := &googleapi.Error{Code: code, Message: msg}
		if reason != "" {
			e.Errors = []googleapi.ErrorItem{{Reason: reason, Message: msg}}
		}
		return e
	}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, Permanent},
		{"429", g(429, "rateLimitExceeded", "slow down"), Retryable},
		{"500", g(500, "backendError", ""), Retryable},
		{"503 wrapped twice", fmt.Errorf("loading: %w", fmt.Errorf("starting: %w", g(503, "", "unavailable"))), Retryable},
		{"408", g(408, "", ""), Retryable},
		{"403 rate limit", g(403, "rateLimitExceeded", "too many"), Retryable},
		{"403 forbidden", g(403, "accessDenied", "no"), Permanent},
		{"400 invalid", g(400, "invalid", "Syntax error"), Permanent},
		{"400 schema", g(400, "invalid", "Provided Schema does not match Table p:d.t. Field x has changed type from INTEGER to STRING"), SchemaMismatch},
		{"404", g(404, "notFound", "Not found: Table"), Permanent},
		{"412", g(412, "conditionNotMet", ""), Permanent},
		{"job error backend", &bigquery.Error{Reason: "backendError"}, Retryable},
		{"job error invalid", fmt.Errorf("loading x: %w", &bigquery.Error{Reason: "invalid", Message: "bad Avro"}), Permanent},
		{"job error schema", &bigquery.Error{Reason: "invalid", Message: "Field amount has changed type from NUMERIC to STRING"}, SchemaMismatch},
		{"multi", bigquery.MultiError{&bigquery.Error{Reason: "internalError"}}, Retryable},
		{"grpc unavailable", fmt.Errorf("writing: %w", status.Error(codes.Unavailable, "down")), Retryable},
		{"grpc resource exhausted", status.Error(codes.ResourceExhausted, "quota"), Retryable},
		{"grpc invalid", status.Error(codes.InvalidArgument, "bad"), Permanent},
		{"deadline", fmt.Errorf("waiting: %w", context.DeadlineExceeded), Retryable},
		{"canceled", context.Canceled, Permanent},
		{"connection reset", &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, Retryable},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), Retryable},
		{"unexpected EOF", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), Retryable},
		{"own permanent wrapping a timeout", &permanentError{context.DeadlineExceeded}, Permanent},
		{"unknown", errors.New("something else"), Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	at := time.Date(2026, 11, 3, 7, 59, 0, 0, time.FixedZone("x", 3600))
	tests := []struct {
		l                  Layout
		pgSchema, table    string
		object, marker, dl string
	}{
		{Layout{"pre", "db"}, "public", "orders",
			"pre/db/public.orders/dt=2026-11-03/hh=06/0000000001a2b3c4-0000000001a2b3ff-w1.avro",
			"pre/_sink/pending/db/public.orders/dt=2026-11-03.hh=06.0000000001a2b3c4-0000000001a2b3ff-w1.avro",
			"pre/_deadletter/sink/db/public.orders/x.json"},
		{Layout{"", "db"}, "public", "Line Items",
			"db/public.Line_Items." + segmentHash(t, "public", "Line Items") + "/dt=2026-11-03/hh=06/0000000001a2b3c4-0000000001a2b3ff-w1.avro",
			"_sink/pending/db/public.Line_Items." + segmentHash(t, "public", "Line Items") + "/dt=2026-11-03.hh=06.0000000001a2b3c4-0000000001a2b3ff-w1.avro",
			"_deadletter/sink/db/public.Line_Items." + segmentHash(t, "public", "Line Items") + "/x.json"},
	}
	for _, tt := range tests {
		obj := tt.l.DataObject(tt.pgSchema, tt.table, at, 0x1a2b3c4, 0x1a2b3ff, "w1")
		if obj != tt.object {
			t.Errorf("DataObject = %q, want %q", obj, tt.object)
		}
		if m := tt.l.PendingMarker(tt.pgSchema, tt.table, obj); m != tt.marker {
			t.Errorf("PendingMarker = %q, want %q", m, tt.marker)
		}
		if !strings.HasPrefix(tt.l.PendingMarker(tt.pgSchema, tt.table, obj), tt.l.PendingRoot()) {
			t.Errorf("marker %q not under %q", tt.marker, tt.l.PendingRoot())
		}
		seg := obj[len(tt.l.join(tt.l.Database))+1:]
		seg = seg[:strings.Index(seg, "/")]
		if d := tt.l.DeadLetter(seg, "x"); d != tt.dl {
			t.Errorf("DeadLetter = %q, want %q", d, tt.dl)
		}
	}
}

func segmentHash(t *testing.T, s, tb string) string {
	seg := Layout{}.TableDir(s, tb)
	parts := strings.Split(seg, ".")
	return parts[len(parts)-1]
}

func TestLoadJobID(t *testing.T) {
	a := LoadJobID([]string{"p/db/t/dt=2026-11-03/hh=06/a.avro", "p/db/t/dt=2026-11-03/hh=06/b.avro"})
	b := LoadJobID([]string{"p/db/t/dt=2026-11-03/hh=06/b.avro", "p/db/t/dt=2026-11-03/hh=06/a.avro"})
	c := LoadJobID([]string{"p/db/t/dt=2026-11-03/hh=06/a.avro"})
	d := LoadJobID([]string{"p/db/t/dt=2026-11-03/hh=06/a.avro\np/db/t/dt=2026-11-03/hh=06/b.avro"})
	if a != b {
		t.Errorf("job ID depends on the order of the objects: %s %s", a, b)
	}
	if a == c || a == d {
		t.Errorf("different object sets share job ID %s", a)
	}
	if a != "tributary_load_"+a[len("tributary_load_"):] || len(a) != len("tributary_load_")+32 {
		t.Errorf("job ID %q", a)
	}
	for _, r := range a {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			t.Fatalf("job ID %q has %q, which BigQuery refuses", a, r)
		}
	}
}

func TestStoredKey(t *testing.T) {
	avsc := `{"type":"record","name":"e","fields":[{"name":"op","type":"string"},
	{"name":"before","type":["null",{"type":"record","name":"r","fields":[
		{"name":"a","type":["null","long"],"pg_key":true},{"name":"b","type":["null","string"]},{"name":"c","type":["null","long"],"pg_key":true}]}]}]}`
	if got := strings.Join(storedKey(avsc), ","); got != "a,c" {
		t.Errorf("storedKey = %q, want a,c", got)
	}
	if got := storedKey(strings.ReplaceAll(avsc, `"pg_key":true`, `"x":1`)); got != nil {
		t.Errorf("storedKey without marks = %v", got)
	}
}

func TestObjectWriterSeparatesOneTransactionsObjects(t *testing.T) {
	l := Layout{Prefix: "p", Database: "db"}
	at := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	names := map[string]string{}
	for _, c := range []struct {
		seq     int64
		attempt int
	}{{0, 0}, {100000, 0}, {200000, 0}, {0, 1}, {100000, 1}, {1, 0}, {10, 0}} {
		// Every object of one transaction: the same first and last LSN.
		n := l.DataObject("public", "t", at, 0x16B3748, 0x16B3748, objectWriter("w1", c.seq, c.attempt))
		if o, ok := ParseDataObject(n); ok != nil || o.First != 0x16B3748 {
			t.Fatalf("%s does not parse back: %v", n, ok)
		}
		key := fmt.Sprintf("seq %d attempt %d", c.seq, c.attempt)
		if prev, dup := names[n]; dup {
			t.Fatalf("%s and %s share the name %s", prev, key, n)
		}
		names[n] = key
	}
}

func TestPerStream(t *testing.T) {
	tests := []struct {
		bound, streams, want int
	}{
		{200_000, 8, 25_000},
		{128 << 20, 8, 16 << 20},
		{10, 3, 4}, // rounded up: the streams together ask for at least the bound
		{5, 8, 1},  // every stream may hold a message
		{7, 0, 7},  // no streams configured: the client's default of one
		{0, 4, 1},
	}
	for _, tt := range tests {
		got := perStream(tt.bound, tt.streams)
		if got != tt.want {
			t.Errorf("perStream(%d, %d) = %d, want %d", tt.bound, tt.streams, got, tt.want)
		}
		if streams := max(tt.streams, 1); got*streams < tt.bound {
			t.Errorf("perStream(%d, %d) = %d: %d streams ask for %d in all, less than the bound", tt.bound, tt.streams, got, streams, got*streams)
		}
	}
}
