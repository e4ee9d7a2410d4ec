package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Size is a number of bytes. In the file it is written as a whole number with an optional unit:
// B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000), as in "64MiB" or
// "1GB"; a bare number counts bytes.
type Size int64

const (
	kib Size = 1 << 10
	mib Size = 1 << 20
	gib Size = 1 << 30
	tib Size = 1 << 40
)

// sizeUnits lists the units from largest to smallest, binary before decimal, the order String
// tries them in.
var sizeUnits = []struct {
	name string
	n    Size
}{
	{"TiB", tib}, {"TB", 1e12},
	{"GiB", gib}, {"GB", 1e9},
	{"MiB", mib}, {"MB", 1e6},
	{"KiB", kib}, {"KB", 1e3},
	{"B", 1},
}

const sizeHint = "write a whole number of B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, as in 64MiB"

// ParseSize parses a size such as "64MiB", "1GB", "512 KiB" or "1048576".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size (%s)", s, sizeHint)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: too large", s)
	}
	unit := strings.TrimSpace(t[i:])
	mult := Size(1)
	if unit != "" {
		mult = 0
		for _, u := range sizeUnits {
			if u.name == unit {
				mult = u.n
			}
		}
		if mult == 0 {
			return 0, fmt.Errorf("%q is not a size: unknown unit %q (%s)", s, unit, sizeHint)
		}
	}
	if n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("%q is not a size: too large", s)
	}
	return Size(n) * mult, nil
}

// String gives the size in the largest unit that divides it exactly, as in "64MiB"; ParseSize
// reads it back.
func (s Size) String() string {
	if s == 0 {
		return "0B"
	}
	for _, u := range sizeUnits {
		if s%u.n == 0 {
			return strconv.FormatInt(int64(s/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B" // negative sizes that no unit divides
}

// MarshalYAML writes the size as String does.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML reads a size as ParseSize does.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a size such as 64MiB, not %s", kindName(n))
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a time.Duration written as Go writes durations: "500ms", "10s", "1m", "1h30m".
// A bare number is rejected, so that "10" cannot silently mean ten nanoseconds.
type Duration time.Duration

// String gives the duration as time.Duration does, as in "1m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration with time.ParseDuration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a duration such as 10s, not %s", kindName(n))
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write e.g. 500ms, 10s, 1m, 1h30m)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// kindName names a node's kind for messages: "a mapping", "a list", "a scalar".
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}
