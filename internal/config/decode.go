package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder decodes a YAML node tree onto a Config, strictly: an unknown key, a duplicate key or a
// value of the wrong kind is a problem at its path, and decoding goes on to find the others. It
// replaces ${VAR} in the file's scalar values as it goes, so that an unset variable is reported
// at the key that uses it.
//
// It walks the tree itself instead of using yaml.v3's Decoder.KnownFields, whose errors carry a
// line number but no key path, and stop at the first unknown key.
type decoder struct {
	lookup    func(string) (string, bool)
	fromFlags map[*yaml.Node]bool // nodes that --set put into the tree
	p         *problems
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.fromFlags[n] {
		d.p.fromFlags[path] = true
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value keeps the default
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if n.Kind == yaml.ScalarNode {
			s, ok := d.scalar(path, n)
			if !ok {
				return
			}
			c := *n
			c.Value = s
			n = &c
		}
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.p.add(path, err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(path, n, v)
	case reflect.Map:
		d.mapping(path, n, v)
	case reflect.Slice:
		d.sequence(path, n, v)
	case reflect.String:
		if s, ok := d.scalarOf(path, n, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalarOf(path, n, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.p.addf(path, "%q is not an integer", s)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		s, ok := d.scalarOf(path, n, "true or false")
		if !ok {
			return
		}
		switch strings.TrimSpace(s) {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.p.addf(path, "%q is not true or false", s)
		}
	default:
		panic(fmt.Sprintf("config: no decoder for %s", v.Type()))
	}
}

// scalarOf gives the interpolated value of a scalar node, or records that n is not one.
func (d *decoder) scalarOf(path string, n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.p.addf(path, "must be %s, not %s", want, kindName(n))
		return "", false
	}
	return d.scalar(path, n)
}

// scalar gives a scalar node's value with ${VAR} replaced, for values from the file; values
// from --set are taken as they are, the shell having expanded them already.
func (d *decoder) scalar(path string, n *yaml.Node) (string, bool) {
	if under(d.p.fromFlags, path) {
		return n.Value, true
	}
	s, err := interpolate(n.Value, d.lookup)
	if err != nil {
		d.p.add(path, err)
		return "", false
	}
	return s, true
}

func (d *decoder) structure(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.p.addf(path, "must be a mapping of keys, not %s", kindName(n))
		return
	}
	fields := map[string]int{}
	var names []string
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		fields[name] = i
		names = append(names, name)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.p.addf(path, "line %d: a key must be a scalar, not %s", k.Line, kindName(k))
			continue
		}
		kp := joinKey(path, k.Value)
		if d.fromFlags[k] || d.fromFlags[val] {
			d.p.fromFlags[kp] = true
		}
		if line, dup := seen[k.Value]; dup {
			d.p.addf(kp, "set twice (lines %d and %d)", line, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		switch {
		case ok:
			d.decode(kp, val, v.Field(f))
		case k.Value == "<<":
			d.p.addf(kp, "merge keys are not supported")
		default:
			d.p.add(kp, unknownKey(k.Value, names))
		}
	}
}

// unknownKey says that key is unknown, suggesting the nearest of names when one is close.
func unknownKey(key string, names []string) error {
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(key, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return fmt.Errorf("unknown key (did you mean %s?)", best)
	}
	return errors.New("unknown key")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.p.addf(path, "must be a mapping, not %s", kindName(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.p.addf(path, "line %d: a key must be a scalar, not %s", k.Line, kindName(k))
			continue
		}
		kp := joinMapKey(path, k.Value)
		if d.fromFlags[k] || d.fromFlags[val] {
			d.p.fromFlags[kp] = true
		}
		if line, dup := seen[k.Value]; dup {
			d.p.addf(kp, "set twice (lines %d and %d)", line, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		key := reflect.ValueOf(k.Value)
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		d.decode(kp, val, elem)
		v.SetMapIndex(key, elem)
	}
}

func (d *decoder) sequence(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.p.addf(path, "must be a list, not %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		d.decode(joinIndex(path, i), e, s.Index(i))
	}
	v.Set(s)
}
