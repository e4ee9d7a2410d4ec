// Package schema is the event contract between capture and sink and the one
// place that maps Postgres types and names to Avro and BigQuery: losslessly,
// or to a dead-letter with a reason. It owns schema versions and their
// evolution and the canonical text form used to compare Postgres with
// BigQuery. It imports neither capture nor sink.
package schema
