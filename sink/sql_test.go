package sink

import "testing"

func TestStatements(t *testing.T) {
	keyed := Statements{Project: "p", Dataset: "d", Changelog: "public__t__changelog", Current: "public__t", Stage: "public__t__stage",
		Key: []string{"order_id", "line"}, Columns: []string{"order_id", "line", "note"}, Toastable: []string{"note"}}
	keyless := keyed
	keyless.Key, keyless.Toastable = nil, nil
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
