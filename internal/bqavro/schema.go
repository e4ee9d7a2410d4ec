package bqavro

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bigquery "google.golang.org/api/bigquery/v2"
)

// encoding says how a decoded Avro value is written for the emulator.
type encoding int

const (
	encBool encoding = iota
	encInt
	encFloat
	encBytes
	encString
	encJSON
	encDecimal
	encDate
	encTime
	encTimestamp
	encLocalMillis
	encLocalMicros
	encDatetimeString
	encArray
	encMap
	encRecord
	encNullable
)

// node is one Avro type resolved to its BigQuery column type.
type node struct {
	enc   encoding
	bq    string // BigQuery type name; empty for arrays, maps and nullable wrappers
	scale int    // decimal scale
	prec  int    // decimal precision
	items *node  // array element, map value, or the non-null branch of a nullable union
	// fields of a record, in schema order
	fields []*field
}

type field struct {
	name string
	doc  string
	node *node
}

// Schema is a parsed Avro writer schema whose top level is a record.
type Schema struct {
	root *node
}

// ParseSchema parses an Avro writer schema and resolves every field to the
// BigQuery type a load job with useAvroLogicalTypes derives. The top-level type
// must be a record. Unsupported constructs return an error naming the field path.
func ParseSchema(avroSchemaJSON string) (*Schema, error) {
	var v any
	if err := json.Unmarshal([]byte(avroSchemaJSON), &v); err != nil {
		return nil, fmt.Errorf("parsing Avro schema: %w", err)
	}
	p := &parser{named: map[string]*node{}, building: map[string]bool{}}
	root, err := p.parse(v, "", "")
	if err != nil {
		return nil, err
	}
	if root.enc != encRecord {
		return nil, errors.New("parsing Avro schema: top-level type is not a record")
	}
	return &Schema{root: root}, nil
}

// TableSchema returns the BigQuery table fields a load job with
// useAvroLogicalTypes derives from an Avro writer schema.
func TableSchema(avroSchemaJSON string) ([]*bigquery.TableFieldSchema, error) {
	s, err := ParseSchema(avroSchemaJSON)
	if err != nil {
		return nil, err
	}
	return s.Fields()
}

// Fields returns the BigQuery table fields of s.
func (s *Schema) Fields() ([]*bigquery.TableFieldSchema, error) {
	return recordFields(s.root, "", nil)
}

// FieldsForDecimalTargets returns the table fields of s for a load job with
// decimalTargetTypes: a decimal becomes the first of NUMERIC, BIGNUMERIC and
// STRING that is listed and holds its precision and scale. Empty targets
// mean the default, as in Fields.
func (s *Schema) FieldsForDecimalTargets(targets []string) ([]*bigquery.TableFieldSchema, error) {
	return recordFields(s.root, "", targets)
}

func recordFields(n *node, path string, targets []string) ([]*bigquery.TableFieldSchema, error) {
	out := make([]*bigquery.TableFieldSchema, 0, len(n.fields))
	for _, f := range n.fields {
		fs, err := fieldSchema(f.name, f.doc, f.node, joinPath(path, f.name), targets)
		if err != nil {
			return nil, err
		}
		out = append(out, fs)
	}
	return out, nil
}

// fieldSchema maps one field: arrays and maps are REPEATED, [null, T] unions
// are NULLABLE, everything else is REQUIRED.
func fieldSchema(name, doc string, n *node, path string, targets []string) (*bigquery.TableFieldSchema, error) {
	mode := "REQUIRED"
	if n.enc == encNullable {
		mode = "NULLABLE"
		n = n.items
	}
	if n.enc == encArray {
		mode = "REPEATED"
		n = unwrapNullable(n.items)
		if n.enc == encArray || n.enc == encMap {
			return nil, fmt.Errorf("field %s: arrays of arrays or maps are not supported by BigQuery", path)
		}
	}
	fs := &bigquery.TableFieldSchema{Name: name, Description: doc, Mode: mode}
	switch n.enc {
	case encMap:
		return mapSchema(fs, n, path, targets)
	case encRecord:
		fields, err := recordFields(n, path, targets)
		if err != nil {
			return nil, err
		}
		fs.Type, fs.Fields = "RECORD", fields
	case encDecimal:
		t, err := decimalType(n.prec, n.scale, targets)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", path, err)
		}
		fs.Type = t
	default:
		fs.Type = n.bq
	}
	return fs, nil
}

// mapSchema maps map<T> to REPEATED RECORD{key STRING, value T}.
func mapSchema(fs *bigquery.TableFieldSchema, n *node, path string, targets []string) (*bigquery.TableFieldSchema, error) {
	value, err := fieldSchema("value", "", n.items, path+".value", targets)
	if err != nil {
		return nil, err
	}
	fs.Mode, fs.Type = "REPEATED", "RECORD"
	fs.Fields = []*bigquery.TableFieldSchema{{Name: "key", Type: "STRING", Mode: "REQUIRED"}, value}
	return fs, nil
}

func unwrapNullable(n *node) *node {
	if n.enc == encNullable {
		return n.items
	}
	return n
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// parser resolves an Avro schema, keeping named types by full name.
type parser struct {
	named    map[string]*node
	building map[string]bool
}

func (p *parser) parse(v any, ns, path string) (*node, error) {
	switch t := v.(type) {
	case string:
		return p.parseName(t, ns, path)
	case []any:
		return p.parseUnion(t, ns, path)
	case map[string]any:
		return p.parseObject(t, ns, path)
	}
	return nil, fmt.Errorf("field %s: schema is neither a name, a union nor an object", displayPath(path))
}

func displayPath(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

var primitives = map[string]*node{
	"boolean": {enc: encBool, bq: "BOOLEAN"},
	"int":     {enc: encInt, bq: "INTEGER"},
	"long":    {enc: encInt, bq: "INTEGER"},
	"float":   {enc: encFloat, bq: "FLOAT"},
	"double":  {enc: encFloat, bq: "FLOAT"},
	"bytes":   {enc: encBytes, bq: "BYTES"},
	"string":  {enc: encString, bq: "STRING"},
}

func (p *parser) parseName(name, ns, path string) (*node, error) {
	if n, ok := primitives[name]; ok {
		return n, nil
	}
	if name == "null" {
		return nil, fmt.Errorf("field %s: a field of type null only is not supported", displayPath(path))
	}
	full := fullName(name, "", ns)
	if p.building[full] || (!strings.Contains(name, ".") && p.building[name]) {
		return nil, fmt.Errorf("field %s: recursive type %s is not supported by BigQuery", displayPath(path), full)
	}
	if n, ok := p.named[full]; ok {
		return n, nil
	}
	if n, ok := p.named[name]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("field %s: unknown type %q", displayPath(path), name)
}

// parseUnion accepts only [null, T] and [T, null], which BigQuery maps to NULLABLE T.
func (p *parser) parseUnion(branches []any, ns, path string) (*node, error) {
	var other []any
	nulls := 0
	for _, b := range branches {
		if s, ok := b.(string); ok && s == "null" {
			nulls++
			continue
		}
		other = append(other, b)
	}
	if nulls != 1 || len(other) != 1 {
		return nil, fmt.Errorf("field %s: only unions of null and one other type are supported, got %d branches", displayPath(path), len(branches))
	}
	inner, err := p.parse(other[0], ns, path)
	if err != nil {
		return nil, err
	}
	if inner.enc == encNullable {
		return nil, fmt.Errorf("field %s: nested unions are not valid Avro", displayPath(path))
	}
	return &node{enc: encNullable, items: inner}, nil
}

func (p *parser) parseObject(m map[string]any, ns, path string) (*node, error) {
	typ, ok := m["type"].(string)
	if !ok {
		return p.parse(m["type"], ns, path)
	}
	switch typ {
	case "record", "error":
		return p.parseRecord(m, ns, path)
	case "enum":
		return p.define(m, ns, path, &node{enc: encString, bq: "STRING"})
	case "fixed":
		n, err := p.logical(m, "fixed", path)
		if err != nil {
			return nil, err
		}
		return p.define(m, ns, path, n)
	case "array":
		items, err := p.parse(m["items"], ns, path)
		if err != nil {
			return nil, err
		}
		return &node{enc: encArray, items: items}, nil
	case "map":
		values, err := p.parse(m["values"], ns, path)
		if err != nil {
			return nil, err
		}
		return &node{enc: encMap, items: values}, nil
	}
	if _, ok := primitives[typ]; ok {
		return p.logical(m, typ, path)
	}
	return p.parseName(typ, ns, path)
}

// define registers a named type (enum or fixed) under its full name.
func (p *parser) define(m map[string]any, ns, path string, n *node) (*node, error) {
	name, _ := m["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("field %s: named type without a name", displayPath(path))
	}
	nsAttr, _ := m["namespace"].(string)
	p.named[fullName(name, nsAttr, ns)] = n
	return n, nil
}

func (p *parser) parseRecord(m map[string]any, ns, path string) (*node, error) {
	name, _ := m["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("field %s: record without a name", displayPath(path))
	}
	nsAttr, _ := m["namespace"].(string)
	full := fullName(name, nsAttr, ns)
	p.building[full] = true
	defer delete(p.building, full)
	fields, ok := m["fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("field %s: record %s has no fields list", displayPath(path), full)
	}
	n := &node{enc: encRecord, bq: "RECORD"}
	for _, fv := range fields {
		f, err := p.parseField(fv, namespaceOf(full), path)
		if err != nil {
			return nil, err
		}
		n.fields = append(n.fields, f)
	}
	p.named[full] = n
	return n, nil
}

func (p *parser) parseField(v any, ns, path string) (*field, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("field %s: field is not an object", displayPath(path))
	}
	name, _ := m["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("field %s: field without a name", displayPath(path))
	}
	fpath := joinPath(path, name)
	n, err := p.parse(m["type"], ns, fpath)
	if err != nil {
		return nil, err
	}
	doc, _ := m["doc"].(string)
	return &field{name: name, doc: doc, node: n}, nil
}

// fullName applies the Avro naming rules: a dotted name is already full,
// otherwise the explicit namespace, else the enclosing one, is prefixed.
func fullName(name, nsAttr, enclosing string) string {
	if strings.Contains(name, ".") {
		return name
	}
	if nsAttr != "" {
		return nsAttr + "." + name
	}
	if enclosing != "" {
		return enclosing + "." + name
	}
	return name
}

func namespaceOf(full string) string {
	if i := strings.LastIndex(full, "."); i >= 0 {
		return full[:i]
	}
	return ""
}

// logical maps a primitive or fixed type with its logicalType (and the sqlType
// JSON annotation). Logical types on the wrong underlying type are ignored, as
// the Avro specification requires.
func (p *parser) logical(m map[string]any, typ, path string) (*node, error) {
	lt, _ := m["logicalType"].(string)
	sqlType, _ := m["sqlType"].(string)
	switch {
	case typ == "string" && strings.EqualFold(sqlType, "JSON"):
		return &node{enc: encJSON, bq: "JSON"}, nil
	case lt == "decimal" && (typ == "bytes" || typ == "fixed"):
		return decimalNode(m, path)
	case typ == "int" && lt == "date":
		return &node{enc: encDate, bq: "DATE"}, nil
	case typ == "int" && lt == "time-millis", typ == "long" && lt == "time-micros":
		return &node{enc: encTime, bq: "TIME"}, nil
	case typ == "long" && (lt == "timestamp-millis" || lt == "timestamp-micros"):
		return &node{enc: encTimestamp, bq: "TIMESTAMP"}, nil
	case typ == "long" && lt == "local-timestamp-millis":
		return &node{enc: encLocalMillis, bq: "DATETIME"}, nil
	case typ == "long" && lt == "local-timestamp-micros":
		return &node{enc: encLocalMicros, bq: "DATETIME"}, nil
	case typ == "string" && lt == "datetime":
		return &node{enc: encDatetimeString, bq: "DATETIME"}, nil
	case typ == "fixed":
		return &node{enc: encBytes, bq: "BYTES"}, nil
	}
	return primitives[typ], nil
}

// decimalType picks the column type of decimal(prec, scale) as BigQuery does:
// the first of NUMERIC (0 <= scale <= 9, prec - scale <= 29), BIGNUMERIC
// (0 <= scale <= 38, prec - scale <= 38) and STRING (anything) that is among
// targets, where no targets means NUMERIC and BIGNUMERIC.
func decimalType(prec, scale int, targets []string) (string, error) {
	if len(targets) == 0 {
		targets = []string{"NUMERIC", "BIGNUMERIC"}
	}
	listed := func(t string) bool {
		for _, x := range targets {
			if strings.EqualFold(x, t) {
				return true
			}
		}
		return false
	}
	switch {
	case listed("NUMERIC") && scale <= 9 && prec-scale <= 29:
		return "NUMERIC", nil
	case listed("BIGNUMERIC") && scale <= 38 && prec-scale <= 38:
		return "BIGNUMERIC", nil
	case listed("STRING"):
		return "STRING", nil
	}
	return "", fmt.Errorf("decimal(%d, %d) fits none of the decimal target types %v", prec, scale, targets)
}

// decimalNode checks a decimal's precision and scale. Its column type is
// decided by decimalType when the table fields are derived.
func decimalNode(m map[string]any, path string) (*node, error) {
	prec, okP := intAttr(m, "precision")
	scale, okS := intAttr(m, "scale")
	if !okS {
		scale, okS = 0, m["scale"] == nil
	}
	if !okP || !okS || prec < 1 || scale < 0 || scale > prec {
		return nil, fmt.Errorf("field %s: decimal needs 1 <= precision and 0 <= scale <= precision", displayPath(path))
	}
	return &node{enc: encDecimal, prec: prec, scale: scale}, nil
}

func intAttr(m map[string]any, key string) (int, bool) {
	f, ok := m[key].(float64)
	if !ok || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}
