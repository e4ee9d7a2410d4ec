package config

import "github.com/spf13/pflag"

// DefaultPath is the config file read when --config is not given.
const DefaultPath = "tributary.yaml"

// Flags holds the values of the flags AddFlags registers.
type Flags struct {
	// Path is the config file, from --config.
	Path string
	// Overrides are the key.path=value strings given with --set, in order.
	Overrides []string
}

// AddFlags registers --config and the repeatable --set on fs, so that every subcommand reads its
// configuration the same way, and gives the struct they fill.
func AddFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Path, "config", DefaultPath, "config file (YAML)")
	// StringArray, not StringSlice: a value such as [public.a, public.b] must not be split at
	// its commas.
	fs.StringArrayVar(&f.Overrides, "set", nil,
		`override a config key, as key.path=value or sink.tables["schema.table"].mode=stream; repeatable`)
	return f
}

// Load loads the configuration the flags name, as Load does.
func (f *Flags) Load() (*Config, error) { return Load(f.Path, f.Overrides) }
