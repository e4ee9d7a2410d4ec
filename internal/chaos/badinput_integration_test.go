package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"github.com/tributary-cdc/tributary/schema"
)

// A value BigQuery refuses does not stop the pipeline: a float NaN (which
// the local stack's BigQuery refuses, as it would change the value) fails
// its load, which goes to a dead-letter naming the reason and its objects;
// rows of the same table written before and after it, and updates of those
// rows, still arrive, and the table differs from Postgres only by the rows
// of the dead-lettered load. The type-zoo test of package e2e dead-letters
// such values too, but in tables holding nothing else, so it does not show
// the rest of the table going on.
func TestIntegrationChaosBadInput(t *testing.T) {
	tables := [][2]string{{"public", "bad_readings"}}
	p := newPipeline(t, "chaos_badinput", tables, nil)
	p.exec(`CREATE TABLE bad_readings (id int PRIMARY KEY, v float8, note text)`)
	p.start()
	p.exec(`INSERT INTO bad_readings SELECT g, g * 1.5, 'before' FROM generate_series(1, 20) g`)
	p.waitEqual(3 * time.Minute)

	p.exec(`INSERT INTO bad_readings VALUES (100, 'NaN', 'refused')`)
	var dead deadLoad
	stacktest.WaitUntil(t, "the load holding NaN is dead-lettered", 3*time.Minute, func() (bool, error) {
		dl, err := p.sinkDeadLoads("public", "bad_readings")
		if err != nil || len(dl) == 0 {
			return false, err
		}
		if len(dl) > 1 {
			return false, fmt.Errorf("%d loads dead-lettered, want 1", len(dl))
		}
		dead = dl[0]
		return true, nil
	})
	t.Logf("dead-letter %s: class %s, reason %q, %d objects", dead.name, dead.Class, dead.Reason, len(dead.Objects))
	if !strings.Contains(dead.Reason, "NaN") || dead.Class != "permanent" {
		t.Errorf("dead-letter reason %q (class %s), want the NaN named, permanent", dead.Reason, dead.Class)
	}
	// The rows the dead-lettered load held, read from its objects.
	lost := map[string]bool{}
	for _, o := range dead.Objects {
		if err := readObject(context.Background(), p.gcs.Bucket(stack.Bucket).Object(o), func(rec map[string]any) error {
			lost[fmt.Sprint(unwrap(rec["id"]))] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !lost["100"] {
		t.Fatalf("the dead-lettered objects hold ids %v, not 100", keys(lost))
	}

	// The table goes on: new rows and updates of the earlier ones arrive.
	p.exec(`INSERT INTO bad_readings SELECT g, g * 2.5, 'after' FROM generate_series(200, 219) g`)
	p.exec(`UPDATE bad_readings SET note = 'updated after' WHERE id <= 20`)
	var missing []string
	stacktest.WaitUntil(t, "BigQuery equals Postgres but for the dead-lettered rows", 3*time.Minute, func() (bool, error) {
		res, err := p.verifyAll()
		if err == nil {
			return false, fmt.Errorf("BigQuery equals Postgres: the NaN row reached BigQuery")
		}
		if len(res) != 1 {
			return false, err
		}
		missing = missing[:0]
		for _, d := range res[0].Discrepancies {
			id := strings.Trim(d.Key["id"], `"`) // canonical form: a JSON string
			if d.Kind != "missing" || !lost[id] {
				return false, err
			}
			missing = append(missing, id)
		}
		return res[0].PostgresRows-res[0].BigQueryRows == int64(len(missing)), err
	})
	sort.Strings(missing)
	t.Logf("after the dead-letter: every row equal but %v, which only the dead-lettered load held", missing)
	n, err := p.sink.metric("tributary_sink_dead_letters_total", `table="public.bad_readings"`)
	if err != nil || n < 1 {
		t.Errorf("tributary_sink_dead_letters_total for public.bad_readings: %v %v, want at least 1", n, err)
	}
	p.capture.stop(30 * time.Second)
	p.sink.stop(2 * time.Minute)
}

// deadLoad is a dead-lettered load of the sink: its manifest and why.
type deadLoad struct {
	name    string
	Objects []string `json:"objects"`
	Reason  string   `json:"reason"`
	Class   string   `json:"class"`
}

// sinkDeadLoads reads the sink's dead-lettered loads of a table.
func (p *pipeline) sinkDeadLoads(pgSchema, table string) ([]deadLoad, error) {
	ctx := context.Background()
	prefix := strings.TrimSuffix(p.layout.DeadLetter(schema.GCSSegment(pgSchema, table), "load-"), ".json")
	names, err := p.deadLetters()
	if err != nil {
		return nil, err
	}
	var out []deadLoad
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		r, err := p.gcs.Bucket(stack.Bucket).Object(n).NewReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", n, err)
		}
		body, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", n, err)
		}
		d := deadLoad{name: n}
		if err := json.Unmarshal(body, &d); err != nil {
			return nil, fmt.Errorf("reading %s: %w", n, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// unwrap takes the value out of goavro's union form ({"int": 5}).
func unwrap(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, x := range m {
			return x
		}
	}
	return v
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
