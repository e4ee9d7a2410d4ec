package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Postgres identifiers can hold any character once quoted, are up to 63 bytes
// long and are case-sensitive. The functions below map them to the names Avro,
// BigQuery and GCS accept. Every mapping follows one rule: a name that is
// already safe passes through unchanged; any other name is sanitized (each
// character outside [A-Za-z0-9_] becomes "_") and gets a suffix "__" plus the
// first 8 hex digits of the SHA-256 of the original name. Names that already
// end like such a suffix are hashed too, so a passed-through name never equals
// a hashed one. The mappings are deterministic, need no state, and are
// collision-free up to a 32-bit hash collision between names that also
// sanitize to the same text.

const hashSuffixLen = 2 + 8 // "__" + 8 hex digits

func nameHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// hasHashSuffix reports whether s ends like a hashed name: "__" and 8 lower
// hex digits.
func hasHashSuffix(s string) bool {
	if len(s) < hashSuffixLen || s[len(s)-hashSuffixLen:len(s)-8] != "__" {
		return false
	}
	for i := len(s) - 8; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// sanitize replaces every character outside [A-Za-z0-9_] with "_" and puts
// "_" before a leading digit or an empty name.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 1)
	if s == "" || isDigit(s[0]) {
		b.WriteByte('_')
	}
	for _, r := range s {
		if r < 0x80 && isWordByte(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_'
}

// isAvroName reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func isAvroName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// AvroName maps a Postgres identifier to an Avro name ([A-Za-z_][A-Za-z0-9_]*,
// case-sensitive): unchanged when it already is one, else sanitized with the
// hash suffix. It names Avro records and namespaces; record fields use
// BigQueryColumnName, because BigQuery matches Avro field names to columns
// without regard to case.
func AvroName(pg string) string {
	if isAvroName(pg) && !hasHashSuffix(pg) {
		return pg
	}
	return sanitize(pg) + "__" + nameHash(pg)
}

// reservedColumnPrefixes are the column-name prefixes BigQuery refuses
// (compared without regard to case), plus "_tributary", kept free for the
// columns tributary adds itself.
var reservedColumnPrefixes = []string{
	"_table_", "_file_", "_partition", "_row_timestamp", "__root__", "_colon_",
	"_change_sequence_number", "_change_type", "_tributary",
}

func hasReservedPrefix(s string) bool {
	for _, p := range reservedColumnPrefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// BigQueryColumnName maps a Postgres column (or composite attribute) name to
// the name of its BigQuery column, which is also its Avro field name. A name
// passes through unchanged only if it is a valid Avro name, has no upper-case
// letter, does not end like a hash suffix and does not start with a prefix
// BigQuery reserves; any other name is sanitized and gets the hash suffix, and
// one starting with a reserved prefix also gets a leading "c".
//
// BigQuery compares column names without regard to case, so "Order" and
// "order" would collide; because a column can be added later, the only
// stateless rule that never has to rename an existing column is to hash every
// name that contains an upper-case letter: "Order" becomes "Order__<hash>",
// "order" stays "order". The original name is kept in the column description
// and the Avro field doc.
func BigQueryColumnName(pg string) string {
	if isAvroName(pg) && !hasUpper(pg) && !hasHashSuffix(pg) && !hasReservedPrefix(pg) {
		return pg
	}
	s := sanitize(pg)
	if hasReservedPrefix(s) {
		s = "c" + s
	}
	return s + "__" + nameHash(pg)
}

// isCleanPart reports whether a schema or table name can be used as it is in
// a table name: lower-case letters and digits in words joined by single
// underscores, so that "__" can separate the parts.
func isCleanPart(s string) bool {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

// BigQueryTableName names the BigQuery table of Postgres table schema.table:
// "schema__table" when both parts are clean (lower-case letters, digits and
// single inner underscores), else the sanitized parts and a hash of both, as
// "schema__table__<hash>". A non-empty suffix is appended as "__suffix".
// Upper case is hashed because a dataset can be created case-insensitive.
//
// The suffix is a constant chosen by tributary; it must be lower-case words
// joined by single underscores and must not look like a hash (8 hex digits).
// BigQueryTableName panics otherwise: that is a programming error.
func BigQueryTableName(schema, table, suffix string) string {
	if suffix != "" && (!isCleanPart(suffix) || isDigit(suffix[0]) || hasHashSuffix("__"+suffix)) {
		panic("schema: invalid table name suffix " + QuoteBigQuery(suffix))
	}
	var name string
	if isCleanPart(schema) && isCleanPart(table) {
		name = schema + "__" + table
	} else {
		name = sanitize(schema) + "__" + sanitize(table) + "__" + nameHash(schema+"\x00"+table)
	}
	if suffix != "" {
		name += "__" + suffix
	}
	return name
}

// GCSSegment names the GCS path segment (no "/") of Postgres table
// schema.table: "schema.table" when both parts are lower-case letters, digits
// and underscores, else "schema.table.<hash>" with the parts sanitized.
// Sanitized parts never contain a dot, so a clean segment has one dot and a
// hashed one two.
func GCSSegment(schema, table string) string {
	if isSegmentPart(schema) && isSegmentPart(table) {
		return schema + "." + table
	}
	return sanitize(schema) + "." + sanitize(table) + "." + nameHash(schema+"\x00"+table)
}

func isSegmentPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

// QuoteBigQuery quotes ident as a BigQuery quoted identifier for generated
// SQL: in backticks, with backslash, backtick and control characters escaped
// as in a BigQuery string literal.
func QuoteBigQuery(ident string) string {
	var b strings.Builder
	b.Grow(len(ident) + 2)
	b.WriteByte('`')
	for _, r := range ident {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '`':
			b.WriteString("\\`")
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('`')
	return b.String()
}
