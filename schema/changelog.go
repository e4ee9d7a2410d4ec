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
	// ColBeforeKey holds the old row's replica-identity columns whenever
	// Postgres sent the old row (deletes; updates that change the key or run
	// under REPLICA IDENTITY FULL): the row an update moved away from.
	ColBeforeKey = "_tributary_before_key"
	// ColDeleted is the current-state column of a soft-delete table that
	// marks a deleted key (the sink keeps the row and its last values).
	ColDeleted = "_tributary_deleted"
)

// Changelog is the flat record one change becomes in the Avro object files
// on GCS and in the BigQuery changelog table: the envelope columns, then the
// table's columns holding the new row (the old row's replica-identity values
// for deletes, nothing for truncates).
//
// A row field's column is named like the field, unless a type change gave
// its values a column of their own (ColumnNames): then the record, the
// BigQuery schema and the before-key record all use that column's name, and
// the Avro field keeps the row field's name in "pg_field".
type Changelog struct {
	Events *EventSchema
	JSON   string // Avro schema of the flat record
	Codec  *goavro.Codec
	// Columns are the row fields (StoredColumn.Field is the event's field
	// name; Column gives the changelog's).
	Columns []StoredColumn
	// Keys are the replica-identity columns, in column order; empty for a
	// table without one.
	Keys []StoredColumn
	// Renamed maps the row fields whose column is not their own name to
	// that column.
	Renamed map[string]string
	// beforeKeyName is the full Avro name of the before-key record.
	beforeKeyName string
}

// Column is the changelog (and BigQuery) column of row field field.
func (c *Changelog) Column(field string) string {
	if n, ok := c.Renamed[field]; ok {
		return n
	}
	return field
}

// Field is the row field whose values changelog column column holds: the
// inverse of Column.
func (c *Changelog) Field(column string) string {
	for f, n := range c.Renamed {
		if n == column {
			return f
		}
	}
	return column
}

// NewChangelog derives the flat changelog record schema from an event
// schema (as read from the store), every column named like its row field.
// Writers use Store.Changelog, which names the columns of a type change.
func NewChangelog(es *EventSchema) (*Changelog, error) {
	return NewChangelogColumns(es, nil)
}

// NewChangelogColumns is NewChangelog with the columns of the row fields in
// renamed named as it says (see ColumnNames); each such column's BigQuery
// description says which Postgres column it carries and where its earlier
// values are.
func NewChangelogColumns(es *EventSchema, renamed map[string]string) (*Changelog, error) {
	cols, err := es.Columns()
	if err != nil {
		return nil, err
	}
	cl := &Changelog{Renamed: map[string]string{}}
	for _, c := range cols {
		if n, ok := renamed[c.Field]; ok && n != c.Field {
			cl.Renamed[c.Field] = n
		}
	}
	for i, c := range cols {
		if n, ok := cl.Renamed[c.Field]; ok {
			if cols[i].BigQuery, err = renameField(c, n); err != nil {
				return nil, err
			}
		}
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
	var env struct {
		Name      string         `json:"name"`
		Tributary map[string]any `json:"tributary"`
	}
	if err := json.Unmarshal([]byte(es.JSON), &env); err != nil {
		return nil, fmt.Errorf("reading event schema: %w", err)
	}
	name := strings.TrimSuffix(env.Name, "_event") + "_changelog"
	var keys []StoredColumn
	var keyFields []any
	for _, c := range cols {
		if c.Key {
			keys = append(keys, c)
			keyFields = append(keyFields, map[string]any{"name": cl.Column(c.Field), "type": c.Avro, "default": nil, "pg_column": c.PGColumn})
		}
	}
	beforeKeyName := name + "_before_key"
	if len(keys) > 0 {
		fields = append(fields, map[string]any{
			"name": ColBeforeKey, "default": nil,
			"type": []any{"null", map[string]any{"type": "record", "name": beforeKeyName, "fields": keyFields}},
		})
	}
	for _, c := range cols {
		f := map[string]any{
			"name": cl.Column(c.Field), "type": c.Avro, "default": nil, "pg_column": c.PGColumn, "pg_type": c.PGType, "pg_key": c.Key, "bigquery": c.BigQuery,
		}
		if _, ok := cl.Renamed[c.Field]; ok {
			f["pg_field"] = c.Field
		}
		fields = append(fields, f)
	}
	b, err := json.Marshal(map[string]any{
		"type": "record", "name": name,
		"tributary": env.Tributary, "event_fingerprint": es.FingerprintHex(), "fields": fields,
	})
	if err != nil {
		return nil, err
	}
	codec, err := goavro.NewCodec(string(b))
	if err != nil {
		return nil, fmt.Errorf("building changelog schema: %w", err)
	}
	cl.Events, cl.JSON, cl.Codec, cl.Columns, cl.Keys, cl.beforeKeyName = es, string(b), codec, cols, keys, beforeKeyName
	return cl, nil
}

// renameField is c's BigQuery field in REST JSON form named name, its
// description saying that it holds c's values since a type change.
func renameField(c StoredColumn, name string) (json.RawMessage, error) {
	var f map[string]any
	if err := json.Unmarshal(c.BigQuery, &f); err != nil {
		return nil, fmt.Errorf("reading the BigQuery type of column %s: %w", quoteIdent(c.PGColumn), err)
	}
	desc, _ := f["description"].(string)
	f["name"] = name
	f["description"] = truncateUTF8(fmt.Sprintf("Values since a type change of Postgres column %s (the earlier ones are in column %s). %s",
		quoteIdent(c.PGColumn), c.Field, desc), 1024)
	return json.Marshal(f)
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
		unchanged[i] = c.Column(u)
	}
	rec[ColOp], rec[ColCommitLSN], rec[ColSeq] = e.Op, int64(e.CommitLSN), e.Seq
	rec[ColCommitTS], rec[ColXid], rec[ColLSN], rec[ColUnchanged] = e.CommitTime.UTC(), e.Xid, int64(e.LSN), unchanged
	if len(c.Keys) > 0 {
		rec[ColBeforeKey] = nil
		if e.Before != nil {
			before := make(map[string]any, len(c.Keys))
			for _, k := range c.Keys {
				before[c.Column(k.Field)] = e.Before[k.Field]
			}
			rec[ColBeforeKey] = goavro.Union(c.beforeKeyName, before)
		}
	}
	for _, col := range c.Columns {
		name := c.Column(col.Field)
		rec[name] = nil
		if row != nil {
			if v, ok := row[col.Field]; ok {
				rec[name] = v
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

// BeforeKeyBigQuery is the BigQuery field of ColBeforeKey: a nullable
// RECORD of the key columns, or nil for a table without a key.
func (c *Changelog) BeforeKeyBigQuery() (*bigquery.FieldSchema, error) {
	if len(c.Keys) == 0 {
		return nil, nil
	}
	parts := make([]string, len(c.Keys))
	for i, k := range c.Keys {
		parts[i] = string(k.BigQuery)
	}
	fields, err := bigquery.SchemaFromJSON([]byte("[" + strings.Join(parts, ",") + "]"))
	if err != nil {
		return nil, fmt.Errorf("reading stored BigQuery schema of the key: %w", err)
	}
	for _, f := range fields {
		f.Required = false
	}
	return &bigquery.FieldSchema{Name: ColBeforeKey, Type: bigquery.RecordFieldType, Schema: fields,
		Description: "the old row's key columns, when Postgres sent the old row (deletes, key-changing updates)"}, nil
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
