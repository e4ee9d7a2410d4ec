package schema

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/linkedin/goavro/v2"
)

// TextEvent is an Event whose row images are still what pgoutput sent: the
// text of each column in column order, nil for NULL and for an unchanged
// TOASTed value (which Unchanged names). A nil Before or After is an absent
// row image; an empty, non-nil one is a row of a table without columns.
type TextEvent struct {
	Op         string
	CommitLSN  uint64
	LSN        uint64
	Seq        int64
	Xid        int64
	CommitTime time.Time
	Schema     string
	Table      string
	Before     [][]byte
	After      [][]byte
	Unchanged  []string // row-record field names (Mapping.Name)
}

// Encoder writes the events of one EventSchema in Avro single-object
// encoding straight from the Postgres text of their columns, without the
// goavro native values in between. Its output is EventSchema.Encode's for
// the Event whose row images Table.Record converts from the same texts:
// the same bytes, and for a row that cannot be represented the same
// *DeadLetterError.
//
// The common types are appended by hand with the checks Mapping.Convert
// applies (the same functions, and pgx or strconv for parsing); every other
// column, and every value the hand-written appends do not take (a decimal
// beyond 18 digits, a value that fails a check), is converted by
// Mapping.Convert and encoded by a goavro codec of that field alone: the
// binary of an Avro record is the concatenation of its fields', so the
// two kinds of field make one well-defined record. An event any of whose
// values the fast path does not take is encoded whole by the general path
// (Table.Record, then EventSchema.Encode), which also produces its error.
// An Encoder is safe for concurrent use.
type Encoder struct {
	es     *EventSchema
	header []byte // 0xC3 0x01 and the fingerprint
	cols   []colEncoder
	fast   bool // false if the fast path disagreed with the general one when built
}

// colEncoder appends one row field, ["null", T].
type colEncoder struct {
	m     *Mapping
	kind  fastKind
	prec  int           // decimal: the Avro precision
	codec *goavro.Codec // ["null", T] alone, for values the hand-written appends do not take
}

// fastKind says how a column's values are appended.
type fastKind uint8

const (
	kGeneral fastKind = iota // Mapping.Convert and the field's goavro codec
	kBool
	kInt32
	kInt64
	kFloat32
	kFloat64
	kDecimal // up to 18 digits by hand, beyond through the codec
	kString  // Postgres' exact text, checked to be UTF-8
	kUUID
	kBytes
	kJSON
	kDate
	kTimestamp
	kTimestamptz
)

// NewEncoder compiles the encoder of es, which must carry the Table it was
// made from (NewEventSchema's do). Before it is used, the fast path encodes
// an event with one absent and one all-NULL row image and compares it with
// the general path's bytes; should they differ (an envelope changed in one
// place and not the other), every event takes the general path.
func NewEncoder(es *EventSchema) (*Encoder, error) {
	if es == nil || es.Table == nil {
		return nil, errors.New("compiling event encoder: the event schema has no table mapping")
	}
	e := &Encoder{es: es, header: make([]byte, 10), cols: make([]colEncoder, len(es.Table.Columns)), fast: true}
	e.header[0], e.header[1] = 0xC3, 0x01
	binary.LittleEndian.PutUint64(e.header[2:], es.Fingerprint)
	for i, m := range es.Table.Columns {
		c := colEncoder{m: m, kind: fastKindOf(m)}
		if c.kind == kDecimal {
			p, ok := m.Avro.(map[string]any)["precision"].(int)
			if !ok {
				return nil, fmt.Errorf("compiling event encoder of %s.%s: column %q: decimal without a precision", quoteIdent(es.Table.Schema), quoteIdent(es.Table.Name), m.Column)
			}
			c.prec = p
		}
		if c.kind == kGeneral || c.kind == kDecimal {
			schema, err := json.Marshal([]any{"null", m.Avro})
			if err != nil {
				return nil, fmt.Errorf("compiling event encoder of %s.%s: column %q: %w", quoteIdent(es.Table.Schema), quoteIdent(es.Table.Name), m.Column, err)
			}
			if c.codec, err = goavro.NewCodec(string(schema)); err != nil {
				return nil, fmt.Errorf("compiling event encoder of %s.%s: column %q: %w", quoteIdent(es.Table.Schema), quoteIdent(es.Table.Name), m.Column, err)
			}
		}
		e.cols[i] = c
	}
	probe := &TextEvent{Op: "u", CommitLSN: 1 << 40, LSN: 1<<40 - 1, Seq: 300, Xid: 1 << 31,
		CommitTime: time.Date(2026, 11, 22, 3, 4, 5, 678901000, time.UTC), Schema: es.Table.Schema, Table: es.Table.Name,
		After: make([][]byte, len(e.cols))}
	if len(e.cols) > 0 {
		probe.Unchanged = []string{e.cols[0].m.Name}
	}
	fast, ok := e.appendEvent(nil, probe)
	general, err := e.general(nil, probe)
	if !ok || err != nil || !bytes.Equal(fast, general) {
		e.fast = false
	}
	return e, nil
}

// Fast reports whether the encoder uses its fast path (see NewEncoder).
func (e *Encoder) Fast() bool { return e.fast }

func fastKindOf(m *Mapping) fastKind {
	switch m.repr {
	case rBool:
		return kBool
	case rInt32:
		return kInt32
	case rInt64:
		return kInt64
	case rFloat32:
		return kFloat32
	case rFloat64:
		return kFloat64
	case rDecimal:
		return kDecimal
	case rText:
		return kString
	case rUUID:
		return kUUID
	case rBytes:
		return kBytes
	case rJSON:
		return kJSON
	case rDate:
		return kDate
	case rTimestamp:
		return kTimestamp
	case rTimestamptz:
		return kTimestamptz
	}
	return kGeneral
}

// Encode appends ev to buf in single-object encoding and returns the
// extended buffer: what EventSchema.Encode returns for the Event with the
// same envelope and the row images Table.Record makes of ev's texts, errors
// included (Record's first, as a caller converting then encoding sees them).
func (e *Encoder) Encode(buf []byte, ev *TextEvent) ([]byte, error) {
	if e.fast {
		if out, ok := e.appendEvent(buf, ev); ok {
			return out, nil
		}
	}
	return e.general(buf, ev)
}

// general is the path every event took before the Encoder: goavro natives,
// then goavro's encoding of the whole event.
func (e *Encoder) general(buf []byte, ev *TextEvent) ([]byte, error) {
	full, err := e.es.Table.event(ev)
	if err != nil {
		return nil, err
	}
	return e.es.Encode(buf, full)
}

// event is ev with its row images converted by Record (the before image
// first, so its error is the one returned).
func (t *Table) event(ev *TextEvent) (*Event, error) {
	full := &Event{Op: ev.Op, CommitLSN: ev.CommitLSN, LSN: ev.LSN, Seq: ev.Seq, Xid: ev.Xid, CommitTime: ev.CommitTime,
		Schema: ev.Schema, Table: ev.Table, Unchanged: ev.Unchanged}
	var err error
	if ev.Before != nil {
		if full.Before, err = t.Record(ev.Before); err != nil {
			return nil, err
		}
	}
	if ev.After != nil {
		if full.After, err = t.Record(ev.After); err != nil {
			return nil, err
		}
	}
	return full, nil
}

// appendEvent is the fast path: false when a value needs the general path.
func (e *Encoder) appendEvent(buf []byte, ev *TextEvent) ([]byte, bool) {
	buf = append(buf, e.header...)
	buf = appendAvroString(buf, ev.Op)
	buf = appendAvroLong(buf, int64(ev.CommitLSN))
	buf = appendAvroLong(buf, int64(ev.LSN))
	buf = appendAvroLong(buf, ev.Seq)
	buf = appendAvroLong(buf, ev.Xid)
	// goavro's timestamp-micros of a time.Time, which never overflows.
	buf = appendAvroLong(buf, ev.CommitTime.Unix()*1e6+int64(ev.CommitTime.Nanosecond()/1e3))
	buf = appendAvroString(buf, ev.Schema)
	buf = appendAvroString(buf, ev.Table)
	if n := len(ev.Unchanged); n > 0 { // one block, then the empty block that ends an array
		buf = appendAvroLong(buf, int64(n))
		for _, u := range ev.Unchanged {
			buf = appendAvroString(buf, u)
		}
	}
	buf = append(buf, 0)
	for _, row := range [2][][]byte{ev.Before, ev.After} {
		if row == nil {
			buf = append(buf, 0) // the union's null branch
			continue
		}
		if len(row) != len(e.cols) {
			return nil, false
		}
		buf = append(buf, 2) // the union's row branch
		for i := range e.cols {
			var ok bool
			if buf, ok = e.cols[i].append(buf, row[i]); !ok {
				return nil, false
			}
		}
	}
	return buf, true
}

// append appends the field ["null", T] for the Postgres text of one value
// (nil for NULL), with the checks Mapping.native applies to that type.
func (c *colEncoder) append(buf, text []byte) ([]byte, bool) {
	if text == nil {
		return append(buf, 0), true
	}
	switch c.kind {
	case kBool:
		b, err := parseBool(text)
		if err != nil {
			return nil, false
		}
		v := byte(0)
		if b {
			v = 1
		}
		return append(buf, 2, v), true
	case kInt32, kInt64:
		bits := 64
		if c.kind == kInt32 {
			bits = 32
		}
		n, ok := parseDecimalInt(text, bits)
		if !ok {
			var err error
			if n, err = strconv.ParseInt(string(text), 10, bits); err != nil {
				return nil, false
			}
		}
		return appendAvroLong(append(buf, 2), n), true
	case kFloat32:
		f, err := parseFloat(text, 32)
		if err != nil {
			return nil, false
		}
		return binary.LittleEndian.AppendUint32(append(buf, 2), math.Float32bits(float32(f))), true
	case kFloat64:
		f, err := parseFloat(text, 64)
		if err != nil {
			return nil, false
		}
		return binary.LittleEndian.AppendUint64(append(buf, 2), math.Float64bits(f)), true
	case kDecimal:
		if out, ok := appendDecimal(append(buf, 2), text, c.prec, c.m.scale); ok {
			return out, true
		}
	case kString, kUUID, kJSON:
		if !utf8.Valid(text) {
			return nil, false
		}
		switch c.kind {
		case kUUID:
			var u pgtype.UUID
			if planUUID.Scan(text, &u) != nil {
				return nil, false
			}
		case kJSON:
			if checkJSON(text) != nil {
				return nil, false
			}
		}
		return appendAvroBytes(append(buf, 2), text), true
	case kBytes:
		// bytea_output hex, as pgx reads it: \x and an even number of hex digits.
		if len(text) < 2 || text[0] != '\\' || text[1] != 'x' || len(text)%2 != 0 {
			return nil, false
		}
		buf = appendAvroLong(append(buf, 2), int64(len(text)-2)/2)
		n := len(buf)
		buf, err := hex.AppendDecode(buf, text[2:])
		if err != nil || len(buf)-n != (len(text)-2)/2 {
			return nil, false
		}
		return buf, true
	case kDate:
		d, err := parseDate(text)
		if err != nil {
			return nil, false
		}
		return appendAvroLong(append(buf, 2), int64(d)), true
	case kTimestamp, kTimestamptz:
		if us, ok := isoMicros(text, c.kind == kTimestamptz); ok {
			return appendAvroLong(append(buf, 2), us), true
		}
		if c.kind == kTimestamp {
			t, err := parseTimestamp(text)
			if err != nil {
				return nil, false
			}
			return appendAvroLong(append(buf, 2), unixMicros(t)), true
		}
		t, err := parseTimestamptz(text)
		if err != nil {
			return nil, false
		}
		return appendAvroLong(append(buf, 2), unixMicros(t)), true
	}
	// The general path of one field: the native value Convert makes, encoded
	// by goavro, union index included.
	v, err := c.m.Convert(text)
	if err != nil {
		return nil, false
	}
	if buf, err = c.codec.BinaryFromNative(buf, v); err != nil {
		return nil, false
	}
	return buf, true
}

// isoMicros reads the text Postgres prints of most timestamps (DateStyle
// ISO, and for a timestamptz TimeZone UTC), YYYY-MM-DD HH:MM:SS with up to
// six fractional digits and, when zone is set, "+00" after them, as
// microseconds since the epoch: what parseTimestamp or parseTimestamptz
// and unixMicros make of it. Any other text (BC, years past 9999 or
// before 1, another offset, a field out of range) is left to those.
func isoMicros(text []byte, zone bool) (int64, bool) {
	n := len(text)
	if zone {
		if n < 22 || text[n-3] != '+' || text[n-2] != '0' || text[n-1] != '0' {
			return 0, false
		}
		n -= 3
	}
	if n < 19 || text[4] != '-' || text[7] != '-' || text[10] != ' ' || text[13] != ':' || text[16] != ':' {
		return 0, false
	}
	num := func(i, w int) int {
		v := 0
		for _, c := range text[i : i+w] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return 0, false
	}
	micros := 0
	if n > 19 {
		frac := n - 20
		if text[19] != '.' || frac < 1 || frac > 6 {
			return 0, false
		}
		if micros = num(20, frac); micros < 0 {
			return 0, false
		}
		for range 6 - frac {
			micros *= 10
		}
	}
	if day > daysIn(year, month) {
		return 0, false
	}
	secs := ((daysFromCivil(year, month, day)*24+int64(hour))*60+int64(minute))*60 + int64(sec)
	return secs*1e6 + int64(micros), true
}

// daysIn is the number of days of month (1 to 12) of year, proleptic
// Gregorian as package time counts.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to a valid date of a
// year from 1 (proleptic Gregorian): the days_from_civil algorithm of
// Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms".
func daysFromCivil(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400 // y >= 0 for years from 1
	yoe := y - era*400
	m := int64(month)
	mp := (m + 9) % 12 // March is 0
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// appendDecimal appends the Avro decimal (bytes: the unscaled value in
// big-endian two's complement, as goavro writes a *big.Rat) of numeric text
// as Postgres prints it, -?digits(.digits)?, when the value has at most
// scale fractional digits, at most prec digits in all (Mapping.decimal's
// checks) and at most 18, so that the unscaled value fits an int64. Any
// other text, NaN and ±Infinity included, is left to the general path.
func appendDecimal(buf, text []byte, prec, scale int) ([]byte, bool) {
	s := text
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	whole, frac := s, []byte(nil)
	if i := bytes.IndexByte(s, '.'); i >= 0 {
		whole, frac = s[:i], s[i+1:]
		if len(frac) == 0 {
			return nil, false
		}
	}
	if len(whole) == 0 || len(frac) > scale || !digitsOnly(whole) || !digitsOnly(frac) {
		return nil, false
	}
	// The unscaled value: the digits of whole, frac and zeros up to the
	// scale, n of them without leading zeros (at most 18: it fits an int64).
	var v int64
	n := 0
	for _, part := range [2][]byte{whole, frac} {
		for _, c := range part {
			if n == 0 && c == '0' {
				continue
			}
			if n == 18 {
				return nil, false
			}
			v = v*10 + int64(c-'0')
			n++
		}
	}
	if n > 0 {
		for range scale - len(frac) {
			if n == 18 {
				return nil, false
			}
			v *= 10
			n++
		}
	}
	if n > prec {
		return nil, false
	}
	if neg {
		v = -v
	}
	// Minimal big-endian two's complement, at least one byte: what goavro's
	// toSignedBytes makes of the unscaled big.Int.
	size := 1
	for size < 8 && (v < -1<<(8*size-1) || v >= 1<<(8*size-1)) {
		size++
	}
	buf = appendAvroLong(buf, int64(size))
	for i := size - 1; i >= 0; i-- {
		buf = append(buf, byte(v>>(8*i)))
	}
	return buf, true
}

// parseDecimalInt reads -?[0-9]{1,18}, the text Postgres prints of an
// integer, when its value fits bits bits: what strconv.ParseInt returns of
// it, without the string. Any other text is left to ParseInt.
func parseDecimalInt(text []byte, bits int) (int64, bool) {
	s := text
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	if bits == 32 && (v < math.MinInt32 || v > math.MaxInt32) {
		return 0, false
	}
	return v, true
}

func digitsOnly(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// appendAvroLong appends n as Avro's zig-zag varint (int and long alike).
func appendAvroLong(buf []byte, n int64) []byte {
	return binary.AppendUvarint(buf, uint64(n<<1)^uint64(n>>63))
}

func appendAvroString(buf []byte, s string) []byte {
	return append(appendAvroLong(buf, int64(len(s))), s...)
}

func appendAvroBytes(buf, b []byte) []byte {
	return append(appendAvroLong(buf, int64(len(b))), b...)
}
