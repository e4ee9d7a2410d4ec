package bqavro

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	bigquery "google.golang.org/api/bigquery/v2"
)

// fields parses a schema's fields from their JSON form.
func fields(t *testing.T, s string) []*bigquery.TableFieldSchema {
	t.Helper()
	var out []*bigquery.TableFieldSchema
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return out
}

func TestPlanSchemaPatch(t *testing.T) {
	const have = `[
		{"name":"id","type":"INTEGER","mode":"REQUIRED"},
		{"name":"s","type":"STRING"},
		{"name":"tags","type":"STRING","mode":"REPEATED"},
		{"name":"r","type":"RECORD","mode":"NULLABLE","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`
	tests := []struct {
		name, want string
		change     schemaChange
		refusal    string // the end of BigQuery's message; empty when allowed
	}{
		{name: "same schema", want: have},
		{name: "type aliases and empty modes are the same",
			want: `[{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"s","type":"STRING","mode":"NULLABLE"},
				{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"STRUCT","fields":[{"name":"a","type":"INT64","mode":"REQUIRED"}]}]`},
		{name: "descriptions change nothing to do",
			want: `[{"name":"id","type":"INTEGER","mode":"REQUIRED","description":"the key"},{"name":"s","type":"STRING"},
				{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`},
		{name: "add nullable and repeated columns",
			want:   strings.TrimSuffix(have, "]") + `,{"name":"n","type":"NUMERIC"},{"name":"rep","type":"INT64","mode":"REPEATED"}]`,
			change: schemaChange{Added: []string{"n", "rep"}}},
		{name: "add a nullable record holding repeated fields",
			want:   strings.TrimSuffix(have, "]") + `,{"name":"rec","type":"RECORD","fields":[{"name":"x","type":"STRING","mode":"REPEATED"}]}]`,
			change: schemaChange{Added: []string{"rec"}}},
		{name: "relax a required column and a required nested field",
			want: `[{"name":"id","type":"INTEGER","mode":"NULLABLE"},{"name":"s","type":"STRING"},
				{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER"}]}]`,
			change: schemaChange{Relaxed: []string{"id", "r.a"}}},
		{name: "add a field inside a record",
			want: `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},
				{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"},{"name":"b","type":"DATE"}]}]`,
			change: schemaChange{Nested: []string{"r.b"}}},
		{name: "drop a column",
			want:    `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field s is missing in new schema"},
		{name: "drop a nested field",
			want:    `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"b","type":"INTEGER"}]}]`,
			refusal: "Field r.a is missing in new schema"},
		{name: "rename a column is a drop",
			want:    `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s2","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field s is missing in new schema"},
		{name: "change a name's case",
			want:    `[{"name":"ID","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field id is missing in new schema"},
		{name: "retype a column",
			want:    `[{"name":"id","type":"STRING","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field id has changed type from INTEGER to STRING"},
		{name: "widen INTEGER to NUMERIC is a type change too",
			want:    `[{"name":"id","type":"NUMERIC","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field id has changed type from INTEGER to NUMERIC"},
		{name: "retype a nested field",
			want:    `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"FLOAT","mode":"REQUIRED"}]}]`,
			refusal: "Field r.a has changed type from INTEGER to FLOAT"},
		{name: "tighten a nullable column",
			want:    `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING","mode":"REQUIRED"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field s has changed mode from NULLABLE to REQUIRED"},
		{name: "make a repeated column nullable",
			want:    `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field tags has changed mode from REPEATED to NULLABLE"},
		{name: "make a column repeated",
			want:    `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING","mode":"REPEATED"},{"name":"tags","type":"STRING","mode":"REPEATED"},{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"}]}]`,
			refusal: "Field s has changed mode from NULLABLE to REPEATED"},
		{name: "add a required column",
			want:    strings.TrimSuffix(have, "]") + `,{"name":"n","type":"STRING","mode":"REQUIRED"}]`,
			refusal: "Cannot add required fields to an existing schema. (field: n)"},
		{name: "add a nullable record holding a required field",
			want:    strings.TrimSuffix(have, "]") + `,{"name":"rec","type":"RECORD","fields":[{"name":"x","type":"STRING","mode":"REQUIRED"}]}]`,
			refusal: "Cannot add required fields to an existing schema. (field: rec.x)"},
		{name: "add a required field inside a record",
			want: `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"},
				{"name":"r","type":"RECORD","fields":[{"name":"a","type":"INTEGER","mode":"REQUIRED"},{"name":"b","type":"DATE","mode":"REQUIRED"}]}]`,
			refusal: "Cannot add required fields to an existing schema. (field: r.b)"},
		{name: "a name twice, in another case",
			want:    strings.TrimSuffix(have, "]") + `,{"name":"S","type":"STRING"}]`,
			refusal: "Duplicate column names in the schema of table p:d.t: S"},
		{name: "no schema at all drops every column",
			want:    `[]`,
			refusal: "Field id is missing in new schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planSchemaPatch("p:d.t", fields(t, have), fields(t, tt.want))
			if tt.refusal != "" {
				var pe *patchError
				if !errors.As(err, &pe) || pe.code != http.StatusBadRequest || pe.reason != "invalid" || !strings.HasSuffix(pe.msg, tt.refusal) {
					t.Fatalf("got %+v, %v; want the refusal %q", got, err, tt.refusal)
				}
				if !strings.HasPrefix(pe.msg, "Provided Schema does not match Table p:d.t. ") && !strings.HasPrefix(pe.msg, "Duplicate") {
					t.Errorf("message %q does not name the table as BigQuery does", pe.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(tt.change)
			if string(g) != string(w) {
				t.Errorf("change %s, want %s", g, w)
			}
			if got.empty() != (len(tt.change.Added)+len(tt.change.Relaxed)+len(tt.change.Nested) == 0) {
				t.Errorf("empty() = %v", got.empty())
			}
		})
	}
}

func TestCopySQL(t *testing.T) {
	to := tableRef{project: "p", dataset: "d", table: "_bqavro_t`x_0a"}
	from := tableRef{project: "p", dataset: "d", table: "t`x"}
	tests := []struct {
		name         string
		cols, repeat []string
		want         string
	}{
		{"old columns", []string{"id", "a b"}, nil,
			"INSERT INTO `p.d._bqavro_t\\`x_0a` (`id`, `a b`) SELECT `id`, `a b` FROM `p.d.t\\`x`"},
		{"added repeated columns get an empty array", []string{"id"}, []string{"tags", "more"},
			"INSERT INTO `p.d._bqavro_t\\`x_0a` (`id`, `tags`, `more`) SELECT `id`, [], [] FROM `p.d.t\\`x`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := copySQL(to, from, tt.cols, tt.repeat); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestPatchedResource(t *testing.T) {
	current := `{"kind":"bigquery#table","id":"p:d.t","etag":"e1","creationTime":"1","type":"TABLE",
		"tableReference":{"projectId":"p","datasetId":"d","tableId":"t"},
		"description":"old","friendlyName":"f","timePartitioning":{"type":"DAY","field":"ts"},"clustering":{"fields":["id"]},
		"schema":{"fields":[{"name":"id","type":"INTEGER"}]}}`
	patch := map[string]json.RawMessage{
		"schema": json.RawMessage(`{"fields":[{"name":"id","type":"INTEGER"},{"name":"n","type":"STRING"}]}`),
		"etag":   json.RawMessage(`"ignored"`),
		"labels": json.RawMessage(`{"k":"v"}`),
	}
	tests := []struct {
		name    string
		replace bool
		want    string
	}{
		{"PATCH keeps what the patch leaves out", false,
			`{"clustering":{"fields":["id"]},"creationTime":"1","description":"old","etag":"e1","friendlyName":"f","id":"p:d.t","kind":"bigquery#table","labels":{"k":"v"},` +
				`"schema":{"fields":[{"name":"id","type":"INTEGER"},{"name":"n","type":"STRING"}]},"tableReference":{"projectId":"p","datasetId":"d","tableId":"t"},` +
				`"timePartitioning":{"type":"DAY","field":"ts"},"type":"TABLE"}`},
		{"PUT keeps only what BigQuery sets itself", true,
			`{"creationTime":"1","etag":"e1","id":"p:d.t","kind":"bigquery#table","labels":{"k":"v"},` +
				`"schema":{"fields":[{"name":"id","type":"INTEGER"},{"name":"n","type":"STRING"}]},"tableReference":{"projectId":"p","datasetId":"d","tableId":"t"},"type":"TABLE"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := patchedResource([]byte(current), patch, tt.replace)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(res)
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
