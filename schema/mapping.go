package schema

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"cloud.google.com/go/bigquery"
)

// repr is how a mapping represents its values, the switch every conversion
// turns on.
type repr uint8

const (
	rBool        repr = iota
	rInt32            // int2, int4: Avro int
	rInt64            // int8, oid: Avro long
	rFloat32          // float4: Avro float
	rFloat64          // float8: Avro double
	rDecimal          // constrained numeric: Avro decimal
	rMoney            // money: Avro decimal(19,2)
	rText             // Postgres' exact text: Avro string
	rUUID             // uuid: Avro string with logicalType uuid
	rBytes            // bytea: Avro bytes
	rJSON             // json, jsonb: Avro string with sqlType JSON
	rHstore           // hstore: a JSON object of strings
	rDate             // date: Avro date
	rTime             // time: Avro time-micros
	rTimestamp        // timestamp: Avro local-timestamp-micros
	rTimestamptz      // timestamptz: Avro timestamp-micros
	rInterval         // interval: ISO 8601 text
	rArray            // arrays: a JSON array
	rRecord           // composite types: Avro record
)

// BigQuery limits on NUMERIC and BIGNUMERIC: NUMERIC holds 29 integer and 9
// fractional digits, BIGNUMERIC 38 and 38 (and part of a 39th integer digit,
// which a fixed precision cannot use).
const (
	numericIntDigits    = 29
	numericScale        = 9
	bigNumericIntDigits = 38
	bigNumericScale     = 38
)

// maxDepth bounds the nesting of composite types and arrays, against a
// composite type that contains itself through an array.
const maxDepth = 32

// Mapping is how one Postgres column (or composite attribute, or array
// element) becomes an Avro value and a BigQuery value. The field is always
// nullable: Avro declares it ["null", Avro] with default null.
type Mapping struct {
	// Column is the Postgres name of the column or attribute, as spelled there.
	Column string
	// Name is BigQueryColumnName(Column): the BigQuery column and the Avro field.
	Name string
	// PG is the Postgres type as written in SQL: "numeric(10,2)", "int4[]",
	// "public.mood".
	PG string
	// Avro is the Avro type of the non-null values, JSON-able: "long", or a
	// map such as {"type":"int","logicalType":"date"}.
	Avro any
	// BigQuery is the column's BigQuery field schema; its Description names
	// the Postgres column and type and says how values are represented.
	BigQuery *bigquery.FieldSchema
	// Lossless is true when every value of the type is represented exactly;
	// when false, Policy says which values go to the dead-letter and why.
	Lossless bool
	// Policy says in a sentence how values are represented and what happens
	// to those that cannot be.
	Policy string
	// Key is set for a table column that is part of the replica identity
	// (the primary key, or the REPLICA IDENTITY index).
	Key bool

	repr      repr
	unionName string     // goavro's name of the non-null branch of ["null", Avro]
	scale     int        // decimal and money
	elem      *Mapping   // array element
	fields    []*Mapping // composite attributes
}

// MapColumn maps column c, resolving its type (and any element, base or
// attribute types) with r. Types without a specific mapping, built-in or from
// an extension, map to STRING holding Postgres' exact text, which is lossless.
//
// A composite column's Avro record is named by the column (see MapTable for
// the names inside a table's schema).
func MapColumn(c Column, r TypeResolver) (*Mapping, error) {
	m, err := mapType(c.Name, c.TypeOID, c.TypeMod, c.AsText, r, 0)
	if err != nil {
		return nil, err
	}
	m.place(m.Name)
	return m, nil
}

func mapType(name string, oid OID, typmod int32, asText bool, r TypeResolver, depth int) (*Mapping, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("mapping %q: types nested more than %d deep", name, maxDepth)
	}
	ti, err := r.Type(oid)
	if err != nil {
		return nil, fmt.Errorf("mapping column %q: %w", name, err)
	}
	pgName := typeName(ti, typmod, r)
	m := &Mapping{Column: name, Name: BigQueryColumnName(name), PG: pgName}
	if asText {
		m.setText("exact Postgres text, configured per column")
		return m.finish(), nil
	}
	switch ti.Kind {
	case KindDomain:
		mod := ti.TypeMod
		if mod < 0 {
			mod = typmod
		}
		base, err := mapType(name, ti.Elem, mod, false, r, depth+1)
		if err != nil {
			return nil, err
		}
		base.PG = pgName + " (domain over " + base.PG + ")"
		base.BigQuery.Description = ""
		return base.finish(), nil
	case KindEnum:
		m.setText("the enum label")
	case KindArray:
		elem, err := mapType(name, ti.Elem, typmod, false, r, depth+1)
		if err != nil {
			return nil, err
		}
		if elem.repr == rText && isBoxLike(elem) {
			m.setText("exact Postgres text (box arrays are delimited by ';', so they are kept whole)")
			break
		}
		m.mapArray(elem)
	case KindComposite:
		if err := m.mapRecord(ti, r, depth); err != nil {
			return nil, err
		}
	case KindRange, KindMultirange:
		m.setText("exact Postgres text, bounds and inclusivity as Postgres prints them")
	default:
		m.mapBase(ti, typmod)
	}
	return m.finish(), nil
}

func isBoxLike(m *Mapping) bool { return m.PG == "box" }

// finish fills the parts every mapping derives the same way.
func (m *Mapping) finish() *Mapping {
	if m.BigQuery.Description == "" {
		m.BigQuery.Description = truncateUTF8(fmt.Sprintf("Postgres %s %s: %s", quoteIdent(m.Column), m.PG, m.Policy), 1024)
	}
	m.BigQuery.Name = m.Name
	return m
}

func (m *Mapping) set(r repr, avro any, union string, bq bigquery.FieldType, lossless bool, policy string) {
	m.repr, m.Avro, m.unionName, m.Lossless, m.Policy = r, avro, union, lossless, policy
	m.BigQuery = &bigquery.FieldSchema{Type: bq}
}

func (m *Mapping) setText(policy string) {
	m.set(rText, "string", "string", bigquery.StringFieldType, true, "STRING holding "+policy)
}

var jsonAvro = map[string]any{"type": "string", "sqlType": "JSON"}

func (m *Mapping) mapBase(ti TypeInfo, typmod int32) {
	switch ti.Name {
	case "bool":
		m.set(rBool, "boolean", "boolean", bigquery.BooleanFieldType, true, "exact")
	case "int2", "int4":
		m.set(rInt32, "int", "int", bigquery.IntegerFieldType, true, "exact")
	case "int8", "oid", "xid", "cid":
		m.set(rInt64, "long", "long", bigquery.IntegerFieldType, true, "exact")
	case "float4":
		m.set(rFloat32, "float", "float", bigquery.FloatFieldType, true, "exact: FLOAT64 holds every float4 value, NaN and ±Infinity included")
	case "float8":
		m.set(rFloat64, "double", "double", bigquery.FloatFieldType, true, "exact, NaN and ±Infinity included")
	case "numeric":
		m.mapNumeric(typmod)
	case "money":
		m.scale = 2
		m.set(rMoney, decimalAvro(19, 2), "bytes.decimal", bigquery.NumericFieldType, false,
			"NUMERIC with scale 2, read from money text in the C locale (lc_monetary=C); text in any other form goes to the dead-letter")
	case "uuid":
		m.set(rUUID, map[string]any{"type": "string", "logicalType": "uuid"}, "string", bigquery.StringFieldType, true, "exact text, lower-case with hyphens as Postgres prints it")
	case "bytea":
		m.set(rBytes, "bytes", "bytes", bigquery.BytesFieldType, true, "exact")
	case "json", "jsonb":
		m.set(rJSON, jsonAvro, "string", bigquery.JSONFieldType, false,
			"JSON; Avro keeps Postgres' exact text. A document with a duplicate key or a number that INT64, UINT64 or FLOAT64 cannot hold exactly goes to the dead-letter")
	case "hstore":
		m.set(rHstore, jsonAvro, "string", bigquery.JSONFieldType, true, "JSON object of string (or null) values")
	case "date":
		m.set(rDate, map[string]any{"type": "int", "logicalType": "date"}, "int.date", bigquery.DateFieldType, false,
			"DATE; ±infinity and dates outside 0001-01-01..9999-12-31 (BC, or years past 9999) go to the dead-letter")
	case "time":
		m.set(rTime, map[string]any{"type": "long", "logicalType": "time-micros"}, "long.time-micros", bigquery.TimeFieldType, false,
			"TIME; 24:00:00, which BigQuery TIME cannot hold, goes to the dead-letter")
	case "timestamp":
		m.set(rTimestamp, map[string]any{"type": "long", "logicalType": "local-timestamp-micros"}, "long", bigquery.DateTimeFieldType, false,
			"DATETIME; ±infinity and values outside 0001-01-01..9999-12-31 go to the dead-letter")
	case "timestamptz":
		m.set(rTimestamptz, map[string]any{"type": "long", "logicalType": "timestamp-micros"}, "long.timestamp-micros", bigquery.TimestampFieldType, false,
			"TIMESTAMP (UTC); ±infinity and instants outside 0001-01-01..9999-12-31 UTC go to the dead-letter")
	case "interval":
		m.set(rInterval, "string", "string", bigquery.StringFieldType, true,
			"STRING in ISO 8601 form as Postgres prints it with IntervalStyle iso_8601 (P1Y2M3DT4H5M6.5S); ±infinity as Postgres prints it")
	case "timetz":
		m.setText("exact Postgres text (BigQuery has no time with time zone)")
	case "varchar", "bpchar", "text", "name", "char", "xml", "citext":
		m.setText("exact Postgres text")
	default:
		m.setText("exact Postgres text")
	}
}

// mapNumeric picks NUMERIC, BIGNUMERIC or STRING for numeric with modifier
// typmod. Postgres 15 allows a negative scale (rounding to tens, hundreds…)
// and a scale above the precision; both are handled by counting integer and
// fractional digits.
func (m *Mapping) mapNumeric(typmod int32) {
	if typmod < 4 {
		m.set(rText, "string", "string", bigquery.StringFieldType, true,
			"STRING holding Postgres' exact text: an unconstrained numeric holds up to 131072 integer and 16383 fractional digits, NaN and ±Infinity, which no BigQuery number holds")
		return
	}
	p, s := numericPrecisionScale(typmod)
	intDigits := max(p-s, 0)
	scale := max(s, 0)
	prec := intDigits + scale
	var bq bigquery.FieldType
	switch {
	case intDigits <= numericIntDigits && scale <= numericScale:
		bq = bigquery.NumericFieldType
	case intDigits <= bigNumericIntDigits && scale <= bigNumericScale:
		bq = bigquery.BigNumericFieldType
	default:
		m.set(rText, "string", "string", bigquery.StringFieldType, true,
			fmt.Sprintf("STRING holding Postgres' exact text: numeric(%d,%d) has more digits than BIGNUMERIC holds", p, s))
		return
	}
	m.scale = scale
	m.set(rDecimal, decimalAvro(prec, scale), "bytes.decimal", bq, false,
		fmt.Sprintf("%s (Avro decimal(%d,%d)); NaN, which BigQuery numbers cannot hold, goes to the dead-letter", bq, prec, scale))
}

// numericPrecisionScale decodes a numeric typmod as Postgres does.
func numericPrecisionScale(typmod int32) (p, s int) {
	t := typmod - 4
	p = int((t >> 16) & 0xffff)
	s = int(((t & 0x7ff) ^ 1024) - 1024)
	return p, s
}

func decimalAvro(p, s int) map[string]any {
	return map[string]any{"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}
}

func (m *Mapping) mapArray(elem *Mapping) {
	m.elem = elem
	m.set(rArray, jsonAvro, "string", bigquery.JSONFieldType, false,
		"JSON array (nested per dimension) of the elements: numbers for integers and finite floats, booleans, "+
			"objects for hstore and composites (keyed by attribute name), and strings holding Postgres' exact text for everything else; "+
			"an array whose lower bound is not 1 goes to the dead-letter")
}

func (m *Mapping) mapRecord(ti TypeInfo, r TypeResolver, depth int) error {
	fields := make([]*Mapping, len(ti.Fields))
	schema := make(bigquery.Schema, len(ti.Fields))
	avroFields := make([]any, len(ti.Fields))
	seen := make(map[string]string, len(ti.Fields))
	lossless := true
	for i, f := range ti.Fields {
		fm, err := mapType(f.Name, f.TypeOID, f.TypeMod, false, r, depth+1)
		if err != nil {
			return err
		}
		if prev, dup := seen[strings.ToLower(fm.Name)]; dup {
			return fmt.Errorf("mapping %s: attributes %q and %q map to the same name %q", m.PG, prev, f.Name, fm.Name)
		}
		seen[strings.ToLower(fm.Name)] = f.Name
		fields[i], schema[i], avroFields[i] = fm, fm.BigQuery, fm.AvroField()
		lossless = lossless && fm.Lossless
	}
	m.fields = fields
	policy := "RECORD of the attributes, each mapped as its own type"
	if !lossless {
		policy += "; an attribute value that goes to the dead-letter takes the row with it"
	}
	m.set(rRecord, map[string]any{"type": "record", "name": "", "fields": avroFields}, "", bigquery.RecordFieldType, lossless, policy)
	m.BigQuery.Schema = schema
	return nil
}

// place names the Avro records of m (and of its attributes, recursively) by
// their path, fullname being the dotted path of Avro names from the table's
// record down, so every record in a table's schema has its own name however
// often a composite type is used. goavro names a record branch of a union by
// that fullname.
func (m *Mapping) place(fullname string) {
	if m.repr != rRecord {
		return
	}
	m.unionName = fullname
	avroFields := make([]any, len(m.fields))
	for i, f := range m.fields {
		f.place(fullname + "." + f.Name)
		avroFields[i] = f.AvroField()
	}
	m.Avro = map[string]any{"type": "record", "name": fullname, "fields": avroFields}
}

// AvroField is the Avro record field for the mapping: its name, the type
// ["null", Avro] with default null, and a doc naming the Postgres column and
// type.
func (m *Mapping) AvroField() map[string]any {
	return map[string]any{
		"name":    m.Name,
		"type":    []any{"null", m.Avro},
		"default": nil,
		"doc":     fmt.Sprintf("Postgres %s %s", quoteIdent(m.Column), m.PG),
		// Kept beside the field so a reader of the stored schema alone finds
		// the original column (custom attributes do not change the fingerprint).
		"pg_column": m.Column,
		"pg_type":   m.PG,
		"pg_key":    m.Key,
		"bigquery":  bigQueryFieldJSON(m.BigQuery),
	}
}

// bigQueryFieldJSON is f in BigQuery's REST form, for the stored schema.
func bigQueryFieldJSON(f *bigquery.FieldSchema) json.RawMessage {
	b, err := bigquery.Schema{f}.ToJSONFields()
	if err != nil {
		return nil
	}
	var fields []json.RawMessage
	if json.Unmarshal(b, &fields) != nil || len(fields) != 1 {
		return nil
	}
	return fields[0]
}

// typeName renders a type as SQL would write it, typmod included.
func typeName(ti TypeInfo, typmod int32, r TypeResolver) string {
	if ti.Kind == KindArray {
		if et, err := r.Type(ti.Elem); err == nil {
			return typeName(et, typmod, r) + "[]"
		}
	}
	name := ti.Name
	if name == "char" {
		name = `"char"`
	}
	if ti.Schema != "" && ti.Schema != "pg_catalog" {
		name = quoteIdent(ti.Schema) + "." + quoteIdent(ti.Name)
	}
	if typmod < 0 {
		return name
	}
	switch ti.Name {
	case "numeric":
		if typmod >= 4 {
			p, s := numericPrecisionScale(typmod)
			return fmt.Sprintf("numeric(%d,%d)", p, s)
		}
	case "varchar", "bpchar":
		if typmod >= 4 {
			return name + "(" + strconv.Itoa(int(typmod-4)) + ")"
		}
	case "bit", "varbit", "time", "timetz", "timestamp", "timestamptz":
		return name + "(" + strconv.Itoa(int(typmod)) + ")"
	case "interval":
		if p := typmod & 0xffff; p != 0xffff {
			return name + "(" + strconv.Itoa(int(p)) + ")"
		}
	}
	return name
}

// quoteIdent quotes a Postgres identifier when it needs quoting to be read
// back as the same name.
// QuoteIdent spells a Postgres name as Postgres would need it quoted: as is
// when it is a plain lower-case identifier (letters, digits, _ and $, not
// starting with a digit or $), else in double quotes with quotes doubled. It
// is the spelling of table names in messages, attributes and ordering keys.
func QuoteIdent(s string) string {
	plain := s != ""
	for i, c := range s {
		if !(c == '_' || (c >= 'a' && c <= 'z') || (i > 0 && (c >= '0' && c <= '9' || c == '$'))) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func quoteIdent(s string) string { return QuoteIdent(s) }

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
