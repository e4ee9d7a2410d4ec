package sink

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/schema"
)

// An apply replaces a batch's changed rows in one transaction: a reader
// counting the current-state table while every row is updated again and
// again always counts every row, never a changed row deleted and not yet
// inserted again. (The emulator runs one request at a time, so a reader's
// query lands between two statements of an apply only when they are
// separate jobs.)
func TestIntegrationApplyIsAtomicToReaders(t *testing.T) {
	needStack(t)
	const rows = 50
	p := newPipeline(t, "sink_atomic", []capture.TableName{{Schema: "public", Name: "atomic_rows"}},
		`CREATE TABLE atomic_rows (id int PRIMARY KEY, v int NOT NULL)`)
	p.exec(`INSERT INTO atomic_rows SELECT g, 0 FROM generate_series(1, ` + strconv.Itoa(rows) + `) g`)
	p.startSink()
	defer p.stopSink(false)
	p.waitVerified("atomic_rows", stack.Dataset, 2*time.Minute)
	current := "`" + stack.Dataset + "." + schema.BigQueryTableName("public", "atomic_rows", "") + "`"

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var reads int
	var seen []string // counts other than rows
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			got, err := p.bqRows("SELECT COUNT(*) FROM " + current)
			if err != nil {
				t.Errorf("counting: %v", err)
				return
			}
			reads++
			if len(got) != 1 || got[0] != strconv.Itoa(rows) {
				seen = append(seen, got...)
			}
		}
	}()
	const rounds = 12
	for i := 1; i <= rounds; i++ {
		p.exec(`UPDATE atomic_rows SET v = $1`, i)
		time.Sleep(1500 * time.Millisecond) // about one load and apply per round
	}
	p.waitVerified("atomic_rows", stack.Dataset, 2*time.Minute)
	stop()
	wg.Wait()
	perRow := p.countRows("`"+stack.Dataset+"."+schema.BigQueryTableName("public", "atomic_rows", "changelog")+"` WHERE _tributary_op = 'u'") / rows
	if len(seen) > 0 {
		t.Errorf("%d of %d reads during the applies counted other than %d rows: %v", len(seen), reads, rows, seen)
	}
	t.Logf("%d reads during %d rounds of updates of all %d rows (%d changelog updates per row), every one counted %d", reads, rounds, rows, perRow, rows)
}
