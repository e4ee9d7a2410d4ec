package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/backfill"
	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

// While a writer inserts and updates, column amount changes from int to
// text: a type BigQuery's INT64 column cannot hold. The values from then on
// go to a new column, amount__string, and the old column keeps the values
// from before. The test proves, against the local stack:
//
//   - no row is lost: the changelog holds every change once;
//   - every change committed before the ALTER has amount set and
//     amount__string NULL, every one after it the reverse, with exactly the
//     text Postgres holds;
//   - before a backfill, verify finds different exactly the rows nobody
//     changed since the ALTER (ALTER TYPE rewrites the table without WAL row
//     events), and BigQuery still holds their old value in amount; after
//     the backfill it finds the tables equal;
//   - a replay of the table from GCS alone into another dataset rebuilds the
//     same columns and a current state equal to Postgres.
//
// A second table has a column changed from int to numeric(12,2), which
// BigQuery widens in place (INT64 → NUMERIC with ALTER COLUMN SET DATA
// TYPE). The BigQuery emulator refuses that statement ("Statement not
// supported"), so the sink must not load NUMERIC values into the INT64
// column: the test requires the load to fail loudly, dead-lettered with the
// reason, and the rows from before the change to stay as they were.
func TestIntegrationTypeChangeToNewColumn(t *testing.T) {
	p := startPipeline(t, "e2e_retype", []capture.TableName{{Schema: "public", Name: "retyped"}, {Schema: "public", Name: "widened"}},
		`CREATE TABLE retyped (id int PRIMARY KEY, amount int NOT NULL, note text)`,
		`CREATE TABLE widened (id int PRIMARY KEY, qty int)`)
	ctx := context.Background()
	writerDB, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer writerDB.Close(ctx)

	// Before the ALTER the writer sets amount to integers, after it to text
	// no integer column could hold: 'a<id>' on insert, 'u<id>' on update.
	// ddl is held by the writer for each round of statements and by the
	// test around the ALTER (which locks the table anyway), so each
	// statement knows the column's type.
	var (
		altered atomic.Bool
		ddl     sync.Mutex
	)
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
			ddl.Lock() // held from reading the flag to the last statement
			ins, upd := `INSERT INTO retyped (id, amount, note) VALUES ($1, $1::int, 'n')`, `UPDATE retyped SET amount = ($1::int / 2) * 1000 WHERE id = $1::int / 2`
			if altered.Load() {
				ins, upd = `INSERT INTO retyped (id, amount, note) VALUES ($1::int, 'a' || ($1::int)::text, 'n')`, `UPDATE retyped SET amount = 'u' || ($1::int / 2)::text WHERE id = $1::int / 2`
			}
			stmts := []string{ins}
			if i%3 == 0 {
				stmts = append(stmts, upd)
			}
			for _, q := range stmts {
				tag, err := writerDB.Exec(ctx, q, i)
				if err != nil {
					ddl.Unlock()
					t.Errorf("writer: %s: %v", q, err)
					return
				}
				mu.Lock()
				changes += tag.RowsAffected()
				mu.Unlock()
			}
			ddl.Unlock()
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
	walLSN := func() uint64 {
		t.Helper()
		var s string
		if err := p.db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		lsn, err := pglogrepl.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(lsn)
	}

	p.exec(`INSERT INTO widened SELECT g, g FROM generate_series(1, 20) g`)
	waitWriter(60)
	ddl.Lock()
	beforeAlter := walLSN()
	p.exec(`ALTER TABLE retyped ALTER COLUMN amount TYPE text`)
	altered.Store(true)
	afterAlter := walLSN()
	ddl.Unlock()
	p.exec(`ALTER TABLE widened ALTER COLUMN qty TYPE numeric(12,2)`)
	p.exec(`INSERT INTO widened SELECT g, g + 0.25 FROM generate_series(21, 30) g`)
	waitWriter(60)
	stopWriter()
	wg.Wait()
	t.Logf("writer: %d inserts, %d changes in all", inserted, changes)

	changelog, current := bqTable("retyped", "changelog"), bqTable("retyped", "")
	waitChanges := func(want, backfilled int64) {
		t.Helper()
		p.waitUntil("the changelog holds every change", 3*time.Minute, func() (bool, error) {
			n, err := p.count(`SELECT COUNT(DISTINCT CONCAT(CAST(_tributary_commit_lsn AS STRING), ':', CAST(_tributary_seq AS STRING))) FROM ` + changelog + ` WHERE _tributary_op != 'r'`)
			if err != nil {
				return false, err
			}
			r, err := p.count(`SELECT COUNT(*) FROM ` + changelog + ` WHERE _tributary_op = 'r'`)
			if err != nil {
				return false, err
			}
			return n == want && r == backfilled, fmt.Errorf("%d of %d changes and %d of %d backfilled rows in the changelog", n, want, r, backfilled)
		})
	}
	waitChanges(changes, 0)

	// Both tables have the old column with its type and the new one.
	for _, tbl := range []string{"changelog", ""} {
		md, err := p.bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName("public", "retyped", tbl)).Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]*bigquery.FieldSchema{}
		for _, f := range md.Schema {
			have[f.Name] = f
		}
		if f := have["amount"]; f == nil || f.Type != bigquery.IntegerFieldType {
			t.Errorf("%s: column amount is %+v, want INTEGER", md.FullID, f)
		}
		if f := have["amount__string"]; f == nil || f.Type != bigquery.StringFieldType || !strings.Contains(f.Description, "type change of Postgres column amount") {
			t.Errorf("%s: column amount__string is %+v, want STRING described as amount's values since the type change", md.FullID, f)
		}
	}
	// Each change in exactly one of the columns, by when it committed.
	for _, c := range []struct {
		what, q string
		want    func(int64) bool
	}{
		{"changes before the ALTER with amount unset or amount__string set",
			fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_commit_lsn < %d AND (amount IS NULL OR amount__string IS NOT NULL)`, changelog, beforeAlter), zero},
		{"changes after the ALTER with amount set or amount__string unset",
			fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_commit_lsn > %d AND (amount IS NOT NULL OR amount__string IS NULL)`, changelog, afterAlter), zero},
		{"inserts after the ALTER whose amount__string is not Postgres' text",
			fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_op = 'c' AND amount__string IS NOT NULL AND amount__string != CONCAT('a', CAST(id AS STRING))`, changelog), zero},
		{"updates after the ALTER whose amount__string is not Postgres' text",
			fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_op = 'u' AND amount__string IS NOT NULL AND amount__string != CONCAT('u', CAST(id AS STRING))`, changelog), zero},
		{"inserts before the ALTER whose amount is not the id",
			fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_op = 'c' AND amount IS NOT NULL AND amount != id`, changelog), zero},
		{"updates before the ALTER whose amount is not the id times 1000",
			fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_op = 'u' AND amount IS NOT NULL AND amount != id * 1000`, changelog), zero},
		{"inserts in amount__string", fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_op = 'c' AND amount__string IS NOT NULL`, changelog), positive},
		{"updates in amount__string", fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_op = 'u' AND amount__string IS NOT NULL`, changelog), positive},
		{"inserts in amount", fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE _tributary_op = 'c' AND amount IS NOT NULL`, changelog), positive},
	} {
		n, err := p.count(c.q)
		if err != nil || !c.want(n) {
			t.Errorf("%s: %d, %v", c.what, n, err)
		}
	}

	// Before a backfill: the rows nobody changed since the ALTER hold their
	// old value in amount, and verify reports exactly them.
	var untouched int64
	if err := p.db.QueryRow(ctx, `SELECT COUNT(*) FROM retyped WHERE amount !~ '^[au]'`).Scan(&untouched); err != nil {
		t.Fatal(err)
	}
	res, err := p.verify("retyped")
	if err != nil {
		t.Fatal(err)
	}
	oldInBQ, err := p.count(`SELECT COUNT(*) FROM ` + current + ` WHERE amount IS NOT NULL AND amount__string IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Discrepancies {
		if d.Kind != "different" || len(d.Columns) != 1 || d.Columns[0] != "amount" {
			t.Errorf("before the backfill: discrepancy %+v, want only column amount different", d)
		}
	}
	if untouched == 0 || int64(len(res.Discrepancies)) != untouched || oldInBQ != untouched || res.PostgresRows != res.BigQueryRows {
		t.Errorf("before the backfill: %d rows untouched since the ALTER in Postgres, %d with the old value in BigQuery, %d discrepancies (%d rows vs %d)",
			untouched, oldInBQ, len(res.Discrepancies), res.PostgresRows, res.BigQueryRows)
	}
	t.Logf("before the backfill: %d of %d rows untouched since the ALTER, reported different by verify", untouched, res.PostgresRows)

	// The remedy: a backfill, then the tables are equal.
	bf, err := backfill.Run(ctx, stack.Postgres.DSN(stack.Database), p.gcs, backfill.Options{
		Schema: "public", Table: "retyped", RunID: "after-alter", ChunkRows: 200,
		Bucket: stack.Bucket, Prefix: p.sinkCfg.Prefix, Database: stack.Database,
	})
	if err != nil || !bf.Finished {
		t.Fatalf("backfill after the ALTER: %+v, %v", bf, err)
	}
	waitChanges(changes, bf.TotalRows)
	res = p.waitEqual("retyped", time.Minute)
	if n, err := p.count(`SELECT COUNT(*) FROM ` + current + ` WHERE amount IS NULL AND amount__string IS NOT NULL`); err != nil || n != res.PostgresRows {
		t.Errorf("after the backfill: %d of %d current rows hold the new column only, %v", n, res.PostgresRows, err)
	}
	t.Logf("after a backfill of %d rows: verify finds %d rows equal", bf.TotalRows, res.PostgresRows)
	if dead, err := p.sinkDeadLetters("retyped"); err != nil || len(dead) != 0 {
		t.Errorf("dead-letters of retyped: %+v, %v", dead, err)
	}

	// Replay from GCS alone, into another dataset: the same columns, and a
	// current state equal to Postgres.
	into := stack.Dataset + "_retype_replay"
	rr, err := sink.Replay(ctx, p.sinkCfg, p.gcs, p.bq, sink.ReplayOptions{Schema: "public", Table: "retyped", Into: into})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	md, err := p.bq.Dataset(into).Table(schema.BigQueryTableName("public", "retyped", "")).Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, f := range md.Schema {
		if !strings.HasPrefix(f.Name, "_tributary") {
			cols = append(cols, f.Name+" "+string(f.Type))
		}
	}
	if got, want := strings.Join(cols, ", "), "id INTEGER, amount INTEGER, note STRING, amount__string STRING"; got != want {
		t.Errorf("replayed current state has columns %s, want %s", got, want)
	}
	rres, err := p.verifyIn(into, "retyped")
	if err != nil || !rres.Equal() {
		t.Errorf("replayed into %s: %+v, %v", into, rres, err)
	}
	t.Logf("replay: %d objects of %d schema versions, %d changelog rows, %d current rows equal to Postgres",
		rr.Objects, rr.SchemaVersions, rr.ChangelogRows, rres.BigQueryRows)

	// The widening: the emulator refuses it, and the sink says so instead
	// of loading NUMERIC values into the INT64 column.
	var reason string
	p.waitUntil("the load of widened's NUMERIC values is dead-lettered", 2*time.Minute, func() (bool, error) {
		dead, err := p.sinkDeadLetters("widened")
		if err != nil {
			return false, err
		}
		for _, d := range dead {
			if strings.Contains(d.Reason, "SET DATA TYPE") {
				reason = d.Reason
				return true, nil
			}
		}
		return false, fmt.Errorf("dead-letters %+v", dead)
	})
	t.Logf("widened: dead-lettered because %s", reason)
	if n, err := p.count(`SELECT COUNT(*) FROM ` + bqTable("widened", "") + ` WHERE qty = id AND id <= 20`); err != nil || n != 20 {
		t.Errorf("widened: %d of the 20 rows from before the ALTER as they were, %v", n, err)
	}
}

func zero(n int64) bool     { return n == 0 }
func positive(n int64) bool { return n > 0 }
