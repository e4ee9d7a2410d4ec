package backfill_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/internal/backfill"
)

// TestIntegrationInitialSnapshotKillResume is the initial snapshot of three
// tables — one large, one with a composite key, one whose TOASTed text the
// writer never touches — read as the snapshot reads them (one table after
// another, run id "initial-<slot>", Parallel ranges) while a writer updates,
// deletes and inserts in all three; capture and the sink run throughout.
// The large table's snapshot is stopped midway (its context cancelled while
// chunks are in flight) and run again: the second invocation must not read
// any chunk the first recorded, and BigQuery's current state of every table
// must end equal to Postgres. The large table has 10,000 rows read in chunks
// of 500; with TRIBUTARY_BIG=1 it has 1,000,000 read in the default chunks.
func TestIntegrationInitialSnapshotKillResume(t *testing.T) {
	bigRows, chunkRows, wait := 10_000, 500, 3*time.Minute
	if os.Getenv("TRIBUTARY_BIG") == "1" {
		bigRows, chunkRows, wait = 1_000_000, backfill.DefaultChunkRows, 3*time.Hour
	}
	const linesRows, toastRows = 3000, 200
	const name = "snap_kill"
	p := newPipe(t, name, []capture.TableName{{Schema: "public", Name: "snap_big"}, {Schema: "public", Name: "snap_lines"}, {Schema: "public", Name: "snap_toast"}},
		`CREATE TABLE snap_big (id bigint PRIMARY KEY, v text NOT NULL, n integer)`,
		`INSERT INTO snap_big SELECT g, 'row ' || g, g % 1000 FROM generate_series(1, `+strconv.Itoa(bigRows)+`) g`,
		`CREATE TABLE snap_lines (k text, j integer, price numeric(10,2), PRIMARY KEY (k, j))`,
		`INSERT INTO snap_lines SELECT 'k' || (g % 13), g, g / 100.0 FROM generate_series(1, `+strconv.Itoa(linesRows)+`) g`,
		// body: ~8 kB of md5 text per row, stored out of line (TOASTed);
		// the writer changes n only, so updates leave body unsent.
		`CREATE TABLE snap_toast (id integer PRIMARY KEY, body text NOT NULL, n integer)`,
		`ALTER TABLE snap_toast ALTER COLUMN body SET STORAGE EXTERNAL`,
		`INSERT INTO snap_toast SELECT g, (SELECT string_agg(md5(g::text || ':' || i), '') FROM generate_series(1, 250) i), 0 FROM generate_series(1, `+strconv.Itoa(toastRows)+`) g`,
		`ANALYZE snap_big`, `ANALYZE snap_lines`, `ANALYZE snap_toast`)
	p.startSink()

	ctx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	var writes atomic.Int64
	writerDone := make(chan error, 1)
	go func() { writerDone <- snapshotWriter(ctx, p.dsn, bigRows, linesRows, toastRows, &writes) }()
	time.Sleep(time.Second) // the writer is under way before the first chunk

	const runID = "initial-" + name // what the snapshot names its runs
	snapshot := func(ctx context.Context, table string, progress func(backfill.Progress)) (backfill.Summary, error) {
		opts := p.options(table, runID)
		opts.ChunkRows, opts.Progress = chunkRows, progress
		start := time.Now()
		sum, err := backfill.Run(ctx, p.dsn, p.gcs, opts)
		t.Logf("snapshot of %s: %d rows, %d chunks, %d objects in %.1fs (resumed %v, finished %v, err %v)",
			table, sum.Rows, sum.Chunks, sum.Objects, time.Since(start).Seconds(), sum.Resumed, sum.Finished, err)
		return sum, err
	}
	for _, table := range []string{"snap_lines", "snap_toast"} {
		if sum, err := snapshot(context.Background(), table, nil); err != nil || !sum.Finished {
			t.Fatalf("snapshot of %s: %+v, %v", table, sum, err)
		}
	}

	// The large table, stopped once a third of its chunks are recorded:
	// the other ranges' chunks are then in flight.
	stopAt := int64(bigRows / chunkRows / 3)
	kctx, kill := context.WithCancel(context.Background())
	first, err := snapshot(kctx, "snap_big", func(pr backfill.Progress) {
		if pr.Chunks >= stopAt {
			kill()
		}
	})
	kill()
	if !errors.Is(err, context.Canceled) || first.Finished {
		t.Fatalf("first snapshot of snap_big: %+v, %v; want it stopped midway", first, err)
	}
	recorded := recordedChunks(t, p, "snap_big", runID)
	if int64(len(recorded)) < stopAt {
		t.Fatalf("%d chunks recorded, want at least %d", len(recorded), stopAt)
	}
	second, err := snapshot(context.Background(), "snap_big", nil)
	if err != nil || !second.Resumed || !second.Finished {
		t.Fatalf("second snapshot of snap_big: %+v, %v", second, err)
	}
	chunkOf := regexp.MustCompile(`-backfill-` + runID + `-(\d+)-(\d+)\.avro$`)
	for _, o := range second.ObjectNames {
		m := chunkOf.FindStringSubmatch(o)
		if m == nil {
			t.Fatalf("object %s is not named by its chunk", o)
		}
		if recorded[m[1]+"/"+m[2]] {
			t.Errorf("chunk %s/%s, recorded by the first invocation, was read again (%s)", m[1], m[2], o)
		}
	}
	t.Logf("snap_big: %d chunks recorded before the stop; the resumed run read %d more", len(recorded), second.Chunks)

	time.Sleep(time.Second) // the writer goes on a moment after the last chunk
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes during the snapshot", writes.Load())
	start := time.Now()
	for _, table := range []string{"snap_lines", "snap_toast", "snap_big"} {
		p.waitEqual(table, wait)
	}
	t.Logf("BigQuery equal to Postgres %.1fs after the writer stopped", time.Since(start).Seconds())
}

// snapshotWriter updates, deletes and inserts random rows of the three
// tables until ctx ends, counting its writes.
func snapshotWriter(ctx context.Context, dsn string, bigRows, linesRows, toastRows int, writes *atomic.Int64) error {
	conn, err := connect(context.Background(), dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(3, 4))
	next := int64(bigRows)
	for ctx.Err() == nil {
		var q string
		var args []any
		switch r := rng.IntN(10); {
		case r < 3:
			q, args = "UPDATE snap_big SET v = v || '+', n = n + 1 WHERE id = $1", []any{rng.Int64N(int64(bigRows)) + 1}
		case r < 5:
			q, args = "DELETE FROM snap_big WHERE id = $1", []any{rng.Int64N(int64(bigRows)) + 1}
		case r < 6:
			next++
			q, args = "INSERT INTO snap_big VALUES ($1, 'new', 0)", []any{next}
		case r < 7:
			q, args = "UPDATE snap_lines SET price = price + 1 WHERE j = $1", []any{rng.IntN(linesRows) + 1}
		case r < 8:
			q, args = "DELETE FROM snap_lines WHERE j = $1", []any{rng.IntN(linesRows) + 1}
		case r < 9:
			q, args = "UPDATE snap_toast SET n = n + 1 WHERE id = $1", []any{rng.IntN(toastRows) + 1}
		default:
			q, args = "DELETE FROM snap_toast WHERE id = $1 AND n > 2", []any{rng.IntN(toastRows) + 1}
		}
		if _, err := conn.Exec(context.Background(), q, args...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		writes.Add(1)
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// recordedChunks reads a run's progress object: the "range/chunk" of every
// chunk it records as read.
func recordedChunks(t *testing.T, p *pipe, table, runID string) map[string]bool {
	t.Helper()
	r, err := p.gcs.Bucket(stack.Bucket).Object(backfill.ProgressObject(p.name, stack.Database, "public", table, runID)).NewReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Ranges []struct {
			Chunks int64 `json:"chunks"`
		} `json:"ranges"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("progress object: %v", err)
	}
	out := map[string]bool{}
	for i, rg := range st.Ranges {
		for c := int64(0); c < rg.Chunks; c++ {
			out[fmt.Sprintf("%d/%d", i, c)] = true
		}
	}
	return out
}
