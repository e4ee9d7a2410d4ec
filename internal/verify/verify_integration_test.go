package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"
	"github.com/jackc/pgx/v5"
	"github.com/linkedin/goavro/v2"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/localstack"
	"github.com/tributary-cdc/tributary/internal/localstack/stacktest"
	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/internal/verify"
	"github.com/tributary-cdc/tributary/schema"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	stacktest.Main(m, func(s *localstack.Stack) { stack = s })
}

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	cfg, err := schema.ConnConfig(stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// mirror copies the Postgres table into its BigQuery current-state table the
// way the pipeline does: rows converted by package schema, written as Avro,
// loaded with an AVRO load job.
func mirror(t *testing.T, ctx context.Context, conn *pgx.Conn, bq *bigquery.Client, src verify.Source, schemaName, table string, cols []schema.Column) {
	t.Helper()
	mt, err := schema.MapTable(schemaName, table, cols, src.Resolver)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	rows, err := conn.Query(ctx, "SELECT "+strings.Join(names, ", ")+" FROM "+pgx.Identifier{schemaName, table}.Sanitize(), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: mt.AvroSchema})
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		raw := rows.RawValues()
		vals := make([][]byte, len(raw))
		for i, v := range raw {
			if v != nil {
				vals[i] = append([]byte(nil), v...)
			}
		}
		rec, err := mt.Record(vals)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append([]any{rec}); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	gcs, err := gcp.Storage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	name := "verify-test/" + table + ".avro"
	ow := gcs.Bucket(stack.Bucket).Object(name).NewWriter(ctx)
	ow.Write(buf.Bytes())
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	ref := bigquery.NewGCSReference("gs://" + stack.Bucket + "/" + name)
	ref.SourceFormat = bigquery.Avro
	loader := bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName(schemaName, table, "")).LoaderFrom(ref)
	loader.UseAvroLogicalTypes = true
	job, err := loader.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
		t.Fatalf("loading %s: %v %v", table, err, st.Err())
	}
}

func TestIntegrationVerifyFindsEachKindOfDifference(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	for _, q := range []string{
		`CREATE TABLE "Accounts" (region text, id int, balance numeric(12,2), opened date, note text, PRIMARY KEY (region, id))`,
		`INSERT INTO "Accounts" SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, g * 1.25, '2026-01-01'::date + g, 'n' || g FROM generate_series(1, 300) g`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	bq, err := gcp.BigQuery(ctx, stack.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer bq.Close()
	cat := pgcatalog.New(stack.Postgres.DSN(stack.Database))
	defer cat.Close(ctx)
	src := verify.Source{Postgres: conn, Resolver: schema.Chain(schema.Builtin, cat), BigQuery: bq, Dataset: stack.Dataset}
	cols := []schema.Column{
		{Name: "region", TypeOID: 25, TypeMod: -1, Key: true}, {Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "balance", TypeOID: 1700, TypeMod: (12<<16 | 2) + 4}, {Name: "opened", TypeOID: 1082, TypeMod: -1},
		{Name: "note", TypeOID: 25, TypeMod: -1},
	}
	mirror(t, ctx, conn, bq, src, "public", "Accounts", cols)

	res, err := verify.Table(ctx, src, "public", "Accounts")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Equal() || res.PostgresRows != 300 || res.BigQueryRows != 300 {
		t.Fatalf("a faithful mirror compares unequal: %+v", res)
	}

	// One value changed in BigQuery, one row missing there, one extra.
	mt, _ := schema.MapTable("public", "Accounts", cols, src.Resolver)
	tbl := schema.QuoteBigQuery(stack.Dataset) + "." + schema.QuoteBigQuery(schema.BigQueryTableName("public", "Accounts", ""))
	col := func(i int) string { return schema.QuoteBigQuery(mt.Columns[i].Name) }
	for _, q := range []string{
		fmt.Sprintf("UPDATE %s SET %s = 999.99 WHERE %s = 'eu' AND %s = 42", tbl, col(2), col(0), col(1)),
		fmt.Sprintf("DELETE FROM %s WHERE %s = 'us' AND %s = 7", tbl, col(0), col(1)),
		fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s, %s) VALUES ('ap', 1, 1.00, DATE '2026-02-02', 'x')", tbl, col(0), col(1), col(2), col(3), col(4)),
	} {
		job, err := bq.Query(q).Run(ctx)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
			t.Fatalf("%s: %v %v", q, err, st.Err())
		}
	}
	res, err = verify.Table(ctx, src, "public", "Accounts")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range res.Discrepancies {
		got[d.Kind] = fmt.Sprint(d.Key, d.Columns)
	}
	want := map[string]string{
		"different": fmt.Sprint(map[string]string{"region": canonText(t, mt, 0, "eu"), "id": canonText(t, mt, 1, "42")}, []string{"balance"}),
		"missing":   fmt.Sprint(map[string]string{"region": canonText(t, mt, 0, "us"), "id": canonText(t, mt, 1, "7")}, []string(nil)),
		"extra":     fmt.Sprint(map[string]string{"region": canonText(t, mt, 0, "ap"), "id": canonText(t, mt, 1, "1")}, []string(nil)),
	}
	if len(res.Discrepancies) != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("discrepancies %+v\nwant %v", res.Discrepancies, want)
	}
	if res.Equal() {
		t.Fatal("Equal() with discrepancies")
	}

	// The command: exit 1 naming the key and column, 2 on an error.
	bin := filepath.Join(t.TempDir(), "tributary")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tributary-cdc/tributary/cmd/tributary").CombinedOutput(); err != nil {
		t.Fatalf("building tributary: %v\n%s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "tributary.yaml")
	if err := os.WriteFile(cfg, []byte(stack.ConfigYAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	// No pipeline runs here (the test mirrors the table itself): compare
	// at once, without a marker.
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"verify", "--config", cfg, "--no-wait"}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run("--table", `public."Accounts"`)
	if code != 1 || !strings.Contains(out, "different") || !strings.Contains(out, "columns balance") || !strings.Contains(out, `"id":`) {
		t.Fatalf("verify of a changed value: exit %d, output:\n%s", code, out)
	}
	if _, code := run("--table", "public.no_such_table"); code != 2 {
		t.Fatalf("verify of a missing table exited %d, want 2", code)
	}
	fixes := []string{
		fmt.Sprintf("UPDATE %s SET %s = 52.50 WHERE %s = 'eu' AND %s = 42", tbl, col(2), col(0), col(1)),
		fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s, %s) VALUES ('us', 7, 8.75, DATE '2026-01-08', 'n7')", tbl, col(0), col(1), col(2), col(3), col(4)),
		fmt.Sprintf("DELETE FROM %s WHERE %s = 'ap'", tbl, col(0)),
	}
	for _, q := range fixes {
		job, err := bq.Query(q).Run(ctx)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
			t.Fatalf("%s: %v %v", q, err, st.Err())
		}
	}
	if out, code := run("--table", `public."Accounts"`, "--json"); code != 0 || !strings.Contains(out, `"equal":true`) {
		t.Fatalf("verify after the fix: exit %d, output:\n%s", code, out)
	}
}

func canonText(t *testing.T, mt *schema.Table, i int, text string) string {
	c, err := mt.Columns[i].Canonical([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A soft-delete table keeps deleted keys, marked: verify compares the rows
// not marked and still finds an unmarked row Postgres lacks.
func TestIntegrationVerifySkipsSoftDeletedRows(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	if _, err := conn.Exec(ctx, `CREATE TABLE soft (id int PRIMARY KEY, v text); INSERT INTO soft SELECT g, 'v' || g FROM generate_series(1, 10) g`); err != nil {
		t.Fatal(err)
	}
	bq, err := gcp.BigQuery(ctx, stack.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer bq.Close()
	cat := pgcatalog.New(stack.Postgres.DSN(stack.Database))
	defer cat.Close(ctx)
	src := verify.Source{Postgres: conn, Resolver: schema.Chain(schema.Builtin, cat), BigQuery: bq, Dataset: stack.Dataset}
	id := schema.BigQueryTableName("public", "soft", "")
	if err := bq.Dataset(stack.Dataset).Table(id).Create(ctx, &bigquery.TableMetadata{Schema: bigquery.Schema{
		{Name: "id", Type: bigquery.IntegerFieldType}, {Name: "v", Type: bigquery.StringFieldType}, {Name: schema.ColDeleted, Type: bigquery.BooleanFieldType},
	}}); err != nil {
		t.Fatal(err)
	}
	tbl := schema.QuoteBigQuery(stack.Dataset) + "." + schema.QuoteBigQuery(id)
	run := func(q string) {
		t.Helper()
		job, err := bq.Query(q).Run(ctx)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
			t.Fatalf("%s: %v %v", q, err, st.Err())
		}
	}
	// Rows 1–10 live (the flag false or NULL), 11 and 12 deleted in Postgres.
	run(fmt.Sprintf("INSERT INTO %s (id, v, %s) VALUES (1, 'v1', NULL), (2, 'v2', FALSE), (3, 'v3', FALSE), (4, 'v4', FALSE), (5, 'v5', FALSE), "+
		"(6, 'v6', FALSE), (7, 'v7', FALSE), (8, 'v8', FALSE), (9, 'v9', FALSE), (10, 'v10', FALSE), (11, 'v11', TRUE), (12, 'v12', TRUE)", tbl, schema.ColDeleted))
	res, err := verify.Table(ctx, src, "public", "soft")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Equal() || res.PostgresRows != 10 || res.BigQueryRows != 10 {
		t.Fatalf("soft-deleted rows counted: %+v", res)
	}
	run(fmt.Sprintf("INSERT INTO %s (id, v, %s) VALUES (13, 'v13', FALSE)", tbl, schema.ColDeleted))
	res, err = verify.Table(ctx, src, "public", "soft")
	if err != nil {
		t.Fatal(err)
	}
	if res.Equal() || len(res.Discrepancies) != 1 || res.Discrepancies[0].Kind != "extra" {
		t.Fatalf("an unmarked row Postgres lacks: %+v, want one extra", res)
	}
}
