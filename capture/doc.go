// Package capture reads Postgres logical replication (pgoutput) and publishes
// every committed row change to Pub/Sub with ordering keys. It owns the
// replication connection, the slot and publication, the ordering of events and
// the LSN it confirms to Postgres: a position is confirmed only once Pub/Sub
// holds every change up to it. It does not map types (package schema does)
// and never imports package sink.
package capture
