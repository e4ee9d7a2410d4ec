package capture

import (
	"encoding/binary"
	"github.com/tributary-cdc/tributary/schema"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
)

// Op is the kind of a row change, as carried in the event's op field.
type Op string

// The ops a change can have. Snapshot reads ("r") come from backfills.
const (
	OpInsert   Op = "c"
	OpUpdate   Op = "u"
	OpDelete   Op = "d"
	OpTruncate Op = "t"
)

// Tuple column kinds pgoutput sends.
const (
	colNull      = 'n'
	colUnchanged = 'u' // an unchanged TOASTed value: not sent, never to be taken as NULL
	colText      = 't'
	colBinary    = 'b'
)

// Relation is what a pgoutput Relation message says of a table, with the
// positions of its replica-identity columns.
type Relation struct {
	ID              uint32
	Namespace, Name string
	ReplicaIdentity byte // 'd' default, 'n' nothing, 'f' full, 'i' index
	Columns         []*pglogrepl.RelationMessageColumn
	KeyIdx          []int // columns flagged as part of the replica identity
}

func newRelation(m *pglogrepl.RelationMessage) *Relation {
	r := &Relation{ID: m.RelationID, Namespace: m.Namespace, Name: m.RelationName, ReplicaIdentity: m.ReplicaIdentity, Columns: m.Columns}
	for i, c := range m.Columns {
		if c.Flags&1 != 0 {
			r.KeyIdx = append(r.KeyIdx, i)
		}
	}
	return r
}

// Change is one committed row change. Before holds the old replica-identity
// values (all columns under REPLICA IDENTITY FULL) when Postgres sent them;
// After the new row. Their Data slices are only valid during the Publish
// call that receives the change.
type Change struct {
	Op         Op
	Relation   *Relation
	Before     []*pglogrepl.TupleDataColumn
	After      []*pglogrepl.TupleDataColumn
	CommitLSN  pglogrepl.LSN // LSN of the transaction's commit record
	LSN        pglogrepl.LSN // LSN of this change's own WAL message
	Xid        uint32
	CommitTime time.Time
	Seq        int64 // position within the transaction, from 0
}

// Unchanged lists the columns whose TOASTed values Postgres did not send
// because the update left them as they were.
func (c *Change) Unchanged() []string {
	var names []string
	for i, col := range c.After {
		if col.DataType == colUnchanged {
			names = append(names, c.Relation.Columns[i].Name)
		}
	}
	return names
}

// Bucket returns the ordering bucket of the change's row, in [0, n): a
// stable FNV-1a hash of its replica-identity values (of the new row, or of
// the old one for deletes), so every change of one row lands on one ordering
// key. A table without a replica identity only ever sees inserts; its rows
// are spread by a hash of the whole row.
func (c *Change) Bucket(n int) int {
	tuple := c.After
	if tuple == nil {
		tuple = c.Before
	}
	if tuple == nil || n <= 1 {
		return 0
	}
	idx := c.Relation.KeyIdx
	if len(idx) == 0 {
		idx = make([]int, len(tuple))
		for i := range idx {
			idx[i] = i
		}
	}
	h := fnv.New64a()
	var lenBuf [5]byte
	for _, i := range idx {
		if i >= len(tuple) {
			continue
		}
		col := tuple[i]
		// Kind and length prefix each value so ("ab","c") and ("a","bc") differ.
		lenBuf[0] = col.DataType
		binary.LittleEndian.PutUint32(lenBuf[1:], uint32(len(col.Data)))
		h.Write(lenBuf[:])
		h.Write(col.Data)
	}
	return int(h.Sum64() % uint64(n))
}

// OrderingKey is "<schema>.<table>/<bucket>": names are quoted as Postgres
// would quote them only when they need it, so the key names the table
// unambiguously.
func OrderingKey(r *Relation, bucket int) string {
	return quoteIdent(r.Namespace) + "." + quoteIdent(r.Name) + "/" + strconv.Itoa(bucket)
}

func quoteIdent(s string) string { return schema.QuoteIdent(s) }
