package sink

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/schema"
)

// maxLoadObjects caps the objects of one load job (BigQuery allows 10,000
// source URIs).
const maxLoadObjects = 1000

// manifest records a load before it starts, so that a restarted sink
// finishes it with the same job ID instead of loading its objects again.
type manifest struct {
	JobID       string   `json:"job_id"`
	Schema      string   `json:"schema"`
	Table       string   `json:"table"`
	Fingerprint string   `json:"schema_fingerprint"`
	Objects     []string `json:"objects"`
	FirstLSN    uint64   `json:"first_lsn"`
	LastLSN     uint64   `json:"last_lsn"`
	// Rows and LastCommitMicros (commit time of the newest change, Unix
	// microseconds) feed the metrics; zero in manifests of markers that
	// lack them.
	Rows             int64 `json:"rows,omitempty"`
	LastCommitMicros int64 `json:"last_commit_us,omitempty"`
}

// loadLoop loads the table's written objects every LoadInterval until ctx
// ends or drain is closed; after drain it waits for flushed to close and
// loads once more.
func (t *table) loadLoop(ctx context.Context, drain, flushed <-chan struct{}) {
	every(ctx, t.s.cfg.LoadInterval, t.loadKick, drain, flushed, t.loadPending)
}

// every runs do every interval and whenever kick fires, until ctx ends or
// drain closes; then, once flushed closes (the last buffer is written), it
// runs do one last time.
func every(ctx context.Context, interval time.Duration, kick, drain, flushed <-chan struct{}, do func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-drain:
			select {
			case <-flushed:
			case <-ctx.Done():
				return
			}
			do(ctx)
			return
		case <-tick.C:
			do(ctx)
		case <-kick:
			do(ctx)
		}
	}
}

// loadPending finishes the loads whose manifests exist, then loads the
// objects still marked pending. Failures are logged and left for the next
// round (Retryable) or dead-lettered (otherwise).
//
// Markers whose changes were written before the round starts are recorded
// when it succeeds: every object written by then was loaded and applied.
func (t *table) loadPending(ctx context.Context) {
	s := t.s
	waiting := t.takeLoadWait()
	if err := t.loadOnce(ctx); err != nil {
		t.returnLoadWait(waiting)
		if ctx.Err() == nil {
			t.countError(err)
			s.log.Warn("loading into BigQuery", "table", t.key, "class", Classify(err), "err", err)
		}
		return
	}
	t.recordMarkers(ctx, waiting)
}

func (t *table) loadOnce(ctx context.Context) error {
	s := t.s
	manifests, err := t.manifests(ctx)
	if err != nil {
		return err
	}
	inManifest := map[string]bool{}
	for _, m := range manifests {
		for _, o := range m.Objects {
			inManifest[o] = true
		}
		t.addPending(m.Objects...)
	}
	markers, err := s.list(ctx, s.layout.PendingDir(t.key.Schema, t.key.Table))
	if err != nil {
		return err
	}
	groups := map[string][]*storage.ObjectAttrs{}
	for _, a := range markers {
		if a.Metadata[markerStreamed] != "" {
			continue // its rows were streamed: the applier's (stream.go)
		}
		if inManifest[a.Metadata["object"]] {
			if err := s.deleteObject(ctx, a.Name); err != nil {
				return err
			}
			continue
		}
		fp := a.Metadata["schema_fingerprint"]
		groups[fp] = append(groups[fp], a)
		t.addPending(a.Metadata["object"])
	}
	fps := make([]string, 0, len(groups))
	for fp := range groups {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	for _, fp := range fps {
		g := groups[fp]
		sort.Slice(g, func(i, j int) bool { return g[i].Metadata["object"] < g[j].Metadata["object"] })
		for len(g) > 0 {
			n := min(len(g), maxLoadObjects)
			m, err := t.newManifest(ctx, fp, g[:n])
			if err != nil {
				return err
			}
			manifests = append(manifests, m)
			g = g[n:]
		}
	}
	var errs []error
	for _, m := range manifests {
		if err := t.process(ctx, m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *table) manifests(ctx context.Context) ([]*manifest, error) {
	s := t.s
	attrs, err := s.list(ctx, s.layout.LoadDir(t.key.Schema, t.key.Table))
	if err != nil {
		return nil, err
	}
	var out []*manifest
	for _, a := range attrs {
		r, err := s.bucket.Object(a.Name).NewReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", a.Name, err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", a.Name, err)
		}
		m := &manifest{}
		if err := json.Unmarshal(data, m); err != nil {
			return nil, &permanentError{fmt.Errorf("reading %s: %w", a.Name, err)}
		}
		out = append(out, m)
	}
	return out, nil
}

// newManifest writes the manifest of a load of the objects the markers
// name, then removes the markers.
func (t *table) newManifest(ctx context.Context, fp string, markers []*storage.ObjectAttrs) (*manifest, error) {
	s := t.s
	m := &manifest{Schema: t.key.Schema, Table: t.key.Table, Fingerprint: fp, FirstLSN: ^uint64(0)}
	for _, a := range markers {
		m.Objects = append(m.Objects, a.Metadata["object"])
		first, err1 := strconv.ParseUint(a.Metadata["first_lsn"], 16, 64)
		last, err2 := strconv.ParseUint(a.Metadata["last_lsn"], 16, 64)
		if err1 != nil || err2 != nil {
			return nil, &permanentError{fmt.Errorf("marker %s lacks its LSNs", a.Name)}
		}
		m.FirstLSN, m.LastLSN = min(m.FirstLSN, first), max(m.LastLSN, last)
		rows, _ := strconv.ParseInt(a.Metadata["rows"], 10, 64)
		commit, _ := strconv.ParseInt(a.Metadata["last_commit_us"], 10, 64)
		m.Rows, m.LastCommitMicros = m.Rows+rows, max(m.LastCommitMicros, commit)
	}
	m.JobID = LoadJobID(m.Objects)
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	name := s.layout.LoadManifest(t.key.Schema, t.key.Table, m.JobID)
	if err := s.writeObject(ctx, name, "application/json", body, nil); err != nil && !isPreconditionFailed(err) {
		return nil, fmt.Errorf("writing %s: %w", name, err)
	}
	for _, a := range markers {
		if err := s.deleteObject(ctx, a.Name); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// process loads a manifest's objects into the changelog (at most once, by
// job ID), applies them to the current state and removes the manifest. A
// failure that is not Retryable dead-letters the manifest: its objects stay
// on GCS, named with the reason.
func (t *table) process(ctx context.Context, m *manifest) error {
	s := t.s
	err := t.loadAndApply(ctx, m)
	var ae *applyError
	if errors.As(err, &ae) {
		// The rows are in the changelog: dead-lettering them would leave
		// the current state behind for good. The apply is idempotent, so
		// the manifest stays and the next round applies it again.
		t.countError(err)
		return err
	}
	if err != nil && Classify(err) != Retryable && ctx.Err() == nil {
		body, _ := json.MarshalIndent(struct {
			*manifest
			Reason string `json:"reason"`
			Class  string `json:"class"`
		}{m, err.Error(), Classify(err).String()}, "", "  ")
		name := s.layout.DeadLetter(schema.GCSSegment(m.Schema, m.Table), "load-"+m.JobID)
		s.log.Error("dead-lettering a load", "table", t.key, "job", m.JobID, "object", name, "err", err)
		if derr := s.writeObject(ctx, name, "application/json", body, nil); derr != nil && !isPreconditionFailed(derr) {
			return errors.Join(err, derr)
		}
		t.countError(err)
		t.countDeadLetters(m.Rows)
		t.donePending(m.Objects)
		return s.deleteObject(ctx, s.layout.LoadManifest(m.Schema, m.Table, m.JobID))
	}
	if err != nil {
		return err
	}
	t.countLoaded(m)
	return s.deleteObject(ctx, s.layout.LoadManifest(m.Schema, m.Table, m.JobID))
}

func (t *table) loadAndApply(ctx context.Context, m *manifest) error {
	s := t.s
	fp, err := strconv.ParseUint(m.Fingerprint, 16, 64)
	if err != nil {
		return &permanentError{fmt.Errorf("manifest %s: bad fingerprint %q", m.JobID, m.Fingerprint)}
	}
	es, err := s.store.Get(ctx, fp)
	if err != nil {
		return err
	}
	cl, err := s.changelog(ctx, es)
	if err != nil {
		return err // reading the schema history: Classify decides
	}
	st, err := s.ensureTables(ctx, t.key, cl, s.liveTables(t.key))
	if err != nil {
		return err
	}
	start := time.Now()
	if err := s.loadObjects(ctx, st.Dataset, st.Changelog, m.JobID, m.Objects); err != nil {
		return err
	}
	loaded := time.Now()
	unlock := t.lockApply()
	err = s.apply(ctx, st, m.FirstLSN, m.LastLSN)
	unlock()
	if err != nil {
		return &applyError{err}
	}
	s.log.Info("loaded", "table", t.key, "job", m.JobID, "objects", len(m.Objects), "rows", m.Rows,
		"load_seconds", loaded.Sub(start).Seconds(), "apply_seconds", time.Since(loaded).Seconds())
	return nil
}

// applyError is a failed current-state apply after a successful load.
type applyError struct{ err error }

func (e *applyError) Error() string { return "applying to the current state: " + e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// loadObjects runs the AVRO load of objects into table changelog of
// dataset. Job IDs are jobID, then jobID_r1, _r2… only after the previous
// one is known to have failed (a failed load loads nothing), so the objects
// are never loaded twice.
func (s *Sink) loadObjects(ctx context.Context, dataset, changelog, jobID string, objects []string) error {
	uris := make([]string, len(objects))
	for i, o := range objects {
		uris[i] = "gs://" + s.cfg.Bucket + "/" + o
	}
	for attempt := 0; ; attempt++ {
		id := jobID
		if attempt > 0 {
			id += "_r" + strconv.Itoa(attempt)
		}
		ref := bigquery.NewGCSReference(uris...)
		ref.SourceFormat = bigquery.Avro
		l := s.bq.Dataset(dataset).Table(changelog).LoaderFrom(ref)
		l.UseAvroLogicalTypes = true
		l.SchemaUpdateOptions = []string{"ALLOW_FIELD_ADDITION"}
		l.WriteDisposition = bigquery.WriteAppend
		l.CreateDisposition = bigquery.CreateNever
		l.JobID = id
		job, err := l.Run(ctx)
		if isDuplicateJob(err) {
			job, err = s.bq.JobFromID(ctx, id)
		}
		if err != nil {
			return fmt.Errorf("starting load %s: %w", id, err)
		}
		status, err := job.Wait(ctx)
		if err != nil {
			return fmt.Errorf("waiting for load %s: %w", id, err)
		}
		if status.Err() == nil {
			return nil
		}
		if Classify(status.Err()) != Retryable {
			return fmt.Errorf("loading %s: %w", id, status.Err())
		}
		s.log.Warn("load failed, retrying with a new job ID", "job", id, "err", status.Err())
	}
}

// apply brings the current-state table up to date with the changelog rows
// whose commit LSN lies in [lo, hi]. Every step may be repeated. Each
// statement's duration is logged at debug level ("apply step").
func (s *Sink) apply(ctx context.Context, st Statements, lo, hi uint64) error {
	if err := s.dropStage(ctx, st.Dataset, st.Stage); err != nil {
		return err
	}
	if err := s.execStep(ctx, "stage", st.StageSQL(lo, hi)); err != nil {
		return err
	}
	start := time.Now()
	it, err := s.bq.Query(st.LatestTruncateSQL(lo, hi)).Read(ctx)
	if err != nil {
		return fmt.Errorf("finding truncates: %w", err)
	}
	// The statements that change the current-state table run as one
	// transaction: a reader sees the state before the batch or after it,
	// never a changed row deleted and not yet inserted again.
	var mutations []string
	var row []bigquery.Value
	switch err := it.Next(&row); {
	case err == nil:
		s.logStep(ctx, "truncates", start)
		lsn, _ := row[0].(int64)
		seq, _ := row[1].(int64)
		mutations = append(mutations, st.DeleteTruncatedSQL(uint64(lsn), seq))
	case !errors.Is(err, iterator.Done):
		return fmt.Errorf("finding truncates: %w", err)
	default:
		s.logStep(ctx, "truncates", start)
	}
	insert := st.InsertStagedSQL()
	if st.SoftDelete {
		if err := s.dropStage(ctx, st.Dataset, st.SoftStage); err != nil {
			return err
		}
		if err := s.execStep(ctx, "soft stage", st.SoftStageSQL()); err != nil {
			return err
		}
		insert = st.InsertSoftStagedSQL()
	}
	if err := s.execStep(ctx, "apply", transaction(append(mutations, st.DeleteStagedSQL(), insert))); err != nil {
		return err
	}
	if st.SoftDelete {
		if err := s.dropStage(ctx, st.Dataset, st.SoftStage); err != nil {
			return err
		}
	}
	return s.dropStage(ctx, st.Dataset, st.Stage)
}

// dropStage drops a stage table of an apply, if it exists.
func (s *Sink) dropStage(ctx context.Context, dataset, id string) error {
	if err := s.bq.Dataset(dataset).Table(id).Delete(ctx); err != nil && !isNotFound(err) {
		return fmt.Errorf("dropping stage %s: %w", id, err)
	}
	return nil
}

// transaction makes statements one multi-statement transaction, which
// BigQuery commits atomically.
func transaction(statements []string) string {
	var b strings.Builder
	b.WriteString("BEGIN TRANSACTION;\n")
	for _, q := range statements {
		b.WriteString(q)
		b.WriteString(";\n")
	}
	b.WriteString("COMMIT TRANSACTION;")
	return b.String()
}

// execStep runs one statement of an apply and logs how long it took.
func (s *Sink) execStep(ctx context.Context, step, sql string) error {
	start := time.Now()
	err := s.exec(ctx, sql)
	if err == nil {
		s.logStep(ctx, step, start)
	}
	return err
}

func (s *Sink) logStep(ctx context.Context, step string, start time.Time) {
	if s.log != nil {
		s.log.DebugContext(ctx, "apply step", "step", step, "took", time.Since(start))
	}
}

// exec runs one statement and waits for it. The job has an ID of its own,
// so an insert the client retries after losing the answer (the emulator
// closes a connection whose statement ran longer than its write timeout)
// finds the job already there and waits for it instead of failing.
func (s *Sink) exec(ctx context.Context, sql string) error {
	q := s.bq.Query(sql)
	q.JobID = "tributary_sql_" + rand.Text()
	job, err := q.Run(ctx)
	if isDuplicateJob(err) {
		job, err = s.bq.JobFromID(ctx, q.JobID)
	}
	if err == nil {
		var status *bigquery.JobStatus
		if status, err = job.Wait(ctx); err == nil {
			err = status.Err()
		}
	}
	if err != nil {
		what := "running"
		if rest, ok := strings.CutPrefix(sql, "BEGIN TRANSACTION;\n"); ok {
			what, sql = "running the transaction of", rest
		}
		first, _, _ := strings.Cut(sql, "\n")
		return fmt.Errorf("%s %q: %w", what, first, err)
	}
	return nil
}

// fixedWidth are the BigQuery types of columns Postgres never TOASTs (as
// mapped from fixed-width Postgres types); every other column may arrive
// unchanged.
var fixedWidth = map[bigquery.FieldType]bool{
	bigquery.IntegerFieldType: true, bigquery.FloatFieldType: true, bigquery.BooleanFieldType: true,
	bigquery.DateFieldType: true, bigquery.TimeFieldType: true, bigquery.DateTimeFieldType: true, bigquery.TimestampFieldType: true,
}

// clusterable are the types BigQuery clusters by.
var clusterable = map[bigquery.FieldType]bool{
	bigquery.IntegerFieldType: true, bigquery.StringFieldType: true, bigquery.BooleanFieldType: true, bigquery.DateFieldType: true,
	bigquery.DateTimeFieldType: true, bigquery.TimestampFieldType: true, bigquery.NumericFieldType: true, bigquery.BigNumericFieldType: true,
	bigquery.BytesFieldType: true, bigquery.GeographyFieldType: true,
}

// tableNames names the BigQuery tables one Postgres table is kept in.
type tableNames struct {
	Dataset, Changelog, Current, Stage string
}

// liveTables are the tables the sink keeps table k in.
func (s *Sink) liveTables(k tableKey) tableNames {
	return tableNames{
		Dataset:   s.cfg.Dataset,
		Changelog: schema.BigQueryTableName(k.Schema, k.Table, "changelog"),
		Current:   schema.BigQueryTableName(k.Schema, k.Table, ""),
		Stage:     schema.BigQueryTableName(k.Schema, k.Table, "stage"),
	}
}

// ensureTables creates the changelog and current-state tables of table k
// (named by names) when absent and adds the columns cl has and they lack,
// then returns the statements for them with every column either holds.
func (s *Sink) ensureTables(ctx context.Context, k tableKey, cl *schema.Changelog, names tableNames) (Statements, error) {
	clMeta, key, err := s.changelogMetadata(k, cl)
	if err != nil {
		return Statements{}, err
	}
	st := Statements{
		Project: s.bq.Project(), Dataset: names.Dataset, Key: key,
		Changelog: names.Changelog, Current: names.Current, Stage: names.Stage,
		SoftDelete: s.cfg.table(k).SoftDelete, SoftStage: names.Stage + "_soft",
		Types: map[string]string{},
	}
	clSchema, err := s.ensureTable(ctx, st.Dataset, st.Changelog, clMeta)
	if err != nil {
		return Statements{}, err
	}
	envelope := map[string]bool{schema.ColBeforeKey: true}
	for _, f := range schema.EnvelopeBigQuerySchema() {
		envelope[f.Name] = true
	}
	var all bigquery.Schema
	for _, f := range clSchema {
		if f.Name == schema.ColBeforeKey {
			for _, k := range f.Schema {
				st.BeforeKey = append(st.BeforeKey, k.Name)
			}
		}
		if !envelope[f.Name] {
			all = append(all, f)
			st.Columns = append(st.Columns, f.Name)
			if !f.Repeated {
				st.Types[f.Name] = standardSQLType[f.Type]
			}
			if !fixedWidth[f.Type] || f.Repeated {
				st.Toastable = append(st.Toastable, f.Name)
			}
		}
	}
	curMeta := &bigquery.TableMetadata{
		Schema: append(bigquery.Schema{
			{Name: ColKey, Type: bigquery.StringFieldType, Required: true, Description: "the row's key columns as JSON (the change identity for a table without a key)"},
			{Name: schema.ColCommitLSN, Type: bigquery.IntegerFieldType, Required: true, Description: "commit LSN of the change that made the row what it is"},
			{Name: schema.ColSeq, Type: bigquery.IntegerFieldType, Required: true, Description: "position of that change in its transaction"},
			{Name: schema.ColCommitTS, Type: bigquery.TimestampFieldType, Required: true, Description: "commit time of that change"},
		}, all...),
		Clustering:  &bigquery.Clustering{Fields: []string{ColKey}},
		Description: fmt.Sprintf("Current state of Postgres table %s", k),
	}
	if st.SoftDelete {
		curMeta.Schema = append(curMeta.Schema, &bigquery.FieldSchema{Name: ColDeleted, Type: bigquery.BooleanFieldType,
			Description: "true when the row was deleted in Postgres (its last values kept)"})
	}
	if _, err := s.ensureTable(ctx, st.Dataset, st.Current, curMeta); err != nil {
		return Statements{}, err
	}
	return st, nil
}

// changelogMetadata is the changelog table of cl's version of table k, and
// the table's key columns.
func (s *Sink) changelogMetadata(k tableKey, cl *schema.Changelog) (*bigquery.TableMetadata, []string, error) {
	cols, err := cl.BigQuerySchema()
	if err != nil {
		return nil, nil, &permanentError{err}
	}
	key, err := s.keyFields(k, cl)
	if err != nil {
		return nil, nil, &permanentError{err}
	}
	byName := map[string]*bigquery.FieldSchema{}
	for _, f := range cols {
		byName[f.Name] = f
	}
	var clustering []string
	for _, c := range key {
		if f := byName[c]; f != nil && clusterable[f.Type] && !f.Repeated && len(clustering) < 4 {
			clustering = append(clustering, c)
		}
	}
	envFields := schema.EnvelopeBigQuerySchema()
	beforeKey, err := cl.BeforeKeyBigQuery()
	if err != nil {
		return nil, nil, &permanentError{err}
	}
	if beforeKey != nil {
		envFields = append(envFields, beforeKey)
	}
	clMeta := &bigquery.TableMetadata{
		Schema:           append(envFields, cols...),
		TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: schema.ColCommitTS},
		Description:      fmt.Sprintf("Every change of Postgres table %s, one row per change (at least once: deduplicate by %s, %s)", k, schema.ColCommitLSN, schema.ColSeq),
	}
	if len(clustering) > 0 {
		clMeta.Clustering = &bigquery.Clustering{Fields: clustering}
	}
	return clMeta, key, nil
}

// ensureTable creates table id of dataset with md, or widens the columns
// whose type md widens (schema.Widen) and adds md's columns it lacks; it
// returns the table's schema.
func (s *Sink) ensureTable(ctx context.Context, dataset, id string, md *bigquery.TableMetadata) (bigquery.Schema, error) {
	tbl := s.bq.Dataset(dataset).Table(id)
	have, err := tbl.Metadata(ctx)
	if isNotFound(err) {
		if err = tbl.Create(ctx, md); err == nil {
			return md.Schema, nil
		}
		if have, err = tbl.Metadata(ctx); err != nil { // created concurrently?
			return nil, fmt.Errorf("creating table %s: %w", id, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading table %s: %w", id, err)
	}
	if have, err = s.widenColumns(ctx, dataset, id, have, md.Schema); err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, f := range have.Schema {
		present[strings.ToLower(f.Name)] = true
	}
	merged := append(bigquery.Schema(nil), have.Schema...)
	for _, f := range md.Schema {
		if !present[strings.ToLower(f.Name)] {
			g := *f
			g.Required = false // added columns must be nullable
			merged = append(merged, &g)
		}
	}
	if len(merged) == len(have.Schema) {
		return have.Schema, nil
	}
	if _, err := tbl.Update(ctx, bigquery.TableMetadataToUpdate{Schema: merged}, have.ETag); err != nil {
		return nil, fmt.Errorf("adding columns to %s: %w", id, err)
	}
	return merged, nil
}

// widenColumns runs ALTER COLUMN SET DATA TYPE for every column of table id
// whose type want widens (schema.Widen), and returns the table's metadata
// afterwards, checked: a column BigQuery left narrow fails the table's
// loads, as does a refused statement (the BigQuery emulator refuses it).
// A column want gives a type it can neither hold nor widen to is an error
// naming both: the schema history never asks for one, so the table was
// changed by hand. A column already wider than want (a version seen before
// the widening) is left to the load.
func (s *Sink) widenColumns(ctx context.Context, dataset, id string, have *bigquery.TableMetadata, want bigquery.Schema) (*bigquery.TableMetadata, error) {
	byName := map[string]*bigquery.FieldSchema{}
	for _, f := range have.Schema {
		byName[strings.ToLower(f.Name)] = f
	}
	widened := map[string]bigquery.FieldType{}
	for _, w := range want {
		h := byName[strings.ToLower(w.Name)]
		if h == nil || h.Type == bigquery.RecordFieldType || w.Type == bigquery.RecordFieldType {
			continue // added below; RECORD fields are the load's to check
		}
		switch schema.Evolve(h, w, false) {
		case schema.Same:
		case schema.Widen:
			if err := s.exec(ctx, WidenColumnSQL(s.bq.Project(), dataset, id, h.Name, w.Type)); err != nil {
				return nil, fmt.Errorf("widening column %s of %s from %s to %s: %w", h.Name, id, h.Type, w.Type, err)
			}
			widened[h.Name] = w.Type
		default:
			if !h.Repeated && !w.Repeated && schema.Widens(w.Type, h.Type) {
				continue
			}
			return nil, &permanentError{fmt.Errorf("column %s of table %s is %s; the schema version's column is %s, which it cannot hold",
				h.Name, id, schema.TypeLabel(h), schema.TypeLabel(w))}
		}
	}
	if len(widened) == 0 {
		return have, nil
	}
	md, err := s.bq.Dataset(dataset).Table(id).Metadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading table %s: %w", id, err)
	}
	for _, f := range md.Schema {
		if to, ok := widened[f.Name]; ok && f.Type != to {
			return nil, &permanentError{fmt.Errorf("widening column %s of %s to %s: ALTER COLUMN SET DATA TYPE succeeded but the column is still %s",
				f.Name, id, to, f.Type)}
		}
	}
	s.log.Info("widened columns", "table", id, "columns", widened)
	return md, nil
}

// WidenColumnSQL changes column of table project.dataset.table to type to,
// which must widen it (schema.Widens).
func WidenColumnSQL(project, dataset, table, column string, to bigquery.FieldType) string {
	return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DATA TYPE %s",
		schema.QuoteBigQuery(project+"."+dataset+"."+table), schema.QuoteBigQuery(column), to)
}

// list returns the attributes of the objects under prefix.
func (s *Sink) list(ctx context.Context, prefix string) ([]*storage.ObjectAttrs, error) {
	var out []*storage.ObjectAttrs
	it := s.bucket.Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		out = append(out, a)
	}
}

// deleteObject removes an object; one already gone is fine.
func (s *Sink) deleteObject(ctx context.Context, name string) error {
	err := s.bucket.Object(name).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) && !isNotFound(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}
