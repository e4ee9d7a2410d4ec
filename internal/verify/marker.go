package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/schema"
)

// Point is a marker written through the WAL: once the sink has recorded it
// on every ordering key bucket of a table, BigQuery's current state of that
// table holds every change committed before the marker.
type Point struct {
	ID string `json:"id"`
	// LSN is the position of the marker message in the WAL; every change
	// committed before it precedes it in commit order.
	LSN     pglogrepl.LSN        `json:"-"`
	Tables  []schema.MarkerTable `json:"tables"`
	Buckets int                  `json:"buckets"`
}

// MarshalJSON adds the LSN in Postgres' text form.
func (p *Point) MarshalJSON() ([]byte, error) {
	type plain Point
	return json.Marshal(struct {
		*plain
		LSN string `json:"lsn"`
	}{(*plain)(p), p.LSN.String()})
}

// WriteMarker writes a marker for tables through the WAL: a transactional
// logical decoding message with schema.MarkerPrefix, committed at once, so
// it has its place in commit order. buckets is capture's
// pubsub.ordering_buckets. Markers need Postgres 14 or later (pgoutput's
// messages option).
func WriteMarker(ctx context.Context, conn *pgx.Conn, tables []schema.MarkerTable, buckets int) (*Point, error) {
	if buckets <= 0 {
		return nil, fmt.Errorf("writing a marker: %d ordering buckets", buckets)
	}
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, fmt.Errorf("reading the server version: %w", err)
	}
	if version < 140000 {
		return nil, fmt.Errorf("writing a marker: Postgres %d.%d does not send logical decoding messages to capture (14 or later does); use --no-wait", version/10000, version%10000)
	}
	p := &Point{ID: schema.NewMarkerID(time.Now()), Tables: tables, Buckets: buckets}
	content, err := json.Marshal(schema.MarkerRequest{ID: p.ID, Tables: tables})
	if err != nil {
		return nil, err
	}
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT pg_logical_emit_message(true, $1, $2::text)::text", schema.MarkerPrefix, string(content)).Scan(&lsn); err != nil {
		return nil, fmt.Errorf("writing marker %s: %w", p.ID, err)
	}
	if p.LSN, err = pglogrepl.ParseLSN(lsn); err != nil {
		return nil, fmt.Errorf("writing marker %s: reading its LSN %q: %w", p.ID, lsn, err)
	}
	return p, nil
}

// Records reads the sink's marker records.
type Records struct {
	Bucket *storage.BucketHandle
	Layout RecordLayout
}

// RecordLayout names marker records: the sink's Layout (package sink's
// tests use this package, so it cannot import sink).
type RecordLayout interface {
	MarkerDir(pgSchema, table, id string) string
	MarkerRecord(pgSchema, table, id string, bucket int) string
}

// Missing returns, for each table of p lacking records, the buckets not yet
// recorded.
func (r Records) Missing(ctx context.Context, p *Point) (map[string][]int, error) {
	missing := map[string][]int{}
	for _, t := range p.Tables {
		have := map[int]bool{}
		dir := r.Layout.MarkerDir(t.Schema, t.Table, p.ID)
		it := r.Bucket.Objects(ctx, &storage.Query{Prefix: dir})
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", dir, err)
			}
			b, err := strconv.Atoi(path.Base(a.Name))
			if err != nil {
				return nil, fmt.Errorf("marker record %s: not named by a bucket number", a.Name)
			}
			if n, err := strconv.Atoi(a.Metadata["buckets"]); err == nil && n != p.Buckets {
				return nil, fmt.Errorf("marker record %s: capture hashes %s into %d ordering buckets, but pubsub.ordering_buckets here is %d", a.Name, t, n, p.Buckets)
			}
			have[b] = true
		}
		for b := 0; b < p.Buckets; b++ {
			if !have[b] {
				missing[t.String()] = append(missing[t.String()], b)
			}
		}
	}
	return missing, nil
}

// WaitError is a marker not recorded on every bucket in time.
type WaitError struct {
	Marker  string
	Waited  time.Duration
	Missing map[string][]int // table → buckets without a record
	Buckets int
}

func (e *WaitError) Error() string {
	tables := make([]string, 0, len(e.Missing))
	for t := range e.Missing {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("%s buckets %s (%d of %d)", t, FormatBuckets(e.Missing[t]), len(e.Missing[t]), e.Buckets)
	}
	return fmt.Sprintf("marker %s not applied after %s: no record yet for %s (are capture and the sink running and caught up? see tributary status)",
		e.Marker, e.Waited.Round(time.Second), strings.Join(parts, "; "))
}

// Wait polls the records every poll until every bucket of every table of p
// has one, and returns how long that took; after timeout it returns a
// *WaitError naming what is missing.
func (r Records) Wait(ctx context.Context, p *Point, timeout, poll time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		missing, err := r.Missing(ctx, p)
		if err != nil {
			return time.Since(start), err
		}
		if len(missing) == 0 {
			return time.Since(start), nil
		}
		if !time.Now().Before(deadline) {
			return time.Since(start), &WaitError{Marker: p.ID, Waited: time.Since(start), Missing: missing, Buckets: p.Buckets}
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(min(poll, time.Until(deadline))):
		}
	}
}

// Remove deletes the records of p (they are of no use once read).
func (r Records) Remove(ctx context.Context, p *Point) error {
	var errs []error
	for _, t := range p.Tables {
		for b := 0; b < p.Buckets; b++ {
			err := r.Bucket.Object(r.Layout.MarkerRecord(t.Schema, t.Table, p.ID, b)).Delete(ctx)
			if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// FormatBuckets writes sorted bucket numbers as ranges: "0-3,7,9-10".
func FormatBuckets(b []int) string {
	s := append([]int(nil), b...)
	sort.Ints(s)
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(s[i]))
		} else {
			parts = append(parts, strconv.Itoa(s[i])+"-"+strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
