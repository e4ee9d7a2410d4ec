// Package gcp builds the long-lived Google Cloud clients (Pub/Sub, Cloud
// Storage, BigQuery) the binary uses, one per service, pointing each at its
// emulator when the usual environment variable names one:
// PUBSUB_EMULATOR_HOST, STORAGE_EMULATOR_HOST and BIGQUERY_EMULATOR_HOST.
// Against Google Cloud it uses Application Default Credentials. WriteNew,
// and WriteNewStream for an object uploaded as it is produced, are the way
// objects that must not exist yet are written.
package gcp
