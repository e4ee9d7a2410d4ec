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
		{"stage, composite key, a TOASTable column", keyed.StageSQL(16, 4096), `CREATE TABLE ` + "`" + `p.d.public__t__stage` + "`" + ` AS
WITH tr AS (SELECT l AS _tributary_tl, q AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS q FROM ` + "`" + `p.d.public__t__changelog` + "`" + ` WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),
ch AS (SELECT TO_JSON_STRING(STRUCT(c.` + "`" + `order_id` + "`" + `, c.` + "`" + `line` + "`" + `)) AS _tributary_key, c.* FROM ` + "`" + `p.d.public__t__changelog` + "`" + ` AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts))
  AND TO_JSON_STRING(STRUCT(c.` + "`" + `order_id` + "`" + `, c.` + "`" + `line` + "`" + `)) IN (SELECT TO_JSON_STRING(STRUCT(n.` + "`" + `order_id` + "`" + `, n.` + "`" + `line` + "`" + `)) FROM ` + "`" + `p.d.public__t__changelog` + "`" + ` AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op != 't')),
rk AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY _tributary_key ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC) AS _tributary_rn FROM ch),
sent AS (SELECT _tributary_key,
  ARRAY_AGG(IF(_tributary_op = 'd' OR 'note' IN UNNEST(_tributary_unchanged), NULL, STRUCT(` + "`" + `note` + "`" + ` AS v)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)].v AS ` + "`" + `note` + "`" + `
  FROM ch GROUP BY _tributary_key)
SELECT rk._tributary_key, rk._tributary_op, rk._tributary_commit_lsn, rk._tributary_seq, rk._tributary_commit_ts,
  rk.` + "`" + `order_id` + "`" + `,
  rk.` + "`" + `line` + "`" + `,
  IF('note' IN UNNEST(rk._tributary_unchanged), sent.` + "`" + `note` + "`" + `, rk.` + "`" + `note` + "`" + `) AS ` + "`" + `note` + "`" + `
FROM rk LEFT JOIN sent ON sent._tributary_key = rk._tributary_key
WHERE rk._tributary_rn = 1`},
		{"stage, no key", keyless.StageSQL(16, 4096), `CREATE TABLE ` + "`" + `p.d.public__t__stage` + "`" + ` AS
WITH tr AS (SELECT l AS _tributary_tl, q AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS q FROM ` + "`" + `p.d.public__t__changelog` + "`" + ` WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),
ch AS (SELECT CONCAT(CAST(c._tributary_commit_lsn AS STRING), ':', CAST(c._tributary_seq AS STRING)) AS _tributary_key, c.* FROM ` + "`" + `p.d.public__t__changelog` + "`" + ` AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts))
  AND CONCAT(CAST(c._tributary_commit_lsn AS STRING), ':', CAST(c._tributary_seq AS STRING)) IN (SELECT CONCAT(CAST(n._tributary_commit_lsn AS STRING), ':', CAST(n._tributary_seq AS STRING)) FROM ` + "`" + `p.d.public__t__changelog` + "`" + ` AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op != 't')),
rk AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY _tributary_key ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC) AS _tributary_rn FROM ch)
SELECT rk._tributary_key, rk._tributary_op, rk._tributary_commit_lsn, rk._tributary_seq, rk._tributary_commit_ts,
  rk.` + "`" + `order_id` + "`" + `,
  rk.` + "`" + `line` + "`" + `,
  rk.` + "`" + `note` + "`" + `
FROM rk
WHERE rk._tributary_rn = 1`},
		{"stage, key-changing updates", moved.StageSQL(16, 4096), bt(`CREATE TABLE ^p.d.public__t__stage^ AS
WITH tr AS (SELECT l AS _tributary_tl, q AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS q FROM ^p.d.public__t__changelog^ WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, q DESC LIMIT 1),
tk AS (SELECT TO_JSON_STRING(STRUCT(n.^id^)) AS k FROM ^p.d.public__t__changelog^ AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op != 't'
  UNION ALL SELECT TO_JSON_STRING(STRUCT(n._tributary_before_key.^id^ AS ^id^)) FROM ^p.d.public__t__changelog^ AS n WHERE n._tributary_commit_lsn BETWEEN 16 AND 4096 AND n._tributary_op = 'u' AND n._tributary_before_key IS NOT NULL),
ch AS (SELECT TO_JSON_STRING(STRUCT(c.^id^)) AS _tributary_key, c.* FROM ^p.d.public__t__changelog^ AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts))
  AND TO_JSON_STRING(STRUCT(c.^id^)) IN (SELECT k FROM tk)),
rk AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY _tributary_key ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC) AS _tributary_rn FROM ch),
mv AS (SELECT _tributary_key, _tributary_ml, _tributary_ms FROM (SELECT TO_JSON_STRING(STRUCT(m._tributary_before_key.^id^ AS ^id^)) AS _tributary_key, m._tributary_commit_lsn AS _tributary_ml, m._tributary_seq AS _tributary_ms,
    ROW_NUMBER() OVER (PARTITION BY TO_JSON_STRING(STRUCT(m._tributary_before_key.^id^ AS ^id^)) ORDER BY m._tributary_commit_lsn DESC, m._tributary_seq DESC) AS _tributary_rn
  FROM ^p.d.public__t__changelog^ AS m CROSS JOIN tr WHERE m._tributary_op = 'u' AND m._tributary_before_key IS NOT NULL AND (m._tributary_commit_lsn > tr._tributary_tl OR (m._tributary_commit_lsn = tr._tributary_tl AND m._tributary_seq > tr._tributary_ts)) AND TO_JSON_STRING(STRUCT(m._tributary_before_key.^id^ AS ^id^)) != TO_JSON_STRING(STRUCT(m.^id^))
  AND TO_JSON_STRING(STRUCT(m._tributary_before_key.^id^ AS ^id^)) IN (SELECT k FROM tk)) WHERE _tributary_rn = 1),
sent AS (SELECT _tributary_key,
  ARRAY_AGG(IF(_tributary_op = 'd' OR 'v' IN UNNEST(_tributary_unchanged), NULL, STRUCT(^v^ AS v)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)].v AS ^v^
  FROM ch GROUP BY _tributary_key)
SELECT rk._tributary_key, IF(mv._tributary_key IS NOT NULL AND (mv._tributary_ml > rk._tributary_commit_lsn OR (mv._tributary_ml = rk._tributary_commit_lsn AND mv._tributary_ms > rk._tributary_seq)), 'd', rk._tributary_op) AS _tributary_op, rk._tributary_commit_lsn, rk._tributary_seq, rk._tributary_commit_ts,
  rk.^id^,
  IF('v' IN UNNEST(rk._tributary_unchanged), sent.^v^, rk.^v^) AS ^v^
FROM rk LEFT JOIN sent ON sent._tributary_key = rk._tributary_key LEFT JOIN mv ON mv._tributary_key = rk._tributary_key
WHERE rk._tributary_rn = 1`)},
		{"key, identity FULL: an unsent TOASTed key column from the old row", full.KeyExpr("c"), bt(`TO_JSON_STRING(STRUCT(c.^id^, IF('body' IN UNNEST(c._tributary_unchanged), c._tributary_before_key.^body^, c.^body^) AS ^body^))`)},
		{"old key, identity FULL", full.OldKeyExpr("c"), bt(`TO_JSON_STRING(STRUCT(c._tributary_before_key.^id^ AS ^id^, c._tributary_before_key.^body^ AS ^body^))`)},
		{"stage, identity FULL: an unsent TOASTed column from the old row", full.StageSQL(1, 2)[strings.Index(full.StageSQL(1, 2), "\n  rk.`id`"):],
			bt(`
  rk.^id^,
  IF('body' IN UNNEST(rk._tributary_unchanged), COALESCE(rk._tributary_before_key.^body^, sent.^body^), rk.^body^) AS ^body^
FROM rk LEFT JOIN sent ON sent._tributary_key = rk._tributary_key LEFT JOIN mv ON mv._tributary_key = rk._tributary_key
WHERE rk._tributary_rn = 1`)},
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
