package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// DeadLetterError reports a value that cannot be represented without changing
// it. The row it belongs to goes to the dead-letter, never to BigQuery with a
// changed value. Find it with errors.As.
type DeadLetterError struct {
	// Table is the Postgres table as schema.table, set when the value was
	// converted as part of a row.
	Table string
	// Column is the Postgres column; for a value inside a composite or an
	// array the path to it, as col.attribute or col[2].
	Column string
	// Value is the Postgres text of the value (the whole column value).
	Value string
	// Reason says why the value cannot be represented.
	Reason string
}

func (e *DeadLetterError) Error() string {
	v := e.Value
	if len(v) > 80 {
		v = truncateUTF8(v, 80) + "…"
	}
	where := e.Column
	if e.Table != "" {
		where = e.Table + "." + where
	}
	return fmt.Sprintf("dead-letter: column %s value %q: %s", where, v, e.Reason)
}

// errReason is a conversion failure before the column and value are known.
type errReason struct {
	path   string // path inside the value: ".attr", "[2]"
	reason string
}

func (e *errReason) Error() string { return e.reason }

func reasonf(format string, args ...any) error {
	return &errReason{reason: fmt.Sprintf(format, args...)}
}

// within prefixes seg to the path of a nested conversion failure.
func within(seg string, err error) error {
	var r *errReason
	if errors.As(err, &r) {
		return &errReason{path: seg + r.path, reason: r.reason}
	}
	return &errReason{path: seg, reason: err.Error()}
}

func (m *Mapping) deadLetter(text []byte, err error) *DeadLetterError {
	dl := &DeadLetterError{Column: m.Column, Value: string(text)}
	var r *errReason
	if errors.As(err, &r) {
		dl.Column += r.path
		dl.Reason = r.reason
	} else {
		dl.Reason = err.Error()
	}
	return dl
}

// Convert turns the Postgres text of one value, as pgoutput sends it (nil for
// NULL), into the goavro native value of the field ["null", Avro]: nil, or the
// value wrapped as goavro.Union wraps it. Every error it returns is a
// *DeadLetterError. Convert is safe for concurrent use.
func (m *Mapping) Convert(text []byte) (any, error) {
	if text == nil {
		return nil, nil
	}
	v, err := m.native(text)
	if err != nil {
		return nil, m.deadLetter(text, err)
	}
	return map[string]any{m.unionName: v}, nil
}

// Scan plans the package decodes with, made once: a plan only reads the Map.
var (
	planDate        = pgTypes.PlanScan(pgtype.DateOID, pgtype.TextFormatCode, &pgtype.Date{})
	planTime        = pgTypes.PlanScan(pgtype.TimeOID, pgtype.TextFormatCode, &pgtype.Time{})
	planTimestamp   = pgTypes.PlanScan(pgtype.TimestampOID, pgtype.TextFormatCode, &pgtype.Timestamp{})
	planTimestamptz = pgTypes.PlanScan(pgtype.TimestamptzOID, pgtype.TextFormatCode, &pgtype.Timestamptz{})
	planInterval    = pgTypes.PlanScan(pgtype.IntervalOID, pgtype.TextFormatCode, &pgtype.Interval{})
	planNumeric     = pgTypes.PlanScan(pgtype.NumericOID, pgtype.TextFormatCode, &pgtype.Numeric{})
	planBytea       = pgTypes.PlanScan(pgtype.ByteaOID, pgtype.TextFormatCode, &[]byte{})
	planUUID        = pgTypes.PlanScan(pgtype.UUIDOID, pgtype.TextFormatCode, &pgtype.UUID{})
	planHstore      = (pgtype.HstoreCodec{}).PlanScan(pgTypes, 0, pgtype.TextFormatCode, &pgtype.Hstore{})
	// planArray splits any array's text into its elements' texts.
	planArray = (&pgtype.ArrayCodec{ElementType: &pgtype.Type{Name: "text", OID: pgtype.TextOID, Codec: pgtype.TextCodec{}}}).
			PlanScan(pgTypes, pgtype.TextArrayOID, pgtype.TextFormatCode, &pgtype.Array[*string]{})
)

// The range BigQuery DATE, DATETIME and TIMESTAMP hold.
var (
	minBQTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxBQTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

const microsPerDay = 86400 * 1000000

// native converts non-NULL text to the native value of the non-null branch.
func (m *Mapping) native(text []byte) (any, error) {
	switch m.repr {
	case rBool:
		return parseBool(text)
	case rInt32:
		n, err := strconv.ParseInt(string(text), 10, 32)
		if err != nil {
			return nil, reasonf("parsing integer: %v", err)
		}
		return int32(n), nil
	case rInt64:
		n, err := strconv.ParseInt(string(text), 10, 64)
		if err != nil {
			return nil, reasonf("parsing integer: %v", err)
		}
		return n, nil
	case rFloat32:
		f, err := parseFloat(text, 32)
		return float32(f), err
	case rFloat64:
		return parseFloat(text, 64)
	case rDecimal:
		return m.decimal(text)
	case rMoney:
		return parseMoney(text)
	case rText, rUUID:
		if !utf8.Valid(text) {
			return nil, reasonf("not valid UTF-8, which Avro and BigQuery strings must be")
		}
		if m.repr == rUUID {
			var u pgtype.UUID
			if err := planUUID.Scan(text, &u); err != nil {
				return nil, reasonf("parsing uuid: %v", err)
			}
		}
		return string(text), nil
	case rBytes:
		var b []byte
		if err := planBytea.Scan(text, &b); err != nil {
			return nil, reasonf("parsing bytea (bytea_output must be hex): %v", err)
		}
		if b == nil {
			b = []byte{}
		}
		return b, nil
	case rJSON:
		if err := checkJSON(text); err != nil {
			return nil, err
		}
		return string(text), nil
	case rHstore:
		b, err := hstoreJSON(nil, text)
		return string(b), err
	case rDate:
		return parseDate(text)
	case rTime:
		var t pgtype.Time
		if err := planTime.Scan(text, &t); err != nil {
			return nil, reasonf("parsing time: %v", err)
		}
		if t.Microseconds >= microsPerDay {
			return nil, reasonf("time 24:00:00 is past the largest BigQuery TIME 23:59:59.999999")
		}
		return t.Microseconds, nil
	case rTimestamp:
		t, err := parseTimestamp(text)
		if err != nil {
			return nil, err
		}
		return unixMicros(t), nil
	case rTimestamptz:
		t, err := parseTimestamptz(text)
		if err != nil {
			return nil, err
		}
		return unixMicros(t), nil
	case rInterval:
		return intervalISO(text)
	case rArray:
		b, err := m.arrayJSON(nil, text)
		return string(b), err
	case rRecord:
		return m.record(text)
	}
	return nil, reasonf("no conversion for %s", m.PG)
}

func parseBool(text []byte) (bool, error) {
	switch string(text) {
	case "t", "true":
		return true, nil
	case "f", "false":
		return false, nil
	}
	return false, reasonf("parsing boolean: want t or f")
}

// parseFloat parses Postgres float text, "NaN", "Infinity" and "-Infinity"
// included. The text is exact when extra_float_digits is at least 1.
func parseFloat(text []byte, bits int) (float64, error) {
	f, err := strconv.ParseFloat(string(text), bits)
	if err != nil {
		return 0, reasonf("parsing float%d: %v", bits/8, err)
	}
	return f, nil
}

// decimal converts constrained numeric text to the exact *big.Rat.
func (m *Mapping) decimal(text []byte) (*big.Rat, error) {
	var n pgtype.Numeric
	if err := planNumeric.Scan(text, &n); err != nil {
		return nil, reasonf("parsing numeric: %v", err)
	}
	if n.NaN {
		return nil, reasonf("NaN cannot be stored in BigQuery %s", m.BigQuery.Type)
	}
	if n.InfinityModifier != pgtype.Finite {
		return nil, reasonf("%s cannot be stored in BigQuery %s", text, m.BigQuery.Type)
	}
	r := numericRat(n)
	if err := checkDecimal(r, m.Avro.(map[string]any)["precision"].(int), m.scale); err != nil {
		return nil, err
	}
	return r, nil
}

func numericRat(n pgtype.Numeric) *big.Rat {
	r := new(big.Rat).SetInt(n.Int)
	if n.Exp > 0 {
		r.Mul(r, new(big.Rat).SetInt(pow10(int(n.Exp))))
	} else if n.Exp < 0 {
		r.Quo(r, new(big.Rat).SetInt(pow10(int(-n.Exp))))
	}
	return r
}

func pow10(n int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// checkDecimal makes sure r has at most scale fractional digits and prec
// digits in all, so that Avro decimal(prec, scale) holds it exactly (goavro
// would truncate extra fractional digits without a word).
func checkDecimal(r *big.Rat, prec, scale int) error {
	unscaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(pow10(scale)))
	if !unscaled.IsInt() {
		return reasonf("%s has more than %d fractional digits", r.FloatString(scale+4), scale)
	}
	if digits := len(new(big.Int).Abs(unscaled.Num()).String()); digits > prec && unscaled.Num().Sign() != 0 {
		return reasonf("%s has more than %d digits", r.FloatString(scale), prec)
	}
	return nil
}

// parseMoney reads money as Postgres prints it with lc_monetary=C:
// "$1,234.56", "-$1,234.56".
func parseMoney(text []byte) (*big.Rat, error) {
	s := string(text)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	digits, ok := strings.CutPrefix(s, "$")
	whole, frac, dot := strings.Cut(digits, ".")
	if !ok || !dot || len(frac) != 2 || whole == "" {
		return nil, reasonf("money %q is not in the lc_monetary=C form -$1,234.56", text)
	}
	groups := strings.Split(whole, ",")
	for i, g := range groups {
		if g == "" || len(g) > 3 || i > 0 && len(g) != 3 || !allDigits(g) {
			return nil, reasonf("money %q is not in the lc_monetary=C form -$1,234.56", text)
		}
	}
	if !allDigits(frac) {
		return nil, reasonf("money %q is not in the lc_monetary=C form -$1,234.56", text)
	}
	n, ok := new(big.Int).SetString(strings.Join(groups, "")+frac, 10)
	if !ok {
		return nil, reasonf("money %q is not in the lc_monetary=C form -$1,234.56", text)
	}
	if neg {
		n.Neg(n)
	}
	return new(big.Rat).SetFrac(n, big.NewInt(100)), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// outOfRangeText reports, before parsing, why Postgres date or timestamp text
// lies outside what BigQuery holds: ±infinity, BC, or a year past 9999 (more
// than four year digits; Postgres prints the year with at least four).
func outOfRangeText(text []byte) string {
	s := string(text)
	switch {
	case s == "infinity" || s == "-infinity":
		return s + " is outside the range BigQuery holds"
	case strings.HasSuffix(s, " BC"):
		return "BC dates are before 0001-01-01, the first BigQuery date"
	}
	if i := strings.IndexByte(s, '-'); i > 4 {
		return "years past 9999 are after 9999-12-31, the last BigQuery date"
	}
	return ""
}

func parseDate(text []byte) (int32, error) {
	if why := outOfRangeText(text); why != "" {
		return 0, reasonf("%s", why)
	}
	var d pgtype.Date
	if err := planDate.Scan(text, &d); err != nil {
		return 0, reasonf("parsing date (DateStyle must be ISO): %v", err)
	}
	return int32(d.Time.Unix() / 86400), nil
}

func parseTimestamp(text []byte) (time.Time, error) {
	if why := outOfRangeText(text); why != "" {
		return time.Time{}, reasonf("%s", why)
	}
	var ts pgtype.Timestamp
	if err := planTimestamp.Scan(text, &ts); err != nil {
		return time.Time{}, reasonf("parsing timestamp (DateStyle must be ISO): %v", err)
	}
	return ts.Time, nil
}

func parseTimestamptz(text []byte) (time.Time, error) {
	if why := outOfRangeText(text); why != "" {
		return time.Time{}, reasonf("%s", why)
	}
	var ts pgtype.Timestamptz
	if err := planTimestamptz.Scan(text, &ts); err != nil {
		return time.Time{}, reasonf("parsing timestamptz (DateStyle must be ISO): %v", err)
	}
	t := ts.Time.UTC()
	if t.Before(minBQTime) || !t.Before(maxBQTime) {
		return time.Time{}, reasonf("%s is outside 0001-01-01..9999-12-31 UTC, the range of BigQuery TIMESTAMP", t.Format("2006-01-02 15:04:05.999999Z07:00"))
	}
	return t, nil
}

func unixMicros(t time.Time) int64 {
	return t.Unix()*1000000 + int64(t.Nanosecond()/1000)
}

// intervalISO parses interval text (IntervalStyle postgres) and prints it as
// Postgres does with IntervalStyle iso_8601.
func intervalISO(text []byte) (string, error) {
	s := string(text)
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	var iv pgtype.Interval
	if err := planInterval.Scan(text, &iv); err != nil {
		return "", reasonf("parsing interval (IntervalStyle must be postgres): %v", err)
	}
	return formatIntervalISO(iv.Months, iv.Days, iv.Microseconds), nil
}

// formatIntervalISO follows EncodeInterval in Postgres' datetime.c for
// INTSTYLE_ISO_8601: each field with its own sign, zero fields left out,
// seconds without trailing zeros, "PT0S" for zero.
func formatIntervalISO(months, days int32, micros int64) string {
	if months == 0 && days == 0 && micros == 0 {
		return "PT0S"
	}
	year, mon := months/12, months%12
	hour := micros / 3600000000
	rest := micros - hour*3600000000
	min := rest / 60000000
	rest -= min * 60000000
	sec, fsec := rest/1000000, rest%1000000
	b := []byte{'P'}
	part := func(v int64, unit byte) {
		if v != 0 {
			b = strconv.AppendInt(b, v, 10)
			b = append(b, unit)
		}
	}
	part(int64(year), 'Y')
	part(int64(mon), 'M')
	part(int64(days), 'D')
	if hour != 0 || min != 0 || sec != 0 || fsec != 0 {
		b = append(b, 'T')
	}
	part(hour, 'H')
	part(min, 'M')
	if sec != 0 || fsec != 0 {
		if sec < 0 || fsec < 0 {
			b = append(b, '-')
		}
		b = strconv.AppendInt(b, abs64(sec), 10)
		if fsec != 0 {
			f := fmt.Sprintf("%06d", abs64(fsec))
			b = append(b, '.')
			b = append(b, strings.TrimRight(f, "0")...)
		}
		b = append(b, 'S')
	}
	return string(b)
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// record converts composite text to the goavro native record.
func (m *Mapping) record(text []byte) (map[string]any, error) {
	raw, err := splitComposite(text, len(m.fields))
	if err != nil {
		return nil, err
	}
	rec := make(map[string]any, len(m.fields))
	for i, f := range m.fields {
		if raw[i] == nil {
			rec[f.Name] = nil
			continue
		}
		v, err := f.native(raw[i])
		if err != nil {
			return nil, within("."+f.Column, err)
		}
		rec[f.Name] = map[string]any{f.unionName: v}
	}
	return rec, nil
}

// splitComposite returns the text of each attribute of composite text, nil
// for NULL, with pgx's composite text scanner.
func splitComposite(text []byte, n int) (fields [][]byte, err error) {
	defer func() {
		if recover() != nil {
			fields, err = nil, reasonf("malformed composite text")
		}
	}()
	sc := pgtype.NewCompositeTextScanner(nil, text)
	fields = make([][]byte, 0, n)
	for sc.Next() {
		b := sc.Bytes()
		if b != nil && len(b) == 0 {
			b = []byte{}
		}
		fields = append(fields, b)
	}
	if err := sc.Err(); err != nil {
		return nil, reasonf("parsing composite: %v", err)
	}
	if len(fields) != n {
		return nil, reasonf("composite has %d attributes, the type %d", len(fields), n)
	}
	return fields, nil
}

// splitArray parses array text with pgx into its elements' texts (nil for
// NULL) and dimensions.
func splitArray(text []byte) (pgtype.Array[*string], error) {
	var a pgtype.Array[*string]
	if err := planArray.Scan(text, &a); err != nil {
		return a, reasonf("parsing array: %v", err)
	}
	return a, nil
}

// arrayJSON appends the JSON form of array text: nested JSON arrays, one level
// per dimension, of the elements' JSON values.
func (m *Mapping) arrayJSON(buf, text []byte) ([]byte, error) {
	a, err := splitArray(text)
	if err != nil {
		return nil, err
	}
	for _, d := range a.Dims {
		if d.LowerBound != 1 {
			return nil, reasonf("array lower bound %d: JSON arrays start at 1 (Postgres' default), so the bounds would be lost", d.LowerBound)
		}
	}
	if len(a.Dims) == 0 {
		return append(buf, "[]"...), nil
	}
	i := 0
	return m.elem.appendDims(buf, a, 0, &i)
}

func (e *Mapping) appendDims(buf []byte, a pgtype.Array[*string], dim int, i *int) ([]byte, error) {
	buf = append(buf, '[')
	for k := int32(0); k < a.Dims[dim].Length; k++ {
		if k > 0 {
			buf = append(buf, ',')
		}
		var err error
		if dim+1 < len(a.Dims) {
			buf, err = e.appendDims(buf, a, dim+1, i)
		} else {
			idx := *i
			*i++
			if a.Elements[idx] == nil {
				buf = append(buf, "null"...)
				continue
			}
			buf, err = e.appendJSON(buf, []byte(*a.Elements[idx]))
			if err != nil {
				err = within("["+strconv.Itoa(idx+1)+"]", err)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return append(buf, ']'), nil
}

// appendJSON appends the JSON value of one array element or composite
// attribute given as Postgres text.
func (m *Mapping) appendJSON(buf, text []byte) ([]byte, error) {
	switch m.repr {
	case rBool:
		b, err := parseBool(text)
		if err != nil {
			return nil, err
		}
		return strconv.AppendBool(buf, b), nil
	case rInt32, rInt64:
		n, err := strconv.ParseInt(string(text), 10, 64)
		if err != nil {
			return nil, reasonf("parsing integer: %v", err)
		}
		return strconv.AppendInt(buf, n, 10), nil
	case rFloat32, rFloat64:
		bits := 64
		if m.repr == rFloat32 {
			bits = 32
		}
		f, err := parseFloat(text, bits)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendJSONString(buf, formatFloat(f, bits)), nil
		}
		return append(buf, formatFloat(f, bits)...), nil
	case rHstore:
		return hstoreJSON(buf, text)
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
			if raw[i] == nil {
				buf = append(buf, "null"...)
				continue
			}
			if buf, err = f.appendJSON(buf, raw[i]); err != nil {
				return nil, within("."+f.Column, err)
			}
		}
		return append(buf, '}'), nil
	case rArray:
		return m.arrayJSON(buf, text)
	}
	if !utf8.Valid(text) {
		return nil, reasonf("not valid UTF-8, which JSON strings must be")
	}
	return appendJSONString(buf, string(text)), nil
}

// formatFloat is the canonical text of a float: the shortest text that reads
// back as the same float of that size, NaN, Infinity, -Infinity.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// hstoreJSON appends hstore text as a JSON object with sorted keys.
func hstoreJSON(buf, text []byte) ([]byte, error) {
	if !utf8.Valid(text) {
		return nil, reasonf("not valid UTF-8, which JSON strings must be")
	}
	var h pgtype.Hstore
	if err := planHstore.Scan(text, &h); err != nil {
		return nil, reasonf("parsing hstore: %v", err)
	}
	keys := make([]string, 0, len(h))
	for k := range h {
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
		if v := h[k]; v == nil {
			buf = append(buf, "null"...)
		} else {
			buf = appendJSONString(buf, *v)
		}
	}
	return append(buf, '}'), nil
}

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '\r':
			buf = append(buf, '\\', 'r')
		case c == '\t':
			buf = append(buf, '\\', 't')
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}

// checkJSON checks that BigQuery's JSON type holds the document exactly: it
// is valid UTF-8 JSON, no object repeats a key (Postgres json keeps
// duplicates, BigQuery keeps one), and every number is one INT64, UINT64 or
// FLOAT64 holds exactly, so that it reads back with the same value.
func checkJSON(text []byte) error {
	if !utf8.Valid(text) {
		return reasonf("not valid UTF-8, which JSON must be")
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	type frame struct {
		object bool
		key    bool // next token in an object is a key
		keys   map[string]struct{}
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == nil && len(stack) > 0 && stack[len(stack)-1].object {
			f := &stack[len(stack)-1]
			if f.key {
				if k, ok := tok.(string); ok {
					if _, dup := f.keys[k]; dup {
						return reasonf("JSON object has the key %q twice; BigQuery JSON keeps only one", k)
					}
					f.keys[k] = struct{}{}
					f.key = false
					continue
				}
			} else {
				f.key = true
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(stack) == 0 {
				return nil
			}
			return reasonf("parsing JSON: %v", err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, key: true, keys: map[string]struct{}{}})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		case json.Number:
			if !jsonNumberExact(string(t)) {
				return reasonf("JSON number %s is not held exactly by INT64, UINT64 or FLOAT64, the numbers of BigQuery JSON", t)
			}
		}
	}
}

// jsonNumberExact reports whether a JSON number reads back from BigQuery JSON
// with the same value: an integer INT64 or UINT64 holds, or a number whose
// shortest FLOAT64 text has the same decimal value.
func jsonNumberExact(s string) bool {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return true
	}
	if hugeExponent(s) {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return false
	}
	want, ok1 := new(big.Rat).SetString(s)
	got, ok2 := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return ok1 && ok2 && want.Cmp(got) == 0
}

// hugeExponent reports a number whose exponent alone puts it far outside
// FLOAT64, so that it is never expanded into a huge big.Rat.
func hugeExponent(s string) bool {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return len(s) > 400
	}
	e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
	return err != nil || e > 400 || e < -400 || i > 400
}
