package backfill

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/schema"
)

// column is one published column of the table as the catalog describes it.
type column struct {
	schema.Column
	// TypeSQL is format_type(atttypid, atttypmod): what a key value's text
	// is cast to.
	TypeSQL string
}

// shape is what one chunk reads: the table's published columns (as pgoutput
// sends them: live, not generated, in attnum order, replica-identity columns
// flagged) and the columns it pages by (the primary key, else the replica
// identity index; empty: by ctid).
type shape struct {
	Columns []column
	// Paging indexes Columns, in the key's index order.
	Paging []int
}

// signature identifies a shape's mapping: two shapes with the same signature
// map to the same event schema.
func (s *shape) signature() string {
	var b strings.Builder
	for _, c := range s.Columns {
		fmt.Fprintf(&b, "%q:%d:%d:%t;", c.Name, c.TypeOID, c.TypeMod, c.Key)
	}
	return b.String()
}

func (s *shape) schemaColumns() []schema.Column {
	out := make([]schema.Column, len(s.Columns))
	for i, c := range s.Columns {
		out[i] = c.Column
	}
	return out
}

// pagingNames are the paging columns' names.
func (s *shape) pagingNames() []string {
	out := make([]string, len(s.Paging))
	for i, p := range s.Paging {
		out[i] = s.Columns[p].Name
	}
	return out
}

// pagingTypes are the paging columns' SQL types.
func (s *shape) pagingTypes() []string {
	out := make([]string, len(s.Paging))
	for i, p := range s.Paging {
		out[i] = s.Columns[p].TypeSQL
	}
	return out
}

// shapeQuery lists the columns pgoutput publishes (live, not generated) with
// the replica-identity flag pgoutput sets (the primary key under the default
// identity, every column under FULL, the index's columns under USING INDEX)
// and each column's position in the paging key (the primary key, else the
// replica identity index), 0 when not in it.
const shapeQuery = `
SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
       CASE c.relreplident
         WHEN 'f' THEN true
         WHEN 'd' THEN COALESCE(a.attnum = ANY(pk.indkey::int2[]), false)
         WHEN 'i' THEN COALESCE(a.attnum = ANY(ri.indkey::int2[]), false)
         ELSE false END,
       COALESCE((SELECT k.n FROM unnest(COALESCE(pk.indkey, ri.indkey)::int2[]) WITH ORDINALITY AS k(attnum, n)
                 WHERE k.attnum = a.attnum), 0)::int,
       c.relkind::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
LEFT JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
LEFT JOIN pg_index ri ON ri.indrelid = c.oid AND ri.indisreplident
WHERE n.nspname = $1 AND c.relname = $2
ORDER BY a.attnum`

// querier is what describe needs: a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// describe reads the table's shape in q's snapshot.
func describe(ctx context.Context, q querier, pgSchema, table string) (*shape, string, error) {
	rows, err := q.Query(ctx, shapeQuery, pgSchema, table)
	if err != nil {
		return nil, "", fmt.Errorf("reading the columns of %s: %w", ident(pgSchema, table), err)
	}
	defer rows.Close()
	s := &shape{}
	var kind string
	pos := map[int]int{} // paging position → column index
	for rows.Next() {
		var c column
		var p int
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeMod, &c.TypeSQL, &c.Key, &p, &kind); err != nil {
			return nil, "", fmt.Errorf("reading the columns of %s: %w", ident(pgSchema, table), err)
		}
		if p > 0 {
			pos[p] = len(s.Columns)
		}
		s.Columns = append(s.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("reading the columns of %s: %w", ident(pgSchema, table), err)
	}
	if len(s.Columns) == 0 {
		return nil, "", fmt.Errorf("table %s not found (or it has no columns)", ident(pgSchema, table))
	}
	for p := 1; p <= len(pos); p++ {
		i, ok := pos[p]
		if !ok { // an expression in the key index: page by ctid instead
			s.Paging = nil
			break
		}
		s.Paging = append(s.Paging, i)
	}
	return s, kind, nil
}

// ident quotes schema.table for SQL and messages.
func ident(pgSchema, table string) string { return pgx.Identifier{pgSchema, table}.Sanitize() }

// selectList is the quoted column list of a chunk query.
func selectList(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	return strings.Join(names, ", ")
}

// rowValue is "(a, b)" of quoted column names, or "(k)" for one column.
func rowValue(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pgx.Identifier{n}.Sanitize()
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// params is "($n::text::t1, $n+1::text::t2)": key values passed as text and
// cast to the key's types.
func params(first int, types []string) string {
	q := make([]string, len(types))
	for i, t := range types {
		q[i] = "$" + strconv.Itoa(first+i) + "::text::" + t
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// keyChunkSQL reads the next chunk of a key range in key order: keys after
// `after` (or from `lower`, inclusive, when nothing was read yet; from the
// start when both are nil) and below `upper` (no bound when nil), matching
// where, at most limit rows. It returns the SQL and its arguments.
func keyChunkSQL(table string, cols []column, keyNames, keyTypes []string, after, lower, upper []string, where string, limit int) (string, []any) {
	var conds []string
	var args []any
	k := rowValue(keyNames)
	switch {
	case after != nil:
		conds = append(conds, k+" > "+params(len(args)+1, keyTypes))
		args = appendText(args, after)
	case lower != nil:
		conds = append(conds, k+" >= "+params(len(args)+1, keyTypes))
		args = appendText(args, lower)
	}
	if upper != nil {
		conds = append(conds, k+" < "+params(len(args)+1, keyTypes))
		args = appendText(args, upper)
	}
	if where != "" {
		conds = append(conds, "("+where+")")
	}
	q := "SELECT " + selectList(cols) + " FROM " + table
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	order := make([]string, len(keyNames))
	for i, n := range keyNames {
		order[i] = pgx.Identifier{n}.Sanitize()
	}
	q += " ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(limit)
	return q, args
}

func appendText(args []any, vals []string) []any {
	for _, v := range vals {
		args = append(args, v)
	}
	return args
}

// ctidChunkSQL reads the rows in heap blocks [from, to) matching where.
func ctidChunkSQL(table string, cols []column, from, to uint32, where string) string {
	q := fmt.Sprintf("SELECT %s FROM %s WHERE ctid >= '(%d,0)'::tid AND ctid < '(%d,0)'::tid", selectList(cols), table, from, to)
	if where != "" {
		q += " AND (" + where + ")"
	}
	return q
}

// sampleSQL selects the paging key (as text) of the rows in a sample of
// about percent of the table's blocks, in key order.
func sampleSQL(table string, keyNames []string, percent float64) string {
	// Qualified: ORDER BY a bare name would sort by the text output column.
	k := make([]string, len(keyNames))
	for i, n := range keyNames {
		k[i] = "t." + pgx.Identifier{n}.Sanitize()
	}
	texts := make([]string, len(k))
	for i, c := range k {
		texts[i] = c + "::text"
	}
	return fmt.Sprintf("SELECT %s FROM %s AS t TABLESAMPLE SYSTEM (%s) ORDER BY %s",
		strings.Join(texts, ", "), table, strconv.FormatFloat(percent, 'f', -1, 64), strings.Join(k, ", "))
}

// splitSample picks n-1 boundaries from sorted sample keys, evenly spaced,
// dropping repeats: the ranges (-inf, b1), [b1, b2) … [b_last, +inf).
func splitSample(sample [][]string, n int) [][]string {
	if n <= 1 || len(sample) == 0 {
		return nil
	}
	var out [][]string
	for i := 1; i < n; i++ {
		b := sample[i*len(sample)/n]
		if len(out) > 0 && equalKeys(out[len(out)-1], b) {
			continue
		}
		out = append(out, b)
	}
	return out
}

func equalKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// splitBlocks cuts [0, blocks) into at most n ranges of equal size.
func splitBlocks(blocks uint32, n int) [][2]uint32 {
	if blocks == 0 {
		return [][2]uint32{{0, 0}}
	}
	n = max(1, min(n, int(blocks)))
	out := make([][2]uint32, n)
	for i := range n {
		out[i] = [2]uint32{uint32(uint64(blocks) * uint64(i) / uint64(n)), uint32(uint64(blocks) * uint64(i+1) / uint64(n))}
	}
	return out
}
