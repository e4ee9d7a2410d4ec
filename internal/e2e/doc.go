// Package e2e holds end-to-end tests of the whole pipeline: Postgres →
// capture → Pub/Sub → sink → Avro objects on GCS → BigQuery changelog and
// current-state tables, run against the local stack and proved by comparing
// Postgres with BigQuery row for row in the canonical form of package schema,
// by reading the dead-letters, and by decoding the objects on GCS. It has no
// code of its own outside its tests.
package e2e
