package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
)

// A column's type change in Postgres gives its BigQuery column either the
// same type (int → bigint are both INT64), a type BigQuery widens the column
// to without changing a stored value, or a type the column cannot hold. In
// the last case the new values go to a new column, named by TypeChangeName,
// and the old column keeps the values from before the change: no value is
// ever converted.
//
// The decision is a pure function of the table's schema versions in the
// order the schema store first stored them (ColumnNames): every process that
// writes objects (sink, backfill) or reads them (replay, verify) derives the
// same names from GCS alone, whatever state BigQuery's tables are in and in
// whatever order loads run. The names chosen are written into each Avro
// object's own schema, so a replay of the objects rebuilds the same tables.

// Evolution is what a column's BigQuery type in a new schema version does to
// the column already in the table.
type Evolution int

const (
	// Added: the table has no such column yet.
	Added Evolution = iota
	// Same: the column has this type already.
	Same
	// Widen: BigQuery widens the column in place to the new type (ALTER
	// COLUMN SET DATA TYPE), every stored value kept exactly.
	Widen
	// NewColumn: the column cannot hold the new type; the new values go to
	// a column of their own.
	NewColumn
)

func (e Evolution) String() string {
	switch e {
	case Added:
		return "added"
	case Same:
		return "same"
	case Widen:
		return "widen"
	case NewColumn:
		return "new column"
	}
	return fmt.Sprintf("Evolution(%d)", int(e))
}

// Widens reports whether BigQuery changes a column of type from into type to
// in place without changing any stored value: INT64 → NUMERIC, INT64 →
// BIGNUMERIC and NUMERIC → BIGNUMERIC. BigQuery also allows INT64 and
// NUMERIC → FLOAT64, which would round integers beyond 2^53 and decimals
// already stored, so those are not widenings here.
func Widens(from, to bigquery.FieldType) bool {
	switch from {
	case bigquery.IntegerFieldType:
		return to == bigquery.NumericFieldType || to == bigquery.BigNumericFieldType
	case bigquery.NumericFieldType:
		return to == bigquery.BigNumericFieldType
	}
	return false
}

// Evolve is what a column of type want does to the existing column have
// (nil when the table has no such column). REPEATED and RECORD columns are
// the same only when their mode and every nested field are; they never
// widen. key columns never widen either: their type also sits inside the
// changelog's before-key RECORD, where BigQuery cannot change a type.
func Evolve(have, want *bigquery.FieldSchema, key bool) Evolution {
	switch {
	case have == nil:
		return Added
	case sameType(have, want):
		return Same
	case !key && !have.Repeated && !want.Repeated && Widens(have.Type, want.Type):
		return Widen
	}
	return NewColumn
}

// sameType reports whether two fields have the same type and mode (REQUIRED
// and NULLABLE count as one: every table column is nullable), nested fields
// compared by name (case-insensitive, as BigQuery does) and type.
func sameType(a, b *bigquery.FieldSchema) bool {
	if a.Type != b.Type || a.Repeated != b.Repeated || len(a.Schema) != len(b.Schema) {
		return false
	}
	for i := range a.Schema {
		if !strings.EqualFold(a.Schema[i].Name, b.Schema[i].Name) || !sameType(a.Schema[i], b.Schema[i]) {
			return false
		}
	}
	return true
}

// TypeLabel is the lower-case GoogleSQL name of a field's type, as it ends a
// TypeChangeName: int64, float64, bool, string, numeric, bignumeric, date,
// timestamp, struct, json…; "array_" before it for a REPEATED field.
func TypeLabel(f *bigquery.FieldSchema) string {
	var s string
	switch f.Type {
	case bigquery.IntegerFieldType:
		s = "int64"
	case bigquery.FloatFieldType:
		s = "float64"
	case bigquery.BooleanFieldType:
		s = "bool"
	case bigquery.RecordFieldType:
		s = "struct"
	default:
		s = strings.ToLower(string(f.Type))
	}
	if f.Repeated {
		s = "array_" + s
	}
	return s
}

// TypeChangeName is the column that carries the values of column field once
// its type became f's and its existing column cannot hold them:
// "<field>__<TypeLabel>" (amount__string). That name is taken when the table
// has it for something else (another Postgres column's, or another type's:
// two RECORD shapes share the label "struct"); then the column is
// "<field>__<TypeLabel>__<8 hex digits>", the hash of the Postgres column and
// f's full type (typeKey), which no name BigQueryColumnName passes through
// can equal.
// Neither passes 300 characters (BigQuery's limit): a field is at most 76.
func TypeChangeName(field string, f *bigquery.FieldSchema, pgColumn string, hashed bool) string {
	name := field + "__" + TypeLabel(f)
	if hashed {
		name += "__" + nameHash(pgColumn+"\x00"+typeKey(f))
	}
	return name
}

// typeKey spells a field's type with its mode and nested fields (names and
// types), leaving out what does not make a type (descriptions):
// "STRING", "REPEATED INTEGER", "RECORD<a STRING,b DATE>".
func typeKey(f *bigquery.FieldSchema) string {
	var b strings.Builder
	if f.Repeated {
		b.WriteString("REPEATED ")
	}
	b.WriteString(string(f.Type))
	if len(f.Schema) > 0 {
		b.WriteByte('<')
		for i, g := range f.Schema {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(QuoteBigQuery(strings.ToLower(g.Name)) + " " + typeKey(g))
		}
		b.WriteByte('>')
	}
	return b.String()
}

// column is one column of a table as the versions so far made it.
type column struct {
	name  string
	field *bigquery.FieldSchema
	owner string // the Postgres column whose values it holds
}

// tableColumns are the columns of a table by lower-case name (BigQuery
// compares column names without regard to case).
type tableColumns map[string]*column

// plan gives every column of a version its changelog column, adding to or
// widening tc: the row field's own name when the table has no such column,
// the same type or a type it widens to; else TypeChangeName. It returns the
// fields whose column is not their own name.
func (tc tableColumns) plan(cols []StoredColumn) (renamed map[string]string, err error) {
	fields := make([]*bigquery.FieldSchema, len(cols))
	for i, c := range cols {
		if fields[i], err = storedField(c); err != nil {
			return nil, err
		}
	}
	// The version's own columns keep their names first, so that a column
	// created for a type change never takes one of them.
	taken := map[string]bool{}
	var moved []int
	for i, c := range cols {
		have := tc[strings.ToLower(c.Field)]
		if have != nil && have.owner != c.PGColumn {
			moved = append(moved, i) // the name holds another column's values
			continue
		}
		switch Evolve(fieldOf(have), fields[i], c.Key) {
		case Added:
			tc[strings.ToLower(c.Field)] = &column{name: c.Field, field: fields[i], owner: c.PGColumn}
		case Widen:
			if tc.carries(c, fields[i]) {
				// A version that did not widen (marked the column as part
				// of the key) gave these values a column already.
				moved = append(moved, i)
				continue
			}
			have.field = fields[i]
		case NewColumn:
			moved = append(moved, i)
			continue
		}
		taken[strings.ToLower(c.Field)] = true
	}
	renamed = map[string]string{}
	for _, i := range moved {
		c, f := cols[i], fields[i]
		name := ""
		for _, hashed := range []bool{false, true} {
			n := TypeChangeName(c.Field, f, c.PGColumn, hashed)
			have := tc[strings.ToLower(n)]
			if taken[strings.ToLower(n)] || have != nil && (have.owner != c.PGColumn || !sameType(have.field, f)) {
				continue
			}
			name = n
			break
		}
		if name == "" {
			return nil, fmt.Errorf("column %s: no free column name for its values of type %s (a 32-bit hash collision)", quoteIdent(c.PGColumn), TypeLabel(f))
		}
		if tc[strings.ToLower(name)] == nil {
			tc[strings.ToLower(name)] = &column{name: name, field: f, owner: c.PGColumn}
		}
		taken[strings.ToLower(name)] = true
		renamed[c.Field] = name
	}
	return renamed, nil
}

// carries reports whether tc has a column for c's values of type f made by
// an earlier type change.
func (tc tableColumns) carries(c StoredColumn, f *bigquery.FieldSchema) bool {
	for _, hashed := range []bool{false, true} {
		have := tc[strings.ToLower(TypeChangeName(c.Field, f, c.PGColumn, hashed))]
		if have != nil && have.owner == c.PGColumn && sameType(have.field, f) {
			return true
		}
	}
	return false
}

func fieldOf(c *column) *bigquery.FieldSchema {
	if c == nil {
		return nil
	}
	return c.field
}

// storedField reads a stored column's BigQuery field schema.
func storedField(c StoredColumn) (*bigquery.FieldSchema, error) {
	if len(c.BigQuery) == 0 {
		return nil, fmt.Errorf("stored schema lacks the BigQuery type of column %s", quoteIdent(c.PGColumn))
	}
	s, err := bigquery.SchemaFromJSON([]byte("[" + string(c.BigQuery) + "]"))
	if err != nil || len(s) != 1 {
		return nil, fmt.Errorf("reading the BigQuery type of column %s: %w", quoteIdent(c.PGColumn), errors.Join(err, errors.New("not one field")))
	}
	return s[0], nil
}

// ColumnNames decides the changelog column of every row field of es when
// prior are the table's earlier schema versions, oldest first: it returns
// the fields whose column is not their own name (a type change the column
// cannot hold), each with its column. prior is read up to es: es may be in
// it (History lists it once stored) or not. When it is, the stored version
// decides: the fingerprint leaves out the key flags (pg_key), so a reader's
// own mapping of the same version may mark other keys than the one stored.
func ColumnNames(prior []*EventSchema, es *EventSchema) (map[string]string, error) {
	tc := tableColumns{}
	for _, v := range prior {
		if v.Fingerprint == es.Fingerprint {
			es = v
			break
		}
		cols, err := v.Columns()
		if err != nil {
			return nil, err
		}
		if _, err := tc.plan(cols); err != nil {
			return nil, fmt.Errorf("schema version %s: %w", v.FingerprintHex(), err)
		}
	}
	cols, err := es.Columns()
	if err != nil {
		return nil, err
	}
	renamed, err := tc.plan(cols)
	if err != nil {
		return nil, fmt.Errorf("schema version %s: %w", es.FingerprintHex(), err)
	}
	return renamed, nil
}

// TableName is the Postgres schema and table the event schema describes.
func (s *EventSchema) TableName() (schema, table string, err error) {
	var env struct {
		Tributary struct {
			Schema string `json:"schema"`
			Table  string `json:"table"`
		} `json:"tributary"`
	}
	if err := json.Unmarshal([]byte(s.JSON), &env); err != nil {
		return "", "", fmt.Errorf("reading event schema %s: %w", s.FingerprintHex(), err)
	}
	return env.Tributary.Schema, env.Tributary.Table, nil
}

// History lists the stored schema versions of Postgres table schema.table,
// oldest first: in the order the store first wrote them (the objects'
// creation times, which never change because objects are never replaced),
// fingerprints breaking ties.
func (s *Store) History(ctx context.Context, schema, table string) ([]*EventSchema, error) {
	prefix := strings.TrimSuffix(s.ObjectName(0), "0000000000000000.avsc")
	type version struct {
		es      *EventSchema
		created time.Time
	}
	var out []version
	it := s.bucket.Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		var fp uint64
		if _, err := fmt.Sscanf(strings.TrimPrefix(a.Name, prefix), "%016x.avsc", &fp); err != nil {
			continue // not a schema
		}
		if fp == MarkerFingerprint {
			continue // the markers' schema, stored beside the tables' versions
		}
		es, err := s.Get(ctx, fp)
		if err != nil {
			return nil, err
		}
		sch, tbl, err := es.TableName()
		if err != nil {
			return nil, err
		}
		if sch == schema && tbl == table {
			out = append(out, version{es, a.Created})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].created.Equal(out[j].created) {
			return out[i].created.Before(out[j].created)
		}
		return out[i].es.Fingerprint < out[j].es.Fingerprint
	})
	h := make([]*EventSchema, len(out))
	for i, v := range out {
		h[i] = v.es
	}
	return h, nil
}

// Changelog is the changelog record of es with the column names its
// table's history gives it (ColumnNames over History): what the sink and
// backfill write and verify reads. es need not be stored yet (verify's own
// mapping of a table nobody changed since); it then comes after every
// stored version.
func (s *Store) Changelog(ctx context.Context, es *EventSchema) (*Changelog, error) {
	sch, tbl, err := es.TableName()
	if err != nil {
		return nil, err
	}
	history, err := s.History(ctx, sch, tbl)
	if err != nil {
		return nil, err
	}
	renamed, err := ColumnNames(history, es)
	if err != nil {
		return nil, fmt.Errorf("naming the columns of %s.%s: %w", quoteIdent(sch), quoteIdent(tbl), err)
	}
	return NewChangelogColumns(es, renamed)
}
