package capture_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/schema"
)

// TestIntegrationEncoderMatchesOnTheTypeZoo takes the type zoo's values as
// Postgres prints them in capture's session settings and encodes every row
// as an insert, and as an update whose old image is the previous row and
// whose unchanged columns are every third, with schema.Encoder (capture's
// path) and with Table.Record and EventSchema.Encode (the general path):
// the bytes must be the same, or both must fail with the same dead-letter.
func TestIntegrationEncoderMatchesOnTheTypeZoo(t *testing.T) {
	ctx := context.Background()
	cfg, err := schema.ConnConfig(stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// The zoo's own types under other names, so that this test and the type
	// zoo's can share the database.
	rename := strings.NewReplacer("zoo_", "fz_")
	ddl := []string{
		`CREATE EXTENSION IF NOT EXISTS hstore`,
		`CREATE TYPE fz_mood AS ENUM ('sad', 'ok', 'très "happy" 😀')`,
		`CREATE DOMAIN fz_posint AS int4 CHECK (VALUE > 0)`,
		`CREATE TYPE fz_pair AS (n int4, s text, d numeric(10,2))`,
		`CREATE TYPE fz_dropped AS (a int4, gone text, b text)`,
		`ALTER TYPE fz_dropped DROP ATTRIBUTE gone`,
		`CREATE TYPE fz_nest AS (p fz_pair, arr int4[], ts timestamp, h hstore)`,
	}
	create := `CREATE TABLE fz (id int4 PRIMARY KEY, label text`
	for _, c := range zooColumns {
		create += ", " + c.name + " " + rename.Replace(c.typ)
	}
	ddl = append(ddl, create+")")
	for _, q := range ddl {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	table := fzTable(t, db, schema.Chain(schema.Builtin, zooCatalog{db}))
	es, err := schema.NewEventSchema(table)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schema.NewEncoder(es)
	if err != nil {
		t.Fatal(err)
	}
	if !enc.Fast() {
		t.Fatal("the encoder of the zoo table disagreed with the general path on its probe")
	}
	lossless := map[string]bool{}
	for _, m := range table.Columns {
		lossless[m.Column] = m.Lossless
	}
	rows := zooRows(lossless)
	for _, r := range rows {
		cols, vals := []string{"id", "label"}, []string{strconv.Itoa(r.id), l(r.label)}
		for _, c := range zooColumns {
			if v, ok := r.vals[c.name]; ok {
				cols, vals = append(cols, c.name), append(vals, rename.Replace(v))
			}
		}
		if _, err := db.Exec(ctx, `INSERT INTO fz (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Join(vals, ", ")+`)`); err != nil {
			t.Fatalf("inserting row %d (%s): %v", r.id, r.label, err)
		}
	}
	texts := zooText(t, db, `SELECT * FROM fz ORDER BY id`, len(rows))

	var same, dead int
	for i, row := range texts {
		ev := &schema.TextEvent{Op: "c", CommitLSN: uint64(1000 + i), LSN: uint64(999 + i), Seq: int64(i), Xid: int64(500 + i),
			CommitTime: time.Date(2026, 11, 22, 4, 0, 0, i*1000, time.UTC), Schema: "public", Table: "fz", After: row}
		upd := *ev
		upd.Op, upd.Before, upd.After = "u", texts[(i+len(texts)-1)%len(texts)], append([][]byte(nil), row...)
		for j := 2; j < len(upd.After); j += 3 {
			upd.After[j] = nil
			upd.Unchanged = append(upd.Unchanged, table.Columns[j].Name)
		}
		for _, e := range []*schema.TextEvent{ev, &upd} {
			what := fmt.Sprintf("row %d (%s), op %s", i+1, rows[i].label, e.Op)
			want, wantErr := generalEncode(es, e)
			got, gotErr := enc.Encode([]byte("prefix"), e)
			switch {
			case wantErr == nil && gotErr == nil:
				if !bytes.Equal(got, append([]byte("prefix"), want...)) {
					t.Errorf("%s: the encoder's bytes differ from the general path's", what)
				}
				same++
			case wantErr == nil || gotErr == nil || gotErr.Error() != wantErr.Error():
				t.Errorf("%s: error %v, general path %v", what, gotErr, wantErr)
			default:
				var g, w *schema.DeadLetterError
				if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) || *g != *w {
					t.Errorf("%s: dead-letter %+v, general path %+v", what, g, w)
				}
				dead++
			}
		}
	}
	t.Logf("type zoo through the encoder: %d events byte-identical, %d dead-lettered identically", same, dead)
	if same < len(rows) || dead < 20 {
		t.Errorf("too few events compared: %d identical, %d dead-lettered", same, dead)
	}
}

// generalEncode is what capture did before schema.Encoder.
func generalEncode(es *schema.EventSchema, ev *schema.TextEvent) ([]byte, error) {
	full := &schema.Event{Op: ev.Op, CommitLSN: ev.CommitLSN, LSN: ev.LSN, Seq: ev.Seq, Xid: ev.Xid, CommitTime: ev.CommitTime,
		Schema: ev.Schema, Table: ev.Table, Unchanged: ev.Unchanged}
	var err error
	if ev.Before != nil {
		if full.Before, err = es.Table.Record(ev.Before); err != nil {
			return nil, err
		}
	}
	if ev.After != nil {
		if full.After, err = es.Table.Record(ev.After); err != nil {
			return nil, err
		}
	}
	return es.Encode(nil, full)
}

// fzTable maps the fz table as capture does, from pg_attribute.
func fzTable(t *testing.T, db *pgx.Conn, r schema.TypeResolver) *schema.Table {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT attname, atttypid, atttypmod FROM pg_attribute
		WHERE attrelid = 'public.fz'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
	if err != nil {
		t.Fatal(err)
	}
	var cols []schema.Column
	for rows.Next() {
		var c schema.Column
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeMod); err != nil {
			t.Fatal(err)
		}
		c.Key = c.Name == "id"
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	table, err := schema.MapTable("public", "fz", cols, r)
	if err != nil {
		t.Fatal(err)
	}
	return table
}
