package schema

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"github.com/jackc/pgx/v5/pgtype"
)

// The canonical form of a value is JSON text, the same from every side:
// null for NULL; a JSON string holding the canonical text of a scalar; a JSON
// array (nested per dimension) for a Postgres array; a JSON object keyed by
// the Postgres attribute names, in attribute order, for a composite value.
// Canonical scalar texts:
//
//	bool          true, false
//	integers      decimal digits
//	float4/8      shortest text that reads back as the same float of its size; NaN, Infinity, -Infinity
//	numeric(p,s)  exact decimal with the column's scale (0 for a negative scale): 1.50
//	money         exact decimal with 2 places: -1234.56
//	date          2006-01-02
//	time          15:04:05.000000
//	timestamp     2006-01-02T15:04:05.000000
//	timestamptz   2006-01-02T15:04:05.000000Z (UTC)
//	interval      ISO 8601 as Postgres prints it with IntervalStyle iso_8601
//	bytea         \x and lower-case hex
//	json, jsonb, hstore, the canonical JSON text: no white space, object keys
//	              sorted, numbers by value (integers in full, other numbers as
//	              the shortest float text when that is exact)
//	everything else Postgres' exact text
//
// Date and timestamp values outside what BigQuery holds keep Postgres' text.

// Canonical returns the canonical form of a Postgres value given as pgoutput
// sends it (nil for NULL). Errors are *DeadLetterError.
func (m *Mapping) Canonical(text []byte) (string, error) {
	b, err := m.canonPG(nil, text)
	if err != nil {
		return "", m.deadLetter(text, err)
	}
	return string(b), nil
}

func (m *Mapping) canonPG(buf, text []byte) ([]byte, error) {
	if text == nil {
		return append(buf, "null"...), nil
	}
	switch m.repr {
	case rArray:
		a, err := splitArray(text)
		if err != nil {
			return nil, err
		}
		for _, d := range a.Dims {
			if d.LowerBound != 1 {
				return nil, reasonf("array lower bound %d has no canonical form", d.LowerBound)
			}
		}
		if len(a.Dims) == 0 {
			return append(buf, "[]"...), nil
		}
		i := 0
		return m.elem.canonDims(buf, a, 0, &i)
	case rRecord:
		raw, err := splitComposite(text, len(m.fields))
		if err != nil {
			return nil, err
		}
		buf = append(buf, '{')
		for i, f := range m.fields {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, f.Column)
			buf = append(buf, ':')
			if buf, err = f.canonPG(buf, raw[i]); err != nil {
				return nil, within("."+f.Column, err)
			}
		}
		return append(buf, '}'), nil
	}
	s, err := m.canonText(text)
	if err != nil {
		return nil, err
	}
	return appendJSONString(buf, s), nil
}

func (e *Mapping) canonDims(buf []byte, a pgtype.Array[*string], dim int, i *int) ([]byte, error) {
	buf = append(buf, '[')
	for k := int32(0); k < a.Dims[dim].Length; k++ {
		if k > 0 {
			buf = append(buf, ',')
		}
		var err error
		if dim+1 < len(a.Dims) {
			buf, err = e.canonDims(buf, a, dim+1, i)
		} else {
			idx := *i
			*i++
			var t []byte
			if a.Elements[idx] != nil {
				t = []byte(*a.Elements[idx])
			}
			if buf, err = e.canonPG(buf, t); err != nil {
				err = within("["+strconv.Itoa(idx+1)+"]", err)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return append(buf, ']'), nil
}

// canonText is the canonical text of a scalar given as Postgres text (or, for
// array elements read back from JSON, as the JSON scalar's text).
func (m *Mapping) canonText(text []byte) (string, error) {
	switch m.repr {
	case rBool:
		b, err := parseBool(text)
		return strconv.FormatBool(b), err
	case rInt32, rInt64:
		n, err := strconv.ParseInt(string(text), 10, 64)
		if err != nil {
			return "", reasonf("parsing integer: %v", err)
		}
		return strconv.FormatInt(n, 10), nil
	case rFloat32, rFloat64:
		bits := 64
		if m.repr == rFloat32 {
			bits = 32
		}
		f, err := parseFloat(text, bits)
		return formatFloat(f, bits), err
	case rDecimal:
		var n pgtype.Numeric
		if err := planNumeric.Scan(text, &n); err != nil {
			return "", reasonf("parsing numeric: %v", err)
		}
		switch {
		case n.NaN:
			return "NaN", nil
		case n.InfinityModifier == pgtype.Infinity:
			return "Infinity", nil
		case n.InfinityModifier == pgtype.NegativeInfinity:
			return "-Infinity", nil
		}
		return numericRat(n).FloatString(m.scale), nil
	case rMoney:
		r, err := parseMoney(text)
		if err != nil {
			return "", err
		}
		return r.FloatString(2), nil
	case rBytes:
		var b []byte
		if err := planBytea.Scan(text, &b); err != nil {
			return "", reasonf("parsing bytea: %v", err)
		}
		return `\x` + hex.EncodeToString(b), nil
	case rJSON:
		return canonJSON(text)
	case rHstore:
		b, err := hstoreJSON(nil, text)
		if err != nil {
			return "", err
		}
		return canonJSON(b)
	case rDate:
		if outOfRangeText(text) != "" {
			return string(text), nil
		}
		var d pgtype.Date
		if err := planDate.Scan(text, &d); err != nil {
			return "", reasonf("parsing date: %v", err)
		}
		return d.Time.Format(dateLayout), nil
	case rTime:
		var t pgtype.Time
		if err := planTime.Scan(text, &t); err != nil {
			return "", reasonf("parsing time: %v", err)
		}
		return formatTimeMicros(t.Microseconds), nil
	case rTimestamp:
		if outOfRangeText(text) != "" {
			return string(text), nil
		}
		var ts pgtype.Timestamp
		if err := planTimestamp.Scan(text, &ts); err != nil {
			return "", reasonf("parsing timestamp: %v", err)
		}
		return ts.Time.Format(datetimeLayout), nil
	case rTimestamptz:
		if outOfRangeText(text) != "" {
			return string(text), nil
		}
		var ts pgtype.Timestamptz
		if err := planTimestamptz.Scan(text, &ts); err != nil {
			return "", reasonf("parsing timestamptz: %v", err)
		}
		return ts.Time.UTC().Format(timestampLayout), nil
	case rInterval:
		return intervalISO(text)
	}
	if !utf8.Valid(text) {
		return "", reasonf("not valid UTF-8")
	}
	return string(text), nil
}

const (
	dateLayout      = "2006-01-02"
	datetimeLayout  = "2006-01-02T15:04:05.000000"
	timestampLayout = "2006-01-02T15:04:05.000000Z"
)

func formatTimeMicros(us int64) string {
	h, us := us/3600000000, us%3600000000
	mi, us := us/60000000, us%60000000
	return fmt.Sprintf("%02d:%02d:%02d.%06d", h, mi, us/1000000, us%1000000)
}

// canonJSON is the canonical text of a JSON document.
func canonJSON(text []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", reasonf("parsing JSON: %v", err)
	}
	return string(appendCanonJSON(nil, v)), nil
}

func appendCanonJSON(buf []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		return strconv.AppendBool(buf, v)
	case json.Number:
		return append(buf, canonNumber(string(v))...)
	case string:
		return appendJSONString(buf, v)
	case []any:
		buf = append(buf, '[')
		for i, e := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendCanonJSON(buf, e)
		}
		return append(buf, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, k)
			buf = append(buf, ':')
			buf = appendCanonJSON(buf, v[k])
		}
		return append(buf, '}')
	}
	return fmt.Appendf(buf, "%q", fmt.Sprint(v))
}

// canonNumber writes a JSON number by value: an integer in full, any other
// number as the shortest float text when that has the same value, else as
// written.
func canonNumber(s string) string {
	if hugeExponent(s) {
		return s
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return s
	}
	if r.IsInt() {
		return r.Num().String()
	}
	if jsonNumberExact(s) {
		f, _ := strconv.ParseFloat(s, 64)
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return s
}

// CanonicalAvro returns the canonical form of the value of the field as
// goavro decodes it (or as Convert returns it): nil, or the union-wrapped
// native value.
func (m *Mapping) CanonicalAvro(native any) (string, error) {
	b, err := m.canonAvro(nil, native)
	if err != nil {
		return "", &DeadLetterError{Column: m.Column, Value: fmt.Sprint(native), Reason: err.Error()}
	}
	return string(b), nil
}

func (m *Mapping) canonAvro(buf []byte, v any) ([]byte, error) {
	if u, ok := v.(map[string]any); ok && len(u) == 1 {
		if inner, ok := u[m.unionName]; ok {
			v = inner
		}
	}
	if v == nil {
		return append(buf, "null"...), nil
	}
	var s string
	switch m.repr {
	case rBool:
		b, ok := v.(bool)
		if !ok {
			return nil, typeErr(v, "bool")
		}
		s = strconv.FormatBool(b)
	case rInt32, rInt64:
		switch n := v.(type) {
		case int32:
			s = strconv.FormatInt(int64(n), 10)
		case int64:
			s = strconv.FormatInt(n, 10)
		default:
			return nil, typeErr(v, "int32 or int64")
		}
	case rFloat32:
		f, ok := v.(float32)
		if !ok {
			return nil, typeErr(v, "float32")
		}
		s = formatFloat(float64(f), 32)
	case rFloat64:
		f, ok := v.(float64)
		if !ok {
			return nil, typeErr(v, "float64")
		}
		s = formatFloat(f, 64)
	case rDecimal, rMoney:
		r, ok := v.(*big.Rat)
		if !ok {
			return nil, typeErr(v, "*big.Rat")
		}
		s = r.FloatString(m.scale)
	case rBytes:
		b, ok := v.([]byte)
		if !ok {
			return nil, typeErr(v, "[]byte")
		}
		s = `\x` + hex.EncodeToString(b)
	case rDate:
		switch d := v.(type) {
		case int32:
			s = time.Unix(int64(d)*86400, 0).UTC().Format(dateLayout)
		case time.Time:
			s = d.UTC().Format(dateLayout)
		default:
			return nil, typeErr(v, "int32 or time.Time")
		}
	case rTime:
		switch t := v.(type) {
		case int64:
			s = formatTimeMicros(t)
		case time.Duration:
			s = formatTimeMicros(t.Microseconds())
		default:
			return nil, typeErr(v, "int64 or time.Duration")
		}
	case rTimestamp, rTimestamptz:
		layout := datetimeLayout
		if m.repr == rTimestamptz {
			layout = timestampLayout
		}
		switch t := v.(type) {
		case int64:
			s = time.UnixMicro(t).UTC().Format(layout)
		case time.Time:
			s = t.UTC().Format(layout)
		default:
			return nil, typeErr(v, "int64 or time.Time")
		}
	case rRecord:
		rec, ok := v.(map[string]any)
		if !ok {
			return nil, typeErr(v, "map[string]any")
		}
		buf = append(buf, '{')
		for i, f := range m.fields {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, f.Column)
			buf = append(buf, ':')
			var err error
			if buf, err = f.canonAvro(buf, rec[f.Name]); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	default:
		str, ok := v.(string)
		if !ok {
			return nil, typeErr(v, "string")
		}
		return m.canonString(buf, str)
	}
	return appendJSONString(buf, s), nil
}

// canonString appends the canonical form of a value held as a string in Avro
// and BigQuery: exact text, JSON, or an array as JSON.
func (m *Mapping) canonString(buf []byte, s string) ([]byte, error) {
	switch m.repr {
	case rJSON, rHstore:
		c, err := canonJSON([]byte(s))
		if err != nil {
			return nil, err
		}
		return appendJSONString(buf, c), nil
	case rArray:
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("parsing JSON array: %w", err)
		}
		return m.canonFromJSON(buf, v)
	}
	return appendJSONString(buf, s), nil
}

// canonFromJSON appends the canonical form of a value of m as it appears
// inside the JSON of an array column.
func (m *Mapping) canonFromJSON(buf []byte, v any) ([]byte, error) {
	if v == nil {
		return append(buf, "null"...), nil
	}
	switch m.repr {
	case rArray:
		return m.elem.canonJSONDims(buf, v)
	case rRecord:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, typeErr(v, "JSON object")
		}
		buf = append(buf, '{')
		for i, f := range m.fields {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, f.Column)
			buf = append(buf, ':')
			var err error
			if buf, err = f.canonFromJSON(buf, obj[f.Column]); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case rHstore:
		return appendJSONString(buf, string(appendCanonJSON(nil, v))), nil
	}
	var text string
	switch t := v.(type) {
	case json.Number:
		text = string(t)
	case string:
		text = t
	case bool:
		text = strconv.FormatBool(t)
	default:
		return nil, typeErr(v, "JSON scalar")
	}
	s, err := m.canonText([]byte(text))
	if err != nil {
		return nil, err
	}
	return appendJSONString(buf, s), nil
}

// canonJSONDims walks the dimensions of a JSON array whose elements are e's.
func (e *Mapping) canonJSONDims(buf []byte, v any) ([]byte, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, typeErr(v, "JSON array")
	}
	buf = append(buf, '[')
	for i, x := range arr {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		if _, nested := x.([]any); nested {
			buf, err = e.canonJSONDims(buf, x)
		} else {
			buf, err = e.canonFromJSON(buf, x)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(buf, ']'), nil
}

// CanonicalBigQuery returns the canonical form of a value of the column read
// back from BigQuery with the Go client: bool, int64, float64, *big.Rat,
// string, []byte, civil.Date, civil.Time, civil.DateTime, time.Time, and for
// a RECORD []bigquery.Value (or map[string]bigquery.Value).
func (m *Mapping) CanonicalBigQuery(v bigquery.Value) (string, error) {
	b, err := m.canonBQ(nil, v)
	if err != nil {
		return "", &DeadLetterError{Column: m.Column, Value: fmt.Sprint(v), Reason: err.Error()}
	}
	return string(b), nil
}

func (m *Mapping) canonBQ(buf []byte, v bigquery.Value) ([]byte, error) {
	if v == nil {
		return append(buf, "null"...), nil
	}
	var s string
	switch m.repr {
	case rBool:
		b, ok := v.(bool)
		if !ok {
			return nil, typeErr(v, "bool")
		}
		s = strconv.FormatBool(b)
	case rInt32, rInt64:
		n, ok := v.(int64)
		if !ok {
			return nil, typeErr(v, "int64")
		}
		s = strconv.FormatInt(n, 10)
	case rFloat32, rFloat64:
		f, ok := v.(float64)
		if !ok {
			return nil, typeErr(v, "float64")
		}
		if m.repr == rFloat32 {
			s = formatFloat(float64(float32(f)), 32)
		} else {
			s = formatFloat(f, 64)
		}
	case rDecimal, rMoney:
		r, ok := v.(*big.Rat)
		if !ok {
			return nil, typeErr(v, "*big.Rat")
		}
		s = r.FloatString(m.scale)
	case rBytes:
		b, ok := v.([]byte)
		if !ok {
			return nil, typeErr(v, "[]byte")
		}
		s = `\x` + hex.EncodeToString(b)
	case rDate:
		d, ok := v.(civil.Date)
		if !ok {
			return nil, typeErr(v, "civil.Date")
		}
		s = d.In(time.UTC).Format(dateLayout)
	case rTime:
		t, ok := v.(civil.Time)
		if !ok {
			return nil, typeErr(v, "civil.Time")
		}
		s = formatTimeMicros(int64(t.Hour)*3600000000 + int64(t.Minute)*60000000 + int64(t.Second)*1000000 + int64(t.Nanosecond/1000))
	case rTimestamp:
		dt, ok := v.(civil.DateTime)
		if !ok {
			return nil, typeErr(v, "civil.DateTime")
		}
		s = dt.In(time.UTC).Format(datetimeLayout)
	case rTimestamptz:
		t, ok := v.(time.Time)
		if !ok {
			return nil, typeErr(v, "time.Time")
		}
		s = t.UTC().Format(timestampLayout)
	case rRecord:
		buf = append(buf, '{')
		for i, f := range m.fields {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, f.Column)
			buf = append(buf, ':')
			var fv bigquery.Value
			switch rec := v.(type) {
			case []bigquery.Value:
				if len(rec) != len(m.fields) {
					return nil, fmt.Errorf("RECORD has %d fields, want %d", len(rec), len(m.fields))
				}
				fv = rec[i]
			case map[string]bigquery.Value:
				fv = rec[f.Name]
			default:
				return nil, typeErr(v, "[]bigquery.Value")
			}
			var err error
			if buf, err = f.canonBQ(buf, fv); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	default:
		str, ok := v.(string)
		if !ok {
			return nil, typeErr(v, "string")
		}
		return m.canonString(buf, str)
	}
	return appendJSONString(buf, s), nil
}

func typeErr(v any, want string) error {
	return fmt.Errorf("got %T, want %s", v, want)
}
