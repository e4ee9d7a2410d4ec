package capture

import (
	"context"
	"strconv"

	"cloud.google.com/go/pubsub/v2"
	"github.com/jackc/pglogrepl"

	"github.com/tributary-cdc/tributary/schema"
)

// AttrMarker is the attribute naming a marker message's marker ID.
const AttrMarker = "marker"

// logicalMessage handles a logical decoding message. Only transactional
// messages with schema.MarkerPrefix are capture's: each becomes a marker
// event on every ordering key of every table it names (or of the configured
// tables), in the transaction's place, acknowledged with it. Other prefixes
// (a backfill's watermarks, other applications' messages) are skipped.
func (r *reader) logicalMessage(ctx context.Context, m *pglogrepl.LogicalDecodingMessage) error {
	if m.Prefix != schema.MarkerPrefix {
		return nil
	}
	if !m.Transactional || r.tx == nil {
		r.c.log.Warn("ignoring a marker written outside a transaction (emit it with transactional = true)", "lsn", m.LSN.String())
		return nil
	}
	req, err := schema.ParseMarkerRequest(m.Content)
	if err != nil {
		r.c.log.Warn("ignoring a marker message", "lsn", m.LSN.String(), "err", err)
		return nil
	}
	tables := req.Tables
	if len(tables) == 0 {
		for _, t := range r.c.cfg.Tables {
			tables = append(tables, schema.MarkerTable{Schema: t.Schema, Table: t.Name})
		}
	}
	if len(tables) == 0 {
		r.c.log.Warn("ignoring a marker that names no tables: capture has no configured table list", "marker", req.ID, "lsn", m.LSN.String())
		return nil
	}
	if !r.enc.markerStored {
		if err := r.enc.store.Put(ctx, schema.MarkerSchema()); err != nil {
			return err
		}
		r.enc.markerStored = true
	}
	tx := r.tx
	n := r.c.cfg.OrderingBuckets
	for _, t := range tables {
		mk := &schema.Marker{ID: req.ID, CommitLSN: uint64(tx.commitLSN), LSN: uint64(m.LSN), CommitTime: tx.commitTime,
			Schema: t.Schema, Table: t.Table, Buckets: n}
		name := t.String()
		for b := 0; b < n; b++ {
			mk.Bucket = b
			data, err := mk.Encode(nil)
			if err != nil {
				return err
			}
			r.send(&pubsub.Message{
				Data:        data,
				OrderingKey: name + "/" + strconv.Itoa(b),
				Attributes: map[string]string{
					AttrTable: name, AttrOp: schema.OpMarker, AttrCommitLSN: tx.commitLSN.String(), AttrSeq: strconv.FormatInt(tx.seq, 10),
					AttrFingerprint: schemaFingerprintHex(), AttrMarker: req.ID,
				},
			})
		}
	}
	r.c.log.Info("published a marker", "marker", req.ID, "tables", len(tables), "buckets", n, "commit_lsn", tx.commitLSN.String())
	return nil
}

func schemaFingerprintHex() string { return schema.MarkerSchema().FingerprintHex() }
