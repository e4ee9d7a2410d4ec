package capture

import (
	"os"
	"testing"

	"github.com/jackc/pglogrepl"
)

func TestSpillReplaysInOrderSkippingAbortedSubtransactions(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpill(dir, 700)
	if err != nil {
		t.Fatal(err)
	}
	records := []struct {
		xid  uint32
		lsn  pglogrepl.LSN
		data string
	}{
		{700, 10, "top-1"}, {701, 20, "sub-aborted"}, {702, 30, "sub-kept"}, {700, 40, "top-2"}, {701, 50, "sub-aborted-2"},
		{700, 60, string(make([]byte, 3<<20))}, // bigger than the buffers
	}
	for _, r := range records {
		if err := s.append(r.xid, r.lsn, []byte(r.data)); err != nil {
			t.Fatal(err)
		}
	}
	s.abortSub(701)
	var got []pglogrepl.LSN
	var sizes []int
	err = s.replay(func(lsn pglogrepl.LSN, data []byte) error {
		got = append(got, lsn)
		sizes = append(sizes, len(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []pglogrepl.LSN{10, 30, 40, 60}
	if len(got) != len(want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("replayed %v, want %v", got, want)
		}
	}
	if sizes[3] != 3<<20 {
		t.Fatalf("large record replayed as %d bytes", sizes[3])
	}
	if err := s.remove(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("spill file left behind: %v", entries)
	}
}
