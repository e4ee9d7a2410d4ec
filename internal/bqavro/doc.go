// Package bqavro makes AVRO load jobs and column additions work against the
// BigQuery emulator of the local stack. It is part of the local stack only:
// production code loads Avro files into real BigQuery and never goes through
// this package.
//
// The emulator cannot load AVRO files, runs a job a second time when its ID
// is reused and cannot add columns to a table. Proxy sits in front of the
// emulator's REST port and fixes all three:
//   - a load job with sourceFormat AVRO is converted before it is forwarded:
//     every source object is decoded, every record is converted to the JSON
//     form the emulator stores exactly, the result is written to a scratch
//     bucket as newline-delimited JSON and the job is forwarded as a
//     NEWLINE_DELIMITED_JSON load with the schema BigQuery would derive from
//     the Avro writer schema;
//   - a job insert whose job ID already exists is refused with HTTP 409, as
//     BigQuery does, without reaching the emulator;
//   - a table patch (tables.patch or tables.update, what Table.Update sends)
//     whose schema adds columns or relaxes REQUIRED ones to NULLABLE is
//     carried out on rebuilt tables, described below.
//
// # Schema patches
//
// The emulator answers a table patch with the request but keeps the old
// table, and its SQL engine takes ALTER TABLE ADD COLUMN without doing
// anything. The proxy compares the patch's schema with the table's (read
// from the emulator) as BigQuery does: it refuses, with BigQuery's 400 and
// message, a column or nested field left out, a changed type, a mode change
// other than REQUIRED to NULLABLE, an added REQUIRED field and a name given
// twice; it honours If-Match against the table's etag (412). A patch that
// adds columns or relaxes modes rebuilds the table with what the emulator
// does correctly: it creates a scratch table "_bqavro_<table>_<hex>" with
// the new schema, copies the rows into it (INSERT … SELECT of the old
// columns; added REPEATED columns get an empty array, the others NULL),
// drops the table, creates it again through the tables API with its old
// resource patched (description, partitioning, clustering, labels kept
// unless the patch sets them), copies the rows back and drops the scratch
// table, then answers with the new table resource. Every step that could
// fail on the new schema runs before the table is dropped; a failure after
// it answers 500 naming the scratch table that holds the rows. Job inserts
// wait while a table is rebuilt and other requests are held back, so none
// sees it half done.
//
// Limits: adding fields inside an existing RECORD column is answered 501
// (the copy would need the records rebuilt); a patch that changes nothing
// the proxy handles (no schema, or only descriptions) is forwarded and the
// emulator still drops it; a rebuilt table has a new creation time.
//
// A conversion failure (missing object, bad file, a value the emulator would
// change) fails the whole job before anything reaches the emulator, reported
// as BigQuery reports a failed load: the insert succeeds and the job is DONE
// with an error result naming the object. Answers about a forwarded AVRO load
// show its original configuration and load statistics.
//
// Everything else is forwarded untouched. TableSchema and RecordJSON are the
// pure conversions the proxy is built on, following BigQuery's documented Avro
// conversion with useAvroLogicalTypes set.
//
// The package owns the conversion and the proxy; it does not start the
// emulator or the storage fake, which is the local stack's job.
package bqavro
