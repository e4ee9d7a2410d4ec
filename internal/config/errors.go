package config

import (
	"fmt"
	"strings"
)

// Error is one problem with one key. Load returns every Error it finds joined with errors.Join,
// so the caller sees all problems at once; errors.As finds the first.
type Error struct {
	// Source says where the value came from: "config <file>" or "--set".
	Source string
	// Path is the key path, written as in an override: sink.tables["public.orders"].mode.
	// It is empty for a problem with the whole file.
	Path string
	// Err says what is wrong. It never contains a DSN's password.
	Err error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Source + ": " + e.Err.Error()
	}
	return e.Source + ": " + e.Path + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// flagSource is the Source of values given with --set.
const flagSource = "--set"

// problems collects the errors of one Load.
type problems struct {
	file      string          // Source for values from the file
	errs      []error         // in the order found
	failed    map[string]bool // paths that already have an error, so validation stays quiet about them
	fromFlags map[string]bool // paths whose value came from --set
}

func newProblems(name string) *problems {
	return &problems{
		file:      "config " + name,
		failed:    map[string]bool{},
		fromFlags: map[string]bool{},
	}
}

// under reports whether path is one of set or lies below one of them.
func under(set map[string]bool, path string) bool {
	for p := range set {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

func (p *problems) source(path string) string {
	if under(p.fromFlags, path) {
		return flagSource
	}
	return p.file
}

// add records a problem at path.
func (p *problems) add(path string, err error) {
	p.failed[path] = true
	p.errs = append(p.errs, &Error{Source: p.source(path), Path: path, Err: err})
}

// addf records a problem at path, formatted.
func (p *problems) addf(path, format string, args ...any) {
	p.add(path, fmt.Errorf(format, args...))
}

// check records a problem at path unless ok, or unless path already has one.
func (p *problems) check(path string, ok bool, format string, args ...any) {
	if ok || under(p.failed, path) {
		return
	}
	p.addf(path, format, args...)
}

// joinKey appends a struct field name to a path.
func joinKey(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// joinMapKey appends a map key to a path, always quoted so that keys with dots stay one key.
func joinMapKey(path, key string) string {
	return fmt.Sprintf("%s[%q]", path, key)
}

// joinIndex appends a list index to a path.
func joinIndex(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}
