-- tributary's side of Postgres, run once by an administrator (on Cloud SQL:
-- a member of cloudsqlsuperuser, such as the postgres user) in the database
-- being captured. It matches deploy/k8s/base/tributary.yaml: role tributary,
-- publication tributary, tables public.orders and public.order_items.
-- Replace the names and the password, keep the shape.
--
-- wal_level must be logical first: see README.md for each managed service.

-- The role capture logs in as. REPLICATION lets it open a replication
-- connection and create its slot; nothing here makes it a superuser.
-- On RDS and Aurora, REPLICATION cannot be granted: leave it out and run
--   GRANT rds_replication TO tributary;
-- Set the real password out of band (\password tributary in psql) rather than
-- in a file, and keep it in the Kubernetes Secret tributary-postgres.
CREATE ROLE tributary WITH LOGIN REPLICATION PASSWORD 'change-me';

-- Reading the catalog and the tables' definitions needs USAGE on their schema.
GRANT USAGE ON SCHEMA public TO tributary;

-- SELECT on the published tables only. Streaming reads the WAL and the
-- catalog, not the tables; backfills read the tables themselves. No other
-- table is granted: add each table you add to the publication here too.
GRANT SELECT ON public.orders, public.order_items TO tributary;

-- The publication, created here so that capture needs no ownership of the
-- tables (adding a table to a publication requires owning it).
-- publish_via_partition_root: changes to a partition are published as the
-- partitioned table, so a monthly-partitioned table lands as one table.
-- capture checks that every table in its config is in the publication and
-- names the ALTER PUBLICATION to run when one is missing.
CREATE PUBLICATION tributary
    FOR TABLE public.orders, public.order_items
    WITH (publish_via_partition_root = true);

-- The replication slot is created by capture on its first start (pgoutput).
-- To see how much WAL it holds back:
--   SELECT slot_name, active, wal_status,
--          pg_size_pretty(pg_current_wal_lsn() - confirmed_flush_lsn) AS behind
--     FROM pg_replication_slots;
