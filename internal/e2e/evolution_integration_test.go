package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/backfill"
	"github.com/tributary-cdc/tributary/schema"
)

// While a writer inserts, updates and deletes, the table is altered five
// ways: ADD COLUMN with a default, DROP COLUMN, RENAME COLUMN, ALTER TYPE
// int → bigint and varchar(10) → text. Once the writer stops and the
// pipeline catches up, BigQuery's current state equals Postgres; BigQuery's
// tables gained the added and renamed-to columns and kept the dropped one,
// null in every change after the drop; and every object on GCS still decodes
// with the writer schema in its own header, together holding every streamed
// change exactly once.
//
// ADD COLUMN … DEFAULT and RENAME COLUMN change rows no change carries:
// Postgres shows the default (a fast default writes no WAL) or the old
// column's value in the new column of every row, while BigQuery's new column
// is NULL in the rows not changed since. The documented remedy is a backfill
// of the table after such DDL; the test runs one after the last DDL, while
// the writer still runs, and then requires the tables equal.
func TestIntegrationSchemaEvolutionToBigQuery(t *testing.T) {
	p := startPipeline(t, "e2e_evolve", []capture.TableName{{Schema: "public", Name: "evolving"}},
		`CREATE TABLE evolving (id int PRIMARY KEY, n int, code varchar(10) DEFAULT 'c', gone text DEFAULT 'g')`)
	ctx := context.Background()
	writerDB, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer writerDB.Close(ctx)

	// The writer touches only columns present through every DDL step.
	wctx, stopWriter := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		changes  int64
		inserted int
	)
	progress := func() int {
		mu.Lock()
		defer mu.Unlock()
		return inserted
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; wctx.Err() == nil; i++ {
			stmts := []string{`INSERT INTO evolving (id, n) VALUES ($1, $1)`}
			if i%3 == 0 {
				stmts = append(stmts, `UPDATE evolving SET n = n + 1000 WHERE id = $1 / 2`)
			}
			if i%7 == 0 {
				stmts = append(stmts, `DELETE FROM evolving WHERE id = $1 - 5`)
			}
			for _, q := range stmts {
				tag, err := writerDB.Exec(ctx, q, i)
				if err != nil {
					t.Errorf("writer: %s: %v", q, err)
					return
				}
				mu.Lock()
				changes += tag.RowsAffected()
				mu.Unlock()
			}
			mu.Lock()
			inserted++
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitWriter := func(n int) {
		t.Helper()
		target := progress() + n
		for deadline := time.Now().Add(30 * time.Second); progress() < target; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the writer made no progress (%d inserts)", progress())
			}
		}
	}
	ddl := []string{
		`ALTER TABLE evolving ADD COLUMN added text NOT NULL DEFAULT 'dflt'`,
		`ALTER TABLE evolving DROP COLUMN gone`,
		`ALTER TABLE evolving RENAME COLUMN code TO label`,
		`ALTER TABLE evolving ALTER COLUMN n TYPE bigint`,
		`ALTER TABLE evolving ALTER COLUMN label TYPE text`,
	}
	var dropLSN pglogrepl.LSN
	for _, q := range ddl {
		waitWriter(40)
		p.exec(q)
		if strings.Contains(q, "DROP COLUMN") {
			var s string
			if err := p.db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
				t.Fatal(err)
			}
			if dropLSN, err = pglogrepl.ParseLSN(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The remedy for the rows the DDL changed without a change: a backfill.
	bf, err := backfill.Run(ctx, stack.Postgres.DSN(stack.Database), p.gcs, backfill.Options{
		Schema: "public", Table: "evolving", RunID: "after-ddl", ChunkRows: 100,
		Bucket: stack.Bucket, Prefix: p.sinkCfg.Prefix, Database: stack.Database,
	})
	if err != nil || !bf.Finished {
		t.Fatalf("backfill after the DDL: %+v, %v", bf, err)
	}
	waitWriter(40)
	stopWriter()
	wg.Wait()
	// Values only the altered types hold.
	changes += p.exec(`UPDATE evolving SET n = 9000000000, label = 'a label longer than ten' WHERE id = (SELECT max(id) FROM evolving)`)
	t.Logf("writer: %d inserts, %d changes in all", inserted, changes)

	t.Logf("backfill: %d rows in %d objects", bf.TotalRows, bf.TotalObjects)

	changelog, current := bqTable("evolving", "changelog"), bqTable("evolving", "")
	p.waitUntil("the changelog holds every change and the backfill", 4*time.Minute, func() (bool, error) {
		n, err := p.count(`SELECT COUNT(DISTINCT CONCAT(CAST(_tributary_commit_lsn AS STRING), ':', CAST(_tributary_seq AS STRING))) FROM ` + changelog + ` WHERE _tributary_op != 'r'`)
		if err != nil {
			return false, err
		}
		r, err := p.count(`SELECT COUNT(*) FROM ` + changelog + ` WHERE _tributary_op = 'r'`)
		if err != nil {
			return false, err
		}
		return n == changes && r == bf.TotalRows, fmt.Errorf("%d of %d changes and %d of %d backfilled rows in the changelog", n, changes, r, bf.TotalRows)
	})

	// No row lost: BigQuery's current state equals Postgres in every column
	// Postgres has now, the rows the DDL changed without a change included.
	res := p.waitEqual("evolving", time.Minute)
	t.Logf("verify: %d rows equal", res.PostgresRows)
	if dead, err := p.sinkDeadLetters("evolving"); err != nil || len(dead) != 0 {
		t.Errorf("dead-letters of evolving: %+v, %v", dead, err)
	}

	// BigQuery's schema follows: the added and renamed-to columns exist; the
	// dropped and renamed-from ones are kept.
	for _, tbl := range []string{"changelog", ""} {
		md, err := p.bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName("public", "evolving", tbl)).Metadata(ctx)
		if err != nil {
			t.Error(err)
			continue
		}
		have := map[string]bigquery.FieldType{}
		for _, f := range md.Schema {
			have[f.Name] = f.Type
		}
		want := map[string]bigquery.FieldType{"id": bigquery.IntegerFieldType, "n": bigquery.IntegerFieldType, "added": bigquery.StringFieldType,
			"label": bigquery.StringFieldType, "code": bigquery.StringFieldType, "gone": bigquery.StringFieldType}
		for name, typ := range want {
			if have[name] != typ {
				t.Errorf("%s: column %s is %q, want %s (schema %v)", md.FullID, name, have[name], typ, have)
			}
		}
	}
	// The dropped column is null in every change after the drop, and still
	// holds the values of the changes before it.
	for _, q := range []string{
		`SELECT COUNT(*) FROM ` + changelog + ` WHERE gone IS NOT NULL AND _tributary_commit_lsn > ` + fmt.Sprint(uint64(dropLSN)),
		`SELECT COUNT(*) FROM ` + current + ` WHERE gone IS NOT NULL AND _tributary_commit_lsn > ` + fmt.Sprint(uint64(dropLSN)),
	} {
		if n, err := p.count(q); err != nil || n != 0 {
			t.Errorf("%s: %d, %v; want 0", q, n, err)
		}
	}
	if n, err := p.count(`SELECT COUNT(*) FROM ` + changelog + ` WHERE gone = 'g' AND _tributary_commit_lsn < ` + fmt.Sprint(uint64(dropLSN))); err != nil || n == 0 {
		t.Errorf("no change before the drop holds the dropped column's value: %d, %v", n, err)
	}
	// The bigint value and the long text arrived in the current state.
	if n, err := p.count(`SELECT COUNT(*) FROM ` + current + ` WHERE n = 9000000000 AND label = 'a label longer than ten'`); err != nil || n != 1 {
		t.Errorf("the row updated after ALTER TYPE: %d, %v", n, err)
	}

	// Old files still replay: every object decodes with its own writer
	// schema, and together they hold every change once.
	objs, err := p.objects(p.layout.TableDir("public", "evolving") + "/")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	writers := map[string]bool{}
	records, snapshots := 0, int64(0)
	snapshotKeys := map[string]bool{}
	for _, o := range objs {
		recs, err := p.ocfRecords(o)
		if err != nil {
			t.Fatalf("decoding %s with its own writer schema: %v", o, err)
		}
		var fields []string
		for k := range recs[0] {
			fields = append(fields, k)
		}
		sort.Strings(fields)
		writers[strings.Join(fields, ",")] = true
		for _, r := range recs {
			records++
			if r[schema.ColOp] == "r" {
				snapshots++
				snapshotKeys[fmt.Sprint(r["id"])] = true
				continue
			}
			ids[fmt.Sprintf("%d:%d", r[schema.ColCommitLSN], r[schema.ColSeq])] = true
		}
	}
	if int64(len(ids)) != changes || snapshots != bf.TotalRows {
		t.Errorf("GCS objects hold %d distinct changes and %d backfilled rows (%d records in %d objects), want %d and %d",
			len(ids), snapshots, records, len(objs), changes, bf.TotalRows)
	}
	if len(writers) < 4 {
		t.Errorf("the objects were written with %d row shapes, want one per column set (at least 4): %v", len(writers), writers)
	}
	t.Logf("GCS: %d objects, %d records, %d distinct changes, %d backfilled rows of %d keys, %d column sets",
		len(objs), records, len(ids), snapshots, len(snapshotKeys), len(writers))
}
