package capture_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/capture"
)

// While a writer runs, the table is altered five ways. Every change arrives,
// each decoded with the schema version it was written with; each DDL that
// changes the row's Avro shape yields a new version, and a renamed column
// arrives as a drop and an add.
func TestIntegrationCaptureSchemaEvolution(t *testing.T) {
	h := newHarness(t, "evolve_it", []capture.TableName{{Schema: "public", Name: "evolving"}},
		`CREATE TABLE evolving (id int PRIMARY KEY, n int, code varchar(10), gone text)`)
	h.start()
	defer h.stop()

	ctx, stopWriter := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ctx.Err() == nil; i++ {
			// Only columns present through every DDL step.
			if _, err := h.db.Exec(context.Background(), `INSERT INTO evolving (id) VALUES ($1)`, i); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			mu.Lock()
			written++
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	ddl := []string{
		`ALTER TABLE evolving ADD COLUMN added text NOT NULL DEFAULT 'dflt'`,
		`ALTER TABLE evolving DROP COLUMN gone`,
		`ALTER TABLE evolving RENAME COLUMN code TO label`,
		`ALTER TABLE evolving ALTER COLUMN n TYPE bigint`,
		`ALTER TABLE evolving ALTER COLUMN label TYPE text`,
	}
	ddlConn := newConn(t)
	for _, q := range ddl {
		time.Sleep(150 * time.Millisecond)
		if _, err := ddlConn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	time.Sleep(150 * time.Millisecond)
	stopWriter()
	wg.Wait()
	if _, err := ddlConn.Exec(context.Background(), `UPDATE evolving SET n = 9000000000, label = 'a label longer than ten' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	got := distinct(h.waitFor(written+1, 2*time.Minute))

	fingerprints := map[string]bool{}
	ids := map[int]bool{}
	var last received
	for _, r := range got {
		fingerprints[r.es.FingerprintHex()] = true
		if r.event.Op == "c" {
			id, _ := strconv.Atoi(canon(t, r.es, r.event.After, "id"))
			ids[id] = true
			cols := tableColumns(r.es)
			if _, ok := cols["added"]; ok && canon(t, r.es, r.event.After, "added") != "dflt" {
				t.Errorf("row %d after ADD COLUMN ... DEFAULT: added = %s", id, canon(t, r.es, r.event.After, "added"))
			}
		}
		last = r
	}
	if len(ids) != written {
		t.Fatalf("received %d of %d inserts across the DDL", len(ids), written)
	}
	// int→bigint changes the Avro type; varchar(10)→text does not (both
	// strings), so it may share a fingerprint: at least 5 versions.
	if len(fingerprints) < 5 {
		t.Errorf("%d schema versions across 5 DDL statements, want at least 5", len(fingerprints))
	}
	cols := tableColumns(last.es)
	if _, ok := cols["gone"]; ok {
		t.Error("the dropped column is still in the newest schema")
	}
	if _, ok := cols["code"]; ok {
		t.Error("the renamed column kept its old name")
	}
	if canon(t, last.es, last.event.After, "n") != "9000000000" || canon(t, last.es, last.event.After, "label") != "a label longer than ten" {
		t.Errorf("after widening: n = %s, label = %s", canon(t, last.es, last.event.After, "n"), canon(t, last.es, last.event.After, "label"))
	}
	t.Logf("%d inserts across 5 DDL statements, %d schema versions", written, len(fingerprints))
}
