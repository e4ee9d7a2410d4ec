// Package localstack runs the local Google Cloud stack that `tributary dev`,
// `make demo` and the integration tests stand on: a throwaway Postgres cluster
// with wal_level=logical, the official Pub/Sub fake (pstest), fake-gcs-server
// and goccy/bigquery-emulator, the latter behind the AVRO-load proxy of package
// bqavro.
//
// It owns starting, wiring and stopping those processes and describing them to
// clients (environment variables and a config file). It is local plumbing only:
// capture, sink and schema never import it, and nothing here runs against
// Google Cloud.
package localstack
