package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/schema"
)

// A stream-mode table is queryable in its current state long before its
// first load interval (10 minutes), through an abrupt stop, a graceful one
// and restarts: equal to Postgres in canonical form (values of many types
// streamed), every change in the changelog and on GCS, nothing left
// pending, and no row both streamed and loaded. (No jsonb or bytea column:
// the emulator stores what insertAll sends for JSON and BYTES as a JSON
// string and as the base64 text; see README.)
func TestIntegrationSinkStreamMode(t *testing.T) {
	needStack(t)
	p := newPipeline(t, "sink_stream", []capture.TableName{{Schema: "public", Name: "streamed"}},
		`CREATE TABLE streamed (id bigint PRIMARY KEY, name text, qty int, big bigint, price numeric(12,2), ratio float8,
			at timestamptz, day date, tod time, local timestamp, ok bool, note text)`,
	)
	p.cfg.LoadInterval = 10 * time.Minute
	p.cfg.StreamApplyInterval = time.Second
	p.cfg.Tables = map[string]TableConfig{"public.streamed": {Mode: ModeStream}}
	// The Pub/Sub fake delivers one message per ordering key until it is
	// acked, and the pipeline uses 4 keys: rounds stay small.
	var want int64
	round := func(base int) {
		want += p.exec(`INSERT INTO streamed SELECT $1::int + g, 'n' || g, g, 9223372036854775807 - g, g * 1.25, g / 3.0,
			'2026-01-02 03:04:05.123456+00'::timestamptz + g * interval '1 hour', DATE '2026-03-01' + g, TIME '01:02:03.456789' + g * interval '1 minute',
			TIMESTAMP '1999-12-31 23:59:59.5' + g * interval '1 day', g % 2 = 0, NULL
			FROM generate_series(1, 12) g`, base)
		want += p.exec(`UPDATE streamed SET name = 'renamed', qty = -qty, note = 'x' WHERE id BETWEEN $1::int + 1 AND $1::int + 4`, base)
		want += p.exec(`DELETE FROM streamed WHERE id BETWEEN $1::int + 9 AND $1::int + 10`, base)
		want += p.exec(`UPDATE streamed SET ratio = NULL, ok = NULL WHERE id = $1::int + 2`, base)
	}

	p.startSink()
	started := time.Now()
	round(0)
	p.waitVerified("streamed", stack.Dataset, time.Minute)
	fresh := time.Since(started)
	if fresh >= p.cfg.LoadInterval {
		t.Fatalf("the current state took %s, not less than the load interval %s", fresh, p.cfg.LoadInterval)
	}
	t.Logf("first round queryable in the current state %s after its first commit (load interval %s)", fresh.Round(time.Millisecond), p.cfg.LoadInterval)

	// Abrupt stop while changes are in flight, then a restart.
	round(100)
	p.stopSink(true)
	round(200)
	p.startSink()
	round(300)
	p.waitVerified("streamed", stack.Dataset, 2*time.Minute)

	// Graceful stop and restart.
	p.stopSink(false)
	var lastLSN int64
	if rows, err := p.bqRows("SELECT MAX(_tributary_commit_lsn) FROM " + p.bqTable("streamed", "changelog")); err != nil || len(rows) != 1 {
		t.Fatalf("%v %v", rows, err)
	} else {
		lastLSN, _ = strconv.ParseInt(rows[0], 10, 64)
	}
	p.startSink()
	round(400)
	p.waitVerified("streamed", stack.Dataset, time.Minute)
	p.stopSink(false)

	// Every change is in the changelog; those after the graceful restart
	// exactly once (nothing was redelivered, and no object was loaded on
	// top of the streamed rows, even by the final drain's load).
	rows, err := p.bqRows(`SELECT COUNT(*), COUNT(DISTINCT CONCAT(CAST(_tributary_commit_lsn AS STRING), ':', CAST(_tributary_seq AS STRING))),
		COUNTIF(_tributary_commit_lsn > ` + fmt.Sprint(lastLSN) + `) FROM ` + p.bqTable("streamed", "changelog"))
	if err != nil || len(rows) != 1 {
		t.Fatalf("%v %v", rows, err)
	}
	var total, distinct, late int64
	fmt.Sscanf(strings.ReplaceAll(rows[0], "|", " "), "%d %d %d", &total, &distinct, &late)
	if distinct != want {
		t.Errorf("changelog: %d distinct changes, want %d", distinct, want)
	}
	lateRows, err := p.bqRows(`SELECT COUNT(DISTINCT CONCAT(CAST(_tributary_commit_lsn AS STRING), ':', CAST(_tributary_seq AS STRING))) FROM ` +
		p.bqTable("streamed", "changelog") + ` WHERE _tributary_commit_lsn > ` + fmt.Sprint(lastLSN))
	if err != nil || len(lateRows) != 1 {
		t.Fatalf("%v %v", lateRows, err)
	}
	if lateRows[0] != fmt.Sprint(late) || late == 0 {
		t.Errorf("changes after the graceful restart: %d rows, %s distinct", late, lateRows[0])
	}
	t.Logf("changelog: %d rows, %d distinct changes of %d made (%d duplicates, from redelivery after the abrupt stop)", total, distinct, want, total-distinct)
	ids, records, err := p.gcsIdentities("public", "streamed")
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(ids)) != want {
		t.Errorf("GCS holds %d distinct changes (%d records), want %d", len(ids), records, want)
	}
	// Nothing is left pending, and nothing was dead-lettered.
	ctx := context.Background()
	for _, prefix := range []string{p.cfg.Prefix + "/_sink/", p.cfg.Prefix + "/_deadletter/"} {
		left, err := p.gcs.Bucket(p.cfg.Bucket).Objects(ctx, &storage.Query{Prefix: prefix}).Next()
		if !errors.Is(err, iterator.Done) {
			t.Errorf("objects left under %s: %v %v", prefix, left, err)
		}
	}
}

// bqTable is the quoted BigQuery table of Postgres table public.name.
func (p *pipeline) bqTable(name, suffix string) string {
	return "`" + stack.Dataset + "." + schema.BigQueryTableName("public", name, suffix) + "`"
}

// Soft delete, in load and in stream mode: a deleted key stays in the
// current state with _tributary_deleted = true and its last values (also
// when it was inserted and deleted between two applies, and when its
// TOASTed column was last sent before an update that left it unchanged);
// a re-insert clears the mark; every other row equals Postgres.
func TestIntegrationSinkSoftDelete(t *testing.T) {
	needStack(t)
	names := []string{"soft_load", "soft_stream"}
	var tables []capture.TableName
	var ddl []string
	for _, n := range names {
		tables = append(tables, capture.TableName{Schema: "public", Name: n})
		ddl = append(ddl, `CREATE TABLE `+n+` (id int PRIMARY KEY, name text, qty int, body text)`)
	}
	p := newPipeline(t, "sink_soft", tables, ddl...)
	p.cfg.StreamApplyInterval = time.Second
	p.cfg.Tables = map[string]TableConfig{"public.soft_load": {SoftDelete: true}, "public.soft_stream": {Mode: ModeStream, SoftDelete: true}}
	p.startSink()
	big := `(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) g)`
	deleted := map[string][]string{}
	for _, n := range names {
		p.exec(`INSERT INTO ` + n + ` SELECT g, 'n' || g, g, 'b' || g FROM generate_series(1, 8) g`)
		p.exec(`UPDATE ` + n + ` SET body = ` + big + ` WHERE id = 6`)
		p.exec(`UPDATE ` + n + ` SET name = 'renamed' WHERE id IN (1, 2, 6)`) // 6's body unchanged: not sent
		p.exec(`INSERT INTO ` + n + ` VALUES (9, 'short-lived', 9, 'b9')`)
		gone, err := p.pgRows(`SELECT id, name, qty, md5(body), true FROM ` + n + ` WHERE id IN (3, 6, 9)`)
		if err != nil {
			t.Fatal(err)
		}
		deleted[n] = gone
		p.exec(`DELETE FROM ` + n + ` WHERE id IN (3, 4, 6, 9)`)
		p.exec(`INSERT INTO ` + n + ` VALUES (4, 'back', 40, 'again')`)
		p.exec(`UPDATE ` + n + ` SET qty = qty + 100 WHERE id = 4`)
	}
	for _, n := range names {
		var want, got []string
		p.waitUntil(n+": BigQuery holds the live rows and the soft-deleted ones", 2*time.Minute, func() (bool, error) {
			live, err := p.pgRows(`SELECT id, name, qty, md5(body), false FROM ` + n)
			if err != nil {
				return false, err
			}
			want = append(live, deleted[n]...)
			sort.Strings(want)
			if got, err = p.bqRows(`SELECT id, name, qty, TO_HEX(MD5(body)), _tributary_deleted FROM ` + p.bqTable(n, "")); err != nil {
				return false, err
			}
			if a, b := strings.Join(want, "\n"), strings.Join(got, "\n"); a != b {
				return false, fmt.Errorf("want\n%s\ngot\n%s", a, b)
			}
			return true, nil
		})
		t.Logf("%s: %d rows, %d of them soft-deleted:\n%s", n, len(got), len(deleted[n]), strings.Join(got, "\n"))
	}
	p.stopSink(false)
}

// One table's BigQuery target fails for good (while the sink runs, its
// changelog is replaced by one with a column of another type, so every
// later load of it is refused): the other tables, one in load and one in
// stream mode, stay fresh (their commit→visible lag, measured under the
// same write load before and after the failure began, grows by less than
// one flush and load interval), the failing table's changes go to
// dead-letters with the reason, and once the target is dropped a replay
// from GCS makes it equal to Postgres.
func TestIntegrationSinkIsolation(t *testing.T) {
	needStack(t)
	names := []string{"iso_load", "iso_stream", "iso_bad"}
	var tables []capture.TableName
	var ddl []string
	for _, n := range names {
		tables = append(tables, capture.TableName{Schema: "public", Name: n})
		ddl = append(ddl, `CREATE TABLE `+n+` (id int PRIMARY KEY, qty int, note text)`)
	}
	p := newPipeline(t, "sink_iso", tables, ddl...)
	p.cfg.StreamApplyInterval = time.Second
	p.cfg.LoadInterval = 5 * time.Second
	p.cfg.Tables = map[string]TableConfig{"public.iso_stream": {Mode: ModeStream}}
	ctx := context.Background()
	badChangelog := p.bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName("public", "iso_bad", "changelog"))
	// breakTarget replaces the changelog of iso_bad by one with the same
	// columns but qty (an int4) as BOOL, so the sink has no column to add
	// (the local stack's proxy would hold every request while it rebuilt
	// the table) and every load is refused. The sink may create the table
	// again between the drop and the create: then again.
	breakTarget := func() {
		md, err := badChangelog.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var clSchema bigquery.Schema
		for _, f := range md.Schema {
			g := *f
			if g.Name == "qty" {
				g.Type = bigquery.BooleanFieldType
			}
			clSchema = append(clSchema, &g)
		}
		for i := 0; ; i++ {
			if err := badChangelog.Delete(ctx); err != nil && !isNotFound(err) {
				t.Fatal(err)
			}
			err := badChangelog.Create(ctx, &bigquery.TableMetadata{Schema: clSchema})
			if err == nil {
				return
			}
			if i == 10 {
				t.Fatalf("replacing the changelog of iso_bad: %v", err)
			}
		}
	}
	p.startSink()

	// A writer commits a row into each table every second (well below what
	// the Pub/Sub fake delivers on the pipeline's 4 ordering keys per table,
	// one unacked message per key, so no backlog builds up); the test polls
	// the current states and notes when each row appears.
	conn, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	type commit struct {
		table string
		id    int
	}
	var mu sync.Mutex
	committed := map[commit]time.Time{}
	broken := atomic.Bool{}
	stopWriter := make(chan struct{})
	writerDone := make(chan error, 1)
	badRows := 0 // committed once its target was broken
	go func() {
		defer close(writerDone)
		for id := 1; ; id++ {
			select {
			case <-stopWriter:
				return
			case <-time.After(time.Second):
			}
			for _, n := range names {
				if _, err := conn.Exec(ctx, `INSERT INTO `+n+` VALUES ($1, $1, 'n')`, id); err != nil {
					writerDone <- err
					return
				}
				mu.Lock()
				committed[commit{n, id}] = time.Now()
				if n == "iso_bad" && broken.Load() {
					badRows++
				}
				mu.Unlock()
			}
		}
	}()
	seen := map[commit]time.Time{}
	lags := func(phase map[commit]bool, table string) (p50, p99, worst time.Duration, n int) {
		var ds []time.Duration
		mu.Lock()
		for c := range phase {
			if at, ok := seen[c]; ok && c.table == table {
				ds = append(ds, at.Sub(committed[c]))
			}
		}
		mu.Unlock()
		if len(ds) == 0 {
			return 0, 0, 0, 0
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2], ds[(len(ds)*99)/100], ds[len(ds)-1], len(ds)
	}
	// poll notes the rows of the healthy tables visible now, for the commits
	// of phase, until every one of them is visible or until is reached.
	poll := func(phase map[commit]bool, until time.Time, enough func() bool) {
		for time.Now().Before(until) && !enough() {
			for _, n := range names[:2] {
				rows, err := p.bqRows(`SELECT id FROM ` + p.bqTable(n, ""))
				if err != nil && strings.Contains(err.Error(), "not found") {
					continue // not created yet
				}
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now()
				mu.Lock()
				for _, r := range rows {
					id, _ := strconv.Atoi(r)
					c := commit{n, id}
					if _, ok := seen[c]; !ok {
						if _, ok := committed[c]; ok {
							seen[c] = now
							phase[c] = true
						}
					}
				}
				mu.Unlock()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	interval := p.cfg.FlushAge + p.cfg.LoadInterval
	before, during := map[commit]bool{}, map[commit]bool{}
	// Warm up: the tables are created and the first loads run before the
	// measurement starts.
	warm := map[commit]bool{}
	poll(warm, time.Now().Add(2*time.Minute), func() bool {
		mu.Lock()
		defer mu.Unlock()
		var load, stream bool
		for c := range warm {
			load, stream = load || c.table == names[0], stream || c.table == names[1]
		}
		return load && stream
	})
	// Each phase lasts at least its time and until each healthy table has
	// shown a few rows in it (on a busy machine a load can take longer than
	// the phase), within a bound.
	phase := func(m map[commit]bool, least time.Duration) {
		from := time.Now()
		poll(m, from.Add(3*time.Minute), func() bool {
			if time.Since(from) < least {
				return false
			}
			for _, n := range names[:2] {
				if _, _, _, k := lags(m, n); k < 5 {
					return false
				}
			}
			return true
		})
	}
	phase(before, 15*time.Second)
	breakTarget()
	broken.Store(true)
	phase(during, 20*time.Second)
	close(stopWriter)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	for _, n := range names[:2] {
		b50, b99, bMax, bn := lags(before, n)
		d50, d99, dMax, dn := lags(during, n)
		t.Logf("%s: commit→visible lag before iso_bad failed: p50 %s p99 %s max %s (%d rows); while it failed: p50 %s p99 %s max %s (%d rows); flush+load interval %s",
			n, b50.Round(time.Millisecond), b99.Round(time.Millisecond), bMax.Round(time.Millisecond), bn,
			d50.Round(time.Millisecond), d99.Round(time.Millisecond), dMax.Round(time.Millisecond), dn, interval)
		if bn == 0 || dn == 0 {
			t.Fatalf("%s: no rows seen: %d before, %d during", n, bn, dn)
		}
		if dMax > bMax+interval {
			t.Errorf("%s: while another table failed, its worst lag %s exceeded the worst before (%s) by more than one flush and load interval (%s)", n, dMax, bMax, interval)
		}
	}
	for _, n := range names[:2] {
		p.waitVerified(n, stack.Dataset, time.Minute)
	}

	// The failing table's changes are in dead-letters, with the reason.
	var dlRows int64
	p.waitUntil("every change of iso_bad is dead-lettered", time.Minute, func() (bool, error) {
		dlRows = 0
		dir := path.Dir(Layout{Prefix: p.cfg.Prefix, Database: p.cfg.Database}.DeadLetter(schema.GCSSegment("public", "iso_bad"), "x")) + "/"
		it := p.gcs.Bucket(p.cfg.Bucket).Objects(ctx, &storage.Query{Prefix: dir})
		var reasons []string
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				return false, err
			}
			r, err := p.gcs.Bucket(p.cfg.Bucket).Object(a.Name).NewReader(ctx)
			if err != nil {
				return false, err
			}
			var dl struct {
				Rows   int64  `json:"rows"`
				Reason string `json:"reason"`
			}
			err = json.NewDecoder(r).Decode(&dl)
			r.Close()
			if err != nil {
				return false, fmt.Errorf("%s: %w", a.Name, err)
			}
			if dl.Reason == "" {
				return false, fmt.Errorf("%s has no reason", a.Name)
			}
			dlRows += dl.Rows
			reasons = append(reasons, dl.Reason)
		}
		if dlRows < int64(badRows) {
			return false, fmt.Errorf("%d rows dead-lettered of %d", dlRows, badRows)
		}
		t.Logf("iso_bad: %d rows in %d dead-letters; first reason: %s", dlRows, len(reasons), reasons[0])
		return true, nil
	})
	p.stopSink(false)

	// Fix the target and replay the table from GCS.
	if err := badChangelog.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName("public", "iso_bad", "")).Delete(ctx); err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	res, err := Replay(ctx, p.cfg, p.gcs, p.bq, ReplayOptions{Schema: "public", Table: "iso_bad"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay of iso_bad: %+v", *res)
	p.mustVerify("iso_bad", stack.Dataset)
}
