package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/schema"
)

// A table whose name has spaces, quotes, a dot, upper case and 4-byte UTF-8,
// with columns named by a reserved word, by two spellings BigQuery would
// take for one, at Postgres' 63-byte limit and in non-ASCII, goes through to
// BigQuery and back equal.
func TestIntegrationNastyNamesToBigQuery(t *testing.T) {
	const table = `Wéird "Tåble" 😀.v2`
	long := "c_" + strings.Repeat("long_", 11) + "name_"
	long += strings.Repeat("x", 63-len(long))
	if len(long) != 63 {
		t.Fatalf("the long column name has %d bytes", len(long))
	}
	cols := []string{"id", "select", "Order", "order", long, "größe 😀", "a.b"}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	tbl := pgx.Identifier{table}.Sanitize()
	p := startPipeline(t, "e2e_names", []capture.TableName{{Schema: "public", Name: table}},
		`CREATE TABLE `+tbl+` (id int PRIMARY KEY, "select" text, "Order" int, "order" int, `+quoted[4]+` text, "größe 😀" numeric(10,2), "a.b" bool)`)

	ins := `INSERT INTO ` + tbl + ` (` + strings.Join(quoted, ", ") + `) SELECT g, 'sel ' || g, g, -g, repeat('😀', g % 5), g * 1.25, g % 2 = 0 FROM generate_series(1, 60) g`
	p.exec(ins)
	p.exec(`UPDATE ` + tbl + ` SET "Order" = "Order" * 100, "select" = NULL WHERE id % 4 = 0`)
	p.exec(`UPDATE ` + tbl + ` SET ` + quoted[4] + ` = 'long ' || id, "a.b" = NULL WHERE id % 5 = 0`)
	p.exec(`DELETE FROM ` + tbl + ` WHERE id % 6 = 0`)
	p.exec(`UPDATE ` + tbl + ` SET id = id + 1000 WHERE id = 7`) // a key change

	res := p.waitEqual(table, 3*time.Minute)
	if res.PostgresRows != 50 {
		t.Errorf("%d rows in Postgres, want 50: the workload is wrong", res.PostgresRows)
	}
	md, err := p.bq.Dataset(stack.Dataset).Table(schema.BigQueryTableName("public", table, "")).Metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, f := range md.Schema {
		have[f.Name] = f.Description
	}
	for _, c := range cols {
		name := schema.BigQueryColumnName(c)
		if _, ok := have[name]; !ok {
			t.Errorf("BigQuery table %s lacks column %s for Postgres column %q", md.FullID, name, c)
		} else if !strings.Contains(have[name], c) && !strings.Contains(have[name], pgx.Identifier{c}.Sanitize()) {
			t.Errorf("column %s's description %q does not name Postgres column %q", name, have[name], c)
		}
	}
	t.Logf("%s → %s: %d rows equal; columns %v", table, res.BigQueryTable, res.PostgresRows, have)
}
