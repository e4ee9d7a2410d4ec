package config

import (
	"errors"
	"fmt"
	"strings"
)

// interpolate replaces ${VAR} and ${VAR:-default} in s with values from lookup, and $$ with $.
// ${VAR:-default} gives default when VAR is unset or empty; ${VAR} with VAR unset is an error
// naming VAR. A $ followed by anything else is kept as it is. Errors never quote s, which may be
// a DSN.
func interpolate(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) || (s[i+1] != '$' && s[i+1] != '{') {
			b.WriteByte(c)
			i++
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", errors.New(`"${" without a closing "}"`)
		}
		expr := s[i+2 : i+end]
		i += end + 1
		name, def, hasDefault := strings.Cut(expr, ":-")
		if !isVarName(name) {
			return "", errors.New(`"${...}" does not hold a variable name (write $$ for a literal $)`)
		}
		val, ok := lookup(name)
		switch {
		case hasDefault && val == "":
			val = def
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} for a default)", name, name)
		}
		b.WriteString(val)
	}
	return b.String(), nil
}

// isVarName reports whether s is a shell variable name: a letter or _, then letters, digits or _.
func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
