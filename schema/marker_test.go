package schema

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseMarkerRequest(t *testing.T) {
	tests := []struct {
		name    string
		content string
		tables  int
		wantErr string
	}{
		{"id only", `{"id":"20261122T030238Z-f5901ce9"}`, 0, ""},
		{"tables", `{"id":"a.b_c-1","tables":[{"schema":"public","table":"Order Lines"},{"schema":"s","table":"t"}]}`, 2, ""},
		{"not json", `tributary`, 0, "reading marker request"},
		{"no id", `{"tables":[]}`, 0, `marker id ""`},
		{"id with a slash", `{"id":"a/b"}`, 0, `character '/'`},
		{"id of dots", `{"id":".."}`, 0, "not only dots"},
		{"id too long", `{"id":"` + strings.Repeat("x", 65) + `"}`, 0, "want 1 to 64"},
		{"table without schema", `{"id":"x","tables":[{"table":"t"}]}`, 0, "tables[0] lacks its schema or table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseMarkerRequest([]byte(tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Tables) != tt.tables {
				t.Fatalf("%d tables, want %d", len(r.Tables), tt.tables)
			}
		})
	}
}

func TestNewMarkerIDIsValid(t *testing.T) {
	a, b := NewMarkerID(time.Date(2026, 11, 22, 3, 2, 38, 0, time.UTC)), NewMarkerID(time.Now())
	for _, id := range []string{a, b} {
		if err := ValidMarkerID(id); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(a, "20261122T030238Z-") || a == b {
		t.Fatalf("ids %q, %q", a, b)
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	m := &Marker{ID: "m-1", CommitLSN: 0x19262F8, LSN: 0x19262A0, CommitTime: time.UnixMicro(1763780558123456).UTC(),
		Schema: "public", Table: "Order Lines", Bucket: 31, Buckets: 32}
	data, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !IsMarker(data) {
		t.Fatal("IsMarker of an encoded marker is false")
	}
	got, err := DecodeMarker(data)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *m {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	// A row change is not a marker, and a marker's schema is not an event
	// schema: a consumer reading it as a change fails instead of taking it
	// for a row.
	if _, err := DecodeMarker([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0}); !errors.Is(err, ErrNotMarker) {
		t.Fatalf("DecodeMarker of another schema's data: %v", err)
	}
	if _, err := ParseEventSchema(MarkerSchemaJSON, nil); err == nil {
		t.Fatal("the marker schema parses as an event schema")
	}
	bad := *m
	bad.Bucket = 32
	data, _ = bad.Encode(nil)
	if _, err := DecodeMarker(data); err == nil || !strings.Contains(err.Error(), "bucket 32 of 32") {
		t.Fatalf("DecodeMarker of bucket 32 of 32: %v", err)
	}
}
