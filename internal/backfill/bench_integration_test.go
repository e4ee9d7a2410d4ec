package backfill_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/internal/backfill"
)

// BenchmarkIntegrationSnapshotVsCopy compares the backfill's rate (rows read
// in chunks, converted and written as objects to GCS; nothing loaded) with
// COPY (SELECT …) TO STDOUT (FORMAT binary) of the same table into
// io.Discard, measured in the same run: the cost of chunking, conversion,
// Avro and GCS over the fastest read Postgres offers. Rows from
// TRIBUTARY_BENCH_SNAPSHOT_ROWS (default 1,000,000). Run with -benchtime=1x.
func BenchmarkIntegrationSnapshotVsCopy(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("TRIBUTARY_BENCH_SNAPSHOT_ROWS"); v != "" {
		var err error
		if rows, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	p := newPipe(b, "bf_bench", nil,
		`DROP TABLE IF EXISTS bf_bench`,
		`CREATE TABLE bf_bench (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), qty integer, created timestamptz, flag boolean)`,
		`INSERT INTO bf_bench SELECT g, 'customer ' || g, g / 100.0, g % 1000, '2024-01-01'::timestamptz + g * interval '1 second', g % 2 = 0
		 FROM generate_series(1, `+strconv.Itoa(rows)+`) g`,
		`VACUUM ANALYZE bf_bench`)
	ctx := context.Background()
	b.ReportAllocs()
	var copyRate, backfillRate float64
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		tag, err := p.db.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT id, name, amount, qty, created, flag FROM bf_bench) TO STDOUT (FORMAT binary)")
		if err != nil {
			b.Fatal(err)
		}
		copyRate = float64(tag.RowsAffected()) / time.Since(start).Seconds()

		opts := p.options("bf_bench", "bench"+strconv.FormatInt(time.Now().UnixNano(), 36))
		opts.Logger = nil
		start = time.Now()
		sum, err := backfill.Run(ctx, p.dsn, p.gcs, opts)
		if err != nil {
			b.Fatal(err)
		}
		if sum.Rows != int64(rows) {
			b.Fatalf("backfilled %d rows, want %d", sum.Rows, rows)
		}
		backfillRate = float64(sum.Rows) / time.Since(start).Seconds()
		b.Logf("%d rows: COPY %.0f rows/s, backfill %.0f rows/s in %d objects (parallel %d, chunks of %d), ratio %.2f",
			rows, copyRate, backfillRate, sum.Objects, backfill.DefaultParallel, backfill.DefaultChunkRows, backfillRate/copyRate)
	}
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(backfillRate, "backfill_rows/s")
	b.ReportMetric(backfillRate/copyRate, "ratio")
}
