package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
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
