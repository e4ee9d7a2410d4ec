// Package pgcatalog resolves Postgres types from the catalog (pg_type) for
// package schema: enums, domains, composites, ranges and extension types
// such as hstore, whose OIDs differ between databases. capture and verify
// share it; it owns nothing but the lookup and its cache.
package pgcatalog

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/schema"
)

// Catalog resolves user-defined and extension types (enums, domains,
// composites, ranges, hstore…) from pg_type over an ordinary connection of
// its own. It caches answers; a type's OID never changes meaning while it
// exists. It implements schema.TypeResolver and is safe for concurrent use.
type Catalog struct {
	dsn   string
	mu    sync.Mutex
	conn  *pgx.Conn
	cache map[schema.OID]schema.TypeInfo
}

// New returns a catalog that connects with dsn when it first needs to.
func New(dsn string) *Catalog {
	return &Catalog{dsn: dsn, cache: map[schema.OID]schema.TypeInfo{}}
}

const typeQuery = `
SELECT t.oid, n.nspname, t.typname, t.typtype::text, t.typcategory::text,
       t.typelem, t.typbasetype, t.typtypmod,
       COALESCE(r.rngsubtype, 0), COALESCE(m.rngtypid, 0),
       COALESCE(ARRAY(SELECT a.attname FROM pg_attribute a
                      WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), '{}'),
       COALESCE(ARRAY(SELECT a.atttypid FROM pg_attribute a
                      WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), '{}'),
       COALESCE(ARRAY(SELECT a.atttypmod FROM pg_attribute a
                      WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), '{}')
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_range r ON r.rngtypid = t.oid
LEFT JOIN pg_range m ON m.rngmultitypid = t.oid
WHERE t.oid = $1`

// Type implements schema.TypeResolver.
func (c *Catalog) Type(oid schema.OID) (schema.TypeInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ti, ok := c.cache[oid]; ok {
		return ti, nil
	}
	ctx := context.Background()
	if c.conn == nil || c.conn.IsClosed() {
		conn, err := pgx.Connect(ctx, c.dsn)
		if err != nil {
			return schema.TypeInfo{}, fmt.Errorf("connecting to look up type %d: %w", oid, err)
		}
		c.conn = conn
	}
	var (
		ti                      schema.TypeInfo
		typtype, category       string
		elem, base, rngSub, rng uint32
		typmod                  int32
		names                   []string
		types                   []uint32
		mods                    []int32
	)
	err := c.conn.QueryRow(ctx, typeQuery, oid).Scan(&ti.OID, &ti.Schema, &ti.Name, &typtype, &category,
		&elem, &base, &typmod, &rngSub, &rng, &names, &types, &mods)
	if err != nil {
		return schema.TypeInfo{}, fmt.Errorf("looking up type %d in pg_type: %w", oid, err)
	}
	ti.TypeMod = -1
	switch {
	case category == "A" && elem != 0:
		ti.Kind, ti.Elem = schema.KindArray, elem
	case typtype == "e":
		ti.Kind = schema.KindEnum
	case typtype == "d":
		ti.Kind, ti.Elem, ti.TypeMod = schema.KindDomain, base, typmod
	case typtype == "c":
		ti.Kind = schema.KindComposite
		for i := range names {
			ti.Fields = append(ti.Fields, schema.Field{Name: names[i], TypeOID: types[i], TypeMod: mods[i]})
		}
	case typtype == "r":
		ti.Kind, ti.Elem = schema.KindRange, rngSub
	case typtype == "m":
		ti.Kind, ti.Elem = schema.KindMultirange, rng
	default:
		ti.Kind = schema.KindBase
	}
	c.cache[oid] = ti
	return ti, nil
}

// Forget drops cached answers, after a Relation message says a table changed
// (a composite's attributes may have changed with it).
func (c *Catalog) Forget() {
	c.mu.Lock()
	c.cache = map[schema.OID]schema.TypeInfo{}
	c.mu.Unlock()
}

// Close closes the catalog's connection.
func (c *Catalog) Close(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.Close(ctx)
	}
}
