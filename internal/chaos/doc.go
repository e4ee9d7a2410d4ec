// Package chaos holds the pipeline's chaos tests: the built `tributary`
// binary's capture and sink processes, run against the local stack, are
// SIGKILLed at random moments under a pgbench TPC-B-like load, or run with a
// fault proxy (package faultproxy) between them and every emulator, or fed a
// value BigQuery refuses; afterwards BigQuery's current state must equal
// Postgres row for row (package verify), every committed change must be on
// GCS, and the metrics must show the errors that happened.
//
// It owns those tests and nothing else: no code outside them. Sizes are
// small enough for `make test`; TRIBUTARY_CHAOS=big runs them longer, with
// more load and more kills.
package chaos
