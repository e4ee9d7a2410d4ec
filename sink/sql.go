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
	colML  = "_tributary_ml" // position of the latest move away from a key
	colMS  = "_tributary_ms"
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
//
// An update that changes a row's key is two changes at its (commit LSN,
// seq): the upsert of the new key and the delete of the old one, whose key
// the changelog row carries in schema.ColBeforeKey. The old key's staged
// row is marked deleted when such a move is its latest change, so a later
// re-insert of the old key still wins. A TOASTed column an update left
// unsent takes the old row's value from ColBeforeKey when it holds the
// column (REPLICA IDENTITY FULL), else the key's latest sent value; a
// key-changing update that leaves a TOASTed non-key column unsent under a
// narrower replica identity therefore stages that column as NULL (the old
// key's history is not followed).
type Statements struct {
	Project, Dataset          string
	Changelog, Current, Stage string // table IDs
	// Key lists the key columns (BigQuery names); empty for a table without
	// a key, whose current state holds every inserted row (keyed by its
	// change identity).
	Key []string
	// BeforeKey lists the fields of the changelog's ColBeforeKey record
	// (BigQuery names); empty when the changelog has none. Key-changing
	// updates are applied as moves only when it holds every Key column.
	BeforeKey []string
	// Columns are the table's columns (BigQuery names), every version's.
	Columns []string
	// Toastable are the Columns whose values an update may leave unsent.
	Toastable []string
	// SoftDelete keeps deleted rows, with ColDeleted set, staged through
	// SoftStage (SoftStageSQL, InsertSoftStagedSQL).
	SoftDelete bool
	SoftStage  string // table ID
}

func (s Statements) table(id string) string {
	return schema.QuoteBigQuery(s.Project + "." + s.Dataset + "." + id)
}

// KeyExpr is the canonical key of a changelog row (alias a): the JSON text
// of a STRUCT of the key columns, which keeps composite keys one column, or
// "<commit LSN>:<seq>" for a table without a key. A key column that may be
// TOASTed and that ColBeforeKey holds is read from there when the update
// left it unsent.
func (s Statements) KeyExpr(alias string) string {
	if len(s.Key) == 0 {
		return fmt.Sprintf("CONCAT(CAST(%[1]s.%[2]s AS STRING), ':', CAST(%[1]s.%[3]s AS STRING))", alias, schema.ColCommitLSN, schema.ColSeq)
	}
	before, toast := set(s.BeforeKey), set(s.Toastable)
	parts := make([]string, len(s.Key))
	for i, k := range s.Key {
		q := schema.QuoteBigQuery(k)
		parts[i] = alias + "." + q
		if before[k] && toast[k] {
			parts[i] = fmt.Sprintf("IF(%s IN UNNEST(%s.%s), %s.%s.%s, %s.%s) AS %s", sqlString(k), alias, schema.ColUnchanged, alias, schema.ColBeforeKey, q, alias, q, q)
		}
	}
	return "TO_JSON_STRING(STRUCT(" + strings.Join(parts, ", ") + "))"
}

// OldKeyExpr is the canonical key of the old row of a changelog row (alias
// a), read from ColBeforeKey: the same text KeyExpr gives for the old row's
// own columns. Empty when ColBeforeKey lacks a Key column.
func (s Statements) OldKeyExpr(alias string) string {
	if !s.moves() {
		return ""
	}
	parts := make([]string, len(s.Key))
	for i, k := range s.Key {
		q := schema.QuoteBigQuery(k)
		parts[i] = fmt.Sprintf("%s.%s.%s AS %s", alias, schema.ColBeforeKey, q, q)
	}
	return "TO_JSON_STRING(STRUCT(" + strings.Join(parts, ", ") + "))"
}

// moves reports whether key-changing updates can be applied as moves: the
// table has a key and ColBeforeKey holds all of it.
func (s Statements) moves() bool {
	if len(s.Key) == 0 {
		return false
	}
	before := set(s.BeforeKey)
	for _, k := range s.Key {
		if !before[k] {
			return false
		}
	}
	return true
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
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
	lsn, seq, op, un, bk := schema.ColCommitLSN, schema.ColSeq, schema.ColOp, schema.ColUnchanged, schema.ColBeforeKey
	moves := s.moves()
	fmt.Fprintf(&b, "CREATE TABLE %s AS\n", s.table(s.Stage))
	fmt.Fprintf(&b, "WITH tr AS (SELECT l AS %s, q AS %s FROM (SELECT %s AS l, %s AS q FROM %s WHERE %s = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),\n",
		colTL, colTS, lsn, seq, s.table(s.Changelog), op)
	// The keys the rows in [lo, hi] touch: their own, and the old key of
	// every key-changing update among them.
	inRange := fmt.Sprintf("FROM %s AS n WHERE n.%s BETWEEN %d AND %d AND ", s.table(s.Changelog), lsn, int64(lo), int64(hi))
	touched := fmt.Sprintf("SELECT %s %sn.%s != 't'", s.KeyExpr("n"), inRange, op)
	if moves {
		fmt.Fprintf(&b, "tk AS (SELECT %s AS k %sn.%s != 't'\n  UNION ALL SELECT %s %sn.%s = 'u' AND n.%s IS NOT NULL),\n",
			s.KeyExpr("n"), inRange, op, s.OldKeyExpr("n"), inRange, op, bk)
		touched = "SELECT k FROM tk"
	}
	fmt.Fprintf(&b, "ch AS (SELECT %s AS %s, c.* FROM %s AS c CROSS JOIN tr WHERE c.%s != 't' AND %s\n  AND %s IN (%s)),\n",
		s.KeyExpr("c"), ColKey, s.table(s.Changelog), op, after("c", "tr."+colTL, "tr."+colTS), s.KeyExpr("c"), touched)
	fmt.Fprintf(&b, "rk AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY %s ORDER BY %s DESC, %s DESC) AS %s FROM ch)", ColKey, lsn, seq, colRn)
	if moves {
		// The latest move away from each touched key.
		fmt.Fprintf(&b, ",\nmv AS (SELECT %[1]s, %[2]s, %[3]s FROM (SELECT %[4]s AS %[1]s, m.%[5]s AS %[2]s, m.%[6]s AS %[3]s,\n    ROW_NUMBER() OVER (PARTITION BY %[4]s ORDER BY m.%[5]s DESC, m.%[6]s DESC) AS %[7]s\n  FROM %[8]s AS m CROSS JOIN tr WHERE m.%[9]s = 'u' AND m.%[10]s IS NOT NULL AND %[11]s AND %[4]s != %[12]s\n  AND %[4]s IN (%[13]s)) WHERE %[7]s = 1)",
			ColKey, colML, colMS, s.OldKeyExpr("m"), lsn, seq, colRn, s.table(s.Changelog), op, bk, after("m", "tr."+colTL, "tr."+colTS), s.KeyExpr("m"), touched)
	}
	if len(s.Toastable) > 0 {
		b.WriteString(",\nsent AS (SELECT " + ColKey)
		for _, c := range s.Toastable {
			q := schema.QuoteBigQuery(c)
			fmt.Fprintf(&b, ",\n  ARRAY_AGG(IF(%s = 'd' OR %s IN UNNEST(%s), NULL, STRUCT(%s AS v)) IGNORE NULLS ORDER BY %s DESC, %s DESC LIMIT 1)[SAFE_OFFSET(0)].v AS %s",
				op, sqlString(c), un, q, lsn, seq, q)
		}
		b.WriteString("\n  FROM ch GROUP BY " + ColKey + ")")
	}
	fmt.Fprintf(&b, "\nSELECT rk.%s, ", ColKey)
	if moves {
		fmt.Fprintf(&b, "IF(mv.%[1]s IS NOT NULL AND (mv.%[2]s > rk.%[4]s OR (mv.%[2]s = rk.%[4]s AND mv.%[3]s > rk.%[5]s)), 'd', rk.%[6]s) AS %[6]s",
			ColKey, colML, colMS, lsn, seq, op)
	} else {
		fmt.Fprintf(&b, "rk.%s", op)
	}
	fmt.Fprintf(&b, ", rk.%s, rk.%s, rk.%s", lsn, seq, schema.ColCommitTS)
	toast, before := set(s.Toastable), set(s.BeforeKey)
	for _, c := range s.Columns {
		q := schema.QuoteBigQuery(c)
		switch {
		case toast[c] && before[c]:
			fmt.Fprintf(&b, ",\n  IF(%s IN UNNEST(rk.%s), COALESCE(rk.%s.%s, sent.%s), rk.%s) AS %s", sqlString(c), un, bk, q, q, q, q)
		case toast[c]:
			fmt.Fprintf(&b, ",\n  IF(%s IN UNNEST(rk.%s), sent.%s, rk.%s) AS %s", sqlString(c), un, q, q, q)
		default:
			fmt.Fprintf(&b, ",\n  rk.%s", q)
		}
	}
	b.WriteString("\nFROM rk")
	if len(s.Toastable) > 0 {
		fmt.Fprintf(&b, " LEFT JOIN sent ON sent.%s = rk.%s", ColKey, ColKey)
	}
	if moves {
		fmt.Fprintf(&b, " LEFT JOIN mv ON mv.%s = rk.%s", ColKey, ColKey)
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

// ColDeleted marks the rows of a soft-delete table whose key was deleted
// (or moved away by a key-changing update).
const ColDeleted = schema.ColDeleted

// SoftStageSQL creates SoftStage from the stage of a soft-delete table:
// every staged row, with ColDeleted set on deletes, and a delete carrying
// its key's last values (for each column, the latest value a change after
// the latest truncate sent) instead of the delete's own, which are the
// replica identity only.
func (s Statements) SoftStageSQL() string {
	var b strings.Builder
	lsn, seq, op, un := schema.ColCommitLSN, schema.ColSeq, schema.ColOp, schema.ColUnchanged
	fmt.Fprintf(&b, "CREATE TABLE %s AS\n", s.table(s.SoftStage))
	fmt.Fprintf(&b, "WITH tr AS (SELECT l AS %s, q AS %s FROM (SELECT %s AS l, %s AS q FROM %s WHERE %s = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),\n",
		colTL, colTS, lsn, seq, s.table(s.Changelog), op)
	fmt.Fprintf(&b, "lv AS (SELECT %s", ColKey)
	for _, c := range s.Columns {
		q := schema.QuoteBigQuery(c)
		fmt.Fprintf(&b, ",\n  ARRAY_AGG(IF(%s = 'd' OR %s IN UNNEST(%s), NULL, STRUCT(%s AS v)) IGNORE NULLS ORDER BY %s DESC, %s DESC LIMIT 1)[SAFE_OFFSET(0)].v AS %s",
			op, sqlString(c), un, q, lsn, seq, q)
	}
	fmt.Fprintf(&b, "\n  FROM (SELECT %s AS %s, c.* FROM %s AS c CROSS JOIN tr WHERE c.%s != 't' AND %s)\n  WHERE %s IN (SELECT %s FROM %s WHERE %s = 'd')\n  GROUP BY %s)\n",
		s.KeyExpr("c"), ColKey, s.table(s.Changelog), op, after("c", "tr."+colTL, "tr."+colTS), ColKey, ColKey, s.table(s.Stage), op, ColKey)
	fmt.Fprintf(&b, "SELECT st.%s, st.%s, st.%s, st.%s, st.%s", ColKey, op, lsn, seq, schema.ColCommitTS)
	for _, c := range s.Columns {
		q := schema.QuoteBigQuery(c)
		fmt.Fprintf(&b, ",\n  IF(st.%s = 'd', lv.%s, st.%s) AS %s", op, q, q, q)
	}
	fmt.Fprintf(&b, ",\n  st.%s = 'd' AS %s\nFROM %s AS st LEFT JOIN lv ON lv.%s = st.%s", op, ColDeleted, s.table(s.Stage), ColKey, ColKey)
	return b.String()
}

// InsertSoftStagedSQL inserts every row of SoftStage, deletes included.
func (s Statements) InsertSoftStagedSQL() string {
	cols := []string{ColKey, schema.ColCommitLSN, schema.ColSeq, schema.ColCommitTS}
	for _, c := range s.Columns {
		cols = append(cols, schema.QuoteBigQuery(c))
	}
	cols = append(cols, ColDeleted)
	list := strings.Join(cols, ", ")
	return fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s FROM %s", s.table(s.Current), list, list, s.table(s.SoftStage))
}
