package sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/schema"
)

// Replay rebuilds a table's changelog and current state in BigQuery from its
// Avro objects on GCS alone, each object read with the schema version in its
// own header (and the schema store). It reads data objects and schemas only:
// a running sink's markers, manifests and tables beside the target are left
// alone, and its load job IDs differ from the sink's.
//
// The rebuild happens aside, in <table>__changelog_replay and
// <table>__replay of the target dataset:
//
//  1. the aside changelog is created with the target changelog's columns
//     (when it exists) and every column of every schema version the
//     selected objects were written with, added in the order the versions
//     appeared (a column a later version dropped stays, null from then on);
//  2. every selected object is loaded whole (a load job cannot filter
//     rows), one job per schema version and 1,000 objects; then the rows
//     outside [From, To] are deleted, exactly, by commit LSN or commit time;
//  3. with From set, the target changelog's rows before From are copied in,
//     so a range can be repaired without reloading everything before it;
//  4. the current state is computed from the whole aside changelog with the
//     sink's own apply (Statements), so it is the state as of To;
//  5. the swap: the target tables gain the columns they lack (or are
//     created), then one multi-statement transaction deletes every row of
//     both and inserts the aside tables' rows. BigQuery commits the
//     transaction atomically: a reader sees the old changelog and current
//     state or the new ones, never a half-built or an empty table, and the
//     target tables keep their partitioning, clustering and descriptions.
//     The aside tables are dropped afterwards.
//
// The swap replaces what the target tables hold: changes a sink loads into
// them after Replay listed the objects and before the swap are replaced
// too (the sink's next loads go on as usual). Replay into the live dataset
// while that table's sink is stopped, or replay again afterwards.
func Replay(ctx context.Context, cfg Config, gcs *storage.Client, bq *bigquery.Client, opts ReplayOptions) (*ReplayResult, error) {
	started := time.Now()
	if opts.Schema == "" || opts.Table == "" {
		return nil, errors.New("replay: no table given")
	}
	if err := checkRange(opts.From, opts.To); err != nil {
		return nil, err
	}
	s := New(cfg, nil, gcs, bq)
	r := &replay{s: s, key: tableKey{opts.Schema, opts.Table}, opts: opts}
	if r.opts.Into == "" {
		r.opts.Into = s.cfg.Dataset
	}
	r.live = tableNames{Dataset: r.opts.Into,
		Changelog: schema.BigQueryTableName(opts.Schema, opts.Table, "changelog"),
		Current:   schema.BigQueryTableName(opts.Schema, opts.Table, ""),
	}
	r.aside = tableNames{Dataset: r.opts.Into,
		Changelog: schema.BigQueryTableName(opts.Schema, opts.Table, "changelog_replay"),
		Current:   schema.BigQueryTableName(opts.Schema, opts.Table, "replay"),
		Stage:     schema.BigQueryTableName(opts.Schema, opts.Table, "replay_stage"),
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	r.runID = hex.EncodeToString(id[:])
	res, err := r.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("replaying %s: %w", r.key, err)
	}
	res.Seconds = time.Since(started).Seconds()
	return res, nil
}

// ReplayOptions say what Replay rebuilds.
type ReplayOptions struct {
	// Schema and Table name the Postgres table, spelled as in Postgres.
	Schema, Table string
	// From and To bound the changes replayed by commit LSN or commit time,
	// both inclusive; zero Bounds are open.
	From, To Bound
	// Into is the BigQuery dataset rebuilt (created when absent); default
	// Config.Dataset, the live one.
	Into string
	// Progress, when set, is called as the replay goes: after the objects
	// are selected, after each load job and at each later step.
	Progress func(ReplayProgress)
}

// ReplayResult summarises a replay.
type ReplayResult struct {
	Table   string `json:"table"`
	Dataset string `json:"dataset"`
	// Objects is how many data objects were loaded, written with
	// SchemaVersions schema versions, holding RowsRead rows in all.
	Objects        int   `json:"objects"`
	SchemaVersions int   `json:"schema_versions"`
	RowsRead       int64 `json:"rows_read"`
	// ChangelogRows is what the rebuilt changelog holds: the rows read
	// that lie in the range, plus RowsKept rows before From copied from
	// the target's changelog.
	ChangelogRows int64 `json:"changelog_rows"`
	RowsKept      int64 `json:"rows_kept"`
	// CurrentRows is what the rebuilt current-state table holds.
	CurrentRows int64    `json:"current_rows"`
	Tables      []string `json:"tables"`
	Seconds     float64  `json:"seconds"`
}

// Bound is one end of a replay's range: a commit LSN, or a commit time when
// Time is set. The zero Bound is open.
type Bound struct {
	LSN  uint64
	Time time.Time
}

// IsZero reports an open bound.
func (b Bound) IsZero() bool { return b.LSN == 0 && b.Time.IsZero() }

// String gives the bound as ParseBound reads it.
func (b Bound) String() string {
	switch {
	case !b.Time.IsZero():
		return b.Time.UTC().Format(time.RFC3339Nano)
	case b.LSN != 0:
		return lsnText(b.LSN)
	}
	return ""
}

// ParseBound reads a bound: an LSN in Postgres' form ("0/16B3748") or as a
// decimal number, or a time in RFC 3339 ("2026-01-02T15:04:05Z", fractions
// of a second allowed). The empty string is the open bound.
func ParseBound(s string) (Bound, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Bound{}, nil
	case strings.Contains(s, "/"):
		hi, lo, _ := strings.Cut(s, "/")
		h, err1 := strconv.ParseUint(hi, 16, 32)
		l, err2 := strconv.ParseUint(lo, 16, 32)
		if err1 != nil || err2 != nil || hi == "" || lo == "" {
			return Bound{}, fmt.Errorf("%q is not an LSN (like 0/16B3748)", s)
		}
		return lsnBound(h<<32 | l)
	case strings.Trim(s, "0123456789") == "":
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Bound{}, fmt.Errorf("%q is not an LSN: %w", s, err)
		}
		return lsnBound(v)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Bound{}, fmt.Errorf("%q is neither an LSN (0/16B3748 or decimal) nor an RFC 3339 time", s)
	}
	return Bound{Time: t.UTC()}, nil
}

// lsnText is Postgres' text form of an LSN.
func lsnText(v uint64) string { return fmt.Sprintf("%X/%X", v>>32, uint32(v)) }

func lsnBound(v uint64) (Bound, error) {
	if v == 0 {
		return Bound{}, errors.New("LSN 0 bounds nothing: leave the bound out")
	}
	if v > math.MaxInt64 {
		return Bound{}, fmt.Errorf("LSN %s is beyond what BigQuery's INT64 holds", lsnText(v))
	}
	return Bound{LSN: v}, nil
}

// checkRange refuses a range that is empty by construction.
func checkRange(from, to Bound) error {
	switch {
	case from.LSN != 0 && to.LSN != 0 && from.LSN > to.LSN,
		!from.Time.IsZero() && !to.Time.IsZero() && from.Time.After(to.Time):
		return fmt.Errorf("replay: --from %s is after --to %s", from, to)
	}
	return nil
}

// ReplayObject is a data object as its name and metadata describe it.
type ReplayObject struct {
	Name string
	// First and Last are the commit LSNs of its first and last change.
	First, Last uint64
	// Hour is its partition: the hour (UTC) of its first change's commit.
	Hour time.Time
	// Rows and Fingerprint (16 hex digits) come from its metadata.
	Rows        int64
	Fingerprint string
}

// ParseDataObject reads what an object name written by Layout.DataObject
// says: …/dt=YYYY-MM-DD/hh=HH/<first>-<last>-<writer>.avro.
func ParseDataObject(name string) (ReplayObject, error) {
	bad := func(why string) (ReplayObject, error) {
		return ReplayObject{}, fmt.Errorf("%s is not a data object name: %s", name, why)
	}
	hourDir, base := path.Split(name)
	dayDir, hh := path.Split(strings.TrimSuffix(hourDir, "/"))
	dt := path.Base(dayDir)
	if !strings.HasSuffix(base, ".avro") {
		return bad("no .avro suffix")
	}
	parts := strings.SplitN(strings.TrimSuffix(base, ".avro"), "-", 3)
	if len(parts) != 3 || len(parts[0]) != 16 || len(parts[1]) != 16 || parts[2] == "" {
		return bad("not <first LSN>-<last LSN>-<writer>")
	}
	first, err1 := strconv.ParseUint(parts[0], 16, 64)
	last, err2 := strconv.ParseUint(parts[1], 16, 64)
	if err1 != nil || err2 != nil || first > last {
		return bad("bad LSNs")
	}
	hour, err := time.Parse("dt=2006-01-02/hh=15", dt+"/"+hh)
	if err != nil {
		return bad("no dt=/hh= partition")
	}
	return ReplayObject{Name: name, First: first, Last: last, Hour: hour}, nil
}

// SelectObjects keeps the objects that may hold changes in [from, to] and
// orders them by first LSN. LSN bounds select by the LSN range in the name;
// a To time drops the partitions after its hour (an object's changes all
// commit at or after its partition's hour). A From time selects nothing by
// name: an object may run on past its partition's hour. The rows are
// filtered exactly once loaded.
func SelectObjects(objs []ReplayObject, from, to Bound) []ReplayObject {
	var out []ReplayObject
	for _, o := range objs {
		switch {
		case from.LSN != 0 && o.Last < from.LSN,
			to.LSN != 0 && o.First > to.LSN,
			!to.Time.IsZero() && o.Hour.After(to.Time.UTC().Truncate(time.Hour)):
			continue
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].First != out[j].First {
			return out[i].First < out[j].First
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// OutsideSQL is the condition of changelog rows outside [from, to]; empty
// when both bounds are open. Times are compared in microseconds, the
// changelog's precision: from rounded up, to down.
func OutsideSQL(from, to Bound) string {
	var conds []string
	if c := BeforeSQL(from); c != "" {
		conds = append(conds, c)
	}
	switch {
	case !to.Time.IsZero():
		conds = append(conds, fmt.Sprintf("%s > %s", schema.ColCommitTS, timestampSQL(to.Time.UTC().Truncate(time.Microsecond))))
	case to.LSN != 0:
		conds = append(conds, fmt.Sprintf("%s > %d", schema.ColCommitLSN, int64(to.LSN)))
	}
	return strings.Join(conds, " OR ")
}

// BeforeSQL is the condition of changelog rows before from; empty when from
// is open.
func BeforeSQL(from Bound) string {
	switch {
	case !from.Time.IsZero():
		t := from.Time.UTC()
		if r := t.Truncate(time.Microsecond); !r.Equal(t) {
			t = r.Add(time.Microsecond)
		}
		return fmt.Sprintf("%s < %s", schema.ColCommitTS, timestampSQL(t))
	case from.LSN != 0:
		return fmt.Sprintf("%s < %d", schema.ColCommitLSN, int64(from.LSN))
	}
	return ""
}

func timestampSQL(t time.Time) string {
	return "TIMESTAMP '" + t.UTC().Format("2006-01-02 15:04:05.000000") + "+00'"
}

// swap is one target table and the aside table whose rows replace its own.
type swap struct {
	Target, Aside string
	Columns       []string // the aside table's, all of which the target has
}

// SwapSQL replaces the rows of every target table with its aside table's
// in one multi-statement transaction, so readers see all old tables or all
// new ones.
func swapSQL(project, dataset string, swaps []swap) string {
	tbl := func(id string) string { return schema.QuoteBigQuery(project + "." + dataset + "." + id) }
	var stmts []string
	for _, sw := range swaps {
		cols := make([]string, len(sw.Columns))
		for i, c := range sw.Columns {
			cols[i] = schema.QuoteBigQuery(c)
		}
		list := strings.Join(cols, ", ")
		stmts = append(stmts, fmt.Sprintf("DELETE FROM %s WHERE true", tbl(sw.Target)),
			fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s FROM %s", tbl(sw.Target), list, list, tbl(sw.Aside)))
	}
	return transaction(stmts)
}

// replayJobID names a replay's load of objects: distinct from the sink's
// LoadJobID of the same objects, and from another run's.
func replayJobID(runID string, objects []string) string {
	return "tributary_replay_" + runID + "_" + strings.TrimPrefix(LoadJobID(objects), "tributary_load_")
}

// replay is one Replay run.
type replay struct {
	s           *Sink
	key         tableKey
	opts        ReplayOptions
	live, aside tableNames
	runID       string
}

func (r *replay) run(ctx context.Context) (*ReplayResult, error) {
	s, log := r.s, r.s.log
	res := &ReplayResult{Table: r.key.String(), Dataset: r.opts.Into, Tables: []string{r.live.Changelog, r.live.Current}}
	objs, err := r.objects(ctx)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no data objects under gs://%s/%s/ in the range", s.cfg.Bucket, s.layout.TableDir(r.key.Schema, r.key.Table))
	}
	// Schema versions in the order they appeared, and the objects of each.
	var order []string
	groups := map[string][]string{}
	for _, o := range objs {
		if _, ok := groups[o.Fingerprint]; !ok {
			order = append(order, o.Fingerprint)
		}
		groups[o.Fingerprint] = append(groups[o.Fingerprint], o.Name)
		res.RowsRead += o.Rows
	}
	res.Objects, res.SchemaVersions = len(objs), len(order)
	log.Info("replay: objects selected", "table", r.key, "objects", len(objs), "schema_versions", len(order), "into", r.opts.Into)
	prog := newReplayProgress(r.opts.Progress, r.key.String())
	prog.selected(objs)
	prog.step("loading", 0, 0)
	rowsOf := map[string]int64{}
	for _, o := range objs {
		rowsOf[o.Name] = o.Rows
	}

	if err := r.ensureDataset(ctx); err != nil {
		return nil, err
	}
	if err := r.dropAside(ctx); err != nil {
		return nil, err
	}
	// The aside changelog is created once with every column: the target's
	// (when it exists), then those each version adds, in the order the
	// versions appeared; the current-state table follows from it.
	live, err := r.s.bq.Dataset(r.live.Dataset).Table(r.live.Changelog).Metadata(ctx)
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("reading table %s: %w", r.live.Changelog, err)
	}
	var liveChangelog bigquery.Schema
	var union *bigquery.TableMetadata
	if live != nil {
		liveChangelog = live.Schema
		union = &bigquery.TableMetadata{Schema: live.Schema, TimePartitioning: live.TimePartitioning, Clustering: live.Clustering, Description: live.Description}
	}
	var newest *schema.Changelog
	for _, fp := range order {
		v, err := strconv.ParseUint(fp, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bad schema fingerprint %q on %s", fp, groups[fp][0])
		}
		es, err := s.store.Get(ctx, v)
		if err != nil {
			return nil, err
		}
		if newest, err = s.changelog(ctx, es); err != nil {
			return nil, err
		}
		md, _, err := s.changelogMetadata(r.key, newest)
		if err != nil {
			return nil, err
		}
		if union == nil {
			union = md
		}
		union.Schema = mergeSchema(union.Schema, md.Schema)
	}
	if err := s.bq.Dataset(r.aside.Dataset).Table(r.aside.Changelog).Create(ctx, union); err != nil {
		return nil, fmt.Errorf("creating table %s: %w", r.aside.Changelog, err)
	}
	st, err := s.ensureTables(ctx, r.key, newest, r.aside)
	if err != nil {
		return nil, err
	}
	for _, fp := range order {
		for g := groups[fp]; len(g) > 0; {
			n := min(len(g), maxLoadObjects)
			if err := s.loadObjects(ctx, r.aside.Dataset, r.aside.Changelog, replayJobID(r.runID, g[:n]), g[:n]); err != nil {
				return nil, err
			}
			log.Info("replay: loaded", "table", r.key, "objects", n, "schema_fingerprint", fp)
			var rows int64
			for _, o := range g[:n] {
				rows += rowsOf[o]
			}
			prog.step("loading", n, rows)
			g = g[n:]
		}
	}
	if cond := OutsideSQL(r.opts.From, r.opts.To); cond != "" {
		if err := s.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s", st.table(r.aside.Changelog), cond)); err != nil {
			return nil, err
		}
	}
	if res.ChangelogRows, err = r.count(ctx, st.table(r.aside.Changelog)); err != nil {
		return nil, err
	}
	if before := BeforeSQL(r.opts.From); before != "" && liveChangelog != nil {
		cols := columnNames(liveChangelog)
		if err := s.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s FROM %s WHERE %s",
			st.table(r.aside.Changelog), cols, cols, st.table(r.live.Changelog), before)); err != nil {
			return nil, err
		}
		total, err := r.count(ctx, st.table(r.aside.Changelog))
		if err != nil {
			return nil, err
		}
		res.RowsKept, res.ChangelogRows = total-res.ChangelogRows, total
	}
	prog.step("applying", 0, 0)
	if err := s.apply(ctx, st, 0, math.MaxInt64); err != nil {
		return nil, err
	}
	if res.CurrentRows, err = r.count(ctx, st.table(r.aside.Current)); err != nil {
		return nil, err
	}
	log.Info("replay: rebuilt aside", "table", r.key, "changelog_rows", res.ChangelogRows, "current_rows", res.CurrentRows)
	prog.step("swapping", 0, 0)
	if err := r.swap(ctx); err != nil {
		return nil, err
	}
	log.Info("replay: swapped in", "table", r.key, "dataset", r.opts.Into)
	if err := r.dropAside(ctx); err != nil {
		return nil, err
	}
	prog.step("done", 0, 0)
	return res, nil
}

// objects lists the table's data objects and selects those of the range.
func (r *replay) objects(ctx context.Context) ([]ReplayObject, error) {
	attrs, err := r.s.list(ctx, r.s.layout.TableDir(r.key.Schema, r.key.Table)+"/")
	if err != nil {
		return nil, err
	}
	all := make([]ReplayObject, 0, len(attrs))
	for _, a := range attrs {
		o, err := ParseDataObject(a.Name)
		if err != nil {
			return nil, err
		}
		if o.Fingerprint = a.Metadata["schema_fingerprint"]; o.Fingerprint == "" {
			return nil, fmt.Errorf("%s lacks its schema_fingerprint metadata", a.Name)
		}
		o.Rows, _ = strconv.ParseInt(a.Metadata["rows"], 10, 64)
		all = append(all, o)
	}
	return SelectObjects(all, r.opts.From, r.opts.To), nil
}

// ensureDataset creates the target dataset when absent, in the location of
// the configured one.
func (r *replay) ensureDataset(ctx context.Context) error {
	ds := r.s.bq.Dataset(r.opts.Into)
	_, err := ds.Metadata(ctx)
	if !isNotFound(err) {
		if err != nil {
			return fmt.Errorf("reading dataset %s: %w", r.opts.Into, err)
		}
		return nil
	}
	md := &bigquery.DatasetMetadata{}
	if live, err := r.s.bq.Dataset(r.s.cfg.Dataset).Metadata(ctx); err == nil {
		md.Location = live.Location
	}
	if err := ds.Create(ctx, md); err != nil {
		return fmt.Errorf("creating dataset %s: %w", r.opts.Into, err)
	}
	return nil
}

// dropAside drops the aside tables (left over by an interrupted run, or
// swapped in).
func (r *replay) dropAside(ctx context.Context) error {
	for _, id := range []string{r.aside.Changelog, r.aside.Current, r.aside.Stage} {
		if err := r.s.bq.Dataset(r.aside.Dataset).Table(id).Delete(ctx); err != nil && !isNotFound(err) {
			return fmt.Errorf("dropping %s: %w", id, err)
		}
	}
	return nil
}

// mergeSchema appends to have the fields of add it lacks (by name, without
// regard to case, as BigQuery compares them), nullable.
func mergeSchema(have, add bigquery.Schema) bigquery.Schema {
	present := map[string]bool{}
	for _, f := range have {
		present[strings.ToLower(f.Name)] = true
	}
	out := append(bigquery.Schema(nil), have...)
	for _, f := range add {
		if !present[strings.ToLower(f.Name)] {
			g := *f
			g.Required = false
			out = append(out, &g)
			present[strings.ToLower(f.Name)] = true
		}
	}
	return out
}

// swap gives each target table the aside table's columns (creating it when
// absent), checks that no column changed type, and replaces the targets'
// rows in one transaction.
func (r *replay) swap(ctx context.Context) error {
	ds := r.s.bq.Dataset(r.live.Dataset)
	var swaps []swap
	for _, p := range [][2]string{{r.live.Changelog, r.aside.Changelog}, {r.live.Current, r.aside.Current}} {
		md, err := ds.Table(p[1]).Metadata(ctx)
		if err != nil {
			return fmt.Errorf("reading table %s: %w", p[1], err)
		}
		have, err := ds.Table(p[0]).Metadata(ctx)
		switch {
		case err == nil:
			if err := sameTypes(p[0], have.Schema, md.Schema); err != nil {
				return err
			}
		case !isNotFound(err):
			return fmt.Errorf("reading table %s: %w", p[0], err)
		}
		if _, err := r.s.ensureTable(ctx, r.live.Dataset, p[0], &bigquery.TableMetadata{Schema: md.Schema,
			TimePartitioning: md.TimePartitioning, Clustering: md.Clustering, Description: md.Description}); err != nil {
			return err
		}
		sw := swap{Target: p[0], Aside: p[1]}
		for _, f := range md.Schema {
			sw.Columns = append(sw.Columns, f.Name)
		}
		swaps = append(swaps, sw)
	}
	return r.s.exec(ctx, swapSQL(r.s.bq.Project(), r.live.Dataset, swaps))
}

// sameTypes refuses a swap into a table whose columns have other types than
// the rebuild's: the transaction would fail.
func sameTypes(table string, have, rebuilt bigquery.Schema) error {
	byName := map[string]*bigquery.FieldSchema{}
	for _, f := range have {
		byName[strings.ToLower(f.Name)] = f
	}
	for _, f := range rebuilt {
		if h := byName[strings.ToLower(f.Name)]; h != nil && (h.Type != f.Type || h.Repeated != f.Repeated) {
			return fmt.Errorf("column %s of %s is %s (repeated %v) but %s (repeated %v) in the rebuild: drop %s or replay into another dataset",
				f.Name, table, h.Type, h.Repeated, f.Type, f.Repeated, table)
		}
	}
	return nil
}

func columnNames(sch bigquery.Schema) string {
	cols := make([]string, len(sch))
	for i, f := range sch {
		cols[i] = schema.QuoteBigQuery(f.Name)
	}
	return strings.Join(cols, ", ")
}

// count returns the rows of a table (quoted).
func (r *replay) count(ctx context.Context, table string) (int64, error) {
	it, err := r.s.bq.Query("SELECT COUNT(*) FROM " + table).Read(ctx)
	if err != nil {
		return 0, fmt.Errorf("counting %s: %w", table, err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil && !errors.Is(err, iterator.Done) {
		return 0, fmt.Errorf("counting %s: %w", table, err)
	}
	if len(row) == 1 {
		n, _ := row[0].(int64)
		return n, nil
	}
	return 0, nil
}
