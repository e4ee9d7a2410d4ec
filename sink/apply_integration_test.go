package sink

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/schema"
)

// bqOnly is a sink with only its BigQuery side, for running Statements
// against the emulator directly.
func bqOnly(t *testing.T) *Sink {
	t.Helper()
	bq, err := gcp.BigQuery(context.Background(), stack.Project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bq.Close() })
	return &Sink{cfg: Config{Dataset: stack.Dataset}, bq: bq}
}

func (s *Sink) mustExec(t *testing.T, sql string) {
	t.Helper()
	if err := s.exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

func (s *Sink) mustRows(t *testing.T, sql string) []string {
	t.Helper()
	p := &pipeline{t: t, bq: s.bq}
	rows, err := p.bqRows(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return rows
}

// TestIntegrationOldKeyText checks that the key read from the old row's
// record is the very text of the key read from the row's own columns, for
// every type a key column may have.
func TestIntegrationOldKeyText(t *testing.T) {
	needStack(t)
	s := bqOnly(t)
	cols := bigquery.Schema{ // the types, for their names
		{Name: "i", Type: bigquery.IntegerFieldType}, {Name: "s", Type: bigquery.StringFieldType},
		{Name: "n", Type: bigquery.NumericFieldType}, {Name: "bn", Type: bigquery.BigNumericFieldType},
		{Name: "ts", Type: bigquery.TimestampFieldType}, {Name: "dt", Type: bigquery.DateTimeFieldType},
		{Name: "d", Type: bigquery.DateFieldType}, {Name: "tm", Type: bigquery.TimeFieldType},
		{Name: "b", Type: bigquery.BytesFieldType}, {Name: "f", Type: bigquery.FloatFieldType},
		{Name: "bo", Type: bigquery.BooleanFieldType}, {Name: "Mixed__0a1b2c3d", Type: bigquery.StringFieldType},
	}
	var names []string
	for _, c := range cols {
		names = append(names, c.Name)
	}
	st := Statements{Key: names, BeforeKey: names, Columns: names}
	values := []string{
		`1, 'a', NUMERIC '1.50', BIGNUMERIC '-12345678901234567890.123', TIMESTAMP '2026-01-02 03:04:05.123456+00', DATETIME '2026-01-02 03:04:05.5', DATE '2026-01-02', TIME '03:04:05.000001', b'\x00\xff', 1.25, true, 'x"y'`,
		`-9223372036854775808, '', NUMERIC '0', BIGNUMERIC '0', TIMESTAMP '1970-01-01 00:00:00+00', DATETIME '9999-12-31 23:59:59.999999', DATE '0001-01-01', TIME '00:00:00', b'', -0.5, false, 'ü\n'`,
		`CAST(NULL AS INT64), CAST(NULL AS STRING), CAST(NULL AS NUMERIC), CAST(NULL AS BIGNUMERIC), CAST(NULL AS TIMESTAMP), CAST(NULL AS DATETIME), CAST(NULL AS DATE), CAST(NULL AS TIME), CAST(NULL AS BYTES), CAST(NULL AS FLOAT64), CAST(NULL AS BOOL), CAST(NULL AS STRING)`,
	}
	var selects []string
	for _, v := range values {
		parts := strings.SplitN(v, ", ", len(names))
		own := make([]string, len(parts))
		for i := range parts {
			own[i] = parts[i] + " AS " + names[i]
		}
		selects = append(selects, fmt.Sprintf("SELECT STRUCT(%s) AS %s, %s", strings.Join(own, ", "), schema.ColBeforeKey, strings.Join(own, ", ")))
	}
	rows := s.mustRows(t, fmt.Sprintf("SELECT %s = %s, %s, %s FROM (%s) AS c", st.KeyExpr("c"), st.OldKeyExpr("c"), st.KeyExpr("c"), st.OldKeyExpr("c"), strings.Join(selects, " UNION ALL ")))
	if len(rows) != len(values) {
		t.Fatalf("%d rows, want %d", len(rows), len(values))
	}
	for _, r := range rows {
		if !strings.HasPrefix(r, "true|") {
			t.Errorf("old key text differs from the row's: %s", r)
		}
	}
	t.Logf("keys: %q", rows)
}

// TestIntegrationApplyMoves applies hand-made changelog rows with
// key-changing updates, batch by batch, and checks the current state after
// each batch and after applying everything again.
func TestIntegrationApplyMoves(t *testing.T) {
	needStack(t)
	s := bqOnly(t)
	ctx := context.Background()
	keyCols := bigquery.Schema{{Name: "id", Type: bigquery.IntegerFieldType}, {Name: "k2", Type: bigquery.StringFieldType}}
	cols := append(append(bigquery.Schema{}, keyCols...), &bigquery.FieldSchema{Name: "v", Type: bigquery.StringFieldType})
	st := Statements{Project: stack.Project, Dataset: stack.Dataset, Changelog: "moves__changelog", Current: "moves", Stage: "moves__stage",
		Key: []string{"id", "k2"}, BeforeKey: []string{"id", "k2"}, Columns: []string{"id", "k2", "v"}, Toastable: []string{"k2", "v"}}
	if err := s.bq.Dataset(stack.Dataset).Table(st.Changelog).Create(ctx, &bigquery.TableMetadata{
		Schema: append(append(schema.EnvelopeBigQuerySchema(), &bigquery.FieldSchema{Name: schema.ColBeforeKey, Type: bigquery.RecordFieldType, Schema: keyCols}), cols...)}); err != nil {
		t.Fatal(err)
	}
	if err := s.bq.Dataset(stack.Dataset).Table(st.Current).Create(ctx, &bigquery.TableMetadata{Schema: append(bigquery.Schema{
		{Name: ColKey, Type: bigquery.StringFieldType}, {Name: schema.ColCommitLSN, Type: bigquery.IntegerFieldType},
		{Name: schema.ColSeq, Type: bigquery.IntegerFieldType}, {Name: schema.ColCommitTS, Type: bigquery.TimestampFieldType},
	}, cols...)}); err != nil {
		t.Fatal(err)
	}
	// lsn, seq, op, before key, id, k2, v, unchanged
	insert := func(rows ...string) {
		t.Helper()
		s.mustExec(t, fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s, %s, %s, id, k2, v, %s) VALUES (%s)",
			st.table(st.Changelog), schema.ColCommitLSN, schema.ColSeq, schema.ColOp, schema.ColBeforeKey, schema.ColCommitTS, schema.ColXid, schema.ColUnchanged,
			strings.Join(rows, "), (")))
	}
	state := func() string {
		t.Helper()
		return strings.Join(s.mustRows(t, "SELECT id, k2, v FROM "+st.table(st.Current)), "\n")
	}
	apply := func(lo, hi uint64) {
		t.Helper()
		if err := s.apply(ctx, st, lo, hi); err != nil {
			t.Fatal(err)
		}
	}
	const ts = "TIMESTAMP '2026-01-02 00:00:00+00', 1"
	insert(
		"100, 0, 'c', NULL, "+ts+", 1, 'a', 'one', []",
		"100, 1, 'c', NULL, "+ts+", 2, 'b', 'two', []",
		"100, 2, 'c', NULL, "+ts+", 5, 'e', 'five', []",
		"200, 0, 'u', STRUCT(1, 'a'), "+ts+", 10, 'a', 'one moved', []", // 1a → 10a
		"200, 1, 'u', STRUCT(5, 'e'), "+ts+", 5, 'f', NULL, ['v']",      // 5e → 5f, v unsent
	)
	apply(100, 200)
	if got, want := state(), "10|a|one moved\n2|b|two\n5|f|NULL"; got != want {
		// v of 5f is lost: the old key's history is not followed (see Statements).
		t.Errorf("after the first batch:\n%s\nwant\n%s", got, want)
	}
	insert(
		"300, 0, 'c', NULL, "+ts+", 1, 'a', 'one again', []",           // the old key re-inserted
		"300, 1, 'u', STRUCT(2, 'b'), "+ts+", 2, 'c', 'two moved', []", // 2b → 2c
		"400, 0, 'u', STRUCT(2, 'c'), "+ts+", 3, 'c', 'three', []",     // 2c → 3c
		"400, 1, 'u', STRUCT(3, 'c'), "+ts+", 2, 'c', 'back', []",      // 3c → 2c in the same transaction
		"400, 2, 'u', STRUCT(10, 'a'), "+ts+", 10, 'a', 'ten', []",     // identity FULL style: old key sent, unchanged
		"400, 3, 'd', STRUCT(5, 'f'), "+ts+", 5, 'f', NULL, []",
	)
	apply(300, 400)
	want := "10|a|ten\n1|a|one again\n2|c|back" // sorted as text
	if got := state(); got != want {
		t.Errorf("after the second batch:\n%s\nwant\n%s", got, want)
	}
	apply(100, 400)
	apply(100, 200)
	if got := state(); got != want {
		t.Errorf("after applying again:\n%s\nwant\n%s", got, want)
	}
}
