package bqavro_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
)

// TestIntegrationTablePatchAddsColumns adds columns to a partitioned and
// clustered table holding rows, through the Go client's Table.Update as the
// sink does: the table keeps its rows, its partitioning, clustering and
// description; the old rows read NULL in the added columns (an empty array
// in a REPEATED one); patches BigQuery refuses are refused and change
// nothing; and an AVRO load carrying the new column lands its values.
func TestIntegrationTablePatchAddsColumns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := startStack(t, ctx)
	tbl := st.bq.Dataset(itDataset).Table("evolve")
	base := bigquery.Schema{
		{Name: "id", Type: bigquery.IntegerFieldType, Required: true},
		{Name: "s", Type: bigquery.StringFieldType},
		{Name: "ts", Type: bigquery.TimestampFieldType, Required: true},
	}
	if err := tbl.Create(ctx, &bigquery.TableMetadata{
		Schema:           base,
		TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: "ts"},
		Clustering:       &bigquery.Clustering{Fields: []string{"id"}},
		Description:      "changes of evolve",
	}); err != nil {
		t.Fatalf("creating the table: %v", err)
	}
	if _, err := st.bq.Query("INSERT INTO it.evolve (id, s, ts) VALUES (1, 'one', TIMESTAMP '2024-01-02 03:04:05+00'), (2, NULL, TIMESTAMP '2024-01-03 00:00:00+00')").Read(ctx); err != nil {
		t.Fatalf("inserting rows: %v", err)
	}
	have, err := tbl.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Refused, as BigQuery refuses them; the table stays as it was.
	refused := []struct {
		name    string
		schema  bigquery.Schema
		message string
	}{
		{"drop a column", bigquery.Schema{base[0], base[2]}, "Field s is missing in new schema"},
		{"retype a column", bigquery.Schema{base[0], {Name: "s", Type: bigquery.BytesFieldType}, base[2]}, "Field s has changed type from STRING to BYTES"},
		{"add a required column", append(base[:3:3], &bigquery.FieldSchema{Name: "r", Type: bigquery.StringFieldType, Required: true}),
			"Cannot add required fields to an existing schema. (field: r)"},
	}
	for _, tt := range refused {
		_, err := tbl.Update(ctx, bigquery.TableMetadataToUpdate{Schema: tt.schema}, have.ETag)
		var gerr *googleapi.Error
		if !errors.As(err, &gerr) || gerr.Code != http.StatusBadRequest || !strings.Contains(gerr.Message, tt.message) {
			t.Errorf("%s: %v, want a 400 error containing %q", tt.name, err, tt.message)
		}
	}
	if md, err := tbl.Metadata(ctx); err != nil || len(md.Schema) != len(base) {
		t.Fatalf("after the refused patches: %v, schema %v", err, md.Schema)
	}

	relaxed := *base[0]
	relaxed.Required = false
	added := bigquery.Schema{&relaxed, base[1], base[2],
		{Name: "extra", Type: bigquery.StringFieldType, Description: "added later"},
		{Name: "tags", Type: bigquery.IntegerFieldType, Repeated: true},
	}
	answer, err := tbl.Update(ctx, bigquery.TableMetadataToUpdate{Schema: added}, have.ETag)
	if err != nil {
		t.Fatalf("adding columns: %v", err)
	}
	reread, err := tbl.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range []*bigquery.TableMetadata{answer, reread} {
		var names []string
		for _, f := range md.Schema {
			names = append(names, f.Name)
		}
		if got := strings.Join(names, ","); got != "id,s,ts,extra,tags" {
			t.Errorf("columns after the patch: %s", got)
		}
		if len(md.Schema) == 5 && (md.Schema[0].Required || !md.Schema[2].Required || md.Schema[3].Description != "added later" || !md.Schema[4].Repeated) {
			t.Errorf("modes or descriptions after the patch: %+v %+v %+v %+v", md.Schema[0], md.Schema[2], md.Schema[3], md.Schema[4])
		}
		if md.TimePartitioning == nil || md.TimePartitioning.Field != "ts" || md.TimePartitioning.Type != bigquery.DayPartitioningType {
			t.Errorf("partitioning after the patch: %+v", md.TimePartitioning)
		}
		if md.Clustering == nil || strings.Join(md.Clustering.Fields, ",") != "id" {
			t.Errorf("clustering after the patch: %+v", md.Clustering)
		}
		if md.Description != "changes of evolve" {
			t.Errorf("description after the patch: %q", md.Description)
		}
	}
	for it := st.bq.Dataset(itDataset).Tables(ctx); ; {
		tb, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if tb.TableID != "evolve" {
			t.Errorf("table %s left behind", tb.TableID)
		}
	}

	// The old rows read NULL in the added column and hold an empty array
	// (not NULL) in the added REPEATED one.
	got := queryRows(t, ctx, st.bq, "SELECT id, s, extra, tags IS NULL, ARRAY_LENGTH(tags), ts FROM it.evolve ORDER BY id")
	checkRows(t, "old rows", got, [][]bigquery.Value{
		{int64(1), "one", nil, false, int64(0), time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{int64(2), nil, nil, false, int64(0), time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)},
	})

	// A load carrying the new column lands its values.
	const schema = `{"type":"record","name":"r","fields":[
		{"name":"id","type":"long"},
		{"name":"s","type":["null","string"]},
		{"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"extra","type":["null","string"]}]}`
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 1, 4, 0, 0, 0, 0, time.UTC)
	if err := w.Append([]any{map[string]any{"id": int64(3), "s": goavro.Union("string", "three"), "ts": ts, "extra": goavro.Union("string", "x3")}}); err != nil {
		t.Fatal(err)
	}
	ow := st.gcs.Bucket("src").Object("evolve/v2.avro").NewWriter(ctx)
	if _, err := ow.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	l := avroLoader(st.bq, "evolve", "evolve-v2", "gs://src/evolve/v2.avro")
	l.SchemaUpdateOptions = []string{"ALLOW_FIELD_ADDITION"}
	l.WriteDisposition = bigquery.WriteAppend
	l.CreateDisposition = bigquery.CreateNever
	if err := runLoad(ctx, l); err != nil {
		t.Fatalf("loading with the new column: %v", err)
	}
	// (The loaded row's tags, absent from the file, are stored NULL by the
	// emulator's load, not as BigQuery's empty array, and ARRAY_LENGTH of
	// NULL crashes it: the check reads the other columns.)
	got = queryRows(t, ctx, st.bq, "SELECT id, s, extra, ts FROM it.evolve ORDER BY id")
	checkRows(t, "after the load", got, [][]bigquery.Value{
		{int64(1), "one", nil, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{int64(2), nil, nil, time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)},
		{int64(3), "three", "x3", ts},
	})
}

func checkRows(t *testing.T, what string, got, want [][]bigquery.Value) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows %v, want %d", what, len(got), got, len(want))
	}
	for i := range want {
		for c := range want[i] {
			if err := sameValue(got[i][c], want[i][c]); err != nil {
				t.Errorf("%s: row %d column %d: %v", what, i+1, c, err)
			}
		}
	}
}
