package sink

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tributary-cdc/tributary/schema"
)

func TestStatements(t *testing.T) {
	keyed := Statements{Project: "p", Dataset: "d", Changelog: "public__t__changelog", Current: "public__t", Stage: "public__t__stage",
		Key: []string{"order_id", "line"}, Columns: []string{"order_id", "line", "note"}, Toastable: []string{"note"}}
	keyless := keyed
	keyless.Key, keyless.Toastable = nil, nil
	// The old key is in the changelog: key-changing updates are moves.
	moved := Statements{Project: "p", Dataset: "d", Changelog: "public__t__changelog", Current: "public__t", Stage: "public__t__stage",
		Key: []string{"id"}, BeforeKey: []string{"id"}, Columns: []string{"id", "v"}, Toastable: []string{"v"}}
	// REPLICA IDENTITY FULL: every column is a key column and in the old row.
	full := Statements{Key: []string{"id", "body"}, BeforeKey: []string{"id", "body"}, Columns: []string{"id", "body"}, Toastable: []string{"body"}}
	// A configured key the old row lacks: no moves.
	narrow := moved
	narrow.Key = []string{"id", "v"}
	bt := func(s string) string { return strings.ReplaceAll(s, "^", "`") }
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"stage, composite key, a TOASTable column", keyed.StageSQL(16, 4096), bt(`CREATE TABLE ^p.d.public__t__stage^ AS
WITH tr AS (SELECT l AS _tributary_tl, q AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS q FROM ^p.d.public__t__changelog^ WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),
ch AS (SELECT TO_JSON_STRING(STRUCT(c.^order_id^, c.^line^)) AS _tributary_key, c.* FROM ^p.d.public__t__changelog^ AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts))
  AND TO_JSON_STRING(STRUCT(c.^order_id^, c.^line^)) IN (SELECT TO_JSON_STRING(STRUCT(n.^order_id^, n.^line^)) FROM ^p.d.public__t__changelog^ AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op != 't')),
g AS (SELECT _tributary_key,
  ARRAY_AGG(STRUCT(_tributary_op, CAST(_tributary_commit_lsn AS STRING) AS _tributary_commit_lsn, CAST(_tributary_seq AS STRING) AS _tributary_seq, _tributary_commit_ts, _tributary_unchanged, ^order_id^, ^line^, ^note^) ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)] AS _tributary_row,
  ARRAY_AGG(IF(_tributary_op = 'd' OR 'note' IN UNNEST(_tributary_unchanged), NULL, STRUCT(^note^ AS v)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)].v AS _tributary_sent0
  FROM ch GROUP BY _tributary_key)
SELECT _tributary_key, _tributary_row._tributary_op AS _tributary_op, CAST(_tributary_row._tributary_commit_lsn AS INT64) AS _tributary_commit_lsn, CAST(_tributary_row._tributary_seq AS INT64) AS _tributary_seq, _tributary_row._tributary_commit_ts AS _tributary_commit_ts,
  _tributary_row.^order_id^ AS ^order_id^,
  _tributary_row.^line^ AS ^line^,
  IF('note' IN UNNEST(_tributary_row._tributary_unchanged), _tributary_sent0, _tributary_row.^note^) AS ^note^
FROM g WHERE _tributary_row IS NOT NULL`)},
		{"stage, no key", keyless.StageSQL(16, 4096), bt(`CREATE TABLE ^p.d.public__t__stage^ AS
WITH tr AS (SELECT l AS _tributary_tl, q AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS q FROM ^p.d.public__t__changelog^ WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),
ch AS (SELECT CONCAT(CAST(c._tributary_commit_lsn AS STRING), ':', CAST(c._tributary_seq AS STRING)) AS _tributary_key, c.* FROM ^p.d.public__t__changelog^ AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts))
  AND CONCAT(CAST(c._tributary_commit_lsn AS STRING), ':', CAST(c._tributary_seq AS STRING)) IN (SELECT CONCAT(CAST(n._tributary_commit_lsn AS STRING), ':', CAST(n._tributary_seq AS STRING)) FROM ^p.d.public__t__changelog^ AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op != 't')),
g AS (SELECT _tributary_key,
  ARRAY_AGG(STRUCT(_tributary_op, CAST(_tributary_commit_lsn AS STRING) AS _tributary_commit_lsn, CAST(_tributary_seq AS STRING) AS _tributary_seq, _tributary_commit_ts, _tributary_unchanged, ^order_id^, ^line^, ^note^) ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)] AS _tributary_row
  FROM ch GROUP BY _tributary_key)
SELECT _tributary_key, _tributary_row._tributary_op AS _tributary_op, CAST(_tributary_row._tributary_commit_lsn AS INT64) AS _tributary_commit_lsn, CAST(_tributary_row._tributary_seq AS INT64) AS _tributary_seq, _tributary_row._tributary_commit_ts AS _tributary_commit_ts,
  _tributary_row.^order_id^ AS ^order_id^,
  _tributary_row.^line^ AS ^line^,
  _tributary_row.^note^ AS ^note^
FROM g WHERE _tributary_row IS NOT NULL`)},
		{"stage, key-changing updates", moved.StageSQL(16, 4096), bt(`CREATE TABLE ^p.d.public__t__stage^ AS
WITH tr AS (SELECT l AS _tributary_tl, q AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS q FROM ^p.d.public__t__changelog^ WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),
tk AS (SELECT TO_JSON_STRING(STRUCT(n.^id^)) AS k FROM ^p.d.public__t__changelog^ AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op != 't'
  UNION ALL SELECT TO_JSON_STRING(STRUCT(n._tributary_before_key.^id^ AS ^id^)) FROM ^p.d.public__t__changelog^ AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op = 'u' AND n._tributary_before_key IS NOT NULL),
ch AS (SELECT TO_JSON_STRING(STRUCT(c.^id^)) AS _tributary_key, FALSE AS _tributary_mv, c.* FROM ^p.d.public__t__changelog^ AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts))
  AND TO_JSON_STRING(STRUCT(c.^id^)) IN (SELECT k FROM tk)
  UNION ALL SELECT TO_JSON_STRING(STRUCT(m._tributary_before_key.^id^ AS ^id^)), TRUE, m.* FROM ^p.d.public__t__changelog^ AS m CROSS JOIN tr WHERE m._tributary_op = 'u' AND m._tributary_before_key IS NOT NULL AND (m._tributary_commit_lsn > tr._tributary_tl OR (m._tributary_commit_lsn = tr._tributary_tl AND m._tributary_seq > tr._tributary_ts)) AND TO_JSON_STRING(STRUCT(m._tributary_before_key.^id^ AS ^id^)) != TO_JSON_STRING(STRUCT(m.^id^))
  AND TO_JSON_STRING(STRUCT(m._tributary_before_key.^id^ AS ^id^)) IN (SELECT k FROM tk)),
g AS (SELECT _tributary_key,
  ARRAY_AGG(IF(_tributary_mv, NULL, STRUCT(_tributary_op, CAST(_tributary_commit_lsn AS STRING) AS _tributary_commit_lsn, CAST(_tributary_seq AS STRING) AS _tributary_seq, _tributary_commit_ts, _tributary_unchanged, ^id^, ^v^)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)] AS _tributary_row,
  ARRAY_AGG(IF(_tributary_mv, STRUCT(CAST(_tributary_commit_lsn AS STRING) AS l, CAST(_tributary_seq AS STRING) AS s), NULL) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)] AS _tributary_move,
  ARRAY_AGG(IF(_tributary_mv OR _tributary_op = 'd' OR 'v' IN UNNEST(_tributary_unchanged), NULL, STRUCT(^v^ AS v)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)].v AS _tributary_sent0
  FROM ch GROUP BY _tributary_key)
SELECT _tributary_key, IF(CAST(_tributary_move.l AS INT64) > CAST(_tributary_row._tributary_commit_lsn AS INT64) OR (CAST(_tributary_move.l AS INT64) = CAST(_tributary_row._tributary_commit_lsn AS INT64) AND CAST(_tributary_move.s AS INT64) > CAST(_tributary_row._tributary_seq AS INT64)), 'd', _tributary_row._tributary_op) AS _tributary_op, CAST(_tributary_row._tributary_commit_lsn AS INT64) AS _tributary_commit_lsn, CAST(_tributary_row._tributary_seq AS INT64) AS _tributary_seq, _tributary_row._tributary_commit_ts AS _tributary_commit_ts,
  _tributary_row.^id^ AS ^id^,
  IF('v' IN UNNEST(_tributary_row._tributary_unchanged), _tributary_sent0, _tributary_row.^v^) AS ^v^
FROM g WHERE _tributary_row IS NOT NULL`)},
		{"key, identity FULL: an unsent TOASTed key column from the old row", full.KeyExpr("c"), bt(`TO_JSON_STRING(STRUCT(c.^id^, IF('body' IN UNNEST(c._tributary_unchanged), c._tributary_before_key.^body^, c.^body^) AS ^body^))`)},
		{"old key, identity FULL", full.OldKeyExpr("c"), bt(`TO_JSON_STRING(STRUCT(c._tributary_before_key.^id^ AS ^id^, c._tributary_before_key.^body^ AS ^body^))`)},
		{"stage, identity FULL: an unsent TOASTed column from the old row", full.StageSQL(1, 2)[strings.Index(full.StageSQL(1, 2), "\n  _tributary_row.`id`"):],
			bt(`
  _tributary_row.^id^ AS ^id^,
  IF('body' IN UNNEST(_tributary_row._tributary_unchanged), COALESCE(_tributary_row._tributary_before0, _tributary_sent0), _tributary_row.^body^) AS ^body^
FROM g WHERE _tributary_row IS NOT NULL`)},
		{"old key, a key column not in the old row", narrow.OldKeyExpr("c"), ""},
		{"stage, a key column not in the old row: no moves", fmt.Sprint(strings.Contains(narrow.StageSQL(16, 4096), schema.ColBeforeKey)), "false"},
		{"latest truncate", keyed.LatestTruncateSQL(1, 2), `SELECT _tributary_commit_lsn, _tributary_seq FROM ` + "`" + `p.d.public__t__changelog` + "`" + ` WHERE _tributary_op = 't' AND _tributary_commit_lsn BETWEEN 1 AND 2 ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1`},
		{"delete truncated", keyed.DeleteTruncatedSQL(300, 2), `DELETE FROM ` + "`" + `p.d.public__t` + "`" + ` WHERE _tributary_commit_lsn < 300 OR (_tributary_commit_lsn = 300 AND _tributary_seq < 2)`},
		{"delete staged", keyed.DeleteStagedSQL(), `DELETE FROM ` + "`" + `p.d.public__t` + "`" + ` WHERE _tributary_key IN (SELECT _tributary_key FROM ` + "`" + `p.d.public__t__stage` + "`" + `)`},
		{"insert staged", keyed.InsertStagedSQL(), `INSERT INTO ` + "`" + `p.d.public__t` + "`" + ` (_tributary_key, _tributary_commit_lsn, _tributary_seq, _tributary_commit_ts, ` + "`" + `order_id` + "`" + `, ` + "`" + `line` + "`" + `, ` + "`" + `note` + "`" + `)
SELECT _tributary_key, _tributary_commit_lsn, _tributary_seq, _tributary_commit_ts, ` + "`" + `order_id` + "`" + `, ` + "`" + `line` + "`" + `, ` + "`" + `note` + "`" + ` FROM ` + "`" + `p.d.public__t__stage` + "`" + ` WHERE _tributary_op != 'd'`},
		{"LSN above 2^63 as BigQuery's INT64", keyed.DeleteTruncatedSQL(1<<63+5, 0), "DELETE FROM `p.d.public__t` WHERE _tributary_commit_lsn < -9223372036854775803 OR (_tributary_commit_lsn = -9223372036854775803 AND _tributary_seq < 0)"},
		{"string literal", sqlString("a'b\\c\n"), `'a\'b\\c\n'`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, tt.got, tt.want)
		}
	}
}

// StageSQL carries INT64 and FLOAT64 values through its STRUCTs as exact
// text and back, and splits a wide row into STRUCTs of at most
// rowPartFields fields, every part aggregated under the same order.
func TestStageSQLCarriesAndSplits(t *testing.T) {
	cols := []string{"id", "ratio", "name"}
	for i := range 100 {
		cols = append(cols, fmt.Sprintf("c%02d", i))
	}
	st := Statements{Project: "p", Dataset: "d", Changelog: "cl", Current: "cur", Stage: "stage",
		Key: []string{"id"}, Columns: cols, Toastable: []string{"name"},
		Types: map[string]string{"id": "INT64", "ratio": "FLOAT64", "name": "STRING", "c99": "INT64"}}
	sql := st.StageSQL(1, 2)
	for _, want := range []string{
		"CAST(`id` AS STRING) AS `id`", "FORMAT('%.17g', `ratio`) AS `ratio`", "STRUCT(`name` AS v)",
		"CAST(_tributary_row.`id` AS INT64) AS `id`", "CAST(_tributary_row.`ratio` AS FLOAT64) AS `ratio`",
		"CAST(`c99` AS STRING) AS `c99`", "CAST(_tributary_row2.`c99` AS INT64) AS `c99`",
		"_tributary_row1.`c50` AS `c50`",
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("stage lacks %s:\n%s", want, sql)
		}
	}
	// 5 envelope fields and 103 columns: parts of 40, 40 and 28 fields,
	// each ordered by the change's position.
	var parts []int
	for _, line := range strings.Split(sql, "\n") {
		if strings.HasPrefix(line, "  ARRAY_AGG(STRUCT(") && strings.Contains(line, "AS _tributary_row") {
			if !strings.Contains(line, "ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)]") {
				t.Errorf("a part not ordered by the change's position: %s", line)
			}
			inner := line[len("  ARRAY_AGG(STRUCT("):strings.Index(line, ") ORDER BY")]
			fields, depth := 1, 0
			for _, r := range inner {
				switch {
				case r == '(':
					depth++
				case r == ')':
					depth--
				case r == ',' && depth == 0:
					fields++
				}
			}
			parts = append(parts, fields)
		}
	}
	if fmt.Sprint(parts) != "[40 40 28]" {
		t.Errorf("row parts of %v fields, want [40 40 28]", parts)
	}
}
