package sink

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/tributary-cdc/tributary/schema"
)

// scaleChanges is the changelog of the apply scale test for n snapshot rows:
// a snapshot of keys 1..n (lsn 100), then n/10 changes of every tenth key —
// updates that leave the TOASTable column unsent, updates that send it and
// deletes — (lsn 200), then a move of every hundredth key (the fifth of
// each hundred) to key+n, which sends the column (lsn 300). Each batch is
// the VALUES of an INSERT … SELECT over GENERATE_ARRAY, run by the
// emulator, and want is the current state after each batch (id|v|n).
type scaleBatch struct {
	lsn    int64
	insert string // SELECT … FROM UNNEST(GENERATE_ARRAY(…)) AS i
	want   map[int64]string
}

func scaleChanges(n int64) []scaleBatch {
	const ts = "TIMESTAMP '2026-01-02 00:00:00+00'"
	state := map[int64]string{}
	for i := int64(1); i <= n; i++ {
		state[i] = fmt.Sprintf("%d|v%d|%d", i, i, i)
	}
	snap := fmt.Sprintf(`SELECT 'r', 100, i, %s, 1, 100, CAST([] AS ARRAY<STRING>), STRUCT(i AS id), i, CONCAT('v', CAST(i AS STRING)), i
FROM UNNEST(GENERATE_ARRAY(1, %d)) AS i`, ts, n)
	b1 := copyState(state)
	// Key id = 10j: j%3 == 0 deletes, 1 updates n leaving v unsent, 2 sends a new v.
	for j := int64(1); j <= n/10; j++ {
		id := 10 * j
		switch j % 3 {
		case 0:
			delete(state, id)
		case 1:
			state[id] = fmt.Sprintf("%d|v%d|%d", id, id, -id)
		case 2:
			state[id] = fmt.Sprintf("%d|w%d|%d", id, id, id)
		}
	}
	upd := fmt.Sprintf(`SELECT IF(MOD(j, 3) = 0, 'd', 'u'), 200, j, %s, 2, 200,
  IF(MOD(j, 3) = 1, ['v'], CAST([] AS ARRAY<STRING>)), STRUCT(10*j AS id), 10*j,
  CASE MOD(j, 3) WHEN 2 THEN CONCAT('w', CAST(10*j AS STRING)) ELSE NULL END,
  CASE MOD(j, 3) WHEN 0 THEN NULL WHEN 1 THEN -10*j ELSE 10*j END
FROM UNNEST(GENERATE_ARRAY(1, %d)) AS j`, ts, n/10)
	b2 := copyState(state)
	// Key 100j+5 moves to 100j+5+n, sending v.
	for j := int64(0); 100*j+5 <= n; j++ {
		id := 100*j + 5
		delete(state, id)
		state[id+n] = fmt.Sprintf("%d|m%d|%d", id+n, id, id)
	}
	mv := fmt.Sprintf(`SELECT 'u', 300, j, %s, 3, 300, CAST([] AS ARRAY<STRING>), STRUCT(100*j+5 AS id), 100*j+5+%d,
  CONCAT('m', CAST(100*j+5 AS STRING)), 100*j+5
FROM UNNEST(GENERATE_ARRAY(0, %d)) AS j`, ts, n, (n-5)/100)
	return []scaleBatch{{100, snap, b1}, {200, upd, b2}, {300, mv, copyState(state)}}
}

func copyState(m map[int64]string) map[int64]string {
	c := make(map[int64]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// stepLog collects the "apply step" records of a sink's logger.
type stepLog struct {
	mu    sync.Mutex
	steps []string
}

func (l *stepLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *stepLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *stepLog) WithGroup(string) slog.Handler            { return l }
func (l *stepLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "apply step" {
		return nil
	}
	var step string
	var d time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "step":
			step = a.Value.String()
		case "took":
			d = a.Value.Duration()
		}
		return true
	})
	l.mu.Lock()
	l.steps = append(l.steps, fmt.Sprintf("%s %.2fs", step, d.Seconds()))
	l.mu.Unlock()
	return nil
}

func (l *stepLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.steps, ", ")
	l.steps = nil
	return s
}

// TestIntegrationApplyScale applies a snapshot of n rows, then updates
// (some leaving a TOASTed column unsent), deletes and key moves, checking
// the whole current state after each batch and logging how long each
// statement of the apply took. n is 2000 unless TRIBUTARY_APPLY_ROWS lists
// sizes (e.g. 1000,10000,100000).
func TestIntegrationApplyScale(t *testing.T) {
	needStack(t)
	sizes := []int64{2000}
	if env := os.Getenv("TRIBUTARY_APPLY_ROWS"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || n < 100 {
				t.Fatalf("TRIBUTARY_APPLY_ROWS: %q is not a size of at least 100", f)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		t.Run(strconv.FormatInt(n, 10), func(t *testing.T) { applyScale(t, n) })
	}
}

func applyScale(t *testing.T, n int64) {
	s := bqOnly(t)
	steps := &stepLog{}
	s.log = slog.New(steps)
	ctx := context.Background()
	name := fmt.Sprintf("scale%d", n)
	keyCols := bigquery.Schema{{Name: "id", Type: bigquery.IntegerFieldType}}
	cols := bigquery.Schema{{Name: "id", Type: bigquery.IntegerFieldType}, {Name: "v", Type: bigquery.StringFieldType}, {Name: "n", Type: bigquery.IntegerFieldType}}
	st := Statements{Project: stack.Project, Dataset: stack.Dataset, Changelog: name + "__changelog", Current: name, Stage: name + "__stage",
		Key: []string{"id"}, BeforeKey: []string{"id"}, Columns: []string{"id", "v", "n"}, Toastable: []string{"v"}}
	ds := s.bq.Dataset(stack.Dataset)
	if err := ds.Table(st.Changelog).Create(ctx, &bigquery.TableMetadata{
		Schema: append(append(schema.EnvelopeBigQuerySchema(), &bigquery.FieldSchema{Name: schema.ColBeforeKey, Type: bigquery.RecordFieldType, Schema: keyCols}), cols...)}); err != nil {
		t.Fatal(err)
	}
	if err := ds.Table(st.Current).Create(ctx, &bigquery.TableMetadata{Schema: append(bigquery.Schema{
		{Name: ColKey, Type: bigquery.StringFieldType}, {Name: schema.ColCommitLSN, Type: bigquery.IntegerFieldType},
		{Name: schema.ColSeq, Type: bigquery.IntegerFieldType}, {Name: schema.ColCommitTS, Type: bigquery.TimestampFieldType},
	}, cols...)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ds.Table(st.Changelog).Delete(ctx)
		_ = ds.Table(st.Current).Delete(ctx)
	})
	for _, b := range scaleChanges(n) {
		start := time.Now()
		s.mustExec(t, fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s, %s, %s, %s, %s, id, v, n)\n%s",
			st.table(st.Changelog), schema.ColOp, schema.ColCommitLSN, schema.ColSeq, schema.ColCommitTS, schema.ColXid, schema.ColLSN,
			schema.ColUnchanged, schema.ColBeforeKey, b.insert))
		loaded := time.Since(start)
		start = time.Now()
		if err := s.apply(ctx, st, uint64(b.lsn), uint64(b.lsn)); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("n=%d batch lsn %d: changelog insert %.2fs, apply %.2fs (%s)", n, b.lsn, loaded.Seconds(), took.Seconds(), steps.take())
		got := s.mustRows(t, "SELECT id, v, n FROM "+st.table(st.Current))
		want := make([]string, 0, len(b.want))
		for _, r := range b.want {
			want = append(want, r)
		}
		sort.Strings(want)
		if len(got) != len(want) {
			t.Fatalf("after lsn %d: %d current rows, want %d", b.lsn, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("after lsn %d: row %d is %q, want %q", b.lsn, i, got[i], want[i])
			}
		}
	}
}
