package sink

import (
	"context"
	"testing"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/internal/gcp"
)

func TestIntegrationProbe(t *testing.T) {
	needStack(t)
	ctx := context.Background()
	bq, err := gcp.BigQuery(ctx, stack.Project)
	if err != nil {
		t.Fatal(err)
	}
	ds := stack.Dataset
	tbl := bq.Dataset(ds).Table("probe_cl")
	err = tbl.Create(ctx, &bigquery.TableMetadata{
		Schema: bigquery.Schema{
			{Name: "_tributary_op", Type: bigquery.StringFieldType, Required: true},
			{Name: "_tributary_commit_lsn", Type: bigquery.IntegerFieldType},
			{Name: "_tributary_seq", Type: bigquery.IntegerFieldType},
			{Name: "_tributary_commit_ts", Type: bigquery.TimestampFieldType},
			{Name: "_tributary_unchanged", Type: bigquery.StringFieldType, Repeated: true},
			{Name: "a", Type: bigquery.IntegerFieldType},
			{Name: "b", Type: bigquery.StringFieldType},
			{Name: "big", Type: bigquery.StringFieldType},
			{Name: "arr", Type: bigquery.IntegerFieldType, Repeated: true},
		},
		TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: "_tributary_commit_ts"},
		Clustering:       &bigquery.Clustering{Fields: []string{"a", "b"}},
	})
	t.Logf("create partitioned clustered: %v", err)
	md, err := tbl.Metadata(ctx)
	if err == nil {
		t.Logf("md partition %+v clustering %+v", md.TimePartitioning, md.Clustering)
	}
	_, err = tbl.Update(ctx, bigquery.TableMetadataToUpdate{Schema: append(md.Schema, &bigquery.FieldSchema{Name: "added", Type: bigquery.StringFieldType})}, md.ETag)
	t.Logf("schema update: %v", err)
	run := func(q string) {
		t.Helper()
		it, err := bq.Query(q).Read(ctx)
		if err != nil {
			t.Logf("FAIL %v\n  %s", err, q)
			return
		}
		var rows [][]bigquery.Value
		for {
			var r []bigquery.Value
			err := it.Next(&r)
			if err == iterator.Done {
				break
			}
			if err != nil {
				t.Logf("FAIL next %v\n  %s", err, q)
				return
			}
			rows = append(rows, r)
		}
		t.Logf("OK %v\n  %s", rows, q)
	}
	T := "`" + ds + ".probe_cl`"
	run("INSERT INTO " + T + " (_tributary_op,_tributary_commit_lsn,_tributary_seq,_tributary_commit_ts,_tributary_unchanged,a,b,big,arr) VALUES " +
		"('c',10,0,TIMESTAMP '2026-01-01 00:00:00',[],1,'x','BIG1',[1,2]),('u',20,0,TIMESTAMP '2026-01-01 00:00:01',['big'],1,'x','zz',[3]),('u',30,1,TIMESTAMP '2026-01-01 00:00:02',['big'],1,'x',NULL,[]),('c',30,2,TIMESTAMP '2026-01-01 00:00:02',[],2,'y',NULL,[]),('t',25,0,TIMESTAMP '2026-01-01 00:00:02',[],NULL,NULL,NULL,[])")
	run("SELECT TO_JSON_STRING(STRUCT(a, b)), TO_JSON_STRING(STRUCT(a)) FROM " + T)
	run("SELECT l, s FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS s FROM " + T + " WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, s DESC LIMIT 1")
	run("SELECT a, LAST_VALUE(IF('big' IN UNNEST(_tributary_unchanged) OR _tributary_op = 'd', NULL, STRUCT(big AS v)) IGNORE NULLS) OVER (PARTITION BY a ORDER BY _tributary_commit_lsn, _tributary_seq ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING).v FROM " + T)
	run("SELECT a, ARRAY_AGG(IF('big' IN UNNEST(_tributary_unchanged), NULL, STRUCT(big AS v)) IGNORE NULLS ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC LIMIT 1)[SAFE_OFFSET(0)].v FROM " + T + " GROUP BY a")
	run("CREATE TABLE `" + ds + ".probe_stage` AS WITH tr AS (SELECT l AS _tributary_tl, s AS _tributary_ts FROM (SELECT _tributary_commit_lsn AS l, _tributary_seq AS s FROM " + T + " WHERE _tributary_op = 't' UNION ALL SELECT -1, -1) ORDER BY l DESC, s DESC LIMIT 1), " +
		"ch AS (SELECT TO_JSON_STRING(STRUCT(a)) AS _tributary_key, c.* FROM " + T + " AS c CROSS JOIN tr WHERE c._tributary_op != 't' AND (c._tributary_commit_lsn > tr._tributary_tl OR (c._tributary_commit_lsn = tr._tributary_tl AND c._tributary_seq > tr._tributary_ts)) AND TO_JSON_STRING(STRUCT(a)) IN (SELECT TO_JSON_STRING(STRUCT(a)) FROM " + T + " WHERE _tributary_commit_lsn BETWEEN 0 AND 100)), " +
		"rk AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY _tributary_key ORDER BY _tributary_commit_lsn DESC, _tributary_seq DESC) AS _tributary_rn, " +
		"LAST_VALUE(IF('big' IN UNNEST(_tributary_unchanged) OR _tributary_op = 'd', NULL, STRUCT(big AS v)) IGNORE NULLS) OVER (PARTITION BY _tributary_key ORDER BY _tributary_commit_lsn, _tributary_seq ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS _tributary_big FROM ch) " +
		"SELECT _tributary_key, _tributary_op, _tributary_commit_lsn, _tributary_seq, _tributary_commit_ts, a, b, IF('big' IN UNNEST(_tributary_unchanged), _tributary_big.v, big) AS big, arr FROM rk WHERE _tributary_rn = 1")
	run("SELECT * FROM `" + ds + ".probe_stage` ORDER BY _tributary_key")
	run("CREATE TABLE `" + ds + ".probe_cur` (_tributary_key STRING, _tributary_commit_lsn INT64, _tributary_seq INT64, a INT64, b STRING, big STRING, arr ARRAY<INT64>) CLUSTER BY _tributary_key")
	run("INSERT INTO `" + ds + ".probe_cur` (_tributary_key, _tributary_commit_lsn, _tributary_seq, a, b, big, arr) VALUES ('[9]', 1, 0, 9, 'old', 'o', [1]), ('{\"a\":1}', 1, 0, 1, 'old', 'o', [1])")
	run("DELETE FROM `" + ds + ".probe_cur` WHERE _tributary_commit_lsn < 25 OR (_tributary_commit_lsn = 25 AND _tributary_seq < 0)")
	run("DELETE FROM `" + ds + ".probe_cur` WHERE _tributary_key IN (SELECT _tributary_key FROM `" + ds + ".probe_stage`)")
	run("INSERT INTO `" + ds + ".probe_cur` (_tributary_key, _tributary_commit_lsn, _tributary_seq, a, b, big, arr) SELECT _tributary_key, _tributary_commit_lsn, _tributary_seq, a, b, big, arr FROM `" + ds + ".probe_stage` WHERE _tributary_op != 'd'")
	run("SELECT * FROM `" + ds + ".probe_cur`")
	run("DROP TABLE `" + ds + ".probe_stage`")
	run("SELECT CONCAT(CAST(_tributary_commit_lsn AS STRING), ':', CAST(_tributary_seq AS STRING)) FROM " + T)
	_, err = tbl.Metadata(ctx)
	t.Logf("metadata after: %v", err)
}
