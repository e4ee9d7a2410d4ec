package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// fastencCase is one column type and Postgres texts of its values, as
// pgoutput prints them under SessionSettings, with the edge cases of the
// capture type zoo and texts no setting produces (which must fail alike).
type fastencCase struct {
	typ    typ
	values []string
}

// nul stands for SQL NULL in a value list.
const nul = "\x00NULL"

var fastencResolver = Chain(Builtin, docTypes, testTypes)

var fastencCases = []fastencCase{
	{tBool, []string{"t", "f", "true", "false", "x", ""}},
	{tInt2, []string{"12", "-32768", "32767", "0", "-0", "+7", "abc", "", "2147483648"}},
	{tInt4, []string{"1234", "-2147483648", "2147483647", "2147483648", "1.5", " 1"}},
	{tInt8, []string{"1234567890123", "-9223372036854775808", "9223372036854775807", "9223372036854775808", "63", "64", "-64", "-65"}},
	{tOID, []string{"12345", "0", "4294967295"}},
	{tFloat4, []string{"1.5", "-3.4028235e+38", "3.4028235e+38", "1e-45", "1.1754944e-38", "-0", "NaN", "Infinity", "-Infinity", "0.1", "3.5e+38", "abc"}},
	{tFloat8, []string{"0.1", "-1.7976931348623157e+308", "1.7976931348623157e+308", "5e-324", "-0", "NaN", "Infinity", "-Infinity", "1e21",
		"123456789012345680000", "1e309", "0x1p-2", ""}},
	{tNumeric, []string{"3.14", "0", "NaN", "Infinity", "-Infinity", "1234567890123456789012345678901234567890",
		"-0." + strings.Repeat("0", 41) + "1", strings.Repeat("9", 1000), "-0." + strings.Repeat("0", 999) + "1"}},
	{typ{1700, numericTypmod(10, 2)}, []string{"12.34", "-99999999.99", "99999999.99", "0.01", "-0.01", "0.00", "0", "1.01", "NaN", "Infinity", "-Infinity",
		"123456789.00", "1.234", "1.230", "1.2", "-0.00", "1e5", "+5.00", " 5.00", "5.", ".5", "-", "", "1.2.3", "١٢"}},
	{typ{1700, numericTypmod(38, 9)}, []string{"1.500000000", "-99999999999999999999999999999.999999999", "99999999999999999999999999999.999999999",
		"0.000000001", "NaN", "999999999.999999999", "-999999999.999999999", "9999999999.999999999", "-922337203.685477580", "0.000000000",
		"9223372036.854775807", "-9223372036.854775808", "1.27", "1.28", "-1.28", "-1.29", "0.000000127", "0.000000128", "-0.000000128", "-0.000000129",
		"0.000000255", "0.000000256", "-0.000000256", "0.000032767", "0.000032768", "-0.000032768", "-0.000032769"}},
	{typ{1700, numericTypmod(18, 0)}, []string{"999999999999999999", "-999999999999999999", "127", "128", "-128", "-129", "255", "256", "-256", "-257",
		"32767", "32768", "-32768", "-32769", "8388607", "8388608", "-8388608", "-8388609", "2147483647", "2147483648", "-2147483648", "-2147483649",
		"549755813887", "549755813888", "-549755813888", "-549755813889", "140737488355327", "140737488355328", "-140737488355328", "-140737488355329",
		"36028797018963967", "36028797018963968", "-36028797018963968", "-36028797018963969", "1000000000000000000"}},
	{typ{1700, numericTypmod(19, 0)}, []string{"9223372036854775807", "-9223372036854775808", "9999999999999999999", "-9999999999999999999", "1"}},
	{typ{1700, numericTypmod(40, 10)}, []string{"2.5000000000", "0.0000000001", "NaN", "-" + strings.Repeat("9", 30) + "." + strings.Repeat("9", 10)}},
	{typ{1700, numericTypmod(60, 20)}, []string{"1.5", "0.00000000000000000001", strings.Repeat("9", 40) + "." + strings.Repeat("9", 20)}},
	{typ{1700, numericTypmod(76, 38)}, []string{"1." + strings.Repeat("0", 38), "-" + strings.Repeat("9", 38) + "." + strings.Repeat("9", 38)}},
	{typ{1700, numericTypmod(5, -2)}, []string{"1200", "9999900", "-9999900", "-100", "0", "NaN", "99999900"}},
	{typ{1700, numericTypmod(3, 5)}, []string{"0.00123", "-0.00999", "0.00000", "0", "NaN", "0.01000"}},
	{typ{1700, numericTypmod(1, 0)}, []string{"9", "-9", "10", "0"}},
	{tMoney, []string{"$12.34", "-$92,233,720,368,547,758.08", "$92,233,720,368,547,758.07", "$0.00", "-$0.01", "12.34", "$1,2.00"}},
	{tText, []string{"hello", "", "NULL", "😀 grinning, 𝄞 clef", "tab\there\nnewline\\back\"quote'", "\x01\x7f", "Zürich ∑ 中文",
		strings.Repeat("0123456789abcdef", 1<<16), "\xff\xfe", "ok\xc3"}},
	{typ{1043, 14}, []string{"short", "", "😀😀😀😀😀😀😀😀😀😀"}},
	{tBpchar, []string{"ab       ", "         ", "😀        "}},
	{typ{19, -1}, []string{"a_name", "", strings.Repeat("n", 63), "x😀"}},
	{tChar, []string{"a", "", "é", `\`, "\x80"}},
	{tXML, []string{"<a>1</a>", "", `<a b="😀">x &amp; y</a>`, "text only"}},
	{tBytea, []string{`\xdeadbeef`, `\x`, `\x00`, `\x000100ff00`, `\x` + strings.Repeat("00", 4096), `\xDEADBEEF`, `\x0`, `\xzz`, `abc`, `\\x00`, `\000`, ""}},
	{tUUID, []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
		"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc999c0b4ef8bb6d6bb9bd380a11", "not-a-uuid", ""}},
	{tJSON, []string{`{"a": 1, "b": [true, null, "x"]}`, `{}`, `[]`, `null`, `""`, `{"a":1,"a":2}`, `{"big": 12345678901234567890123}`,
		`{"f": 0.1, "e": 1e2, "z": -0, "g": 1.0}`, `{"n": 1e400}`, `{"😀": "\ud83d\ude00", "nul": "\u0000"}`, `  {"ws" : [ 1 , 2 ] }  `,
		`{"deep":{"a":{"b":{"c":{"d":[1,[2,[3,{"e":null}]]]}}}}}`, `{`, "\"\xff\""}},
	{tJSONB, []string{`{"a": 1}`, `{"u": 18446744073709551615}`, `{"u": 18446744073709551616}`, `{"x": 1.5e300}`, `{"": "", "😀": ["😀"]}`, `"é"`, `[1.000, 2.50, -0.0]`}},
	{tDate, []string{"2024-02-29", "0001-01-01", "9999-12-31", "1969-12-31", "1970-01-01", "1582-10-10", "10000-01-01", "0001-01-01 BC", "4713-01-01 BC",
		"5874897-12-31", "infinity", "-infinity", "2024-13-01", "2023-02-29", "24-01-01", ""}},
	{tTime, []string{"12:34:56.789012", "00:00:00", "23:59:59.999999", "24:00:00", "25:00:00"}},
	{tTimetz, []string{"12:34:56+02", "00:00:00+15:59", "24:00:00-15:59", "23:59:59.999999+00"}},
	{tTimestamp, []string{"2024-02-29 12:34:56.789012", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999",
		"1900-01-01 00:00:00.5", "10000-01-01 00:00:00", "0044-03-15 12:00:00 BC", "4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999",
		"infinity", "-infinity", "2024-02-30 00:00:00", "2024-01-01T00:00:00", ""}},
	{tTimestamptz, []string{"2024-02-29 12:34:56.789012+00", "2024-06-01 06:30:00+00", "2024-06-01 12:00:00+05:30", "0001-01-01 00:00:00+00",
		"9999-12-31 23:59:59.999999+00", "1969-12-31 23:59:59.999999+00", "0001-12-31 23:00:00+00 BC", "10000-01-01 04:00:00+00",
		"0044-03-15 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00", "infinity", "-infinity", "0001-01-01 00:30:00+01", "9999-12-31 23:30:00-01",
		"2024-06-01 12:00:00", ""}},
	{tInterval, []string{"1 year 2 mons 3 days 04:05:06.5", "00:00:00", "-1 years -2 mons +3 days -04:05:06.789", "178000000 years",
		"-178000000 years", "2147483647 days", "2562047788:00:54.775807", "infinity", "-infinity", "P1Y"}},
	{tInet, []string{"192.168.0.1", "10.0.0.0/8", "::1", "2001:db8::1/64"}},
	{typ{650, -1}, []string{"10.0.0.0/8", "::/0"}},
	{typ{829, -1}, []string{"08:00:2b:01:02:03"}},
	{typ{774, -1}, []string{"08:00:2b:01:02:03:04:05"}},
	{tBit, []string{"1010", "0000"}},
	{typ{1562, -1}, []string{"101", ""}},
	{tTsvector, []string{"'a' 'cat' 'fat'", "", `'it''s' '😀':1A 'x\\y'`}},
	{typ{3615, -1}, []string{"'a' & 'b'"}},
	{typ{3220, -1}, []string{"16/B374D848"}},
	{typ{5069, -1}, []string{"18446744073709551615"}},
	{typ{600, -1}, []string{"(1,2)"}},
	{tInt4range, []string{"[1,10)", "empty", "(,)", "[-2147483648,2147483647)"}},
	{typ{3910, -1}, []string{`["2024-01-01 00:00:00+00","2024-02-01 00:00:00+00")`, `["2024-01-01 00:00:00+00",infinity)`}},
	{tInt4multi, []string{"{[1,3),[5,7)}", "{}"}},
	{typ{100001, -1}, []string{`"a"=>"1", "b"=>NULL`, ``, `"😀"=>"x", ""=>""`, `"a\"b"=>"c\\d"`, `"k"=>"NULL"`, `a=>`, "\"\xff\"=>\"x\""}},
	{typ{100002, -1}, []string{"ok", `très "happy" 😀`}},
	{typ{100003, -1}, []string{"12.50", "-9999999999.99", "NaN", "0.00"}},
	{typ{100004, -1}, []string{`(street,5)`, `(,)`, `("a,b",)`, `(x,notanint)`, `(x)`, `x`}},
	{tMood, []string{"ok"}},
	{tPosint, []string{"7", "2147483647", "2147483648"}},
	{tPair, []string{`(1,x,"{1.5,NaN}")`, `(,,)`, `(0,"",{})`, `(1,"q\"u\\o ( ) 😀",)`, `(1,x,"[2:2]={1}")`, `(a,x,)`}},
	{tOuter, []string{`("(1,x,{2})","2024-01-01 00:00:00+00")`, `(,)`, `("(,,)",infinity)`}},
	{tPairArr, []string{`{"(1,x,{1.5})",NULL,"(,,)"}`, `{}`}},
	{tHstoreArr, []string{`{"\"a\"=>\"1\"",NULL}`}},
	{tInt4Arr, []string{"{1,2,3}", "{}", "{NULL}", "{1,NULL,3}", "{{1,2},{3,4}}", "{{{1},{2}},{{3},{NULL}}}", "{-2147483648,2147483647}", "[0:1]={1,2}", "{1,x}"}},
	{tTextArr, []string{"{a,b}", "{}", `{"",NULL,"NULL","a,b","q\"u","back\\slash","😀"," sp ","{}"}`, "{{a,b},{c,NULL}}"}},
	{tFloat8Arr, []string{"{0.1}", "{NaN,Infinity,-Infinity,-0,5e-324,1.7976931348623157e+308}"}},
	{typ{1021, -1}, []string{"{1.5}", "{3.4028235e+38,1e-45,NaN,-0}"}},
	{typ{1231, -1}, []string{"{1.50}", "{NaN,Infinity,-Infinity,0.000000000000000000000000000001}"}},
	{tNumArr, []string{"{1.50}", "{NaN,-99999999.99}"}},
	{tBoolArr, []string{"{t,f,NULL}"}},
	{tTsArr, []string{`{"2024-01-01 00:00:00"}`, `{infinity,"0044-03-15 00:00:00 BC",NULL}`}},
	{tJSONBArr, []string{`{"{\"a\": 1}"}`, `{"{\"a\": 1}",NULL,"[1, \"😀\"]"}`}},
	{tByteaArr, []string{`{"\\x00ff"}`}},
	{typ{1020, -1}, []string{"{(1,1),(0,0);(2,2),(1,1)}"}},
}

// fastencTable maps one column per case, c0, c1, …, and one column typed
// as text whatever its type (Column.AsText), which the fast path treats as
// text.
func fastencTable(t testing.TB) *Table {
	t.Helper()
	cols := make([]Column, 0, len(fastencCases)+1)
	for i, c := range fastencCases {
		cols = append(cols, Column{Name: "c" + strconv.Itoa(i), TypeOID: c.typ.oid, TypeMod: c.typ.typmod, Key: i == 0})
	}
	cols = append(cols, Column{Name: "as text", TypeOID: 1082, TypeMod: -1, AsText: true})
	tbl, err := MapTable("public", "Fast Enc", cols, fastencResolver)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// caseValues is every case's texts, with the as-text column's, as they go
// into a row.
func caseValues() [][][]byte {
	out := make([][][]byte, 0, len(fastencCases)+1)
	for _, c := range fastencCases {
		vs := make([][]byte, len(c.values))
		for j, v := range c.values {
			vs[j] = []byte(v)
		}
		out = append(out, vs)
	}
	return append(out, [][]byte{[]byte("infinity"), []byte("2024-01-01"), []byte("\xff")})
}

// referenceEncode is the path capture took before the Encoder: convert
// each row image with Table.Record, then encode the Event with goavro.
func referenceEncode(es *EventSchema, buf []byte, ev *TextEvent) ([]byte, error) {
	full := &Event{Op: ev.Op, CommitLSN: ev.CommitLSN, LSN: ev.LSN, Seq: ev.Seq, Xid: ev.Xid, CommitTime: ev.CommitTime,
		Schema: ev.Schema, Table: ev.Table, Unchanged: ev.Unchanged}
	var err error
	if ev.Before != nil {
		if full.Before, err = es.Table.Record(ev.Before); err != nil {
			return nil, err
		}
	}
	if ev.After != nil {
		if full.After, err = es.Table.Record(ev.After); err != nil {
			return nil, err
		}
	}
	return es.Encode(buf, full)
}

// checkSame encodes ev both ways after the same prefix and fails unless
// the bytes, or the errors, are the same. It also checks that the fast
// path took the event exactly when the reference succeeded, so that
// agreement is not the general path agreeing with itself. It returns the
// reference's error.
func checkSame(t *testing.T, enc *Encoder, ev *TextEvent, what string) error {
	t.Helper()
	prefix := []byte("prefix")
	want, wantErr := referenceEncode(enc.es, bytes.Clone(prefix), ev)
	got, gotErr := enc.Encode(bytes.Clone(prefix), ev)
	switch {
	case wantErr == nil && gotErr == nil:
		if !bytes.Equal(got, want) {
			t.Errorf("%s: bytes differ\n fast     % x\n reference % x", what, short(got), short(want))
		}
	case wantErr == nil || gotErr == nil:
		t.Errorf("%s: error %v, reference error %v", what, gotErr, wantErr)
	default:
		if gotErr.Error() != wantErr.Error() {
			t.Errorf("%s: error %q, reference %q", what, gotErr, wantErr)
		}
		var g, w *DeadLetterError
		if errors.As(gotErr, &g) != errors.As(wantErr, &w) || g != nil && *g != *w {
			t.Errorf("%s: dead-letter %+v, reference %+v", what, g, w)
		}
	}
	_, fast := enc.appendEvent(nil, ev)
	if fast != (wantErr == nil) {
		t.Errorf("%s: fast path took it: %v; reference error: %v", what, fast, wantErr)
	}
	return wantErr
}

func short(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

func fastencEvent(tbl *Table) *TextEvent {
	return &TextEvent{Op: "c", CommitLSN: 0x16B3748, LSN: 0x16B3700, Seq: 3, Xid: 771,
		CommitTime: time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.FixedZone("x", 3600)), Schema: tbl.Schema, Table: tbl.Name}
}

// TestEncoderMatchesGeneralPathPerValue puts each value of every type
// alone in a row (the others NULL) and compares the encodings, and the
// errors of values that go to the dead-letter.
func TestEncoderMatchesGeneralPathPerValue(t *testing.T) {
	tbl := fastencTable(t)
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(es)
	if err != nil {
		t.Fatal(err)
	}
	if !enc.Fast() {
		t.Fatal("the encoder disagreed with the general path on its probe event")
	}
	var ok, dead, handWritten int
	for i, vals := range caseValues() {
		m := tbl.Columns[i]
		for _, v := range vals {
			row := make([][]byte, len(tbl.Columns))
			if string(v) != nul {
				row[i] = v
			}
			ev := fastencEvent(tbl)
			ev.After = row
			what := fmt.Sprintf("%s %q", m.PG, truncateUTF8(string(v), 60))
			if err := checkSame(t, enc, ev, what); err != nil {
				var dl *DeadLetterError
				if !errors.As(err, &dl) {
					t.Errorf("%s: reference error is not a dead-letter: %v", what, err)
				}
				dead++
				continue
			}
			ok++
			if enc.cols[i].kind != kGeneral {
				handWritten++
			}
		}
	}
	t.Logf("%d values encoded alike (%d by the hand-written appends), %d dead-lettered alike", ok, handWritten, dead)
	if handWritten < 150 || dead < 60 {
		t.Errorf("too few cases exercised: %d hand-written, %d dead-lettered", handWritten, dead)
	}
}

// TestEncoderMatchesGeneralPathRandomRows draws whole rows from the values
// (NULLs included), with before images, unchanged columns and every op, so
// that hand-written and goavro-encoded fields interleave in every order.
func TestEncoderMatchesGeneralPathRandomRows(t *testing.T) {
	tbl := fastencTable(t)
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(es)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 3))
	row := randomRows(tbl, rng)
	var ok, dead int
	for n := range 600 {
		ev := fastencEvent(tbl)
		ev.Seq, ev.Xid = int64(n), rng.Int64N(1<<40)
		ev.CommitTime = time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9))
		switch n % 4 {
		case 0:
			ev.After = row()
		case 1:
			ev.Op, ev.Before, ev.After = "u", row(), row()
			for i := range ev.After {
				if ev.After[i] == nil && rng.IntN(3) == 0 {
					ev.Unchanged = append(ev.Unchanged, tbl.Columns[i].Name)
				}
			}
		case 2:
			ev.Op, ev.Before = "d", row()
		case 3:
			ev.Op, ev.Before, ev.After = "t", nil, nil
		}
		if err := checkSame(t, enc, ev, fmt.Sprintf("random event %d (op %s)", n, ev.Op)); err != nil {
			dead++
		} else {
			ok++
		}
	}
	t.Logf("%d random events encoded alike, %d failed alike", ok, dead)
	if ok < 300 || dead < 30 {
		t.Errorf("too few of each: %d encoded, %d failed", ok, dead)
	}
}

// TestEncoderDecimalProperty compares the hand-written decimal with
// goavro's encoding of the big.Rat over random values of every length up
// to and past 18 digits, at every scale, and at the byte boundaries of two's
// complement.
func TestEncoderDecimalProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var texts []string
	for k := 1; k < 64; k++ {
		for _, d := range []int64{-1, 0, 1} {
			texts = append(texts, strconv.FormatInt(1<<k+d, 10), strconv.FormatInt(-(1<<k)+d, 10))
		}
	}
	texts = append(texts, strconv.FormatInt(math.MaxInt64, 10), strconv.FormatInt(math.MinInt64, 10))
	for range 3000 {
		n := 1 + rng.IntN(22)
		var b strings.Builder
		if rng.IntN(2) == 0 {
			b.WriteByte('-')
		}
		for i := range n {
			b.WriteByte(byte('0' + rng.IntN(10)))
			_ = i
		}
		texts = append(texts, b.String())
	}
	for _, scale := range []int{0, 1, 2, 5, 9, 18, 20} {
		for _, prec := range []int{scale + 1, 18, 19, 38} {
			if prec < scale || prec < 1 {
				continue
			}
			codec, err := goavro.NewCodec(fmt.Sprintf(`{"type":"bytes","logicalType":"decimal","precision":%d,"scale":%d}`, prec, scale))
			if err != nil {
				t.Fatal(err)
			}
			for _, digits := range texts {
				// Place the point so that scale digits follow it, as Postgres prints numeric(p,s).
				neg := strings.HasPrefix(digits, "-")
				d := strings.TrimPrefix(digits, "-")
				for len(d) <= scale {
					d = "0" + d
				}
				text := d[:len(d)-scale]
				if scale > 0 {
					text += "." + d[len(d)-scale:]
				}
				if neg {
					text = "-" + text
				}
				got, ok := appendDecimal(nil, []byte(text), prec, scale)
				r, _ := new(big.Rat).SetString(text)
				checkErr := checkDecimal(r, prec, scale)
				if !ok {
					unscaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(pow10(scale)))
					if checkErr == nil && len(new(big.Int).Abs(unscaled.Num()).String()) <= 18 {
						t.Errorf("decimal(%d,%d) %s: not taken by the fast path", prec, scale, text)
					}
					continue
				}
				if checkErr != nil {
					t.Errorf("decimal(%d,%d) %s: fast path took a value the general path dead-letters (%v)", prec, scale, text, checkErr)
					continue
				}
				want, err := codec.BinaryFromNative(nil, r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("decimal(%d,%d) %s: % x, goavro % x", prec, scale, text, got, want)
				}
			}
		}
	}
}

// TestEncoderFallsBackWhenTheEnvelopeDiffers gives the encoder an event
// schema whose envelope is not NewEventSchema's (a field added): the probe
// finds the difference and every event takes the general path.
func TestEncoderFallsBackWhenTheEnvelopeDiffers(t *testing.T) {
	tbl := testTable(t)
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(es.JSON), &env); err != nil {
		t.Fatal(err)
	}
	env["fields"] = append(env["fields"].([]any), map[string]any{"name": "extra", "type": "long", "default": 7})
	avsc, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ParseEventSchema(string(avsc), tbl)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(other)
	if err != nil {
		t.Fatal(err)
	}
	if enc.Fast() {
		t.Fatal("the fast path was kept for an envelope it does not write")
	}
	ev := fastencEvent(tbl)
	ev.After = [][]byte{[]byte("7"), []byte("note"), []byte("12.50")}
	got, err := enc.Encode(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	want, err := referenceEncode(other, nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("general path of a slow encoder: % x, reference % x", got, want)
	}
	if _, err := NewEncoder(&EventSchema{}); err == nil {
		t.Error("NewEncoder of an event schema without a table succeeded")
	}
}

// TestEncoderConcurrent encodes from many goroutines at once; run with
// -race it proves an Encoder is only read while it encodes.
func TestEncoderConcurrent(t *testing.T) {
	tbl, err := MapTable("public", "orders", benchColumns, testResolver)
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewEventSchema(tbl)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(es)
	if err != nil {
		t.Fatal(err)
	}
	ev := fastencEvent(tbl)
	ev.After = benchRow
	want, err := referenceEncode(es, nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var buf []byte
			for range 50 {
				var err error
				if buf, err = enc.Encode(buf[:0], ev); err != nil || !bytes.Equal(buf, want) {
					errs <- fmt.Errorf("concurrent Encode: %v, equal %v", err, bytes.Equal(buf, want))
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// randomRows returns a source of rows of tbl drawn by rng from the zoo's values:
// about 15 % NULL, 0.2 % a value that goes to the dead-letter, the rest
// values that convert.
func randomRows(tbl *Table, rng *rand.Rand) func() [][]byte {
	vals := caseValues()
	good := make([][][]byte, len(vals))
	bad := make([][][]byte, len(vals))
	for i, vs := range vals {
		for _, v := range vs {
			if _, err := tbl.Columns[i].Convert(v); err == nil {
				good[i] = append(good[i], v)
			} else {
				bad[i] = append(bad[i], v)
			}
		}
	}
	return func() [][]byte {
		r := make([][]byte, len(tbl.Columns))
		for i := range r {
			switch p := rng.IntN(1000); {
			case p < 150: // NULL
			case p < 152 && len(bad[i]) > 0:
				r[i] = bad[i][rng.IntN(len(bad[i]))]
			default:
				r[i] = good[i][rng.IntN(len(good[i]))]
			}
		}
		return r
	}
}
