package main

import (
	"bytes"
	"os"
	"testing"
)

// TestDocUpToDate fails when docs/type-mapping.md differs from what the code
// generates: run go generate ./schema/ and commit the result.
func TestDocUpToDate(t *testing.T) {
	const path = "../../../docs/type-mapping.md"
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v (run go generate ./schema/)", path, err)
	}
	if want := render(); !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go generate ./schema/", path)
	}
}
