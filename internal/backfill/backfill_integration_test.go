package backfill_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/backfill"
	"github.com/tributary-cdc/tributary/schema"
)

// TestIntegrationBackfillUnderWriter backfills a table of 100,000 rows
// (TRIBUTARY_BACKFILL_TEST_ROWS) that existed before capture's slot while a
// writer updates, deletes and inserts rows all over it; capture and the
// sink run throughout. The sink only writes objects here (its loads fail
// at once: on the BigQuery emulator one apply of a changelog this size takes
// minutes — see sink's TestIntegrationApplyScale; the way through BigQuery
// is TestIntegrationInitialSnapshotKillResume):
// the current state is computed from every object on GCS — streamed and
// backfilled — by the sink's rule (per key the latest change by commit LSN
// and seq, deletes removing) and must equal Postgres.
func TestIntegrationBackfillUnderWriter(t *testing.T) {
	rows := 100_000
	if v := os.Getenv("TRIBUTARY_BACKFILL_TEST_ROWS"); v != "" {
		var err error
		if rows, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	p := backfillUnderWriter(t, "bf_writer", rows, 5000, false)
	p.waitUntil("the state on GCS equals Postgres", 5*time.Minute, func() (bool, error) {
		want, err := p.pgState("bf_writer")
		if err != nil {
			return false, err
		}
		got := p.gcsState(context.Background(), "bf_writer")
		if len(got) != len(want) {
			return false, fmt.Errorf("%d rows on GCS, %d in Postgres", len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				return false, fmt.Errorf("row %d: %q on GCS, %q in Postgres", k, got[k], v)
			}
		}
		return true, nil
	})
}

// TestIntegrationBackfillUnderWriterBigQuery is the same with the whole
// pipeline into BigQuery, at a size the emulator applies in seconds: verify
// must find the current state equal to Postgres.
func TestIntegrationBackfillUnderWriterBigQuery(t *testing.T) {
	p := backfillUnderWriter(t, "bf_writer_bq", 300, 40, true)
	p.waitEqual("bf_writer_bq", 5*time.Minute)
}

// backfillUnderWriter creates table (id, v, n) with rows rows, starts
// capture and the sink, and backfills it while a writer changes it.
func backfillUnderWriter(t *testing.T, table string, rows, chunkRows int, viaBigQuery bool) *pipe {
	p := newPipe(t, table, []capture.TableName{{Schema: "public", Name: table}},
		`CREATE TABLE `+table+` (id bigint PRIMARY KEY, v text NOT NULL, n integer)`,
		`INSERT INTO `+table+` SELECT g, 'row ' || g, g % 1000 FROM generate_series(1, `+strconv.Itoa(rows)+`) g`,
		`ANALYZE `+table)
	if !viaBigQuery {
		p.withoutBigQuery()
	}
	p.startSink()

	// The writer touches random rows everywhere in the key space, so its
	// changes race with chunks before, during and after their reads.
	ctx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	var writes atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		conn, err := connect(context.Background(), p.dsn)
		if err != nil {
			writerDone <- err
			return
		}
		defer conn.Close(context.Background())
		rng := rand.New(rand.NewPCG(1, 2))
		next := int64(rows)
		for ctx.Err() == nil {
			id := rng.Int64N(int64(rows)) + 1
			var err error
			switch rng.IntN(4) {
			case 0, 1:
				_, err = conn.Exec(context.Background(), "UPDATE "+table+" SET v = v || '+', n = n + 1 WHERE id = $1", id)
			case 2:
				_, err = conn.Exec(context.Background(), "DELETE FROM "+table+" WHERE id = $1", id)
			case 3:
				next++
				_, err = conn.Exec(context.Background(), "INSERT INTO "+table+" VALUES ($1, 'new', 0)", next)
			}
			if err != nil {
				writerDone <- err
				return
			}
			writes.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
		writerDone <- nil
	}()
	time.Sleep(time.Second) // the writer is under way before the first chunk

	opts := p.options(table, "writer1")
	opts.ChunkRows = chunkRows
	var calls atomic.Int64
	opts.Progress = func(pr backfill.Progress) { calls.Add(1) }
	start := time.Now()
	sum, err := backfill.Run(context.Background(), p.dsn, p.gcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	time.Sleep(time.Second) // and goes on a moment after the last
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("backfill: %d rows, %d chunks, %d objects in %s (%.0f rows/s); %d writes meanwhile",
		sum.Rows, sum.Chunks, sum.Objects, elapsed, float64(sum.Rows)/elapsed.Seconds(), writes.Load())
	if !sum.Finished || sum.Objects == 0 || sum.Rows < int64(rows)/2 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.Rows > int64(rows)+writes.Load() {
		t.Fatalf("backfilled %d rows of a table that never held more than %d: ranges overlap", sum.Rows, int64(rows)+writes.Load())
	}
	if calls.Load() != sum.Chunks+1 {
		t.Errorf("progress called %d times for %d chunks", calls.Load(), sum.Chunks)
	}
	return p
}

// pgState is id → "v|n" of every row of table (id, v, n).
func (p *pipe) pgState(table string) (map[int64]string, error) {
	rows, err := p.db.Query(context.Background(), "SELECT id, v, n FROM "+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var v string
		var n int32
		if err := rows.Scan(&id, &v, &n); err != nil {
			return nil, err
		}
		out[id] = v + "|" + strconv.Itoa(int(n))
	}
	return out, rows.Err()
}

// gcsState applies every object of table (id, v, n) on GCS by the sink's
// rule: per id the latest change by (commit LSN, seq); deletes remove.
func (p *pipe) gcsState(ctx context.Context, table string) map[int64]string {
	type change struct {
		lsn, seq int64
		op, val  string
	}
	latest := map[int64]change{}
	dir := p.name + "/" + stack.Database + "/" + schema.GCSSegment("public", table) + "/"
	for _, o := range p.objects(ctx, dir) {
		for _, rec := range p.records(ctx, o) {
			c := change{lsn: rec[schema.ColCommitLSN].(int64), seq: rec[schema.ColSeq].(int64), op: rec[schema.ColOp].(string)}
			id := rec["id"].(map[string]any)["long"].(int64)
			if c.op != "d" {
				c.val = rec["v"].(map[string]any)["string"].(string) + "|" + strconv.Itoa(int(rec["n"].(map[string]any)["int"].(int32)))
			}
			if prev, ok := latest[id]; !ok || c.lsn > prev.lsn || (c.lsn == prev.lsn && c.seq > prev.seq) {
				latest[id] = c
			}
		}
	}
	out := map[int64]string{}
	for id, c := range latest {
		if c.op != "d" {
			out[id] = c.val
		}
	}
	return out
}

// TestIntegrationBackfillResumes stops a backfill after a few chunks and
// runs it again with the same run id: the second run reads only what the
// first did not record, and the end state is equal.
func TestIntegrationBackfillResumes(t *testing.T) {
	const rows = 600
	p := newPipe(t, "bf_resume", []capture.TableName{{Schema: "public", Name: "bf_resume"}},
		`CREATE TABLE bf_resume (k text, j integer, v numeric(10,2), PRIMARY KEY (k, j))`,
		`INSERT INTO bf_resume SELECT 'k' || (g % 7), g, g / 100.0 FROM generate_series(1, `+strconv.Itoa(rows)+`) g`,
		`ANALYZE bf_resume`)
	opts := p.options("bf_resume", "resume1")
	opts.ChunkRows, opts.Parallel = 40, 3
	ctx, cancel := context.WithCancel(context.Background())
	opts.Progress = func(pr backfill.Progress) {
		if pr.Chunks >= 5 {
			cancel()
		}
	}
	first, err := backfill.Run(ctx, p.dsn, p.gcs, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it cancelled", err)
	}
	if first.Finished || first.Chunks < 5 {
		t.Fatalf("first run: %+v", first)
	}
	opts.Progress = nil
	second, err := backfill.Run(context.Background(), p.dsn, p.gcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Resumed || !second.Finished {
		t.Fatalf("second run: %+v", second)
	}
	t.Logf("first run: %d rows in %d chunks; second: %d rows in %d chunks", first.Rows, first.Chunks, second.Rows, second.Chunks)
	if first.Rows+second.Rows != rows {
		t.Errorf("rows %d + %d, want %d: a chunk was read twice or skipped", first.Rows, second.Rows, rows)
	}
	if second.TotalRows != rows {
		t.Errorf("total rows %d, want %d", second.TotalRows, rows)
	}
	chunkOf := regexp.MustCompile(`-backfill-resume1-(\d+)-(\d+)\.avro$`)
	seen := map[string]bool{}
	for _, o := range first.ObjectNames {
		m := chunkOf.FindStringSubmatch(o)
		if m == nil {
			t.Fatalf("object %s is not named by its chunk", o)
		}
		seen[m[1]+"/"+m[2]] = true
	}
	for _, o := range second.ObjectNames {
		m := chunkOf.FindStringSubmatch(o)
		if m == nil {
			t.Fatalf("object %s is not named by its chunk", o)
		}
		if seen[m[1]+"/"+m[2]] {
			t.Errorf("chunk %s/%s was written by both runs", m[1], m[2])
		}
	}
	// A third run has nothing to do.
	third, err := backfill.Run(context.Background(), p.dsn, p.gcs, opts)
	if err != nil || third.Chunks != 0 || !third.Finished {
		t.Fatalf("third run: %+v, %v", third, err)
	}
	p.startSink() // finds the markers when it starts
	p.waitEqual("bf_resume", 90*time.Second)
}

// TestIntegrationBackfillWithoutKey reads a table without a primary key
// by ctid block ranges.
func TestIntegrationBackfillWithoutKey(t *testing.T) {
	const rows = 500
	p := newPipe(t, "bf_nokey", []capture.TableName{{Schema: "public", Name: "bf_nokey"}},
		`CREATE TABLE bf_nokey (a integer, b text, c double precision)`,
		`INSERT INTO bf_nokey SELECT g % 500, CASE WHEN g % 11 = 0 THEN NULL ELSE 'b' || g END, g / 7.0 FROM generate_series(1, `+strconv.Itoa(rows)+`) g`,
		`ANALYZE bf_nokey`)
	opts := p.options("bf_nokey", "nokey1")
	opts.ChunkRows, opts.Parallel = 100, 3
	sum, err := backfill.Run(context.Background(), p.dsn, p.gcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != rows {
		t.Fatalf("backfilled %d rows, want %d", sum.Rows, rows)
	}
	p.startSink()
	p.waitEqual("bf_nokey", 5*time.Minute)
}

// TestIntegrationBackfillWhere checks the filter: bad SQL fails before
// anything is written, naming the table; a good one writes only matching
// rows.
func TestIntegrationBackfillWhere(t *testing.T) {
	p := newPipe(t, "bf_where", nil,
		`CREATE TABLE bf_where (id integer PRIMARY KEY, v text)`,
		`INSERT INTO bf_where SELECT g, 'v' || g FROM generate_series(1, 5000) g`)
	ctx := context.Background()

	opts := p.options("bf_where", "where-bad")
	opts.Where = "id >>> 3"
	_, err := backfill.Run(ctx, p.dsn, p.gcs, opts)
	if err == nil || !strings.Contains(err.Error(), `"public"."bf_where"`) || !strings.Contains(err.Error(), "where filter") {
		t.Fatalf("bad filter: %v, want an error naming the filter and the table", err)
	}
	if n := len(p.objects(ctx, p.name+"/"+stack.Database+"/")) + len(p.objects(ctx, p.name+"/_backfill/")); n != 0 {
		t.Fatalf("a failed filter left %d objects", n)
	}
	opts.Where = "no_such_column = 1"
	if _, err := backfill.Run(ctx, p.dsn, p.gcs, opts); err == nil || !strings.Contains(err.Error(), "no_such_column") {
		t.Fatalf("unknown column: %v", err)
	}

	opts = p.options("bf_where", "where-good")
	opts.Where, opts.ChunkRows, opts.Parallel = "id % 3 = 0 AND v LIKE 'v%'", 400, 2
	sum, err := backfill.Run(ctx, p.dsn, p.gcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 5000/3 {
		t.Fatalf("backfilled %d rows, want %d", sum.Rows, 5000/3)
	}
	var got int
	for _, o := range p.objects(ctx, p.name+"/"+stack.Database+"/") {
		for _, rec := range p.records(ctx, o) {
			id := rec["id"].(map[string]any)["int"].(int32)
			if id%3 != 0 || rec[schema.ColOp] != "r" {
				t.Fatalf("object %s holds id %d op %v", o, id, rec[schema.ColOp])
			}
			got++
		}
	}
	if got != 5000/3 {
		t.Fatalf("objects hold %d rows, want %d", got, 5000/3)
	}
	markers := p.objects(ctx, p.name+"/_sink/pending/")
	if int64(len(markers)) != sum.Objects {
		t.Fatalf("%d pending markers for %d objects", len(markers), sum.Objects)
	}
}

// objects lists the object names under prefix.
func (p *pipe) objects(ctx context.Context, prefix string) []string {
	p.t.Helper()
	var out []string
	it := p.gcs.Bucket(stack.Bucket).Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, a.Name)
	}
}

// records decodes an OCF object.
func (p *pipe) records(ctx context.Context, name string) []map[string]any {
	p.t.Helper()
	r, err := p.gcs.Bucket(stack.Bucket).Object(name).NewReader(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		p.t.Fatal(err)
	}
	ocf, err := goavro.NewOCFReader(bytes.NewReader(data))
	if err != nil {
		p.t.Fatal(err)
	}
	var out []map[string]any
	for ocf.Scan() {
		rec, err := ocf.Read()
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, rec.(map[string]any))
	}
	return out
}

// TestIntegrationBackfillChunkBytes bounds chunks by their object's size
// well below ChunkRows: chunks end early, the next one reading on after the
// last row, and every row is backfilled exactly once.
func TestIntegrationBackfillChunkBytes(t *testing.T) {
	const rows = 3000
	p := newPipe(t, "bf_bytes", nil,
		`CREATE TABLE bf_bytes (id integer PRIMARY KEY, v text)`,
		`INSERT INTO bf_bytes SELECT g, repeat('v', 100) || g FROM generate_series(1, `+strconv.Itoa(rows)+`) g`,
		`ANALYZE bf_bytes`)
	ctx := context.Background()
	opts := p.options("bf_bytes", "bytes1")
	opts.ChunkRows, opts.ChunkBytes, opts.Parallel = 1000, 20_000, 2
	sum, err := backfill.Run(ctx, p.dsn, p.gcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != rows || !sum.Finished {
		t.Fatalf("summary %+v, want %d rows", sum, rows)
	}
	// About 110 bytes a record: a chunk ends at about 180 rows.
	if sum.Objects < rows/200 {
		t.Fatalf("%d objects of %d rows: chunks were not cut by their size", sum.Objects, rows)
	}
	seen := map[int32]int{}
	for _, o := range p.objects(ctx, p.name+"/"+stack.Database+"/") {
		recs := p.records(ctx, o)
		if len(recs) > 200 {
			t.Errorf("object %s holds %d records, more than 20,000 bytes", o, len(recs))
		}
		for _, rec := range recs {
			seen[rec["id"].(map[string]any)["int"].(int32)]++
		}
	}
	for id := int32(1); id <= rows; id++ {
		if seen[id] != 1 {
			t.Errorf("row %d is in %d objects", id, seen[id])
		}
	}
	t.Logf("%d rows in %d chunks, %d objects", sum.Rows, sum.Chunks, sum.Objects)
}
