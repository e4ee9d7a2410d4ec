// Package status reports the pipeline's state from the outside, as an
// operator would read it: the slot and its lag from Postgres, each table's
// newest data object, pending loads and dead-letters from GCS, and its last
// load and row count from BigQuery's table metadata. It needs no access to
// the running processes.
package status

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

// Slot is the replication slot's state.
type Slot struct {
	Name         string `json:"name"`
	Exists       bool   `json:"exists"`
	Active       bool   `json:"active"`
	ConfirmedLSN string `json:"confirmed_lsn,omitempty"`
	LagBytes     int64  `json:"lag_bytes"`
	WALStatus    string `json:"wal_status,omitempty"`
}

// Table is one table's state.
type Table struct {
	Table          string     `json:"table"`
	Mode           string     `json:"mode"`
	Objects        int        `json:"objects"`
	LastFlush      *time.Time `json:"last_flush,omitempty"`
	LastEvent      *time.Time `json:"last_event,omitempty"`
	PendingObjects int        `json:"pending_objects"`
	LastLoad       *time.Time `json:"last_load,omitempty"`
	Rows           *uint64    `json:"rows,omitempty"`
	DeadLetters    int        `json:"dead_letters"`
}

// Report is the whole status.
type Report struct {
	Slot   Slot    `json:"slot"`
	Tables []Table `json:"tables"`
}

// Source says where to look.
type Source struct {
	Postgres *pgx.Conn
	GCS      *storage.Client
	BigQuery *bigquery.Client
	Bucket   string
	Prefix   string
	Database string
	Dataset  string
	Slot     string
	// Mode gives each table's sink mode.
	Mode func(schemaName, table string) string
}

// Read builds the report for the given tables.
func Read(ctx context.Context, src Source, tables [][2]string) (*Report, error) {
	r := &Report{Slot: Slot{Name: src.Slot}}
	var confirmed, walStatus *string
	err := src.Postgres.QueryRow(ctx, `SELECT active, confirmed_flush_lsn::text, COALESCE(pg_current_wal_lsn() - confirmed_flush_lsn, 0)::bigint, wal_status
		FROM pg_replication_slots WHERE slot_name = $1`, src.Slot).Scan(&r.Slot.Active, &confirmed, &r.Slot.LagBytes, &walStatus)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("reading slot %q: %w", src.Slot, err)
	default:
		r.Slot.Exists = true
		if confirmed != nil {
			r.Slot.ConfirmedLSN = *confirmed
		}
		if walStatus != nil {
			r.Slot.WALStatus = *walStatus
		}
	}
	layout := sink.Layout{Prefix: src.Prefix, Database: src.Database}
	for _, t := range tables {
		tb, err := readTable(ctx, src, layout, t[0], t[1])
		if err != nil {
			return nil, err
		}
		r.Tables = append(r.Tables, tb)
	}
	return r, nil
}

func readTable(ctx context.Context, src Source, layout sink.Layout, schemaName, name string) (Table, error) {
	t := Table{Table: schemaName + "." + name, Mode: "load"}
	if src.Mode != nil {
		t.Mode = src.Mode(schemaName, name)
	}
	bucket := src.GCS.Bucket(src.Bucket)
	// Data objects: count, and the newest by write time.
	err := each(ctx, bucket, layout.TableDir(schemaName, name)+"/", func(a *storage.ObjectAttrs) {
		if !strings.HasSuffix(a.Name, ".avro") {
			return
		}
		t.Objects++
		if t.LastFlush == nil || a.Created.After(*t.LastFlush) {
			created := a.Created
			t.LastFlush = &created
		}
	})
	if err != nil {
		return t, err
	}
	if err := each(ctx, bucket, layout.PendingDir(schemaName, name), func(*storage.ObjectAttrs) { t.PendingObjects++ }); err != nil {
		return t, err
	}
	// Dead-letters written by capture (per table) and by the sink.
	seg := schema.GCSSegment(schemaName, name)
	for _, dir := range []string{join(src.Prefix, "_deadletter", seg) + "/", join(src.Prefix, "_deadletter", "sink", src.Database, seg) + "/"} {
		if err := each(ctx, bucket, dir, func(*storage.ObjectAttrs) { t.DeadLetters++ }); err != nil {
			return t, err
		}
	}
	// BigQuery: the changelog's last modification is the last load; the
	// current-state table's row count; the newest commit time loaded.
	ds := src.BigQuery.Dataset(src.Dataset)
	if md, err := ds.Table(schema.BigQueryTableName(schemaName, name, "changelog")).Metadata(ctx); err == nil {
		mod := md.LastModifiedTime
		t.LastLoad = &mod
		q := fmt.Sprintf("SELECT MAX(%s) FROM %s.%s", schema.ColCommitTS, schema.QuoteBigQuery(src.Dataset),
			schema.QuoteBigQuery(schema.BigQueryTableName(schemaName, name, "changelog")))
		if it, err := src.BigQuery.Query(q).Read(ctx); err == nil {
			var row []bigquery.Value
			if it.Next(&row) == nil && len(row) == 1 {
				if ts, ok := row[0].(time.Time); ok {
					t.LastEvent = &ts
				}
			}
		}
	} else if !notFound(err) {
		return t, fmt.Errorf("reading the changelog table of %s: %w", t.Table, err)
	}
	// COUNT(*), not the table metadata's row count: that one lags behind
	// DML in BigQuery (and is not kept by the emulator).
	if _, err := ds.Table(schema.BigQueryTableName(schemaName, name, "")).Metadata(ctx); err == nil {
		q := fmt.Sprintf("SELECT COUNT(*) FROM %s.%s", schema.QuoteBigQuery(src.Dataset), schema.QuoteBigQuery(schema.BigQueryTableName(schemaName, name, "")))
		it, err := src.BigQuery.Query(q).Read(ctx)
		if err != nil {
			return t, fmt.Errorf("counting the current-state rows of %s: %w", t.Table, err)
		}
		var row []bigquery.Value
		if err := it.Next(&row); err != nil {
			return t, fmt.Errorf("counting the current-state rows of %s: %w", t.Table, err)
		}
		rows := uint64(row[0].(int64))
		t.Rows = &rows
	} else if !notFound(err) {
		return t, fmt.Errorf("reading the current-state table of %s: %w", t.Table, err)
	}
	return t, nil
}

func each(ctx context.Context, bucket *storage.BucketHandle, prefix string, fn func(*storage.ObjectAttrs)) error {
	it := bucket.Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, err)
		}
		fn(a)
	}
}

func join(prefix string, parts ...string) string {
	if p := strings.Trim(prefix, "/"); p != "" {
		parts = append([]string{p}, parts...)
	}
	return path.Join(parts...)
}

func notFound(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}
