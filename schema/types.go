package schema

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// OID is a Postgres object identifier, here always the OID of a type.
type OID = uint32

// Column is one column of a table as a pgoutput Relation message describes it.
type Column struct {
	// Name is the column name exactly as Postgres spells it.
	Name string
	// TypeOID is pg_attribute.atttypid.
	TypeOID OID
	// TypeMod is pg_attribute.atttypmod, -1 when the type has none.
	TypeMod int32
	// Key is set for columns of the replica identity.
	Key bool
	// AsText maps the column to STRING holding Postgres' exact text whatever
	// its type: the lossless choice, configured per column, for a column whose
	// values the typed mapping would send to the dead-letter (for example a
	// timestamp column holding 'infinity').
	AsText bool
}

// Kind says how a Postgres type is built.
type Kind uint8

// The kinds of pg_type.typtype, with arrays and multiranges told apart.
const (
	KindBase Kind = iota
	KindEnum
	KindDomain
	KindArray
	KindComposite
	KindRange
	KindMultirange
)

func (k Kind) String() string {
	switch k {
	case KindBase:
		return "base"
	case KindEnum:
		return "enum"
	case KindDomain:
		return "domain"
	case KindArray:
		return "array"
	case KindComposite:
		return "composite"
	case KindRange:
		return "range"
	case KindMultirange:
		return "multirange"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// TypeInfo describes one Postgres type as the catalog (pg_type) holds it.
type TypeInfo struct {
	OID OID
	// Schema is the type's namespace (pg_namespace.nspname), "pg_catalog" for
	// built-in types.
	Schema string
	// Name is pg_type.typname: "int4", "_int4" for its array, "hstore".
	Name string
	Kind Kind
	// Elem is the element type of an array, the base type of a domain, the
	// subtype of a range and the range type of a multirange.
	Elem OID
	// TypeMod is the type modifier a domain applies to its base type
	// (pg_type.typtypmod), -1 when none.
	TypeMod int32
	// Fields are the attributes of a composite type in order, dropped
	// attributes left out (Postgres does not print them either).
	Fields []Field
}

// Field is one attribute of a composite type.
type Field struct {
	Name    string
	TypeOID OID
	TypeMod int32
}

// TypeResolver looks up a type by OID. Capture implements it from pg_type
// (user-defined enums, domains, composites, extension types such as hstore,
// whose OID differs between databases); Builtin knows the built-in types.
type TypeResolver interface {
	Type(oid OID) (TypeInfo, error)
}

// Builtin resolves the built-in types of Postgres (OIDs below 10000, the same
// in every database) and nothing else.
var Builtin TypeResolver = builtinResolver{}

// pgTypes is the read-only pgtype.Map the package decodes with. Scan planning
// only reads a Map, so it is safe for concurrent use as long as no type is
// ever registered in it.
var pgTypes = pgtype.NewMap()

// Built-in types pgx does not register, by OID.
var extraBuiltins = map[OID]TypeInfo{
	790:  {Name: "money"},
	791:  {Name: "_money", Kind: KindArray, Elem: 790},
	1266: {Name: "timetz"},
	1270: {Name: "_timetz", Kind: KindArray, Elem: 1266},
	3614: {Name: "tsvector"},
	3643: {Name: "_tsvector", Kind: KindArray, Elem: 3614},
	3615: {Name: "tsquery"},
	3645: {Name: "_tsquery", Kind: KindArray, Elem: 3615},
	3220: {Name: "pg_lsn"},
	3221: {Name: "_pg_lsn", Kind: KindArray, Elem: 3220},
	2205: {Name: "regclass"},
	2210: {Name: "_regclass", Kind: KindArray, Elem: 2205},
	2206: {Name: "regtype"},
	2211: {Name: "_regtype", Kind: KindArray, Elem: 2206},
	22:   {Name: "int2vector"},
	30:   {Name: "oidvector"},
	5038: {Name: "pg_snapshot"},
	2970: {Name: "txid_snapshot"},
}

type builtinResolver struct{}

func (builtinResolver) Type(oid OID) (TypeInfo, error) {
	if ti, ok := extraBuiltins[oid]; ok {
		ti.OID, ti.Schema, ti.TypeMod = oid, "pg_catalog", -1
		return ti, nil
	}
	t, ok := pgTypes.TypeForOID(oid)
	if !ok || oid >= 10000 {
		return TypeInfo{}, fmt.Errorf("resolving type %d: not a built-in type", oid)
	}
	ti := TypeInfo{OID: oid, Schema: "pg_catalog", Name: t.Name, TypeMod: -1}
	switch c := t.Codec.(type) {
	case *pgtype.ArrayCodec:
		ti.Kind, ti.Elem = KindArray, c.ElementType.OID
	case *pgtype.RangeCodec:
		ti.Kind, ti.Elem = KindRange, c.ElementType.OID
	case *pgtype.MultirangeCodec:
		ti.Kind, ti.Elem = KindMultirange, c.ElementType.OID
	}
	return ti, nil
}

// Chain resolves with each resolver in turn and returns the first answer, so
// capture can put its catalog resolver behind Builtin. When none answers, the
// error joins every resolver's error: Builtin's "not a built-in type" alone
// would hide why the catalog failed.
func Chain(rs ...TypeResolver) TypeResolver { return chain(rs) }

type chain []TypeResolver

func (c chain) Type(oid OID) (TypeInfo, error) {
	errs := make([]error, 0, len(c))
	for _, r := range c {
		ti, err := r.Type(oid)
		if err == nil {
			return ti, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return TypeInfo{}, fmt.Errorf("resolving type %d: no resolver", oid)
	}
	return TypeInfo{}, errors.Join(errs...)
}
