package schema

import (
	"encoding/json"
	"fmt"
	"strings"

	"cloud.google.com/go/bigquery"
	"github.com/linkedin/goavro/v2"
)

// Changelog columns: the envelope fields every changelog row (and every
// record of the Avro objects on GCS) carries beside the table's columns.
// Column names of the table never start with _tributary (BigQueryColumnName
// renames them), so these cannot collide.
const (
	ColOp        = "_tributary_op"
	ColCommitLSN = "_tributary_commit_lsn"
	ColSeq       = "_tributary_seq"
	ColCommitTS  = "_tributary_commit_ts"
	ColXid       = "_tributary_xid"
	ColUnchanged = "_tributary_unchanged"
	ColLSN       = "_tributary_lsn"
)

// Changelog is the flat record one change becomes in the Avro object files
// on GCS and in the BigQuery changelog table: the envelope columns, then the
// table's columns holding the new row (the old row's replica-identity values
// for deletes, nothing for truncates).
type Changelog struct {
	Events  *EventSchema
	JSON    string // Avro schema of the flat record
	Codec   *goavro.Codec
	Columns []StoredColumn
}

// NewChangelog derives the flat changelog record schema from an event
// schema (as read from the store).
func NewChangelog(es *EventSchema) (*Changelog, error) {
	cols, err := es.Columns()
	if err != nil {
		return nil, err
	}
	fields := []any{
		map[string]any{"name": ColOp, "type": "string"},
		map[string]any{"name": ColCommitLSN, "type": "long"},
		map[string]any{"name": ColSeq, "type": "long"},
		map[string]any{"name": ColCommitTS, "type": map[string]any{"type": "long", "logicalType": "timestamp-micros"}},
		map[string]any{"name": ColXid, "type": "long"},
		map[string]any{"name": ColLSN, "type": "long"},
		map[string]any{"name": ColUnchanged, "type": map[string]any{"type": "array", "items": "string"}, "default": []any{}},
	}
	for _, c := range cols {
		fields = append(fields, map[string]any{
			"name": c.Field, "type": c.Avro, "default": nil, "pg_column": c.PGColumn, "pg_type": c.PGType, "bigquery": c.BigQuery,
		})
	}
	var env struct {
		Name      string         `json:"name"`
		Tributary map[string]any `json:"tributary"`
	}
	if err := json.Unmarshal([]byte(es.JSON), &env); err != nil {
		return nil, fmt.Errorf("reading event schema: %w", err)
	}
	b, err := json.Marshal(map[string]any{
		"type": "record", "name": strings.TrimSuffix(env.Name, "_event") + "_changelog",
		"tributary": env.Tributary, "event_fingerprint": es.FingerprintHex(), "fields": fields,
	})
	if err != nil {
		return nil, err
	}
	codec, err := goavro.NewCodec(string(b))
	if err != nil {
		return nil, fmt.Errorf("building changelog schema: %w", err)
	}
	return &Changelog{Events: es, JSON: string(b), Codec: codec, Columns: cols}, nil
}

// Record flattens e into a changelog record (goavro native form).
func (c *Changelog) Record(e *Event) map[string]any {
	row := e.After
	if e.Op == "d" {
		row = e.Before
	}
	rec := make(map[string]any, len(c.Columns)+7)
	unchanged := make([]any, len(e.Unchanged))
	for i, u := range e.Unchanged {
		unchanged[i] = u
	}
	rec[ColOp], rec[ColCommitLSN], rec[ColSeq] = e.Op, int64(e.CommitLSN), e.Seq
	rec[ColCommitTS], rec[ColXid], rec[ColLSN], rec[ColUnchanged] = e.CommitTime.UTC(), e.Xid, int64(e.LSN), unchanged
	for _, col := range c.Columns {
		rec[col.Field] = nil
		if row != nil {
			if v, ok := row[col.Field]; ok {
				rec[col.Field] = v
			}
		}
	}
	return rec
}

// BigQuerySchema is the BigQuery schema of the table's columns, as mapped by
// capture and stored with the schema.
func (c *Changelog) BigQuerySchema() (bigquery.Schema, error) {
	parts := make([]string, 0, len(c.Columns))
	for _, col := range c.Columns {
		if len(col.BigQuery) == 0 {
			return nil, fmt.Errorf("stored schema lacks the BigQuery type of column %q", col.PGColumn)
		}
		parts = append(parts, string(col.BigQuery))
	}
	s, err := bigquery.SchemaFromJSON([]byte("[" + strings.Join(parts, ",") + "]"))
	if err != nil {
		return nil, fmt.Errorf("reading stored BigQuery schema: %w", err)
	}
	return s, nil
}

// EnvelopeBigQuerySchema is the BigQuery schema of the changelog's envelope
// columns.
func EnvelopeBigQuerySchema() bigquery.Schema {
	return bigquery.Schema{
		{Name: ColOp, Type: bigquery.StringFieldType, Required: true, Description: "c insert, u update, d delete, t truncate, r snapshot read"},
		{Name: ColCommitLSN, Type: bigquery.IntegerFieldType, Required: true, Description: "LSN of the transaction's commit record"},
		{Name: ColSeq, Type: bigquery.IntegerFieldType, Required: true, Description: "position of the change within its transaction"},
		{Name: ColCommitTS, Type: bigquery.TimestampFieldType, Required: true, Description: "commit time"},
		{Name: ColXid, Type: bigquery.IntegerFieldType, Required: true, Description: "transaction id"},
		{Name: ColLSN, Type: bigquery.IntegerFieldType, Required: true, Description: "LSN of the change's own WAL record"},
		{Name: ColUnchanged, Type: bigquery.StringFieldType, Repeated: true, Description: "columns whose unchanged TOASTed values were not sent: their old values stand"},
	}
}
