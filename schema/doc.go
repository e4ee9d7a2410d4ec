// Package schema is the event contract between capture and sink and the one
// place that maps Postgres types and names to Avro and BigQuery: losslessly,
// or to a dead-letter with a reason. It imports neither capture nor sink.
//
// MapColumn and MapTable turn a column, as a pgoutput Relation message
// describes it, into a Mapping: the Avro type, the BigQuery field and the
// policy for values that cannot be represented. Mapping.Convert turns the
// Postgres text of a value into the goavro native value, or into a
// *DeadLetterError; nothing is ever rounded, clamped or replaced. Canonical,
// CanonicalAvro and CanonicalBigQuery give one text form per value from each
// side, so Postgres and BigQuery are compared the same way by tests and by
// verification. AvroName, BigQueryColumnName, BigQueryTableName and
// GCSSegment map Postgres identifiers to names those systems accept, without
// collisions.
//
// NewEventSchema wraps a table's row record in the event envelope; its
// Encode writes an Event of goavro natives. NewEncoder compiles, per event
// schema, the capture hot path: events appended straight from the columns'
// Postgres text, byte for byte what Record and Encode make of them.
//
// Mappings lists the mapping of every built-in type; docs/type-mapping.md is
// generated from it.
//
// Store keeps every event schema version on GCS; Changelog is the flat
// record of one version as the sink writes it to GCS and BigQuery. When a
// column's type changes to one its BigQuery column can neither hold nor be
// widened to (Evolve), its new values go to a column of their own
// (TypeChangeName); ColumnNames decides it from the table's versions in the
// order the store first wrote them (Store.History), so every writer and
// reader names the columns alike. NewChangelogEncoder compiles the same hot
// path for the flat record: a change's record appended straight from its
// columns' text, byte for byte what Record and Changelog.Record make.
//
// Not here: writing dead-letters (the sink does).
package schema

//go:generate go run ./internal/gendoc -o ../docs/type-mapping.md
