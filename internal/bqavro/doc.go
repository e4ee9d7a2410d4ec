// Package bqavro makes AVRO load jobs work against the BigQuery emulator of
// the local stack. It is part of the local stack only: production code loads
// Avro files into real BigQuery and never goes through this package.
//
// The emulator cannot load AVRO files and runs a job a second time when its ID
// is reused. Proxy sits in front of the emulator's REST port and fixes both:
//   - a load job with sourceFormat AVRO is converted before it is forwarded:
//     every source object is decoded, every record is converted to the JSON
//     form the emulator stores exactly, the result is written to a scratch
//     bucket as newline-delimited JSON and the job is forwarded as a
//     NEWLINE_DELIMITED_JSON load with the schema BigQuery would derive from
//     the Avro writer schema;
//   - a job insert whose job ID already exists is refused with HTTP 409, as
//     BigQuery does, without reaching the emulator.
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
