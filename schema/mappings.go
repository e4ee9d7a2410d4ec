package schema

import "fmt"

// Example types for the documentation that are not built in: an extension
// type, an enum, a domain and a composite type, at OIDs no built-in uses.
var docTypes = mapResolver{
	100001: {OID: 100001, Schema: "public", Name: "hstore", TypeMod: -1},
	100002: {OID: 100002, Schema: "public", Name: "mood", Kind: KindEnum, TypeMod: -1},
	100003: {OID: 100003, Schema: "public", Name: "price", Kind: KindDomain, Elem: 1700, TypeMod: numericTypmod(12, 2)},
	100004: {OID: 100004, Schema: "public", Name: "address", Kind: KindComposite, TypeMod: -1,
		Fields: []Field{{Name: "street", TypeOID: 25, TypeMod: -1}, {Name: "Zip", TypeOID: 23, TypeMod: -1}}},
}

type mapResolver map[OID]TypeInfo

func (r mapResolver) Type(oid OID) (TypeInfo, error) {
	if ti, ok := r[oid]; ok {
		return ti, nil
	}
	return TypeInfo{}, fmt.Errorf("resolving type %d: unknown", oid)
}

// numericTypmod encodes numeric(p,s) as Postgres stores it in atttypmod.
func numericTypmod(p, s int) int32 {
	return int32(p<<16|s&0x7ff) + 4
}

// docColumns are the columns Mappings lists, one per type or typmod case.
var docColumns = []Column{
	{TypeOID: 16, TypeMod: -1},                     // bool
	{TypeOID: 21, TypeMod: -1},                     // int2
	{TypeOID: 23, TypeMod: -1},                     // int4
	{TypeOID: 20, TypeMod: -1},                     // int8
	{TypeOID: 26, TypeMod: -1},                     // oid
	{TypeOID: 700, TypeMod: -1},                    // float4
	{TypeOID: 701, TypeMod: -1},                    // float8
	{TypeOID: 1700, TypeMod: -1},                   // numeric
	{TypeOID: 1700, TypeMod: numericTypmod(10, 2)}, // NUMERIC
	{TypeOID: 1700, TypeMod: numericTypmod(38, 9)},
	{TypeOID: 1700, TypeMod: numericTypmod(40, 10)}, // BIGNUMERIC
	{TypeOID: 1700, TypeMod: numericTypmod(76, 38)},
	{TypeOID: 1700, TypeMod: numericTypmod(50, 0)}, // STRING
	{TypeOID: 1700, TypeMod: numericTypmod(5, -2)},
	{TypeOID: 1700, TypeMod: numericTypmod(3, 5)},
	{TypeOID: 790, TypeMod: -1},  // money
	{TypeOID: 25, TypeMod: -1},   // text
	{TypeOID: 1043, TypeMod: 24}, // varchar(20)
	{TypeOID: 1042, TypeMod: 7},  // bpchar(3)
	{TypeOID: 19, TypeMod: -1},   // name
	{TypeOID: 18, TypeMod: -1},   // "char"
	{TypeOID: 142, TypeMod: -1},  // xml
	{TypeOID: 17, TypeMod: -1},   // bytea
	{TypeOID: 2950, TypeMod: -1}, // uuid
	{TypeOID: 114, TypeMod: -1},  // json
	{TypeOID: 3802, TypeMod: -1}, // jsonb
	{TypeOID: 1082, TypeMod: -1}, // date
	{TypeOID: 1083, TypeMod: -1}, // time
	{TypeOID: 1266, TypeMod: -1}, // timetz
	{TypeOID: 1114, TypeMod: -1}, // timestamp
	{TypeOID: 1184, TypeMod: -1}, // timestamptz
	{TypeOID: 1186, TypeMod: -1}, // interval
	{TypeOID: 869, TypeMod: -1},  // inet
	{TypeOID: 650, TypeMod: -1},  // cidr
	{TypeOID: 829, TypeMod: -1},  // macaddr
	{TypeOID: 774, TypeMod: -1},  // macaddr8
	{TypeOID: 1560, TypeMod: 4},  // bit(4)
	{TypeOID: 1562, TypeMod: -1}, // varbit
	{TypeOID: 3614, TypeMod: -1}, // tsvector
	{TypeOID: 3615, TypeMod: -1}, // tsquery
	{TypeOID: 3220, TypeMod: -1}, // pg_lsn
	{TypeOID: 5069, TypeMod: -1}, // xid8
	{TypeOID: 600, TypeMod: -1},  // point
	{TypeOID: 3904, TypeMod: -1}, // int4range
	{TypeOID: 3910, TypeMod: -1}, // tstzrange
	{TypeOID: 4451, TypeMod: -1}, // int4multirange
	{TypeOID: 100001, TypeMod: -1},
	{TypeOID: 100002, TypeMod: -1},
	{TypeOID: 100003, TypeMod: -1},
	{TypeOID: 100004, TypeMod: -1},
	{TypeOID: 1007, TypeMod: -1},                   // int4[]
	{TypeOID: 1009, TypeMod: -1},                   // text[]
	{TypeOID: 1231, TypeMod: numericTypmod(10, 2)}, // numeric(10,2)[]
	{TypeOID: 1115, TypeMod: -1},                   // timestamp[]
	{TypeOID: 1020, TypeMod: -1},                   // box[]
}

// Mappings returns the mapping of every built-in type, with one entry per
// numeric typmod case, and of an example extension type (hstore), enum,
// domain and composite type. docs/type-mapping.md is generated from it.
func Mappings() []*Mapping {
	r := Chain(Builtin, docTypes)
	out := make([]*Mapping, 0, len(docColumns))
	for _, c := range docColumns {
		c.Name = "c"
		m, err := MapColumn(c, r)
		if err != nil {
			panic(err) // the list is static: a failure is a bug caught by the tests
		}
		out = append(out, m)
	}
	return out
}
