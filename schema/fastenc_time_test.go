package schema

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestISOMicrosMatchesPgx compares isoMicros with the general parse
// (parseTimestamp or parseTimestamptz, then unixMicros) over random
// instants of years 1 to 9999 printed as Postgres prints them, with 0 to 6
// fractional digits, and over texts it must leave to the general parse.
func TestISOMicrosMatchesPgx(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	lo, hi := minBQTime.Unix(), maxBQTime.Unix()
	var texts []string
	for range 20000 {
		tm := time.Unix(lo+rng.Int64N(hi-lo), 0).UTC()
		s := tm.Format("2006-01-02 15:04:05")
		if d := rng.IntN(7); d > 0 {
			s += fmt.Sprintf(".%0*d", d, rng.IntN(pow10i(d)))
		}
		texts = append(texts, s)
	}
	texts = append(texts, "2024-02-29 00:00:00", "2023-02-29 00:00:00", "2024-04-31 12:00:00", "2024-13-01 00:00:00", "2024-00-10 00:00:00",
		"0000-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "10000-01-01 00:00:00", "2024-01-01 24:00:00",
		"2024-01-01 23:60:00", "2024-01-01 23:59:60", "2024-01-01 00:00:00.", "2024-01-01 00:00:00.1234567", "2024-01-01T00:00:00",
		"2024-1-01 00:00:00", "2024-01-01 0:00:00", "+024-01-01 00:00:00", "2024-01-01 00:00:00 BC", "infinity", "", "2024-01-01",
		"2024-01-01 00:00:0x", "1969-12-31 23:59:59.999999",
		"1900-02-29 00:00:00", "2000-02-29 00:00:00", "2100-02-29 00:00:00", "0004-02-29 00:00:00", "0100-02-29 00:00:00", "0400-02-29 00:00:00",
		"2024-02-30 00:00:00", "2024-06-31 00:00:00", "2024-11-31 00:00:00", "2024-01-32 00:00:00", "0001-03-01 00:00:00", "0001-02-28 23:59:59", "0399-12-31 00:00:00", "0400-03-01 00:00:00", "1600-12-31 00:00:00", "9999-02-28 00:00:00", "1970-01-01 00:00:00", "1582-10-10 00:00:00", "2024-01-01 00:00:00.-1")
	fast := 0
	for _, s := range texts {
		for _, zone := range []bool{false, true} {
			text := s
			if zone {
				text += "+00"
			}
			got, ok := isoMicros([]byte(text), zone)
			var want time.Time
			var err error
			if zone {
				want, err = parseTimestamptz([]byte(text))
			} else {
				want, err = parseTimestamp([]byte(text))
			}
			if !ok {
				continue
			}
			fast++
			if err != nil {
				t.Errorf("%q: isoMicros took it, the general parse fails: %v", text, err)
			} else if got != unixMicros(want) {
				t.Errorf("%q: isoMicros %d, general %d", text, got, unixMicros(want))
			}
		}
	}
	if fast < 40000 {
		t.Errorf("isoMicros took %d texts, want the 40000 random ones at least", fast)
	}
	for _, text := range []string{"2024-06-01 12:00:00+05:30", "2024-06-01 12:00:00-00", "2024-06-01 12:00:00+0", "2024-06-01 12:00:00+00 BC"} {
		if _, ok := isoMicros([]byte(text), true); ok {
			t.Errorf("%q: taken by isoMicros", text)
		}
	}
}

func pow10i(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// TestParseDecimalIntMatchesStrconv compares parseDecimalInt with
// strconv.ParseInt over random integers of every length, the bounds of
// int32 and int64, and texts it must leave to ParseInt.
func TestParseDecimalIntMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	texts := []string{"0", "-0", "+7", "007", "-007", "", "-", "1_000", " 1", "1 ", "1.5", "2147483647", "2147483648", "-2147483648", "-2147483649",
		"9223372036854775807", "-9223372036854775808", "9223372036854775808", "999999999999999999", "-999999999999999999", "1000000000000000000"}
	for range 20000 {
		texts = append(texts, strconv.FormatInt(rng.Int64()>>rng.IntN(63), 10), strconv.FormatInt(-rng.Int64()>>rng.IntN(63), 10))
	}
	taken := 0
	for _, s := range texts {
		for _, bits := range []int{32, 64} {
			got, ok := parseDecimalInt([]byte(s), bits)
			want, err := strconv.ParseInt(s, 10, bits)
			if !ok {
				continue
			}
			taken++
			if err != nil || got != want {
				t.Errorf("%q (%d bits): %d, ParseInt %d, %v", s, bits, got, want, err)
			}
		}
	}
	if taken < 30000 {
		t.Errorf("parseDecimalInt took %d texts", taken)
	}
}
