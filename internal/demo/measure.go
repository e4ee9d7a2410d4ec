package demo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/schema"
)

// PostgresCounts counts each demo table's rows in Postgres.
func PostgresCounts(ctx context.Context, db *pgx.Conn) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range Tables {
		var n int64
		if err := db.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"public", t}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("counting %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// BigQueryCounts counts each demo table's rows in its BigQuery current-state
// table; a table not created yet is absent from the result.
func BigQueryCounts(ctx context.Context, bq *bigquery.Client, dataset string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range Tables {
		row, err := queryRow(ctx, bq, "SELECT COUNT(*) FROM "+table(dataset, t, ""))
		if notFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[t] = row[0].(int64)
	}
	return out, nil
}

func table(dataset, t, suffix string) string {
	return schema.QuoteBigQuery(dataset) + "." + schema.QuoteBigQuery(schema.BigQueryTableName("public", t, suffix))
}

func notFound(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}

func queryRow(ctx context.Context, bq *bigquery.Client, sql string) ([]bigquery.Value, error) {
	it, err := bq.Query(sql).Read(ctx)
	if err != nil {
		return nil, err
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil {
		return nil, err
	}
	return row, nil
}

// Lag measures commit → queryable-in-BigQuery: each poll reads the changes
// that appeared in the changelogs since the last poll and records, for each,
// the time it was first seen minus its commit time. Its resolution is the
// poll interval; figures are upper bounds by at most that much.
type Lag struct {
	mu      sync.Mutex
	start   time.Time
	lastLSN map[string]int64
	exists  map[string]bool // changelog tables seen to exist
	samples []time.Duration
}

// NewLag returns a lag tracker for the changes committed from now on.
func NewLag() *Lag {
	return &Lag{start: time.Now(), lastLSN: map[string]int64{}, exists: map[string]bool{}}
}

// Poll reads each changelog's new changes.
func (l *Lag) Poll(ctx context.Context, bq *bigquery.Client, dataset string) error {
	for _, t := range Tables {
		l.mu.Lock()
		since, exists := l.lastLSN[t], l.exists[t]
		l.mu.Unlock()
		if !exists {
			// The sink creates a changelog with its first load.
			_, err := bq.Dataset(dataset).Table(schema.BigQueryTableName("public", t, "changelog")).Metadata(ctx)
			if notFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("looking up the changelog of %s: %w", t, err)
			}
			l.mu.Lock()
			l.exists[t] = true
			l.mu.Unlock()
		}
		sql := fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s > %d", schema.ColCommitLSN, schema.ColCommitTS,
			table(dataset, t, "changelog"), schema.ColCommitLSN, since)
		it, err := bq.Query(sql).Read(ctx)
		if notFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the changelog of %s: %w", t, err)
		}
		seen := time.Now()
		for {
			var row []bigquery.Value
			err := it.Next(&row)
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading the changelog of %s: %w", t, err)
			}
			lsn, ts := row[0].(int64), row[1].(time.Time)
			l.mu.Lock()
			if lsn > l.lastLSN[t] {
				l.lastLSN[t] = lsn
			}
			if !ts.Before(l.start) {
				l.samples = append(l.samples, seen.Sub(ts))
			}
			l.mu.Unlock()
		}
	}
	return nil
}

// Percentiles returns p50, p99 and the number of samples so far.
func (l *Lag) Percentiles() (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	s := append([]time.Duration(nil), l.samples...)
	l.mu.Unlock()
	if len(s) == 0 {
		return 0, 0, 0
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return at(0.50), at(0.99), len(s)
}

// Objects counts the data objects the sink has written under prefix/db/.
func Objects(ctx context.Context, gcs *storage.Client, bucket, prefix, db string) (int, error) {
	it := gcs.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: prefix + "/" + db + "/"})
	n := 0
	for {
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("listing objects: %w", err)
		}
		n++
	}
}

// HourlyQuotes is an analyst's question, asked of BigQuery: quotes per
// request category per hour, the latest hours first.
func HourlyQuotes(ctx context.Context, bq *bigquery.Client, dataset string, limit int) ([][]bigquery.Value, error) {
	sql := fmt.Sprintf(`SELECT FORMAT_TIMESTAMP('%%Y-%%m-%%d %%H:00', q.created_at) AS hour, r.category, COUNT(*) AS quotes
FROM %s AS q JOIN %s AS r ON q.request_id = r.id
GROUP BY hour, r.category ORDER BY hour DESC, quotes DESC, r.category LIMIT %d`, table(dataset, "quotes", ""), table(dataset, "requests", ""), limit)
	it, err := bq.Query(sql).Read(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
}
