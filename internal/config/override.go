package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// An override, as given to --set, is key.path=value.
//
// The path is a field name followed by any of .field, ["map key"] and [index]: postgres.slot,
// sink.tables["public.orders"].mode, postgres.tables[0]. Map keys are double-quoted with Go
// escapes, so a key may hold dots and quotes: sink.tables["public.\"Order Items\""].mode. It is
// the form error messages print paths in.
//
// The value is what follows the first = after the path. One that starts with [ or { is YAML flow
// syntax for a list or mapping, one that starts with " or ' is a quoted YAML string, and any
// other is taken as it is, # and ": " included. An empty value keeps the default.

// segment is one step of an override path: a key of a mapping or an index into a list.
type segment struct {
	key   string
	index int // -1 for a key
}

// parseOverride splits an override into its path and its value node. Its errors quote the path
// only: the value may be a secret.
func parseOverride(o string) (path []segment, pathText string, value *yaml.Node, err error) {
	path, rest, err := parsePath(o)
	if err != nil {
		return nil, "", nil, err
	}
	pathText = o[:len(o)-len(rest)]
	if !strings.HasPrefix(rest, "=") {
		return nil, "", nil, fmt.Errorf("%s: want key.path=value", pathText)
	}
	v := rest[1:]
	if v == "" || v[0] != '[' && v[0] != '{' && v[0] != '"' && v[0] != '\'' {
		return path, pathText, &yaml.Node{Kind: yaml.ScalarNode, Value: v}, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(v), &doc); err != nil {
		return nil, "", nil, fmt.Errorf("%s: the value is not valid YAML", pathText)
	}
	if len(doc.Content) != 1 {
		return nil, "", nil, fmt.Errorf("%s: the value is not one YAML value", pathText)
	}
	return path, pathText, doc.Content[0], nil
}

// parsePath parses the path at the start of s and gives what follows it.
func parsePath(s string) ([]segment, string, error) {
	var path []segment
	i := 0
	for {
		switch {
		case i < len(s) && s[i] == '[':
			j := i + 1
			if j < len(s) && s[j] == '"' {
				q, err := strconv.QuotedPrefix(s[j:])
				if err != nil {
					return nil, "", fmt.Errorf("%s: unterminated quoted key", s[:i])
				}
				key, _ := strconv.Unquote(q)
				j += len(q)
				if j == len(s) || s[j] != ']' {
					return nil, "", fmt.Errorf(`%s: want "]" after the quoted key`, s[:j])
				}
				path = append(path, segment{key: key, index: -1})
			} else {
				k := j
				for k < len(s) && '0' <= s[k] && s[k] <= '9' {
					k++
				}
				if k == j || k == len(s) || s[k] != ']' {
					return nil, "", fmt.Errorf(`%s: want ["key"] or [index]`, s[:i])
				}
				n, err := strconv.Atoi(s[j:k])
				if err != nil {
					return nil, "", fmt.Errorf("%s: index too large", s[:k])
				}
				path = append(path, segment{index: n})
				j = k
			}
			i = j + 1
		case i == 0 || s[i-1] == '.':
			j := i
			for j < len(s) && isKeyByte(s[j]) {
				j++
			}
			if j == i {
				return nil, "", errors.New("want key.path=value, as in postgres.slot=s2")
			}
			path = append(path, segment{key: s[i:j], index: -1})
			i = j
		default:
			return nil, "", fmt.Errorf("%s: want key.path=value", s[:i])
		}
		if i < len(s) && s[i] == '.' {
			i++
			if i == len(s) || !isKeyByte(s[i]) {
				return nil, "", fmt.Errorf("%s: want a key after the dot", s[:i])
			}
			continue
		}
		if i < len(s) && s[i] == '[' {
			continue
		}
		return path, s[i:], nil
	}
}

func isKeyByte(c byte) bool {
	return c == '_' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// applyOverride sets the value at an override's path in the tree under root, creating mappings
// on the way, and records the nodes it adds in added.
func applyOverride(root *yaml.Node, o string, added map[*yaml.Node]bool) error {
	path, pathText, value, err := parseOverride(o)
	if err != nil {
		return err
	}
	n := root
	walked := ""
	for i, seg := range path {
		last := i == len(path)-1
		if seg.index >= 0 {
			if n.Kind != yaml.SequenceNode || seg.index >= len(n.Content) {
				return fmt.Errorf("%s: %s has no element %d to set", pathText, walked, seg.index)
			}
			walked = joinIndex(walked, seg.index)
			if last {
				n.Content[seg.index] = value
				added[value] = true
				return nil
			}
			n = n.Content[seg.index]
			continue
		}
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			// An empty value in the file: make it a mapping to put the key into.
			*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
			added[n] = true
		}
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: %s is %s, not a mapping", pathText, walked, kindName(n))
		}
		walked = joinKey(walked, seg.key)
		var child *yaml.Node
		for j := len(n.Content) - 2; j >= 0; j -= 2 {
			if k := n.Content[j]; k.Kind == yaml.ScalarNode && k.Value == seg.key {
				if last {
					n.Content[j+1] = value
				}
				child = n.Content[j+1]
				break
			}
		}
		if child == nil {
			if !last && path[i+1].index >= 0 {
				return fmt.Errorf("%s: %s has no element %d to set", pathText, walked, path[i+1].index)
			}
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg.key}
			child = value
			if !last {
				child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			n.Content = append(n.Content, k, child)
			added[k] = true
			added[child] = true
		}
		if last {
			added[value] = true
			return nil
		}
		n = child
	}
	return nil
}
