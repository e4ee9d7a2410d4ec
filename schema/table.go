package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/bigquery"
)

// Table is the mapping of one Postgres table: its columns in order, the Avro
// record schema of a row image and the BigQuery schema of its columns.
type Table struct {
	// Schema and Name are the Postgres schema and table, as spelled there.
	Schema, Name string
	// Columns are the column mappings in the order of the Relation message.
	Columns []*Mapping
	// AvroSchema is the Avro record schema of a row image, as JSON. Its full
	// name is AvroName(Schema) + "." + AvroName(Name); every field is
	// ["null", T] with default null.
	AvroSchema string
	// BigQuery is the BigQuery schema of the columns.
	BigQuery bigquery.Schema
}

// MapTable maps every column of a table. It fails if a column's type cannot
// be resolved or two columns map to the same name, which takes a 32-bit hash
// collision (see BigQueryColumnName).
func MapTable(schema, table string, cols []Column, r TypeResolver) (*Table, error) {
	t := &Table{Schema: schema, Name: table, Columns: make([]*Mapping, len(cols)), BigQuery: make(bigquery.Schema, len(cols))}
	full := AvroName(schema) + "." + AvroName(table)
	fields := make([]any, len(cols))
	seen := make(map[string]string, len(cols))
	for i, c := range cols {
		m, err := mapType(c.Name, c.TypeOID, c.TypeMod, c.AsText, r, 0)
		if err != nil {
			return nil, fmt.Errorf("mapping table %s.%s: %w", quoteIdent(schema), quoteIdent(table), err)
		}
		key := strings.ToLower(m.Name)
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("mapping table %s.%s: columns %q and %q map to the same name %q", quoteIdent(schema), quoteIdent(table), prev, c.Name, m.Name)
		}
		seen[key] = c.Name
		m.Key = c.Key
		m.place(full + "." + m.Name)
		t.Columns[i], t.BigQuery[i], fields[i] = m, m.BigQuery, m.AvroField()
	}
	b, err := json.Marshal(map[string]any{
		"type":   "record",
		"name":   full,
		"doc":    fmt.Sprintf("Postgres table %s.%s", quoteIdent(schema), quoteIdent(table)),
		"fields": fields,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding Avro schema of %s.%s: %w", quoteIdent(schema), quoteIdent(table), err)
	}
	t.AvroSchema = string(b)
	return t, nil
}

// Record converts one row image, the Postgres text of each column in column
// order (nil for NULL), to the goavro native record of AvroSchema. pgoutput's
// unchanged-TOAST marker is not a value: the caller resolves it first. A
// value that cannot be represented fails the row with a *DeadLetterError
// naming the table. Record is safe for concurrent use.
func (t *Table) Record(values [][]byte) (map[string]any, error) {
	if len(values) != len(t.Columns) {
		return nil, fmt.Errorf("converting row of %s.%s: %d values for %d columns", quoteIdent(t.Schema), quoteIdent(t.Name), len(values), len(t.Columns))
	}
	rec := make(map[string]any, len(values))
	for i, m := range t.Columns {
		v, err := m.Convert(values[i])
		if err != nil {
			var dl *DeadLetterError
			if errors.As(err, &dl) {
				dl.Table = t.Schema + "." + t.Name
			}
			return nil, err
		}
		rec[m.Name] = v
	}
	return rec, nil
}
