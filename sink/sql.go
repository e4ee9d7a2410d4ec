package sink

import (
	"fmt"
	"strconv"
	"strings"

	"cloud.google.com/go/bigquery"

	"github.com/tributary-cdc/tributary/schema"
)

// Current-state bookkeeping columns: the row's key in canonical form and
// the position and time of the change that made the row what it is.
const (
	ColKey    = "_tributary_key"
	colTL     = "_tributary_tl" // position of the latest truncate
	colTS     = "_tributary_ts"
	colMv     = "_tributary_mv"     // the change is a move away from the key
	colRow    = "_tributary_row"    // the key's latest change
	colMove   = "_tributary_move"   // position of the key's latest move away
	colSent   = "_tributary_sent"   // latest value sent of TOASTable column i: colSent<i>
	colBefore = "_tributary_before" // the old row's value of TOASTable column i: colBefore<i>
)

// Statements generates the SQL that keeps a current-state table in step
// with its changelog. Every statement is a pure function of the fields and
// its arguments and uses only what the BigQuery emulator of the local stack
// executes correctly and in time linear in the rows: CREATE TABLE … AS
// SELECT with GROUP BY aggregates, DELETE … WHERE k IN (SELECT …) and
// INSERT … SELECT; no MERGE, no correlated DELETE, no join of two large
// inputs and no window function (see StageSQL).
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
	// Types holds the BigQuery type of the Columns that are not REPEATED
	// ("INT64", "FLOAT64", …): StageSQL carries INT64 and FLOAT64 values
	// through STRUCTs as exact text (see carry).
	Types map[string]string
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
//
// Its shape keeps it linear on the emulator, which runs a join as a nested
// loop of function calls and evaluates a window function as a scan of its
// whole input per row: the touched keys are filtered with IN (subquery)
// and everything a staged row needs — the latest change, the latest value
// sent of each TOASTable column and the latest move away from the key —
// comes from aggregates of one GROUP BY over the key, with no join and no
// window function.
func (s Statements) StageSQL(lo, hi uint64) string {
	var b strings.Builder
	lsn, seq, op, un, bk, ts := schema.ColCommitLSN, schema.ColSeq, schema.ColOp, schema.ColUnchanged, schema.ColBeforeKey, schema.ColCommitTS
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
	// ch: every change of a touched key after the latest truncate, and,
	// with moves, every move away from a touched key (marked colMv), keyed
	// by the key it left.
	mvCol := ""
	if moves {
		mvCol = "FALSE AS " + colMv + ", "
	}
	fmt.Fprintf(&b, "ch AS (SELECT %s AS %s, %sc.* FROM %s AS c CROSS JOIN tr WHERE c.%s != 't' AND %s\n  AND %s IN (%s)",
		s.KeyExpr("c"), ColKey, mvCol, s.table(s.Changelog), op, after("c", "tr."+colTL, "tr."+colTS), s.KeyExpr("c"), touched)
	if moves {
		fmt.Fprintf(&b, "\n  UNION ALL SELECT %[1]s, TRUE, m.* FROM %[2]s AS m CROSS JOIN tr WHERE m.%[3]s = 'u' AND m.%[4]s IS NOT NULL AND %[5]s AND %[1]s != %[6]s\n  AND %[1]s IN (%[7]s)",
			s.OldKeyExpr("m"), s.table(s.Changelog), op, bk, after("m", "tr."+colTL, "tr."+colTS), s.KeyExpr("m"), touched)
	}
	b.WriteString("),\n")
	// g: per key, the latest change (in parts: colRow, colRow1, …), the
	// latest move away (colMove) and the latest value sent of each
	// TOASTable column (colSent<i>).
	latest := fmt.Sprintf(" ORDER BY %s DESC, %s DESC LIMIT 1)[SAFE_OFFSET(0)]", lsn, seq)
	type field struct{ name, expr, typ string }
	fields := []field{{op, op, ""}, {lsn, lsn, "INT64"}, {seq, seq, "INT64"}, {ts, ts, ""}, {un, un, ""}}
	before := set(s.BeforeKey)
	oldValue := map[string]string{} // the old row's value of an unsent column
	for _, c := range s.Toastable {
		if before[c] {
			oldValue[c] = fmt.Sprintf("%s%d", colBefore, len(oldValue))
			fields = append(fields, field{oldValue[c], bk + "." + schema.QuoteBigQuery(c), s.Types[c]})
		}
	}
	for _, c := range s.Columns {
		q := schema.QuoteBigQuery(c)
		fields = append(fields, field{q, q, s.Types[c]})
	}
	notRow := ""
	if moves {
		notRow = colMv + " OR "
	}
	part := map[string]string{} // field name → the part holding it
	fmt.Fprintf(&b, "g AS (SELECT %s", ColKey)
	for i := 0; i*rowPartFields < len(fields); i++ {
		name := colRow
		if i > 0 {
			name += strconv.Itoa(i)
		}
		var list []string
		for _, f := range fields[i*rowPartFields : min(len(fields), (i+1)*rowPartFields)] {
			if e := carry(f.expr, f.typ); e != f.name {
				list = append(list, e+" AS "+f.name)
			} else {
				list = append(list, e)
			}
			part[f.name] = name
		}
		row := "STRUCT(" + strings.Join(list, ", ") + ")"
		if moves {
			row = fmt.Sprintf("IF(%s, NULL, %s) IGNORE NULLS", colMv, row)
		}
		fmt.Fprintf(&b, ",\n  ARRAY_AGG(%s%s AS %s", row, latest, name)
	}
	if moves {
		fmt.Fprintf(&b, ",\n  ARRAY_AGG(IF(%s, STRUCT(%s AS l, %s AS s), NULL) IGNORE NULLS%s AS %s",
			colMv, carry(lsn, "INT64"), carry(seq, "INT64"), latest, colMove)
	}
	for i, c := range s.Toastable {
		fmt.Fprintf(&b, ",\n  ARRAY_AGG(IF(%s%s = 'd' OR %s IN UNNEST(%s), NULL, STRUCT(%s AS v)) IGNORE NULLS%s.v AS %s%d",
			notRow, op, sqlString(c), un, carry(schema.QuoteBigQuery(c), s.Types[c]), latest, colSent, i)
	}
	fmt.Fprintf(&b, "\n  FROM ch GROUP BY %s)\n", ColKey)
	types := map[string]string{lsn: "INT64", seq: "INT64"}
	for _, f := range fields {
		types[f.name] = f.typ
	}
	get := func(name string) string { return uncarry(part[name]+"."+name, types[name]) }
	fmt.Fprintf(&b, "SELECT %s, ", ColKey)
	if moves {
		ml, ms := uncarry(colMove+".l", "INT64"), uncarry(colMove+".s", "INT64")
		fmt.Fprintf(&b, "IF(%[1]s > %[3]s OR (%[1]s = %[3]s AND %[2]s > %[4]s), 'd', %[5]s) AS %[6]s",
			ml, ms, get(lsn), get(seq), get(op), op)
	} else {
		fmt.Fprintf(&b, "%s AS %s", get(op), op)
	}
	fmt.Fprintf(&b, ", %s AS %s, %s AS %s, %s AS %s", get(lsn), lsn, get(seq), seq, get(ts), ts)
	sent := map[string]string{}
	for i, c := range s.Toastable {
		sent[c] = uncarry(fmt.Sprintf("%s%d", colSent, i), s.Types[c])
	}
	for _, c := range s.Columns {
		q := schema.QuoteBigQuery(c)
		switch {
		case sent[c] != "" && oldValue[c] != "":
			fmt.Fprintf(&b, ",\n  IF(%s IN UNNEST(%s), COALESCE(%s, %s), %s) AS %s", sqlString(c), get(un), get(oldValue[c]), sent[c], get(q), q)
		case sent[c] != "":
			fmt.Fprintf(&b, ",\n  IF(%s IN UNNEST(%s), %s, %s) AS %s", sqlString(c), get(un), sent[c], get(q), q)
		default:
			fmt.Fprintf(&b, ",\n  %s AS %s", get(q), q)
		}
	}
	fmt.Fprintf(&b, "\nFROM g WHERE %s IS NOT NULL", colRow)
	return b.String()
}

// rowPartFields bounds the fields of one STRUCT in StageSQL: the emulator
// passes a STRUCT's fields to one SQLite function, which takes at most 127
// arguments, so a wide table's row is aggregated in several parts, each
// under the same order (so each holds the same change).
const rowPartFields = 40

// carry is expr as it travels through a STRUCT or an array aggregate: INT64
// and FLOAT64 as exact text. The emulator carries numbers inside a STRUCT
// as float64 (an INT64 beyond 2^53 comes back changed, an infinity fails
// the query); on BigQuery the text costs a cast. '%.17g' round-trips every
// double, infinities included.
func carry(expr, typ string) string {
	switch typ {
	case "INT64":
		return "CAST(" + expr + " AS STRING)"
	case "FLOAT64":
		return "FORMAT('%.17g', " + expr + ")"
	}
	return expr
}

// uncarry reads back what carry made of a value of type typ.
func uncarry(expr, typ string) string {
	switch typ {
	case "INT64", "FLOAT64":
		return "CAST(" + expr + " AS " + typ + ")"
	}
	return expr
}

// standardSQLType names the legacy field types of the BigQuery API that
// carry needs in standard SQL.
var standardSQLType = map[bigquery.FieldType]string{
	bigquery.IntegerFieldType: "INT64",
	bigquery.FloatFieldType:   "FLOAT64",
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
			op, sqlString(c), un, carry(q, s.Types[c]), lsn, seq, q)
	}
	fmt.Fprintf(&b, "\n  FROM (SELECT %s AS %s, c.* FROM %s AS c CROSS JOIN tr WHERE c.%s != 't' AND %s)\n  WHERE %s IN (SELECT %s FROM %s WHERE %s = 'd')\n  GROUP BY %s)\n",
		s.KeyExpr("c"), ColKey, s.table(s.Changelog), op, after("c", "tr."+colTL, "tr."+colTS), ColKey, ColKey, s.table(s.Stage), op, ColKey)
	fmt.Fprintf(&b, "SELECT st.%s, st.%s, st.%s, st.%s, st.%s", ColKey, op, lsn, seq, schema.ColCommitTS)
	for _, c := range s.Columns {
		q := schema.QuoteBigQuery(c)
		fmt.Fprintf(&b, ",\n  IF(st.%s = 'd', %s, st.%s) AS %s", op, uncarry("lv."+q, s.Types[c]), q, q)
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
