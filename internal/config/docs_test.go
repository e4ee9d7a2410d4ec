package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestDocsCoverEveryKey checks that docs/config.md has a row for every key of Config.
func TestDocsCoverEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keyPaths("", reflect.TypeFor[Config]()) {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/config.md has no row for %s", k)
		}
	}
}

// keyPaths lists the key paths of a struct type, writing a map key as ["<table>"].
func keyPaths(prefix string, t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		path := joinKey(prefix, name)
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[TableName]():
			out = append(out, keyPaths(path, ft)...)
		case ft.Kind() == reflect.Map:
			out = append(out, path)
			out = append(out, keyPaths(path+`["<table>"]`, ft.Elem())...)
		default:
			out = append(out, path)
		}
	}
	return out
}
