package sink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/tributary-cdc/tributary/schema"
)

// Stream mode. A stream-mode table's buffer is written to GCS exactly as in
// load mode (the object is the system of record); then its rows are
// inserted into the changelog with streaming inserts (insert ID
// "<commit LSN>:<seq>", BigQuery's best-effort deduplication), and only then
// is its pending marker written, marked "streamed", and its messages acked.
// A streamed marker thus says "these rows are in the changelog and not yet
// applied": the table's applier applies the LSN range of the streamed
// markers to the current state every StreamApplyInterval and then removes
// them, and the loader never loads their objects, so no row is both
// streamed and loaded. A crash before the marker leaves the messages
// unacked (redelivered, streamed again under the same insert IDs); a crash
// after it leaves the marker, which the next sink's applier finds and
// applies. Objects written by others (a backfill) carry ordinary markers
// and are loaded as in load mode.

// streamRowsPerRequest caps the rows of one insertAll request (BigQuery
// recommends about 500 and allows 50,000 rows and 10 MB).
const streamRowsPerRequest = 500

// markerStreamed is the pending-marker metadata key set on the markers of
// streamed objects.
const markerStreamed = "streamed"

// streamState is a table's streaming bookkeeping; every table has one, as
// a restarted sink may find streamed markers of a table now in load mode.
type streamState struct {
	applyMu sync.Mutex // one current-state apply of the table at a time

	mu       sync.Mutex
	markers  map[string]streamedMarker // by marker name: streamed, not yet applied
	adopted  bool                      // markers left by an earlier run were read
	ensured  map[uint64]streamTarget   // by schema fingerprint
	lastErr  error
	inserted int64 // rows inserted by this process
}

// streamedMarker is one streamed object whose rows wait to be applied.
type streamedMarker struct {
	object      string
	fingerprint uint64
	first, last uint64
	rows        int64
	lastCommit  int64 // Unix microseconds
}

// streamTarget is what inserting rows of one schema version needs: the
// changelog's fields (driving the value conversion) and the statements.
type streamTarget struct {
	fields bigquery.Schema
	st     Statements
}

func newStreamState() *streamState {
	return &streamState{markers: map[string]streamedMarker{}, ensured: map[uint64]streamTarget{}}
}

// lockApply serialises the current-state applies of t (its loader's and
// its applier's share the stage table).
func (t *table) lockApply() func() {
	t.st.applyMu.Lock()
	return t.st.applyMu.Unlock
}

// streamed reports whether t streams its rows.
func (t *table) streamed() bool { return t.cfg.Mode == ModeStream }

// target returns the changelog fields and statements for cl, creating or
// widening the tables the first time a schema version is seen.
func (t *table) target(ctx context.Context, cl *schema.Changelog) (streamTarget, error) {
	fp := cl.Events.Fingerprint
	t.st.mu.Lock()
	tg, ok := t.st.ensured[fp]
	t.st.mu.Unlock()
	if ok {
		return tg, nil
	}
	s := t.s
	md, _, err := s.changelogMetadata(t.key, cl)
	if err != nil {
		return streamTarget{}, err
	}
	st, err := s.ensureTables(ctx, t.key, cl, s.liveTables(t.key))
	if err != nil {
		return streamTarget{}, err
	}
	tg = streamTarget{fields: md.Schema, st: st}
	t.st.mu.Lock()
	t.st.ensured[fp] = tg
	t.st.mu.Unlock()
	return tg, nil
}

// streamEvents inserts events (sorted, one schema version) into the
// changelog, retrying what Classify calls Retryable.
func (t *table) streamEvents(ctx context.Context, cl *schema.Changelog, events []*schema.Event) error {
	return t.s.retry(ctx, t, "streaming rows", func() error {
		tg, err := t.target(ctx, cl)
		if err != nil {
			return err
		}
		err = t.insert(ctx, cl, tg, events)
		if isNotFound(err) { // the table was dropped: create it again next time
			t.st.mu.Lock()
			clear(t.st.ensured)
			t.st.mu.Unlock()
		}
		return err
	})
}

func (t *table) insert(ctx context.Context, cl *schema.Changelog, tg streamTarget, events []*schema.Event) error {
	ins := t.s.bq.Dataset(tg.st.Dataset).Table(tg.st.Changelog).Inserter()
	rows := make([]*streamRow, 0, min(len(events), streamRowsPerRequest))
	for i, ev := range events {
		row, err := InsertRow(tg.fields, cl.Record(ev))
		if err != nil {
			return &permanentError{fmt.Errorf("change %s of %s: %w", ev.Identity(), t.key, err)}
		}
		rows = append(rows, &streamRow{row: row, id: ev.Identity()})
		if len(rows) < cap(rows) && i < len(events)-1 {
			continue
		}
		if err := ins.Put(ctx, rows); err != nil {
			return insertError(err)
		}
		t.st.mu.Lock()
		t.st.inserted += int64(len(rows))
		t.st.mu.Unlock()
		rows = rows[:0]
	}
	return nil
}

// streamRow is one changelog row as an insertAll row.
type streamRow struct {
	row map[string]bigquery.Value
	id  string
}

func (r *streamRow) Save() (map[string]bigquery.Value, string, error) { return r.row, r.id, nil }

// rowInsertError is an insertAll that BigQuery answered with row errors;
// it unwraps to the first row error that explains the failure (not
// "stopped", BigQuery's reason for the rows it skipped because of others),
// so Classify sees its reason.
type rowInsertError struct {
	errs  bigquery.PutMultiError
	cause *bigquery.Error
}

func (e *rowInsertError) Error() string {
	return fmt.Sprintf("inserting rows: %d rows refused, first: %v", len(e.errs), e.cause)
}
func (e *rowInsertError) Unwrap() error { return e.cause }

// insertError turns an insertAll's row errors into a rowInsertError whose
// class is that of its worst row: Permanent when any row was refused for a
// reason that retrying does not change.
func insertError(err error) error {
	var pm bigquery.PutMultiError
	if !errors.As(err, &pm) {
		return fmt.Errorf("inserting rows: %w", err)
	}
	var first, permanent *bigquery.Error
	for _, re := range pm {
		for _, e := range re.Errors {
			var be *bigquery.Error
			if !errors.As(e, &be) || be.Reason == "stopped" {
				continue
			}
			if first == nil {
				first = be
			}
			if permanent == nil && classifyReason(be.Reason, be.Message) != Retryable {
				permanent = be
			}
		}
	}
	if permanent != nil {
		first = permanent
	}
	if first == nil {
		first = &bigquery.Error{Reason: "invalid", Message: pm.Error()}
	}
	return &rowInsertError{errs: pm, cause: first}
}

// noteStreamed records a streamed marker for the applier.
func (t *table) noteStreamed(marker string, m streamedMarker) {
	t.st.mu.Lock()
	t.st.markers[marker] = m
	t.st.mu.Unlock()
}

// applyLoop applies the streamed changes every StreamApplyInterval until
// ctx ends or drain is closed; after drain it waits for flushed and
// applies once more. A load-mode table returns at once unless an earlier
// run left streamed markers.
func (t *table) applyLoop(ctx context.Context, drain, flushed <-chan struct{}) {
	t.adoptStreamed(ctx)
	t.st.mu.Lock()
	idle := !t.streamed() && t.st.adopted && len(t.st.markers) == 0
	t.st.mu.Unlock()
	if idle {
		return
	}
	every(ctx, t.s.cfg.StreamApplyInterval, nil, drain, flushed, t.applyStreamed)
}

// adoptStreamed reads the streamed markers an earlier run left (their rows
// are in the changelog; their apply may not have run).
func (t *table) adoptStreamed(ctx context.Context) {
	t.st.mu.Lock()
	done := t.st.adopted
	t.st.mu.Unlock()
	if done {
		return
	}
	s := t.s
	attrs, err := s.list(ctx, s.layout.PendingDir(t.key.Schema, t.key.Table))
	if err != nil {
		if ctx.Err() == nil {
			t.countError(err)
			s.log.Warn("reading streamed markers", "table", t.key, "err", err)
		}
		return
	}
	found := map[string]streamedMarker{}
	for _, a := range attrs {
		if a.Metadata[markerStreamed] == "" {
			continue
		}
		m, err := streamedFromMetadata(a.Metadata)
		if err != nil {
			s.log.Error("ignoring a streamed marker", "table", t.key, "marker", a.Name, "err", err)
			continue
		}
		found[a.Name] = m
	}
	t.st.mu.Lock()
	for name, m := range found {
		if _, ok := t.st.markers[name]; !ok {
			t.st.markers[name] = m
		}
	}
	t.st.adopted = true
	t.st.mu.Unlock()
	if len(found) > 0 {
		s.log.Info("found streamed changes to apply", "table", t.key, "objects", len(found))
	}
}

func streamedFromMetadata(md map[string]string) (streamedMarker, error) {
	fp, err1 := strconv.ParseUint(md["schema_fingerprint"], 16, 64)
	first, err2 := strconv.ParseUint(md["first_lsn"], 16, 64)
	last, err3 := strconv.ParseUint(md["last_lsn"], 16, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return streamedMarker{}, fmt.Errorf("reading its fingerprint and LSNs: %w", err)
	}
	rows, _ := strconv.ParseInt(md["rows"], 10, 64)
	commit, _ := strconv.ParseInt(md["last_commit_us"], 10, 64)
	return streamedMarker{object: md["object"], fingerprint: fp, first: first, last: last, rows: rows, lastCommit: commit}, nil
}

// applyStreamed applies the changes of the streamed markers known now to
// the current state, then removes the markers. On failure they stay for
// the next round (the apply is idempotent).
func (t *table) applyStreamed(ctx context.Context) {
	t.adoptStreamed(ctx)
	t.st.mu.Lock()
	batch := make(map[string]streamedMarker, len(t.st.markers))
	for k, v := range t.st.markers {
		batch[k] = v
	}
	t.st.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := t.applyBatch(ctx, batch); err != nil {
		if ctx.Err() == nil {
			t.countError(err)
			t.s.log.Warn("applying streamed changes", "table", t.key, "class", Classify(err), "err", err)
		}
		return
	}
}

func (t *table) applyBatch(ctx context.Context, batch map[string]streamedMarker) error {
	s := t.s
	lo, hi := uint64(math.MaxUint64), uint64(0)
	var newest streamedMarker
	done := &manifest{}
	names := make([]string, 0, len(batch))
	for name, m := range batch {
		names = append(names, name)
		lo, hi = min(lo, m.first), max(hi, m.last)
		if m.last >= newest.last {
			newest = m
		}
		done.Objects = append(done.Objects, m.object)
		done.Rows += m.rows
		done.LastCommitMicros = max(done.LastCommitMicros, m.lastCommit)
	}
	sort.Strings(names)
	es, err := s.store.Get(ctx, newest.fingerprint)
	if err != nil {
		return err
	}
	cl, err := s.changelog(ctx, es)
	if err != nil {
		return err // reading the schema history: Classify decides
	}
	tg, err := t.target(ctx, cl)
	if err != nil {
		return err
	}
	unlock := t.lockApply()
	err = s.apply(ctx, tg.st, lo, hi)
	unlock()
	if err != nil {
		return &applyError{err}
	}
	for _, name := range names {
		if err := s.deleteObject(ctx, name); err != nil {
			return err
		}
		t.st.mu.Lock()
		delete(t.st.markers, name)
		t.st.mu.Unlock()
	}
	t.countLoaded(done)
	s.log.Debug("applied streamed changes", "table", t.key, "objects", len(names), "rows", done.Rows)
	return nil
}

// InsertRow converts a changelog record, as schema.Changelog.Record gives
// it (goavro native form), to an insertAll row of the changelog table with
// fields. It renders the values Record holds in BigQuery's JSON form for
// streaming inserts, by the field's type; the mapping itself (which type a
// column has, which values are refused) is the schema package's, made when
// the record was built:
//   - INTEGER as a decimal string (exact for all 64 bits; a JSON number
//     would pass through a float in the BigQuery emulator);
//   - FLOAT as a number, NaN and ±Infinity as "NaN", "Infinity", "-Infinity";
//   - NUMERIC and BIGNUMERIC as exact decimal strings;
//   - BYTES as base64;
//   - DATE, TIME, DATETIME and TIMESTAMP as their canonical text, to the
//     microsecond (TIMESTAMP in UTC);
//   - STRING and JSON as the string;
//   - RECORD as an object, REPEATED as an array.
//
// The table's columns (and the fields of records) are Avro unions ["null",
// T]: their values are nil or goavro's one-entry map, which is unwrapped.
func InsertRow(fields bigquery.Schema, rec map[string]any) (map[string]bigquery.Value, error) {
	out := make(map[string]bigquery.Value, len(fields))
	for _, f := range fields {
		v, ok := rec[f.Name]
		if !ok {
			continue
		}
		var err error
		if out[f.Name], err = insertValue(f, v, !envelopeFields[f.Name]); err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
	}
	return out, nil
}

// envelopeFields are the changelog columns Record does not wrap in unions.
var envelopeFields = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range schema.EnvelopeBigQuerySchema() {
		m[f.Name] = true
	}
	return m
}()

// insertValue converts one value of field f; wrapped says it is an Avro
// union ["null", T] in goavro's form.
func insertValue(f *bigquery.FieldSchema, v any, wrapped bool) (bigquery.Value, error) {
	if f.Repeated {
		items, ok := v.([]any)
		if !ok {
			if v == nil {
				return []any{}, nil
			}
			return nil, fmt.Errorf("got %T, want an array", v)
		}
		out := make([]any, len(items))
		g := *f
		g.Repeated = false
		for i, it := range items {
			var err error
			if out[i], err = insertValue(&g, it, false); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return out, nil
	}
	if wrapped {
		if v == nil {
			return nil, nil
		}
		u, ok := v.(map[string]any)
		if !ok || len(u) != 1 {
			return nil, fmt.Errorf("got %T, want a goavro union (one-entry map)", v)
		}
		for _, inner := range u {
			v = inner
		}
	}
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case bigquery.RecordFieldType:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, typeError(v, "a record")
		}
		out := make(map[string]bigquery.Value, len(f.Schema))
		for _, sf := range f.Schema {
			var err error
			if out[sf.Name], err = insertValue(sf, m[sf.Name], true); err != nil {
				return nil, fmt.Errorf("%s: %w", sf.Name, err)
			}
		}
		return out, nil
	case bigquery.IntegerFieldType:
		switch n := v.(type) {
		case int32:
			return strconv.FormatInt(int64(n), 10), nil
		case int64:
			return strconv.FormatInt(n, 10), nil
		}
		return nil, typeError(v, "int32 or int64")
	case bigquery.FloatFieldType:
		var x float64
		switch n := v.(type) {
		case float32:
			x = float64(n)
		case float64:
			x = n
		default:
			return nil, typeError(v, "float32 or float64")
		}
		switch {
		case math.IsNaN(x):
			return "NaN", nil
		case math.IsInf(x, 1):
			return "Infinity", nil
		case math.IsInf(x, -1):
			return "-Infinity", nil
		}
		return x, nil
	case bigquery.NumericFieldType, bigquery.BigNumericFieldType:
		r, ok := v.(*big.Rat)
		if !ok || r == nil {
			return nil, typeError(v, "*big.Rat")
		}
		return exactDecimal(r)
	case bigquery.BooleanFieldType:
		b, ok := v.(bool)
		if !ok {
			return nil, typeError(v, "bool")
		}
		return b, nil
	case bigquery.BytesFieldType:
		b, ok := v.([]byte)
		if !ok {
			return nil, typeError(v, "[]byte")
		}
		return base64.StdEncoding.EncodeToString(b), nil
	case bigquery.StringFieldType, bigquery.JSONFieldType, bigquery.GeographyFieldType:
		s, ok := v.(string)
		if !ok {
			return nil, typeError(v, "string")
		}
		return s, nil
	case bigquery.DateFieldType:
		t, ok := v.(time.Time)
		if !ok {
			return nil, typeError(v, "time.Time")
		}
		return t.UTC().Format("2006-01-02"), nil
	case bigquery.TimeFieldType:
		d, ok := v.(time.Duration)
		if !ok {
			return nil, typeError(v, "time.Duration")
		}
		return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(d).Format("15:04:05.000000"), nil
	case bigquery.DateTimeFieldType:
		switch x := v.(type) {
		case int64: // goavro leaves local-timestamp-micros a long
			return time.UnixMicro(x).UTC().Format("2006-01-02 15:04:05.000000"), nil
		case time.Time:
			return x.UTC().Format("2006-01-02 15:04:05.000000"), nil
		}
		return nil, typeError(v, "int64 or time.Time")
	case bigquery.TimestampFieldType:
		t, ok := v.(time.Time)
		if !ok {
			return nil, typeError(v, "time.Time")
		}
		return t.UTC().Format("2006-01-02 15:04:05.000000 UTC"), nil
	}
	return nil, fmt.Errorf("no streaming form for BigQuery type %s", f.Type)
}

func typeError(v any, want string) error { return fmt.Errorf("got %T, want %s", v, want) }

// exactDecimal writes r, a decimal (its reduced denominator 2^a·5^b),
// with max(a, b) fractional digits: exactly, and no more than it has.
func exactDecimal(r *big.Rat) (string, error) {
	den := new(big.Int).Set(r.Denom())
	var twos, fives int
	for _, f := range []struct {
		p int64
		n *int
	}{{2, &twos}, {5, &fives}} {
		p, m := big.NewInt(f.p), new(big.Int)
		for {
			q, rem := new(big.Int).QuoRem(den, p, m)
			if rem.Sign() != 0 {
				break
			}
			den, *f.n = q, *f.n+1
		}
	}
	if den.Cmp(big.NewInt(1)) != 0 {
		return "", fmt.Errorf("%s is not a decimal", r.RatString())
	}
	return r.FloatString(max(twos, fives)), nil
}
