package sink

import (
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/tributary-cdc/tributary/schema"
)

// groupBySchema splits a buffer by schema version in place: versions in the
// order of their first change, each group in arrival order, no change lost
// or repeated, and the groups' appends never reach into the next group.
func TestGroupBySchema(t *testing.T) {
	v := map[byte]*schema.EventSchema{'a': {Fingerprint: 1}, 'b': {Fingerprint: 2}, 'c': {Fingerprint: 3}}
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a", "a"},
		{"aaaa", "aaaa"},
		{"abab", "aa|bb"},
		{"baab", "bb|aa"},
		{"abcabca", "aaa|bb|cc"},
		{"ccba", "cc|b|a"},
	} {
		buf := make([]received, len(tc.in))
		for i := range tc.in {
			buf[i] = received{msg: &pubsub.Message{ID: string(tc.in[i]) + string(rune('0'+i))}, es: v[tc.in[i]]}
		}
		groups := groupBySchema(buf)
		got, prev := "", ""
		for gi, g := range groups {
			if gi > 0 {
				got += "|"
			}
			for _, r := range g {
				got += r.msg.ID[:1]
				if prev != "" && prev[:1] == r.msg.ID[:1] && prev[1:] >= r.msg.ID[1:] {
					t.Errorf("%q: %s after %s: arrival order lost", tc.in, r.msg.ID, prev)
				}
				prev = r.msg.ID
			}
			if cap(g) != len(g) {
				t.Errorf("%q: group %d has room for %d more: an append would overwrite the next", tc.in, gi, cap(g)-len(g))
			}
		}
		if got != tc.want {
			t.Errorf("groupBySchema(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The envelope keeps the commit time to the microsecond, as the changelog
// does, and the op's letter.
func TestEnvelopeOf(t *testing.T) {
	at := time.Date(2026, 11, 22, 9, 30, 1, 123456000, time.FixedZone("x", 3600))
	e := envelopeOf(&schema.Event{Op: "t", CommitLSN: 5, Seq: 7, CommitTime: at})
	if !e.CommitTime().Equal(at) || e.CommitTime().Location() != time.UTC || e.Op != 't' || e.CommitLSN != 5 || e.Seq != 7 {
		t.Errorf("envelopeOf = %+v, commit time %v", e, e.CommitTime())
	}
	if zero := envelopeOf(&schema.Event{}); !zero.CommitTime().Equal(time.Time{}) || zero.Op != 0 {
		t.Errorf("the zero event's envelope = %+v, commit time %v", zero, zero.CommitTime())
	}
}
