package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
)

func TestCatPrintsRecordsExactly(t *testing.T) {
	schema := `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"]}]}`
	path := filepath.Join(t.TempDir(), "x.avro")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: f, Schema: schema, CompressionName: "deflate"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]any{
		map[string]any{"id": int64(9223372036854775807), "note": goavro.Union("string", "😀 é")},
		map[string]any{"id": int64(-1), "note": nil},
	}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var out bytes.Buffer
	if err := runCat(context.Background(), path, true, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"name":"r"`) {
		t.Fatalf("cat printed:\n%s\nwant the schema and two records", out.String())
	}
	// Avro's JSON encoding: exact integers, unions as {"branch": value};
	// non-ASCII text may be escaped, so compare decoded values.
	var first struct {
		ID   json.Number       `json:"id"`
		Note map[string]string `json:"note"`
	}
	dec := json.NewDecoder(strings.NewReader(lines[1]))
	dec.UseNumber()
	if err := dec.Decode(&first); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(lines[1], `{"id":9223372036854775807,"note":`) || first.Note["string"] != "😀 é" {
		t.Fatalf("first record printed as %s", lines[1])
	}
	if lines[2] != `{"id":-1,"note":null}` {
		t.Fatalf("second record printed as %s", lines[2])
	}
}

func TestCatRejectsNonAvro(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(path, []byte(`{"not":"avro"}`), 0o644)
	err := runCat(context.Background(), path, false, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("cat of a non-Avro file: %v, want an error naming the file", err)
	}
}
