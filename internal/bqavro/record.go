package bqavro

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Text forms the emulator parses back exactly, to the microsecond.
const (
	dateLayout      = "2006-01-02"
	timeLayout      = "15:04:05.000000"
	datetimeLayout  = "2006-01-02T15:04:05.000000"
	timestampLayout = "2006-01-02T15:04:05.000000Z"
)

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	// The instants the emulator's TIMESTAMP holds: nanoseconds in an int64.
	minNanoTime = time.Unix(0, math.MinInt64).UTC()
	maxNanoTime = time.Unix(0, math.MaxInt64).UTC()
)

// RecordJSON converts one record decoded by goavro with schema s (a
// map[string]any, unions wrapped as goavro wraps them) to one line of
// newline-delimited JSON, without the newline, in the form the emulator's
// NDJSON loader stores exactly:
//   - INTEGER as a JSON number, all 64 bits kept;
//   - FLOAT as the shortest JSON number that round-trips, ±Inf as the strings
//     "Infinity" and "-Infinity"; NaN is an error (see errNaN);
//   - JSON (string with sqlType JSON) as the JSON value itself; values holding
//     numbers are an error (see appendJSON);
//   - NUMERIC and BIGNUMERIC as exact decimal strings with the schema's scale;
//   - DATE as 2006-01-02, TIME as 15:04:05.000000, DATETIME as
//     2006-01-02T15:04:05.000000, TIMESTAMP as 2006-01-02T15:04:05.000000Z (UTC);
//   - BYTES as a JSON string holding the raw bytes (see appendRawString);
//   - maps as arrays of {"key", "value"} records, sorted by key.
func RecordJSON(s *Schema, record any) ([]byte, error) {
	return appendRecord(nil, s.root, record)
}

// pathError names the field a conversion failed at.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return "field " + e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// atPath prefixes seg to the path of err.
func atPath(seg string, err error) error {
	var pe *pathError
	if errors.As(err, &pe) {
		sep := "."
		if pe.path[0] == '[' {
			sep = ""
		}
		return &pathError{path: seg + sep + pe.path, err: pe.err}
	}
	return &pathError{path: seg, err: err}
}

func appendRecord(buf []byte, n *node, v any) ([]byte, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("converting record: got %T, want map[string]any", v)
	}
	buf = append(buf, '{')
	for i, f := range n.fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendRawString(buf, f.name)
		buf = append(buf, ':')
		var err error
		if buf, err = appendValue(buf, f.node, m[f.name]); err != nil {
			return nil, atPath(f.name, err)
		}
	}
	return append(buf, '}'), nil
}

func appendValue(buf []byte, n *node, v any) ([]byte, error) {
	switch n.enc {
	case encNullable:
		return appendNullable(buf, n, v)
	case encArray:
		return appendArray(buf, n, v)
	case encMap:
		return appendMap(buf, n, v)
	case encRecord:
		if err := refuseNestedJSON(n, v); err != nil {
			return nil, err
		}
		return appendRecord(buf, n, v)
	case encDecimal:
		return appendDecimal(buf, n, v)
	}
	if v == nil {
		return nil, errors.New("null value for a non-nullable type")
	}
	return appendScalar(buf, n, v)
}

// appendNullable unwraps goavro's union form: nil, or a one-entry map keyed by
// the branch's type name.
func appendNullable(buf []byte, n *node, v any) ([]byte, error) {
	if v == nil {
		if n.items.enc == encArray || n.items.enc == encMap {
			return append(buf, "[]"...), nil
		}
		return append(buf, "null"...), nil
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, fmt.Errorf("got %T, want a goavro union (one-entry map)", v)
	}
	for _, inner := range m {
		return appendValue(buf, n.items, inner)
	}
	return buf, nil
}

func appendArray(buf []byte, n *node, v any) ([]byte, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("got %T, want []any", v)
	}
	buf = append(buf, '[')
	for i, item := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		if n.items.enc == encNullable && item == nil {
			return nil, atPath("["+strconv.Itoa(i)+"]", errors.New("BigQuery arrays cannot hold NULL"))
		}
		var err error
		if buf, err = appendValue(buf, n.items, item); err != nil {
			return nil, atPath("["+strconv.Itoa(i)+"]", err)
		}
	}
	return append(buf, ']'), nil
}

func appendMap(buf []byte, n *node, v any) ([]byte, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("got %T, want map[string]any", v)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf = append(buf, '[')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"key":`...)
		buf = appendRawString(buf, k)
		buf = append(buf, `,"value":`...)
		var err error
		if buf, err = appendValue(buf, n.items, m[k]); err != nil {
			return nil, atPath("["+strconv.Quote(k)+"]", err)
		}
		buf = append(buf, '}')
	}
	return append(buf, ']'), nil
}

func appendScalar(buf []byte, n *node, v any) ([]byte, error) {
	switch n.enc {
	case encBool:
		b, ok := v.(bool)
		if !ok {
			return nil, typeError(v, "bool")
		}
		return strconv.AppendBool(buf, b), nil
	case encInt:
		return appendInt(buf, v)
	case encFloat:
		return appendFloat(buf, v)
	case encBytes:
		b, ok := v.([]byte)
		if !ok {
			return nil, typeError(v, "[]byte")
		}
		return appendRawString(buf, string(b)), nil
	case encString, encDatetimeString:
		return appendUTF8(buf, v)
	case encJSON:
		return appendJSON(buf, v)
	}
	return appendTemporal(buf, n, v)
}

func typeError(v any, want string) error {
	return fmt.Errorf("got %T, want %s", v, want)
}

func appendInt(buf []byte, v any) ([]byte, error) {
	switch i := v.(type) {
	case int32:
		return strconv.AppendInt(buf, int64(i), 10), nil
	case int64:
		return strconv.AppendInt(buf, i, 10), nil
	}
	return nil, typeError(v, "int32 or int64")
}

func appendFloat(buf []byte, v any) ([]byte, error) {
	var f float64
	switch x := v.(type) {
	case float32:
		f = float64(x)
	case float64:
		f = x
	default:
		return nil, typeError(v, "float32 or float64")
	}
	switch {
	case math.IsNaN(f):
		return nil, errNaN
	case f == 0 && math.Signbit(f):
		return nil, errNegZero
	case math.IsInf(f, 1):
		return append(buf, `"Infinity"`...), nil
	case math.IsInf(f, -1):
		return append(buf, `"-Infinity"`...), nil
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64), nil
}

// errNaN refuses NaN: BigQuery stores it, but the emulator keeps FLOAT64 in
// SQLite, which turns NaN into NULL, so the value would change silently.
var errNaN = errors.New("NaN cannot be stored by the BigQuery emulator (it becomes NULL)")

// errNegZero refuses -0, which the emulator stores as 0.
var errNegZero = errors.New("-0 cannot be stored by the BigQuery emulator (it becomes 0)")

func appendUTF8(buf []byte, v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, typeError(v, "string")
	}
	if !utf8.ValidString(s) {
		return nil, errors.New("string is not valid UTF-8")
	}
	return appendRawString(buf, s), nil
}

// appendJSON writes a string annotated with sqlType JSON as the JSON value it
// holds. A value holding numbers is refused: the emulator stores JSON numbers
// loaded from NDJSON as strings, so the value would change silently.
func appendJSON(buf []byte, v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, typeError(v, "string")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil || dec.More() {
		return nil, errors.New("string annotated as JSON is not one valid JSON value")
	}
	if hasNumber(doc) {
		return nil, errors.New("JSON holding numbers cannot be stored exactly by the BigQuery emulator (numbers become strings)")
	}
	if doc == nil {
		return nil, errors.New("a JSON null cannot be stored by the BigQuery emulator (NDJSON loads it as SQL NULL)")
	}
	if hasNUL(doc) {
		return nil, errors.New("JSON holding U+0000 cannot be stored by the BigQuery emulator (it reads back as invalid JSON)")
	}
	return append(buf, s...), nil
}

func hasNumber(v any) bool {
	switch x := v.(type) {
	case json.Number:
		return true
	case []any:
		for _, e := range x {
			if hasNumber(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if hasNumber(e) {
				return true
			}
		}
	}
	return false
}

// hasNUL reports whether a decoded JSON value holds U+0000 in a string or key.
func hasNUL(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, 0)
	case []any:
		for _, e := range x {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.ContainsRune(k, 0) || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// refuseNestedJSON refuses a record inside a record that holds a JSON value:
// the emulator returns JSON inside a RECORD parsed (arrays, objects), not as
// JSON text, so it would read back changed.
func refuseNestedJSON(n *node, v any) error {
	switch n.enc {
	case encNullable:
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			for _, inner := range m {
				return refuseNestedJSON(n.items, inner)
			}
		}
	case encRecord:
		m, _ := v.(map[string]any)
		for _, f := range n.fields {
			if err := refuseNestedJSON(f.node, m[f.name]); err != nil {
				return atPath(f.name, err)
			}
		}
	case encArray:
		items, _ := v.([]any)
		for i, item := range items {
			if err := refuseNestedJSON(n.items, item); err != nil {
				return atPath("["+strconv.Itoa(i)+"]", err)
			}
		}
	case encJSON:
		if v != nil {
			return errors.New("JSON inside a RECORD cannot be stored by the BigQuery emulator (it reads back parsed, not as JSON text)")
		}
	}
	return nil
}

// appendDecimal writes the exact decimal with the schema's scale. A value with
// more integer digits than precision - scale allows is an error.
func appendDecimal(buf []byte, n *node, v any) ([]byte, error) {
	r, ok := v.(*big.Rat)
	if !ok || r == nil {
		if v == nil {
			return nil, errors.New("null value for a non-nullable type")
		}
		return nil, typeError(v, "*big.Rat")
	}
	s := r.FloatString(n.scale)
	if !exactAtScale(r, n.scale) {
		return nil, fmt.Errorf("decimal %s has more than %d fractional digits", r.RatString(), n.scale)
	}
	if intDigits(s) > n.prec-n.scale {
		return nil, fmt.Errorf("decimal %s exceeds precision %d, scale %d", s, n.prec, n.scale)
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"'), nil
}

func exactAtScale(r *big.Rat, scale int) bool {
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	return scaled.IsInt()
}

// intDigits counts the significant digits before the decimal point.
func intDigits(s string) int {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	n := 0
	for _, c := range s {
		if c == '.' {
			break
		}
		if n == 0 && c == '0' {
			continue
		}
		n++
	}
	return n
}

func appendTemporal(buf []byte, n *node, v any) ([]byte, error) {
	switch n.enc {
	case encDate:
		return appendTime(buf, v, dateLayout)
	case encTimestamp:
		if t, ok := v.(time.Time); ok && (t.Before(minNanoTime) || t.After(maxNanoTime)) {
			return nil, fmt.Errorf("TIMESTAMP %s cannot be stored by the BigQuery emulator (it keeps nanoseconds in an int64: only 1677-09-21 to 2262-04-11 do not wrap around)", t.UTC().Format(time.RFC3339Nano))
		}
		return appendTime(buf, v, timestampLayout)
	case encTime:
		return appendTimeOfDay(buf, v)
	case encLocalMillis, encLocalMicros:
		return appendLocal(buf, n, v)
	}
	return nil, fmt.Errorf("converting value: unknown encoding %d", n.enc)
}

func appendTime(buf []byte, v any, layout string) ([]byte, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, typeError(v, "time.Time")
	}
	return appendInRange(buf, t.UTC(), layout)
}

func appendInRange(buf []byte, t time.Time, layout string) ([]byte, error) {
	if t.Before(minTime) || !t.Before(maxTime) {
		return nil, fmt.Errorf("%s is outside BigQuery's range 0001-01-01 to 9999-12-31", t.Format(time.RFC3339Nano))
	}
	if t.Nanosecond()%1000 != 0 {
		return nil, fmt.Errorf("%s has sub-microsecond precision", t.Format(time.RFC3339Nano))
	}
	buf = append(buf, '"')
	buf = t.AppendFormat(buf, layout)
	return append(buf, '"'), nil
}

// appendTimeOfDay writes goavro's time-millis / time-micros duration since midnight.
func appendTimeOfDay(buf []byte, v any) ([]byte, error) {
	d, ok := v.(time.Duration)
	if !ok {
		return nil, typeError(v, "time.Duration")
	}
	if d < 0 || d >= 24*time.Hour {
		return nil, fmt.Errorf("time of day %s is outside 00:00:00 to 23:59:59.999999", d)
	}
	buf = append(buf, '"')
	buf = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(d).AppendFormat(buf, timeLayout)
	return append(buf, '"'), nil
}

// appendLocal writes local-timestamp-millis / -micros, which goavro leaves as
// the raw long, as a DATETIME.
func appendLocal(buf []byte, n *node, v any) ([]byte, error) {
	i, ok := v.(int64)
	if !ok {
		return nil, typeError(v, "int64")
	}
	t := time.UnixMicro(i).UTC()
	if n.enc == encLocalMillis {
		t = time.UnixMilli(i).UTC()
	}
	return appendInRange(buf, t, datetimeLayout)
}

// appendRawString writes s as a JSON string, escaping only what JSON requires
// (quote, backslash, control characters) and copying every other byte as is.
// For BYTES this is deliberate: the emulator stores the characters of a JSON
// string as the column's bytes instead of base64-decoding them, and its JSON
// decoder keeps bytes that are not valid UTF-8, so raw bytes land exactly.
func appendRawString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}
