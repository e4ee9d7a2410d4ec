package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/tributary-cdc/tributary/schema"
)

// Layout names every object the sink writes. Prefix and Database are as in
// Config.
type Layout struct {
	Prefix, Database string
}

func (l Layout) join(parts ...string) string {
	if p := strings.Trim(l.Prefix, "/"); p != "" {
		parts = append([]string{p}, parts...)
	}
	return path.Join(parts...)
}

// TableDir is the directory of a table's data objects:
// <prefix>/<database>/<GCSSegment(schema, table)>.
func (l Layout) TableDir(pgSchema, table string) string {
	return l.join(l.Database, schema.GCSSegment(pgSchema, table))
}

// DataObject names the object holding the changes first..last (commit LSNs)
// of a table written by writer, partitioned by the first change's commit
// time (UTC): <TableDir>/dt=YYYY-MM-DD/hh=HH/<first>-<last>-<writer>.avro,
// LSNs as 16 hex digits so names sort by first LSN.
func (l Layout) DataObject(pgSchema, table string, firstCommit time.Time, first, last uint64, writer string) string {
	t := firstCommit.UTC()
	return path.Join(l.TableDir(pgSchema, table), t.Format("dt=2006-01-02"), t.Format("hh=15"),
		fmt.Sprintf("%016x-%016x-%s.avro", first, last, writer))
}

// PendingDir holds one empty marker per data object of a table not yet
// loaded into BigQuery.
func (l Layout) PendingDir(pgSchema, table string) string {
	return l.join("_sink", "pending", l.Database, schema.GCSSegment(pgSchema, table)) + "/"
}

// PendingRoot is the parent of every table's PendingDir.
func (l Layout) PendingRoot() string { return l.join("_sink", "pending", l.Database) + "/" }

// PendingMarker is the marker of data object obj (a DataObject name).
func (l Layout) PendingMarker(pgSchema, table, obj string) string {
	rel := strings.TrimPrefix(obj, l.TableDir(pgSchema, table)+"/")
	return l.PendingDir(pgSchema, table) + strings.ReplaceAll(rel, "/", ".")
}

// LoadDir holds the manifests of a table's loads in progress.
func (l Layout) LoadDir(pgSchema, table string) string {
	return l.join("_sink", "loads", l.Database, schema.GCSSegment(pgSchema, table)) + "/"
}

// LoadRoot is the parent of every table's LoadDir.
func (l Layout) LoadRoot() string { return l.join("_sink", "loads", l.Database) + "/" }

// LoadManifest names the manifest of the load with job ID jobID.
func (l Layout) LoadManifest(pgSchema, table, jobID string) string {
	return l.LoadDir(pgSchema, table) + jobID + ".json"
}

// DeadLetter names a dead-letter object of the sink:
// <prefix>/_deadletter/sink/<database>/<group>/<name>.json.
func (l Layout) DeadLetter(group, name string) string {
	return l.join("_deadletter", "sink", l.Database, group, name+".json")
}

// LoadJobID is the BigQuery job ID of the load of objects: a hash of their
// sorted names, so the same set always gets the same ID and BigQuery refuses
// to run it twice.
func LoadJobID(objects []string) string {
	sorted := append([]string(nil), objects...)
	sort.Strings(sorted)
	h := sha256.New()
	for _, o := range sorted {
		fmt.Fprintf(h, "%d:%s", len(o), o) // length-prefixed: no two lists hash alike
	}
	return "tributary_load_" + hex.EncodeToString(h.Sum(nil)[:16])
}
