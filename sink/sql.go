package sink

import (
	"fmt"
	"strings"

	"github.com/tributary-cdc/tributary/schema"
)

// Current-state bookkeeping columns: the row's key in canonical form and
// the position and time of the change that made the row what it is.
const (
	ColKey = "_tributary_key"
	colRn  = "_tributary_rn"
	colTL  = "_tributary_tl"
	colTS  = "_tributary_ts"
)

// Statements generates the SQL that keeps a current-state table in step
// with its changelog. Every statement is a pure function of the fields and
// its arguments and uses only what the BigQuery emulator of the local stack
// executes correctly: CREATE TABLE … AS SELECT with window functions,
// DELETE … WHERE k IN (SELECT …) and INSERT … SELECT; no MERGE, no
// correlated DELETE.
//
// The apply is a recomputation, not an increment: for every key the new
// changelog rows touch, the stage holds the latest change of that key by
// (commit LSN, seq) among all changelog rows after the latest truncate, with
// unchanged TOASTed columns filled from the latest change that sent them.
// Running it twice, or after a later batch, gives the same table.
type Statements struct {
	Project, Dataset          string
	Changelog, Current, Stage string // table IDs
	// Key lists the key columns (BigQuery names); empty for a table without
	// a key, whose current state holds every inserted row (keyed by its
	// change identity).
	Key []string
	// Columns are the table's columns (BigQuery names), every version's.
	Columns []string
	// Toastable are the Columns whose values an update may leave unsent.
	Toastable []string
}

func (s Statements) table(id string) string {
	return schema.QuoteBigQuery(s.Project + "." + s.Dataset + "." + id)
}

// KeyExpr is the canonical key of a changelog row (alias a): the JSON text
// of a STRUCT of the key columns, which keeps composite keys one column, or
// "<commit LSN>:<seq>" for a table without a key.
func (s Statements) KeyExpr(alias string) string {
	if len(s.Key) == 0 {
		return fmt.Sprintf("CONCAT(CAST(%[1]s.%[2]s AS STRING), ':', CAST(%[1]s.%[3]s AS STRING))", alias, schema.ColCommitLSN, schema.ColSeq)
	}
	parts := make([]string, len(s.Key))
	for i, k := range s.Key {
		parts[i] = alias + "." + schema.QuoteBigQuery(k)
	}
	return "TO_JSON_STRING(STRUCT(" + strings.Join(parts, ", ") + "))"
}

// after is "(commit LSN, seq) of alias a is after (l, s)".
func after(a, l, s string) string {
	return fmt.Sprintf("(%[1]s.%[2]s > %[4]s OR (%[1]s.%[2]s = %[4]s AND %[1]s.%[3]s > %[5]s))", a, schema.ColCommitLSN, schema.ColSeq, l, s)
}

// StageSQL creates the stage from the changelog rows whose commit LSN lies
// in [lo, hi] (a superset of a load's rows: recomputing more keys is
// harmless).
func (s Statements) StageSQL(lo, hi uint64) string {
	var b strings.Builder
	lsn, seq, op, un := schema.ColCommitLSN, schema.ColSeq, schema.ColOp, schema.ColUnchanged
	fmt.Fprintf(&b, "CREATE TABLE %s AS\n", s.table(s.Stage))
	fmt.Fprintf(&b, "WITH tr AS (SELECT l AS %s, q AS %s FROM (SELECT %s AS l, %s AS q FROM %s WHERE %s = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),\n",
		colTL, colTS, lsn, seq, s.table(s.Changelog), op)
	fmt.Fprintf(&b, "ch AS (SELECT %s AS %s, c.* FROM %s AS c CROSS JOIN tr WHERE c.%s != 't' AND %s\n  AND %s IN (SELECT %s FROM %s AS n WHERE n.%s BETWEEN %d AND %d AND n.%s != 't')),\n",
		s.KeyExpr("c"), ColKey, s.table(s.Changelog), op, after("c", "tr."+colTL, "tr."+colTS),
		s.KeyExpr("c"), s.KeyExpr("n"), s.table(s.Changelog), lsn, int64(lo), int64(hi), op)
	fmt.Fprintf(&b, "rk AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY %s ORDER BY %s DESC, %s DESC) AS %s FROM ch)", ColKey, lsn, seq, colRn)
	if len(s.Toastable) > 0 {
		b.WriteString(",\nsent AS (SELECT " + ColKey)
		for _, c := range s.Toastable {
			q := schema.QuoteBigQuery(c)
			fmt.Fprintf(&b, ",\n  ARRAY_AGG(IF(%s = 'd' OR %s IN UNNEST(%s), NULL, STRUCT(%s AS v)) IGNORE NULLS ORDER BY %s DESC, %s DESC LIMIT 1)[SAFE_OFFSET(0)].v AS %s",
				op, sqlString(c), un, q, lsn, seq, q)
		}
		b.WriteString("\n  FROM ch GROUP BY " + ColKey + ")")
	}
	fmt.Fprintf(&b, "\nSELECT rk.%s, rk.%s, rk.%s, rk.%s, rk.%s", ColKey, op, lsn, seq, schema.ColCommitTS)
	toast := map[string]bool{}
	for _, c := range s.Toastable {
		toast[c] = true
	}
	for _, c := range s.Columns {
		q := schema.QuoteBigQuery(c)
		if toast[c] {
			fmt.Fprintf(&b, ",\n  IF(%s IN UNNEST(rk.%s), sent.%s, rk.%s) AS %s", sqlString(c), un, q, q, q)
		} else {
			fmt.Fprintf(&b, ",\n  rk.%s", q)
		}
	}
	b.WriteString("\nFROM rk")
	if len(s.Toastable) > 0 {
		fmt.Fprintf(&b, " LEFT JOIN sent ON sent.%s = rk.%s", ColKey, ColKey)
	}
	fmt.Fprintf(&b, "\nWHERE rk.%s = 1", colRn)
	return b.String()
}

// LatestTruncateSQL selects the position (commit LSN, seq) of the latest
// truncate among the changelog rows whose commit LSN lies in [lo, hi].
func (s Statements) LatestTruncateSQL(lo, hi uint64) string {
	return fmt.Sprintf("SELECT %[1]s, %[2]s FROM %[3]s WHERE %[4]s = 't' AND %[1]s BETWEEN %[5]d AND %[6]d ORDER BY %[1]s DESC, %[2]s DESC LIMIT 1",
		schema.ColCommitLSN, schema.ColSeq, s.table(s.Changelog), schema.ColOp, int64(lo), int64(hi))
}

// DeleteTruncatedSQL removes the current rows older than a truncate at
// (lsn, seq).
func (s Statements) DeleteTruncatedSQL(lsn uint64, seq int64) string {
	return fmt.Sprintf("DELETE FROM %[1]s WHERE %[2]s < %[4]d OR (%[2]s = %[4]d AND %[3]s < %[5]d)",
		s.table(s.Current), schema.ColCommitLSN, schema.ColSeq, int64(lsn), seq)
}

// DeleteStagedSQL removes the current rows of every staged key.
func (s Statements) DeleteStagedSQL() string {
	return fmt.Sprintf("DELETE FROM %[1]s WHERE %[2]s IN (SELECT %[2]s FROM %[3]s)", s.table(s.Current), ColKey, s.table(s.Stage))
}

// InsertStagedSQL inserts the staged rows that are not deletes.
func (s Statements) InsertStagedSQL() string {
	cols := []string{ColKey, schema.ColCommitLSN, schema.ColSeq, schema.ColCommitTS}
	for _, c := range s.Columns {
		cols = append(cols, schema.QuoteBigQuery(c))
	}
	list := strings.Join(cols, ", ")
	return fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s FROM %s WHERE %s != 'd'", s.table(s.Current), list, list, s.table(s.Stage), schema.ColOp)
}

// sqlString quotes s as a BigQuery string literal.
func sqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`)
	return "'" + r.Replace(s) + "'"
}
