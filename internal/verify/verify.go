// Package verify compares a Postgres table with its current-state table in
// BigQuery, row for row in the canonical form of package schema: counts and
// order-independent digests per key bucket first, then, for the buckets that
// differ only, the exact keys and columns. It reads each side twice at most
// and holds in memory only the rows of differing buckets.
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"cloud.google.com/go/bigquery"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/schema"
)

// Buckets is how many key buckets rows are digested into.
const Buckets = 1024

// Discrepancy is one row that differs.
type Discrepancy struct {
	// Kind is "missing" (in Postgres, not in BigQuery), "extra" (in BigQuery
	// only) or "different".
	Kind string `json:"kind"`
	// Key is the row's key columns in canonical form.
	Key map[string]string `json:"key"`
	// Columns lists the columns whose values differ ("different" only).
	Columns []string `json:"columns,omitempty"`
}

// Result is the comparison of one table.
type Result struct {
	Table         string        `json:"table"`
	BigQueryTable string        `json:"bigquery_table"`
	PostgresRows  int64         `json:"postgres_rows"`
	BigQueryRows  int64         `json:"bigquery_rows"`
	Discrepancies []Discrepancy `json:"discrepancies"`
}

// Equal reports whether the two sides hold the same rows.
func (r *Result) Equal() bool { return len(r.Discrepancies) == 0 && r.PostgresRows == r.BigQueryRows }

// Source is what verify reads: a Postgres connection with schema's session
// settings, a resolver for user types, a BigQuery client and dataset, and
// the schema store the pipeline writes to.
type Source struct {
	Postgres *pgx.Conn
	Resolver schema.TypeResolver
	BigQuery *bigquery.Client
	Dataset  string
	// Store names the BigQuery column of each Postgres column as the sink
	// does: after a type change BigQuery could not widen, the newest column
	// carrying it (schema.ColumnNames). Without a store every column is read
	// from the column named like it.
	Store *schema.Store
}

// Table compares Postgres table schemaName.tableName with its current-state
// table in BigQuery.
func Table(ctx context.Context, src Source, schemaName, tableName string) (*Result, error) {
	t, keys, err := mapTable(ctx, src, schemaName, tableName)
	if err != nil {
		return nil, err
	}
	columns, err := bigQueryColumns(ctx, src, t)
	if err != nil {
		return nil, err
	}
	res := &Result{Table: schemaName + "." + tableName, BigQueryTable: src.Dataset + "." + schema.BigQueryTableName(schemaName, tableName, "")}
	pgSide := &side{t: t, keys: keys}
	bqSide := &side{t: t, keys: keys}
	if err := readPostgres(ctx, src, t, pgSide.add); err != nil {
		return nil, err
	}
	if err := readBigQuery(ctx, src, t, columns, bqSide.add); err != nil {
		return nil, err
	}
	res.PostgresRows, res.BigQueryRows = pgSide.rows, bqSide.rows
	differ := map[int]bool{}
	for b := 0; b < Buckets; b++ {
		if pgSide.digest[b] != bqSide.digest[b] || pgSide.count[b] != bqSide.count[b] {
			differ[b] = true
		}
	}
	if len(differ) == 0 {
		return res, nil
	}
	// Second pass: keep only the rows of differing buckets, keyed.
	pgRows, bqRows := map[string][]string{}, map[string][]string{}
	keep := func(into map[string][]string) func([]string) {
		return func(canon []string) {
			k := keyOf(canon, keys)
			if differ[bucketOf(k)] {
				into[k] = canon
			}
		}
	}
	if err := readPostgres(ctx, src, t, keep(pgRows)); err != nil {
		return nil, err
	}
	if err := readBigQuery(ctx, src, t, columns, keep(bqRows)); err != nil {
		return nil, err
	}
	for k, p := range pgRows {
		b, ok := bqRows[k]
		if !ok {
			res.Discrepancies = append(res.Discrepancies, Discrepancy{Kind: "missing", Key: keyMap(t, keys, p)})
			continue
		}
		var cols []string
		for i := range p {
			if p[i] != b[i] {
				cols = append(cols, t.Columns[i].Column)
			}
		}
		if len(cols) > 0 {
			res.Discrepancies = append(res.Discrepancies, Discrepancy{Kind: "different", Key: keyMap(t, keys, p), Columns: cols})
		}
	}
	for k, b := range bqRows {
		if _, ok := pgRows[k]; !ok {
			res.Discrepancies = append(res.Discrepancies, Discrepancy{Kind: "extra", Key: keyMap(t, keys, b)})
		}
	}
	sort.Slice(res.Discrepancies, func(i, j int) bool {
		a, _ := json.Marshal(res.Discrepancies[i].Key)
		b, _ := json.Marshal(res.Discrepancies[j].Key)
		return string(a) < string(b)
	})
	return res, nil
}

// side accumulates per-bucket counts and order-independent digests.
type side struct {
	t      *schema.Table
	keys   []int
	rows   int64
	count  [Buckets]int64
	digest [Buckets]uint64
}

func (s *side) add(canon []string) {
	k := keyOf(canon, s.keys)
	b := bucketOf(k)
	h := fnv.New64a()
	for _, c := range canon {
		h.Write([]byte(c))
		h.Write([]byte{0})
	}
	s.rows++
	s.count[b]++
	s.digest[b] += h.Sum64() // a sum: the order rows arrive in does not matter
}

// keyOf is the row's identity: its key columns, or the whole row for tables
// without a key (compared as multisets then).
func keyOf(canon []string, keys []int) string {
	parts := canon
	if len(keys) > 0 {
		parts = make([]string, len(keys))
		for i, k := range keys {
			parts[i] = canon[k]
		}
	}
	b, _ := json.Marshal(parts)
	return string(b)
}

func bucketOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % Buckets)
}

func keyMap(t *schema.Table, keys []int, canon []string) map[string]string {
	m := map[string]string{}
	idx := keys
	if len(idx) == 0 {
		for i := range canon {
			idx = append(idx, i)
		}
	}
	for _, k := range idx {
		m[t.Columns[k].Column] = canon[k]
	}
	return m
}

// mapTable maps the table's live columns and finds its key: the primary
// key, else the replica identity index, else none.
func mapTable(ctx context.Context, src Source, schemaName, tableName string) (*schema.Table, []int, error) {
	rows, err := src.Postgres.Query(ctx, `
		SELECT a.attname, a.atttypid, a.atttypmod, COALESCE(a.attnum = ANY(k.indkey::int2[]), false)
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN LATERAL (SELECT i.indkey FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)
		                   ORDER BY i.indisprimary DESC LIMIT 1) k ON true
		WHERE n.nspname = $1 AND c.relname = $2
		ORDER BY a.attnum`, schemaName, tableName)
	if err != nil {
		return nil, nil, fmt.Errorf("reading columns of %s: %w", pgx.Identifier{schemaName, tableName}.Sanitize(), err)
	}
	var cols []schema.Column
	for rows.Next() {
		var c schema.Column
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeMod, &c.Key); err != nil {
			return nil, nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading columns of %s: %w", pgx.Identifier{schemaName, tableName}.Sanitize(), err)
	}
	if len(cols) == 0 {
		return nil, nil, fmt.Errorf("table %s not found", pgx.Identifier{schemaName, tableName}.Sanitize())
	}
	t, err := schema.MapTable(schemaName, tableName, cols, src.Resolver)
	if err != nil {
		return nil, nil, err
	}
	var keys []int
	for i, c := range cols {
		if c.Key {
			keys = append(keys, i)
		}
	}
	return t, keys, nil
}

// readPostgres streams the table's rows in Postgres' text form (what
// pgoutput sends) and hands each row's canonical values to fn.
func readPostgres(ctx context.Context, src Source, t *schema.Table, fn func([]string)) error {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = pgx.Identifier{c.Column}.Sanitize()
	}
	q := "SELECT " + strings.Join(names, ", ") + " FROM " + pgx.Identifier{t.Schema, t.Name}.Sanitize()
	rows, err := src.Postgres.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("reading %s: %w", pgx.Identifier{t.Schema, t.Name}.Sanitize(), err)
	}
	defer rows.Close()
	for rows.Next() {
		raw := rows.RawValues()
		canon := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				canon[i] = "NULL"
				continue
			}
			c, err := t.Columns[i].Canonical(v)
			if err != nil {
				// A value the mapping cannot represent: it sits in the dead-letter,
				// not in BigQuery; it shows as different, with this text.
				c = "unrepresentable: " + string(v)
			}
			canon[i] = c
		}
		fn(canon)
	}
	return rows.Err()
}

// bigQueryColumns names the BigQuery column holding each of t's columns:
// the one the sink writes the current schema version's values to.
func bigQueryColumns(ctx context.Context, src Source, t *schema.Table) ([]string, error) {
	cl := &schema.Changelog{}
	if src.Store != nil {
		es, err := schema.NewEventSchema(t)
		if err != nil {
			return nil, err
		}
		if cl, err = src.Store.Changelog(ctx, es); err != nil {
			return nil, err
		}
	}
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = cl.Column(c.Name)
	}
	return out, nil
}

// readBigQuery streams the current-state table's columns, which hold t's
// columns in order.
func readBigQuery(ctx context.Context, src Source, t *schema.Table, columns []string, fn func([]string)) error {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = schema.QuoteBigQuery(c)
	}
	id := schema.BigQueryTableName(t.Schema, t.Name, "")
	table := schema.QuoteBigQuery(src.Dataset) + "." + schema.QuoteBigQuery(id)
	md, err := src.BigQuery.Dataset(src.Dataset).Table(id).Metadata(ctx)
	if err != nil {
		return fmt.Errorf("reading the schema of %s: %w", table, err)
	}
	where := ""
	for _, f := range md.Schema {
		if f.Name == schema.ColDeleted { // a soft-delete table keeps deleted keys, marked
			where = " WHERE NOT COALESCE(" + schema.QuoteBigQuery(schema.ColDeleted) + ", FALSE)" // the emulator takes NULL IS NOT TRUE as false
		}
	}
	it, err := src.BigQuery.Query("SELECT " + strings.Join(names, ", ") + " FROM " + table + where).Read(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", table, err)
		}
		canon := make([]string, len(row))
		for i, v := range row {
			if v == nil {
				canon[i] = "NULL"
				continue
			}
			c, err := t.Columns[i].CanonicalBigQuery(v)
			if err != nil {
				c = fmt.Sprintf("unreadable: %v", v)
			}
			canon[i] = c
		}
		fn(canon)
	}
}
