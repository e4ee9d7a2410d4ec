// Package sink pulls change events from Pub/Sub, writes them as immutable Avro
// object files to GCS (the system of record) and mirrors them into BigQuery:
// a changelog per table and a current-state table beside it. It owns
// per-table buffering, flushing, acknowledgement and BigQuery loads; it does
// not map types (package schema does) and never imports package capture.
//
// A message's envelope is read with the schema store (its writer schema,
// op, position, table) and the message buffered by table; its rows are
// decoded when the buffer is written. A table's buffer is written when
// FlushBytes, FlushRows or FlushAge is reached: one Avro OCF object of the
// flat changelog record per schema version (Layout.DataObject), uploaded as
// it is encoded and never overwriting, then a pending marker under
// <prefix>/_sink/pending/; only then are its messages acked. A message
// whose envelope cannot be read goes to a dead-letter object and is acked
// at once; one whose rows cannot be read, when its buffer is written, alone.
// EncodeOCF writes such an object of events; OCFWriter writes the same
// object from records already encoded (the backfill's).
//
// Every LoadInterval each table's loader turns its pending markers into a
// manifest under <prefix>/_sink/loads/ (written before the markers are
// removed), loads the manifest's objects into <table>__changelog with a job
// ID derived from the object names (LoadJobID: a repeated load is refused,
// not applied twice), recomputes the current state of the keys the load
// touched (Statements), and removes the manifest. A restarted sink finds
// the markers and manifests and finishes them, so an abrupt stop loses
// nothing: unacked messages are redelivered (the changelog is at least
// once; the current state is exact).
//
// Objects and tables name a schema version's columns as
// schema.Store.Changelog does: a column whose type changed to one its
// BigQuery column cannot hold gets its new values in a new column, and one
// BigQuery can widen without changing a value is widened in place (ALTER
// COLUMN SET DATA TYPE, checked afterwards) before the load.
// A stream-mode table (Config.Tables, Mode) also inserts each written
// object's rows into the changelog with streaming inserts before its
// pending marker (marked "streamed") is written and its messages acked; its
// applier applies the streamed markers' LSN range to the current state
// every StreamApplyInterval and removes them, and the loader never loads
// them (stream.go). SoftDelete keeps deleted keys in the current state with
// ColDeleted set and their last values.
//
// An apply stages the batch's latest change per key, then deletes the
// staged keys' rows and inserts their new ones in one multi-statement
// transaction: readers see the current state before the batch or after it.
//
// The current-state table is keyed by the table's replica identity as its
// stored schema marks it (Config.Keys overrides). An update that changes a
// row's key is applied as a move: the delete of the old key (read from the
// changelog's _tributary_before_key) and the upsert of the new one, at the
// update's (commit LSN, seq), so a later re-insert of the old key wins.
//
// Each table has its own flusher and loader goroutines and retries with its
// own backoff (Classify decides); a permanent failure is dead-lettered with
// its reason and the table goes on. Collectors exposes per-table metrics
// (tributary_sink_…{table}); Health reports each table's flushes, loads,
// backlog and errors, and fails when a table's objects have waited three
// LoadIntervals or the receive loop has died.
//
// Replay rebuilds one table's changelog and current state from its data
// objects alone (a commit LSN or time range, into the live dataset or
// another), aside, then swapped in with one transaction; it reads no
// bookkeeping and writes none.
//
// A marker message (docs/events.md, "Markers") is not buffered as a row: it
// waits for the flush of what its table had buffered before it, then for
// the next load round to succeed, and is then recorded under
// <prefix>/_sink/markers/ (Layout.MarkerRecord) and acked — so a record
// means every change received before it on its ordering key is applied to
// the current state. tributary verify waits for these records.
package sink
