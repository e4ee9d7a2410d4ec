package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TableName is a Postgres table, schema and name as spelled there.
type TableName struct{ Schema, Name string }

func (t TableName) sanitize() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// slotState is what pg_replication_slots says of the slot.
type slotState struct {
	exists    bool
	plugin    string
	activePID int32
	walStatus string
	confirmed pglogrepl.LSN
}

// preflight checks what logical replication needs and says how to fix what
// is missing.
func preflight(ctx context.Context, conn *pgx.Conn) error {
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return fmt.Errorf("reading wal_level: %w", err)
	}
	if walLevel != "logical" {
		return fatal(fmt.Errorf("wal_level is %q", walLevel),
			"set wal_level = logical in postgresql.conf (Cloud SQL: cloudsql.logical_decoding=on; RDS: rds.logical_replication=1) and restart Postgres")
	}
	var canReplicate bool
	err := conn.QueryRow(ctx, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&canReplicate)
	if err != nil {
		return fmt.Errorf("reading the role's attributes: %w", err)
	}
	if !canReplicate {
		var user string
		_ = conn.QueryRow(ctx, "SELECT current_user").Scan(&user)
		return fatal(fmt.Errorf("role %q lacks the REPLICATION attribute", user),
			"ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" WITH REPLICATION")
	}
	return nil
}

// publicationSQL is the statement that creates the publication: the listed
// tables, the listed schemas, or every table; partitions publish as their
// root so a monthly-partitioned table lands as one table.
func publicationSQL(name string, tables []TableName, schemas []string) string {
	var target string
	switch {
	case len(tables) > 0:
		parts := make([]string, len(tables))
		for i, t := range tables {
			parts[i] = t.sanitize()
		}
		target = "TABLE " + strings.Join(parts, ", ")
	case len(schemas) > 0:
		parts := make([]string, len(schemas))
		for i, s := range schemas {
			parts[i] = pgx.Identifier{s}.Sanitize()
		}
		target = "TABLES IN SCHEMA " + strings.Join(parts, ", ")
	default:
		target = "ALL TABLES"
	}
	return "CREATE PUBLICATION " + pgx.Identifier{name}.Sanitize() + " FOR " + target + " WITH (publish_via_partition_root = true)"
}

// ensurePublication creates the publication when absent. When it exists, the
// configured tables must be in it: a missing one is an operator's decision
// (adding it needs a backfill), so it is reported with the statement to run.
func ensurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []TableName, schemas []string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("looking up publication %q: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, publicationSQL(name, tables, schemas)); err != nil {
			return fmt.Errorf("creating publication %q: %w", name, err)
		}
		return nil
	}
	var missing []string
	for _, t := range tables {
		var in bool
		err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
			name, t.Schema, t.Name).Scan(&in)
		if err != nil {
			return fmt.Errorf("reading publication %q: %w", name, err)
		}
		if !in {
			missing = append(missing, t.sanitize())
		}
	}
	if len(missing) > 0 {
		return fatal(fmt.Errorf("publication %q lacks configured tables %s", name, strings.Join(missing, ", ")),
			"ALTER PUBLICATION "+pgx.Identifier{name}.Sanitize()+" ADD TABLE "+strings.Join(missing, ", ")+", then backfill them")
	}
	return nil
}

func readSlot(ctx context.Context, conn *pgx.Conn, slot string) (slotState, error) {
	var s slotState
	var confirmed *string
	var pid *int32
	var walStatus *string
	err := conn.QueryRow(ctx, `SELECT plugin, active_pid, wal_status, confirmed_flush_lsn::text
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s.plugin, &pid, &walStatus, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading slot %q: %w", slot, err)
	}
	s.exists = true
	if pid != nil {
		s.activePID = *pid
	}
	if walStatus != nil {
		s.walStatus = *walStatus
	}
	if confirmed != nil {
		if s.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return s, fmt.Errorf("reading slot %q: %w", slot, err)
		}
	}
	return s, nil
}

// ensureSlot creates the pgoutput slot when absent and checks an existing
// one: the right plugin, WAL still there, not held by another process.
func ensureSlot(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, slot string) (slotState, error) {
	s, err := readSlot(ctx, conn, slot)
	if err != nil {
		return s, err
	}
	if !s.exists {
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "NOEXPORT_SNAPSHOT"})
		if err != nil {
			return s, fmt.Errorf("creating replication slot %q: %w", slot, err)
		}
		s.exists, s.plugin = true, "pgoutput"
		if s.confirmed, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
			return s, fmt.Errorf("reading slot %q's consistent point: %w", slot, err)
		}
		return s, nil
	}
	if s.plugin != "pgoutput" {
		return s, fatal(fmt.Errorf("slot %q uses plugin %q", slot, s.plugin), "choose another slot name or drop that slot")
	}
	if s.walStatus == "lost" {
		return s, fatal(fmt.Errorf("slot %q was invalidated: the WAL it needs is gone", slot),
			"drop the slot, let tributary create it again and backfill every table (raise max_slot_wal_keep_size to prevent it)")
	}
	if s.activePID != 0 {
		return s, &pgconn.PgError{Code: "55006", Message: fmt.Sprintf("replication slot %q is active for PID %d: waiting for it to be released", slot, s.activePID)}
	}
	return s, nil
}
