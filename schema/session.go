package schema

import "github.com/jackc/pgx/v5"

// SessionSettings are the run-time parameters the replication connection must
// set (as startup parameters) so that pgoutput prints every value in the one
// text form this package reads exactly. Postgres' own logical replication
// worker sets the first three for the same reason.
//
//	DateStyle           ISO dates: 2024-01-02 03:04:05, with " BC" for BC
//	IntervalStyle       postgres, the form pgx parses: 1 year 2 mons 3 days 04:05:06
//	extra_float_digits  3: floats printed exactly (shortest text that reads back)
//	TimeZone            UTC: timestamptz printed with offset +00
//	bytea_output        hex: \x0001
//	lc_monetary         C: money as -$1,234.56
//
// Values printed in another form are never guessed at: they fail to parse and
// go to the dead-letter with the reason.
var SessionSettings = map[string]string{
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"TimeZone":           "UTC",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
}

// ConnConfig parses dsn and sets SessionSettings on it: the connection
// reads values in the same text form pgoutput sends capture.
func ConnConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range SessionSettings {
		cfg.RuntimeParams[k] = v
	}
	return cfg, nil
}
