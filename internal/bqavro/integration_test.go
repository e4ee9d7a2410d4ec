package bqavro_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/tributary-cdc/tributary/internal/localstack"
)

const (
	itProject = "tributary-it"
	itDataset = "it"
)

type itStack struct {
	gcs *storage.Client
	bq  *bigquery.Client
}

// startStack starts the local stack (the BigQuery emulator behind this
// package's proxy, reading fake-gcs-server) with the test's own names.
func startStack(t *testing.T, ctx context.Context) *itStack {
	t.Helper()
	stack, err := localstack.Start(ctx, localstack.Options{Project: itProject, Dataset: itDataset, Bucket: "src"})
	if err != nil {
		t.Fatalf("starting the local stack: %v", err)
	}
	t.Cleanup(func() { _ = stack.Close(context.Background()) })
	gcs, err := storage.NewClient(ctx, option.WithEndpoint(stack.GCSURL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gcs.Close() })
	bq, err := bigquery.NewClient(ctx, itProject, option.WithEndpoint(stack.BigQueryURL+"/bigquery/v2/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("creating BigQuery client: %v", err)
	}
	t.Cleanup(func() { _ = bq.Close() })
	return &itStack{gcs: gcs, bq: bq}
}

const itSchema = `{"type":"record","name":"row","namespace":"tributary.it","fields":[
	{"name":"id","type":"long"},
	{"name":"d","type":{"type":"int","logicalType":"date"}},
	{"name":"t","type":{"type":"long","logicalType":"time-micros"}},
	{"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"dt","type":{"type":"long","logicalType":"local-timestamp-micros"}},
	{"name":"num","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":9}},
	{"name":"big","type":{"type":"bytes","logicalType":"decimal","precision":76,"scale":38}},
	{"name":"u","type":{"type":"string","logicalType":"uuid"}},
	{"name":"l","type":"long"},
	{"name":"f","type":"double"},
	{"name":"ok","type":"boolean"},
	{"name":"s","type":"string"},
	{"name":"b","type":"bytes"},
	{"name":"n","type":["null","string"]}]}`

// itRow is one row: the Avro record and the values BigQuery documents for it,
// in the column order of itSchema.
type itRow struct {
	avro map[string]any
	want []bigquery.Value
}

func mustRat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("bad rational " + s)
	}
	return r
}

func itRows() []itRow {
	ts1 := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	ts2 := time.UnixMicro(-1).UTC()
	dt1 := time.Date(2024, 2, 29, 12, 34, 56, 654321000, time.UTC)
	dt2 := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	const (
		num1 = "99999999999999999999999999999.999999999"
		num2 = "-0.000000001"
		big1 = "-99999999999999999999999999999999999999.99999999999999999999999999999999999999"
		big2 = "0.00000000000000000000000000000000000001"
		str1 = "snow \u2603, face \U0001F600, \"quoted\"\n"
	)
	endOfDay := 24*time.Hour - time.Microsecond
	row := func(id int64, d time.Time, tod time.Duration, ts, dt time.Time, num, bign, u string, l int64, f float64, ok bool, s string, b []byte, n any) itRow {
		var nAvro, nWant any
		if n != nil {
			nAvro, nWant = goavro.Union("string", n), n
		}
		return itRow{
			avro: map[string]any{"id": id, "d": d, "t": tod, "ts": ts, "dt": dt.UnixMicro(), "num": mustRat(num), "big": mustRat(bign),
				"u": u, "l": l, "f": f, "ok": ok, "s": s, "b": b, "n": nAvro},
			want: []bigquery.Value{id, civil.DateOf(d), civil.TimeOf(time.Time{}.Add(tod)), ts, civil.DateTimeOf(dt), mustRat(num), mustRat(bign),
				u, l, f, ok, s, b, nWant},
		}
	}
	return []itRow{
		row(1, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), endOfDay, ts1, dt1, num1, big1,
			"0d8e5a2c-1b7f-4c2e-9a55-3f1f0b8c6d11", math.MaxInt64, 0.1, true, str1, []byte{0, 0, 0xff, 0, 'a', 0x80}, nil),
		row(2, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), 0, ts2, dt2, num2, big2,
			"", math.MinInt64, math.Inf(1), false, "", []byte{}, "not null"),
		row(3, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), time.Microsecond, ts1, dt1, "0", "0",
			"u", 0, math.Inf(-1), true, "x", []byte{0}, ""),
	}
}

func writeOCF(t *testing.T, gcs *storage.Client, name string, rows []itRow) {
	t.Helper()
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: itSchema})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Append([]any{r.avro}); err != nil {
			t.Fatalf("writing OCF: %v", err)
		}
	}
	ow := gcs.Bucket("src").Object(name).NewWriter(context.Background())
	if _, err := ow.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := ow.Close(); err != nil {
		t.Fatalf("writing %s: %v", name, err)
	}
}

func avroLoader(bq *bigquery.Client, table, jobID string, uris ...string) *bigquery.Loader {
	ref := bigquery.NewGCSReference(uris...)
	ref.SourceFormat = bigquery.Avro
	ref.AvroOptions = &bigquery.AvroOptions{UseAvroLogicalTypes: true}
	l := bq.Dataset(itDataset).Table(table).LoaderFrom(ref)
	l.JobID = jobID
	return l
}

func runLoad(ctx context.Context, l *bigquery.Loader) error {
	job, err := l.Run(ctx)
	if err != nil {
		return err
	}
	status, err := job.Wait(ctx)
	if err != nil {
		return err
	}
	return status.Err()
}

func TestIntegrationAvroLoadExactValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := startStack(t, ctx)
	rows := itRows()
	writeOCF(t, st.gcs, "cdc/part-0.avro", rows[:2])
	writeOCF(t, st.gcs, "cdc/part-1.avro", rows[2:])

	if err := runLoad(ctx, avroLoader(st.bq, "exact", "avro-load-1", "gs://src/cdc/*.avro")); err != nil {
		t.Fatalf("loading AVRO: %v", err)
	}
	checkSchema(t, ctx, st.bq)
	got := queryRows(t, ctx, st.bq, "SELECT id, d, t, ts, dt, num, big, u, l, f, ok, s, b, n FROM it.exact ORDER BY id")
	if len(got) != len(rows) {
		t.Fatalf("got %d rows, want %d", len(got), len(rows))
	}
	for i, r := range rows {
		for c, want := range r.want {
			if err := sameValue(got[i][c], want); err != nil {
				t.Errorf("row %d column %d: %v", i+1, c, err)
			}
		}
	}

	err := runLoad(ctx, avroLoader(st.bq, "exact", "avro-load-1", "gs://src/cdc/*.avro"))
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) || gerr.Code != http.StatusConflict {
		t.Errorf("second load with the same job ID: %v, want a googleapi.Error with code 409", err)
	}
	for i := range 2 {
		q := st.bq.Query("SELECT 1")
		q.JobID = "query-1"
		_, err := q.Run(ctx)
		if i == 0 && err != nil {
			t.Fatalf("first query job: %v", err)
		}
		if i == 1 && (!errors.As(err, &gerr) || gerr.Code != http.StatusConflict) {
			t.Errorf("second query job with the same ID: %v, want a googleapi.Error with code 409", err)
		}
	}
	count := queryRows(t, ctx, st.bq, "SELECT COUNT(*) FROM it.exact")
	if n := count[0][0]; n != int64(len(rows)) {
		t.Errorf("after the duplicate insert the table has %v rows, want %d", n, len(rows))
	}
}

func TestIntegrationAvroLoadFailuresAreJobErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := startStack(t, ctx)
	rows := itRows()
	writeOCF(t, st.gcs, "bad/part-0.avro", rows[:1])
	nan := itRows()[1]
	nan.avro["f"] = math.NaN()
	writeOCF(t, st.gcs, "bad/part-1.avro", []itRow{nan})

	tests := []struct {
		table, uri, reason, message string
	}{
		{"missing", "gs://src/nope.avro", "notFound", "gs://src/nope.avro"},
		{"partial", "gs://src/bad/*.avro", "invalid", "gs://src/bad/part-1.avro: converting record 0: field f: NaN"},
	}
	for _, tt := range tests {
		err := runLoad(ctx, avroLoader(st.bq, tt.table, "avro-"+tt.table, tt.uri))
		var berr *bigquery.Error
		if !errors.As(err, &berr) || berr.Reason != tt.reason || !strings.Contains(berr.Message, tt.message) {
			t.Errorf("load of %s: %v, want a %s job error containing %q", tt.uri, err, tt.reason, tt.message)
		}
		var gerr *googleapi.Error
		if _, err := st.bq.Dataset(itDataset).Table(tt.table).Metadata(ctx); !errors.As(err, &gerr) || gerr.Code != http.StatusNotFound {
			t.Errorf("after the failed load of %s, table %s: %v, want it not to exist", tt.uri, tt.table, err)
		}
	}
}

func checkSchema(t *testing.T, ctx context.Context, bq *bigquery.Client) {
	t.Helper()
	md, err := bq.Dataset(itDataset).Table("exact").Metadata(ctx)
	if err != nil {
		t.Fatalf("reading table metadata: %v", err)
	}
	want := []bigquery.FieldType{bigquery.IntegerFieldType, bigquery.DateFieldType, bigquery.TimeFieldType, bigquery.TimestampFieldType,
		bigquery.DateTimeFieldType, bigquery.NumericFieldType, bigquery.BigNumericFieldType, bigquery.StringFieldType,
		bigquery.IntegerFieldType, bigquery.FloatFieldType, bigquery.BooleanFieldType, bigquery.StringFieldType,
		bigquery.BytesFieldType, bigquery.StringFieldType}
	if len(md.Schema) != len(want) {
		t.Fatalf("table has %d columns, want %d", len(md.Schema), len(want))
	}
	for i, f := range md.Schema {
		if f.Type != want[i] {
			t.Errorf("column %s has type %s, want %s", f.Name, f.Type, want[i])
		}
	}
}

func queryRows(t *testing.T, ctx context.Context, bq *bigquery.Client, sql string) [][]bigquery.Value {
	t.Helper()
	it, err := bq.Query(sql).Read(ctx)
	if err != nil {
		t.Fatalf("querying %q: %v", sql, err)
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("reading %q: %v", sql, err)
		}
		out = append(out, row)
	}
}

// sameValue compares exactly: rationals by value, floats by bits (NaN by
// NaN-ness), times by instant, bytes by content.
func sameValue(got, want bigquery.Value) error {
	ok := false
	switch w := want.(type) {
	case *big.Rat:
		g, isRat := got.(*big.Rat)
		ok = isRat && g.Cmp(w) == 0
		if isRat {
			got = g.FloatString(38)
		}
	case float64:
		g, isFloat := got.(float64)
		ok = isFloat && (math.Float64bits(g) == math.Float64bits(w) || math.IsNaN(g) && math.IsNaN(w))
	case time.Time:
		g, isTime := got.(time.Time)
		ok = isTime && g.Equal(w)
	case []byte:
		g, isBytes := got.([]byte)
		ok = isBytes && bytes.Equal(g, w)
	default:
		ok = got == want
	}
	if !ok {
		return fmt.Errorf("got %#v (%T), want %#v (%T)", got, got, want, want)
	}
	return nil
}

// A client that goes away in the middle of a request (a process killed
// during a query) leaves the emulator serving: the emulator, handed the
// cancellation, closes its only database connection and answers every later
// request 500 ("sql: connection is already closed"), which once stalled
// every sink of a test run forever. The proxy lets the emulator finish.
//
// Once in about ten runs on a loaded machine, the first query after the
// abandoned one was answered 400 "EOF" (the emulator found its body empty)
// and the query after it answered; the cause is not known. That answer is
// allowed once per round and logged; a second failure, or a wrong answer,
// fails the test.
func TestIntegrationClientGoneMidQuery(t *testing.T) {
	ctx := context.Background()
	st := startStack(t, ctx)
	// Seconds of work on the emulator (it joins as nested loops).
	slow := st.bq.Query(`SELECT COUNT(*) FROM UNNEST(GENERATE_ARRAY(1, 1500)) a, UNNEST(GENERATE_ARRAY(1, 1500)) b WHERE a + b > 3`)
	next := func(i int) ([]bigquery.Value, error) {
		// The client gives up on 5xx answers only when its context ends:
		// a bound keeps a broken emulator a failure, not a hang.
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		it, err := st.bq.Query(fmt.Sprintf("SELECT %d + 1", i)).Read(rctx)
		var row []bigquery.Value
		if err == nil {
			err = it.Next(&row)
		}
		return row, err
	}
	for i := range 3 {
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := slow.Read(qctx)
		cancel()
		if err == nil {
			t.Fatalf("round %d: the slow query finished within 300ms; the test needs a slower one", i)
		}
		row, err := next(i)
		var ge *googleapi.Error
		if errors.As(err, &ge) && ge.Code == http.StatusBadRequest && ge.Message == "EOF" {
			t.Logf("round %d: the first query after the abandoned one was answered %v; asking again", i, err)
			row, err = next(i)
		}
		if err != nil {
			t.Fatalf("round %d: after a client went away mid-query, the next query failed: %v", i, err)
		}
		if len(row) != 1 || row[0] != int64(i+1) {
			t.Fatalf("round %d: the next query answered %v, want [%d]", i, row, i+1)
		}
	}
}

// A FLOAT column (what the Go client declares for FLOAT64) takes a FLOAT64
// computed by a query, as in BigQuery — also after a schema patch added
// it — and the table still reads FLOAT: the proxy declares it a DOUBLE to
// the emulator, which takes "FLOAT" as a 32-bit FLOAT and refuses that
// insert. Values round-trip exactly.
func TestIntegrationFloatColumnsTakeFloat64(t *testing.T) {
	ctx := context.Background()
	st := startStack(t, ctx)
	tbl := st.bq.Dataset(itDataset).Table("floats")
	if err := tbl.Create(ctx, &bigquery.TableMetadata{Schema: bigquery.Schema{
		{Name: "id", Type: bigquery.IntegerFieldType}, {Name: "x", Type: bigquery.FloatFieldType},
		{Name: "r", Type: bigquery.RecordFieldType, Schema: bigquery.Schema{{Name: "y", Type: bigquery.FloatFieldType}}},
	}}); err != nil {
		t.Fatal(err)
	}
	md, err := tbl.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Update(ctx, bigquery.TableMetadataToUpdate{Schema: append(md.Schema, &bigquery.FieldSchema{Name: "z", Type: bigquery.FloatFieldType})}, md.ETag); err != nil {
		t.Fatalf("adding a FLOAT column: %v", err)
	}
	if md, err = tbl.Metadata(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintln(md.Schema[1].Type, md.Schema[2].Schema[0].Type, md.Schema[3].Type); got != "FLOAT FLOAT FLOAT\n" {
		t.Errorf("the table reads types %q, want FLOAT FLOAT FLOAT", got)
	}
	run := func(sql string) {
		t.Helper()
		job, err := st.bq.Query(sql).Run(ctx)
		if err == nil {
			var status *bigquery.JobStatus
			if status, err = job.Wait(ctx); err == nil {
				err = status.Err()
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q := "`" + itProject + "." + itDataset + ".floats`"
	run("INSERT INTO " + q + " (id, x, r, z) SELECT 1, CAST('0.1' AS FLOAT64), STRUCT(CAST('1e300' AS FLOAT64) AS y), IEEE_DIVIDE(-1, 0)") // the emulator cannot fold CAST('-inf' …)
	run("CREATE TABLE `" + itProject + "." + itDataset + ".floats_stage` AS SELECT 2 AS id, CAST(FORMAT('%.17g', 1/3) AS FLOAT64) AS x")
	run("INSERT INTO " + q + " (id, x) SELECT id, x FROM `" + itProject + "." + itDataset + ".floats_stage`")
	it, err := st.bq.Query("SELECT id, x, r.y, z FROM " + q + " ORDER BY id").Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		var row []bigquery.Value
		if err := it.Next(&row); errors.Is(err, iterator.Done) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(row))
	}
	want := []string{fmt.Sprint([]bigquery.Value{int64(1), 0.1, 1e300, math.Inf(-1)}), fmt.Sprint([]bigquery.Value{int64(2), 1.0 / 3, nil, nil})}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
