// Package sink pulls change events from Pub/Sub, writes them as immutable Avro
// object files to GCS (the system of record) and mirrors them into BigQuery:
// a changelog per table and a current-state table beside it. It owns
// per-table buffering, flushing, acknowledgement and BigQuery loads; it does
// not map types (package schema does) and never imports package capture.
package sink
