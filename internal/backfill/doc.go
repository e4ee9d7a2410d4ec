// Package backfill reads a table's current rows from Postgres in chunks and
// writes them as snapshot-read changes (op "r") into the sink's objects on
// GCS, so the sink loads them like streamed data and the current-state table
// ends up equal to Postgres while capture keeps streaming. The initial
// snapshot of a table is a backfill. It owns the chunking, the watermark of
// each chunk, the run's progress object and the run's objects; it maps types
// with package schema exactly as capture does and writes the object and
// marker format of package sink, whose loader picks them up.
//
// # Chunks
//
// A table with a primary key (else a replica-identity index) is read in key
// order with keyset pagination: WHERE (k) > (last key) ORDER BY k LIMIT
// ChunkRows, never OFFSET; a chunk whose object reaches ChunkBytes ends at
// that row, the next reading on after it. A table without either is read by ranges of heap
// blocks, WHERE ctid >= '(b,0)' AND ctid < '(b2,0)' (a TID range scan). For
// Parallel workers the key space is cut once, when the run starts, into
// disjoint ranges: keyed tables at keys sampled with TABLESAMPLE SYSTEM and
// spread evenly over the sample (the first range is open below, the last
// open above, so the ranges cover every key whatever the sample), keyless
// tables into equal block ranges of the relation's size at the start. The
// ranges are kept in the progress object, so a resumed run reads the same
// ranges.
//
// A chunk's rows are encoded as they are read, each row's changelog record
// straight from its Postgres text (schema.ChangelogEncoder), into the
// blocks of its object file (sink.OCFWriter). Each range reads its next
// chunk while the previous one's object is uploaded and the one before is
// recorded (see Resuming), the three in order.
//
// # The watermark of a chunk
//
// A chunk's rows are written as changes with commit LSN W and seq = row
// index, and the sink keeps, per key, the change latest by (commit LSN,
// seq). That is exact if every change committed after the chunk's snapshot
// has a commit LSN above W: such a change wins over the chunk's older copy.
// Changes the snapshot does see may fall on either side of W: those below
// lose to the chunk, which holds their effect; those above are in the
// stream too (capture's slot existed before the backfill started) and,
// because changes of one row are serialized by its lock, the latest of them
// is exactly the state the chunk read, so they agree with it.
//
// So each chunk, on its own connection:
//
//  1. emits a non-transactional logical message (prefix "tributary.chunk",
//     the run, range and chunk as JSON) outside any transaction;
//     pg_logical_emit_message returns M, the end of its WAL record, so any
//     commit record written after it starts at or after M. W = M - 1: a
//     position inside the message's own record, which no commit record can
//     start at, distinct for every chunk (each has its own message);
//  2. BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; the first statement
//     (the table's columns from the catalog) takes the snapshot, after M;
//  3. reads the chunk in that snapshot and commits.
//
// A transaction whose commit record is written after M became visible after
// it, so after the snapshot was taken or not: either way its LSN is above W
// and it wins. The residual window is a transaction whose commit record
// precedes M but which is not yet visible to the snapshot taken one round
// trip later: Postgres writes the commit record, then flushes it (and, with
// synchronous replication, waits for the standby), and only then makes the
// transaction visible. Such a change is shadowed by the chunk's older copy
// of its rows until the row changes again. The window is the commit's own
// flush time — the same window DBLog's watermark algorithm has; taking W
// after the snapshot instead would widen it by every commit in between.
//
// Tables without a key have no way to tell a backfilled row from the same
// row streamed: rows inserted while their blocks are being read may appear
// twice. Backfill them while they are quiet (Postgres refuses their updates
// and deletes while they are published anyway).
//
// # Resuming
//
// Progress lives at <prefix>/_backfill/<database>/<GCSSegment>/<run id>.json
// (ProgressObject), rewritten after every chunk with a generation
// precondition, so two processes running the same run id fail instead of
// interleaving; the chunks of ranges recording while a write is under way
// are saved together by the next. A chunk is recorded in three steps: its
// object (never overwriting), the progress naming it, then its pending
// marker, which is written before the range's next chunk is recorded. A
// restarted
// run with the same run id writes the marker of each range's last recorded
// object again (a marker already there is left; one the loader already
// consumed loads the object twice, which changes nothing: the copies have
// the same identities) and continues after the last recorded chunk: a
// recorded chunk is never read again. A stop between the object and the
// progress leaves that object unmarked (never loaded), as it does the next
// chunk's object if that was uploaded already; the chunks are read again
// with new watermarks.
//
// # What the sink must do
//
// Nothing new: the objects are named by sink.Layout.DataObject (writer
// "backfill-<run id>-<range>-<chunk>") with the object and marker metadata
// the sink writes. The sink starts a table's loader when the table receives
// messages or, at start, when it has markers; a table that receives neither
// needs the sink to list the pending root again to notice a backfill.
package backfill
