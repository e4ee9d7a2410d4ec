package config

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxIdentLen is the longest identifier Postgres keeps (NAMEDATALEN-1 bytes); it silently
// truncates longer ones, so a longer name here could never match.
const maxIdentLen = 63

// TableName is a schema-qualified Postgres table name, with each part as Postgres stores it:
// unquoted parts folded to lower case, quotes removed.
type TableName struct {
	Schema string
	Name   string
}

// ParseTableName parses "schema.table" as Postgres reads a qualified name: a part in double
// quotes is taken as written and may hold dots, spaces and "" for a quote; an unquoted part must
// be a plain identifier (a letter or _, then letters, digits, _ or $) and is folded to lower case.
// The schema is required.
func ParseTableName(s string) (TableName, error) {
	parts, err := parseQualified(s)
	if err != nil {
		return TableName{}, fmt.Errorf("%q is not a table name: %w", s, err)
	}
	if len(parts) != 2 {
		return TableName{}, fmt.Errorf("%q is not a table name: want schema.table, as in public.orders", s)
	}
	return TableName{Schema: parts[0], Name: parts[1]}, nil
}

// parseIdent parses one identifier, quoted or not.
func parseIdent(s string) (string, error) {
	parts, err := parseQualified(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an identifier: %w", s, err)
	}
	if len(parts) != 1 {
		return "", fmt.Errorf("%q is not an identifier: it has a dot; quote it to keep the dot", s)
	}
	return parts[0], nil
}

// parseQualified splits a dotted name into its parts, unquoting and folding each.
func parseQualified(s string) ([]string, error) {
	var parts []string
	i := 0
	for {
		var part string
		switch {
		case i == len(s) || s[i] == '.':
			return nil, errors.New("empty part")
		case s[i] == '"':
			var b strings.Builder
			i++
			for {
				if i == len(s) {
					return nil, errors.New("unterminated quoted identifier")
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				if s[i] == 0 {
					return nil, errors.New("NUL byte in identifier")
				}
				b.WriteByte(s[i])
				i++
			}
			part = b.String()
			if part == "" {
				return nil, errors.New(`zero-length quoted identifier ""`)
			}
		default:
			start := i
			for i < len(s) && s[i] != '.' && s[i] != '"' {
				i++
			}
			raw := s[start:i]
			if err := checkUnquoted(raw); err != nil {
				return nil, err
			}
			part = foldASCII(raw)
		}
		if len(part) > maxIdentLen {
			return nil, fmt.Errorf("identifier longer than %d bytes", maxIdentLen)
		}
		parts = append(parts, part)
		if i == len(s) {
			return parts, nil
		}
		if s[i] != '.' {
			return nil, errors.New(`a quote in the middle of an identifier; quote the whole part, doubling quotes inside ("")`)
		}
		i++
	}
}

// checkUnquoted checks an unquoted identifier: a letter, _ or non-ASCII byte, then those or
// digits or $.
func checkUnquoted(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
			i > 0 && (c == '$' || '0' <= c && c <= '9')
		if !ok {
			return fmt.Errorf("%q needs double quotes (it has %q)", s, c)
		}
	}
	return nil
}

// foldASCII folds ASCII letters to lower case, as Postgres does with unquoted identifiers in a
// UTF-8 database; other bytes stay as they are.
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// String gives the name in the form ParseTableName reads back to the same TableName, quoting a
// part only when it needs it: public.orders, public."Order Items". Reserved words are not quoted;
// use Quoted to put a name into SQL.
func (t TableName) String() string { return quoteIfNeeded(t.Schema) + "." + quoteIfNeeded(t.Name) }

// Quoted gives both parts in double quotes, safe to put into SQL: "public"."orders".
func (t TableName) Quoted() string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Name) }

// IsZero reports whether t is the zero TableName.
func (t TableName) IsZero() bool { return t == TableName{} }

// MarshalYAML writes the name as String does.
func (t TableName) MarshalYAML() (any, error) { return t.String(), nil }

// UnmarshalYAML reads a name as ParseTableName does.
func (t *TableName) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a table name such as public.orders, not %s", kindName(n))
	}
	v, err := ParseTableName(n.Value)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteIfNeeded quotes s unless it reads back unchanged without quotes.
func quoteIfNeeded(s string) string {
	if s == "" || checkUnquoted(s) != nil || foldASCII(s) != s {
		return quoteIdent(s)
	}
	return s
}
