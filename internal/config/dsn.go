package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// DSN is a Postgres connection string, either a URL (postgres://user:password@host:5432/db) or
// libpq key=value pairs (host=h user=u password=p dbname=db). Every way of printing it gives the
// redacted form: String, GoString, MarshalYAML, MarshalJSON and LogValue. Only Reveal gives the
// password, and only the code that connects should call it.
type DSN string

// redactedPassword replaces passwords in Redacted.
const redactedPassword = "xxxxx"

var (
	// urlPasswordParam matches a password or sslpassword query parameter of a URL.
	urlPasswordParam = regexp.MustCompile(`(?i)([?&](?:ssl)?password=)[^&#]*`)
	// kvPassword matches a password or sslpassword pair, quoted or not, in the key=value form.
	kvPassword = regexp.MustCompile(`(?i)((?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|(?:[^\s\\]|\\.?)*)`)
)

// isURL reports whether the DSN is in URL form.
func (d DSN) isURL() bool {
	s := strings.ToLower(string(d))
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redacted gives the DSN with every password replaced by xxxxx: the password of a URL's user
// part, a password= or sslpassword= query parameter, and a password= or sslpassword= pair of the
// key=value form. It works on text it cannot parse too, and then errs towards hiding more.
func (d DSN) Redacted() string {
	s := string(d)
	if !d.isURL() {
		return kvPassword.ReplaceAllString(s, "${1}"+redactedPassword)
	}
	scheme, rest, _ := strings.Cut(s, "://")
	// The user part ends at the last @: a password may hold an unescaped / or ? that a URL parser
	// would take for the end of the host, so do not trust one here.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		if user, _, ok := strings.Cut(userinfo, ":"); ok {
			rest = user + ":" + redactedPassword + rest[at:]
		}
	}
	rest = urlPasswordParam.ReplaceAllString(rest, "${1}"+redactedPassword)
	return scheme + "://" + rest
}

// Reveal gives the DSN as written, password included, for connecting.
func (d DSN) Reveal() string { return string(d) }

// String gives the redacted form.
func (d DSN) String() string { return d.Redacted() }

// GoString gives the redacted form, quoted, so that %#v does not print the password either.
func (d DSN) GoString() string { return "config.DSN(" + strconv.Quote(d.Redacted()) + ")" }

// LogValue gives the redacted form to log/slog.
func (d DSN) LogValue() slog.Value { return slog.StringValue(d.Redacted()) }

// MarshalYAML writes the redacted form.
func (d DSN) MarshalYAML() (any, error) { return d.Redacted(), nil }

// MarshalJSON writes the redacted form.
func (d DSN) MarshalJSON() ([]byte, error) { return json.Marshal(d.Redacted()) }

// check reports whether the DSN can be parsed. Its errors never quote the DSN, not even
// redacted: in a DSN mistyped badly enough to fail here, the password may be anywhere.
func (d DSN) check() error {
	if strings.TrimSpace(string(d)) == "" {
		return errors.New("is required")
	}
	if d.isURL() {
		u, err := url.Parse(string(d))
		if err != nil || u.Opaque != "" {
			return errors.New("is not a valid URL (percent-encode special characters in the user name and password)")
		}
		if _, err := url.ParseQuery(u.RawQuery); err != nil {
			return errors.New("is not a valid URL: bad query parameters (percent-encode special characters)")
		}
		return nil
	}
	if strings.Contains(string(d), ":/") {
		return errors.New("is neither a postgres:// or postgresql:// URL nor key=value pairs")
	}
	if err := checkKeyValues(string(d)); err != nil {
		return fmt.Errorf("is not valid key=value pairs: %w", err)
	}
	return nil
}

// checkKeyValues checks the libpq key=value form: keys, optional spaces around =, values either
// single-quoted (with \ escapes) or running to the next space. Its errors give byte offsets only.
func checkKeyValues(s string) error {
	i, pairs := 0, 0
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skip()
		if i == len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		if i == start {
			return fmt.Errorf("missing key before \"=\" at byte %d", i)
		}
		skip()
		if i == len(s) || s[i] != '=' {
			return fmt.Errorf("missing \"=\" after the key at byte %d", start)
		}
		i++
		skip()
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i >= len(s) {
					return fmt.Errorf("unterminated quoted value for the key at byte %d", start)
				}
				if s[i] == '\\' {
					i += 2
					continue
				}
				if s[i] == '\'' {
					i++
					break
				}
				i++
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i > len(s) {
				i = len(s)
			}
		}
		pairs++
	}
	if pairs == 0 {
		return errors.New("no pairs")
	}
	return nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
