package verify

import (
	"strings"
	"testing"
	"time"
)

func TestFormatBuckets(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{5}, "5"},
		{[]int{0, 1, 2, 3}, "0-3"},
		{[]int{9, 0, 1, 7, 10, 3}, "0-1,3,7,9-10"},
		{[]int{31, 29}, "29,31"},
	}
	for _, tt := range tests {
		if got := FormatBuckets(tt.in); got != tt.want {
			t.Errorf("FormatBuckets(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWaitErrorNamesWhatIsMissing(t *testing.T) {
	err := &WaitError{Marker: "m1", Waited: 2100 * time.Millisecond, Buckets: 32,
		Missing: map[string][]int{"public.orders": {0, 1, 2, 5}, `public."Order Lines"`: {31}}}
	want := `marker m1 not applied after 2s: no record yet for public."Order Lines" buckets 31 (1 of 32); public.orders buckets 0-2,5 (4 of 32)`
	if got := err.Error(); !strings.HasPrefix(got, want) {
		t.Fatalf("got  %s\nwant %s…", got, want)
	}
}
