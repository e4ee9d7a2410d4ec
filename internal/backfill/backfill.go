package backfill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"

	"github.com/tributary-cdc/tributary/internal/pgcatalog"
	"github.com/tributary-cdc/tributary/schema"
	"github.com/tributary-cdc/tributary/sink"
)

// Defaults of the Options left zero.
const (
	DefaultChunkRows  = 50_000
	DefaultChunkBytes = 16 << 20
	DefaultParallel   = 4
)

// Options configures Run. Zero settings take the Default… constants.
type Options struct {
	// Schema and Table name the Postgres table, as spelled there.
	Schema, Table string
	// Where, when set, is an SQL condition on the table's columns: only
	// rows matching it are read. It is checked with EXPLAIN before anything
	// is read.
	Where string
	// ChunkRows is the most rows one chunk (one short transaction, one
	// object) holds; default 50,000. Tables read by ctid get chunks of
	// about this many rows, by the table's rows per block.
	ChunkRows int
	// ChunkBytes bounds the memory of a chunk: a chunk read by key ends
	// after the row that brings its object (its records before
	// compression, for the block being filled) to this many bytes; default
	// 16 MiB. Chunks read by ctid are not cut.
	ChunkBytes int
	// Parallel is how many ranges of the table are read at once, each on
	// its own connection; default 4. It is fixed when a run starts: a
	// resumed run reads the same ranges, at most Parallel at a time.
	Parallel int
	// RunID names the run (letters, digits, '.', '_', '-'); a run started
	// again with the same RunID resumes. Default: 8 random hex digits.
	RunID string
	// Bucket, Prefix and Database are the sink's: objects go where the sink
	// writes its own (sink.Layout), schemas to the schema store under
	// Prefix.
	Bucket, Prefix, Database string
	// Compression is the OCF codec; default the sink's (snappy).
	Compression string
	// Logger receives progress and failures; default discards.
	Logger *slog.Logger
	// Progress, when set, is called after every chunk, one call at a time.
	Progress func(Progress)
}

// Progress is a run's state after a chunk.
type Progress struct {
	Schema, Table, RunID string
	// Rows, Chunks and Objects count the whole run, earlier invocations of
	// a resumed run included.
	Rows, Chunks, Objects int64
	// EstimatedRows is Postgres' estimate of the table's rows when the run
	// started (pg_class.reltuples); -1 when unknown.
	EstimatedRows int64
	// RowsPerSecond is this invocation's rate.
	RowsPerSecond float64
	// ETA is the time left at that rate by the estimate; 0 when unknown.
	ETA     time.Duration
	Elapsed time.Duration
	Done    bool
}

// Summary is what a Run did, for --json.
type Summary struct {
	Schema  string `json:"schema"`
	Table   string `json:"table"`
	RunID   string `json:"run_id"`
	Resumed bool   `json:"resumed"`
	// Rows, Chunks and Objects count this invocation.
	Rows    int64 `json:"rows"`
	Chunks  int64 `json:"chunks"`
	Objects int64 `json:"objects"`
	// Total… count the whole run.
	TotalRows    int64   `json:"total_rows"`
	TotalChunks  int64   `json:"total_chunks"`
	TotalObjects int64   `json:"total_objects"`
	DeadLetters  int64   `json:"dead_letters"`
	Seconds      float64 `json:"seconds"`
	Finished     bool    `json:"finished"`
	// ObjectNames are the objects this invocation wrote, in the order
	// written.
	ObjectNames []string `json:"-"`
}

var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Run backfills one table: every row matching Where, read in chunks, written
// as op "r" changes to GCS objects the sink loads. It resumes the run
// RunID when its progress object exists. It returns when every range is
// read, or with the error that stopped it (ctx ending included) and the
// Summary so far.
func Run(ctx context.Context, dsn string, gcs *storage.Client, opts Options) (Summary, error) {
	opts = opts.withDefaults()
	sum := Summary{Schema: opts.Schema, Table: opts.Table, RunID: opts.RunID}
	if !runIDPattern.MatchString(opts.RunID) {
		return sum, fmt.Errorf("run id %q: use 1 to 64 letters, digits, '.', '_' or '-'", opts.RunID)
	}
	if opts.Schema == "" || opts.Table == "" || opts.Bucket == "" || opts.Database == "" {
		return sum, errors.New("backfill needs the table's schema and name, the bucket and the database")
	}
	pgcfg, err := connConfig(dsn)
	if err != nil {
		return sum, err
	}
	cat := pgcatalog.New(dsn)
	defer cat.Close(context.WithoutCancel(ctx))
	r := &run{
		opts: opts, pgcfg: pgcfg, log: opts.Logger, resolver: schema.Chain(schema.Builtin, cat),
		store:    schema.NewStore(gcs, opts.Bucket, opts.Prefix),
		bucket:   gcs.Bucket(opts.Bucket),
		layout:   sink.Layout{Prefix: opts.Prefix, Database: opts.Database},
		table:    ident(opts.Schema, opts.Table),
		versions: map[string]*version{}, start: time.Now(),
	}
	r.saveDone = sync.NewCond(&r.mu)
	name := ProgressObject(opts.Prefix, opts.Database, opts.Schema, opts.Table, opts.RunID)
	r.progress = &stateObject{obj: r.bucket.Object(name), name: name}
	err = r.run(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	sum.Resumed, sum.Rows, sum.Chunks, sum.Objects, sum.DeadLetters = r.resumed, r.rows, r.chunks, r.objects, r.dead
	sum.ObjectNames = r.written
	if r.st != nil {
		sum.TotalRows, sum.TotalChunks, sum.TotalObjects = r.st.totals()
		sum.Finished = r.st.Finished
	}
	sum.Seconds = time.Since(r.start).Seconds()
	return sum, err
}

func (o Options) withDefaults() Options {
	if o.ChunkRows <= 0 {
		o.ChunkRows = DefaultChunkRows
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.RunID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.RunID = hex.EncodeToString(b[:])
	}
	if o.Compression == "" {
		o.Compression = sink.DefaultCompression
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// connConfig parses dsn and sets schema.SessionSettings, so values print in
// the text form capture reads.
func connConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := schema.ConnConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing the Postgres URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "tributary backfill"
	return cfg, nil
}

// run is one invocation of Run.
type run struct {
	opts     Options
	pgcfg    *pgx.ConnConfig
	log      *slog.Logger
	resolver schema.TypeResolver
	store    *schema.Store
	bucket   *storage.BucketHandle
	layout   sink.Layout
	table    string // quoted schema.table
	progress *stateObject
	start    time.Time

	vmu      sync.Mutex
	versions map[string]*version // by shape signature

	mu sync.Mutex // guards st, the progress object and the counters
	st *state
	// recorded counts the chunks recorded in st, saved those whose
	// progress a save holds; saving is set while one is under way
	// (saveDone is signalled when it ends) and saveErr is the error of the
	// one that failed.
	recorded, saved int64
	savedTotals     [3]int64 // rows, chunks and objects of the last save
	saving          bool
	saveDone        *sync.Cond
	saveErr         error
	resumed         bool
	rows            int64
	chunks          int64
	objects         int64
	dead            int64
	written         []string
}

// version is one mapping of the table: the row mapping, the event schema
// (stored in the schema store), the flat changelog record and its encoder.
type version struct {
	table *schema.Table
	es    *schema.EventSchema
	cl    *schema.Changelog
	enc   *schema.ChangelogEncoder
}

func (r *run) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, r.pgcfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	return conn, nil
}

func (r *run) run(ctx context.Context) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sh, kind, err := describe(ctx, conn, r.opts.Schema, r.opts.Table)
	if err != nil {
		return err
	}
	if r.opts.Where != "" {
		if _, err := conn.Exec(ctx, "EXPLAIN SELECT 1 FROM "+r.table+" WHERE ("+r.opts.Where+")"); err != nil {
			return fmt.Errorf("checking the where filter %q of %s: %w", r.opts.Where, r.table, err)
		}
	}
	if _, err := r.version(ctx, sh); err != nil {
		return err
	}
	st, err := r.progress.load(ctx)
	if err != nil {
		return err
	}
	if st != nil {
		if err := r.checkResume(st); err != nil {
			return err
		}
		r.resumed = true
		if err := r.remark(ctx, st); err != nil {
			return err
		}
	} else {
		if len(sh.Paging) == 0 && kind == "p" {
			return fmt.Errorf("%s is partitioned and has no primary key or replica identity index: it can only be read by key", r.table)
		}
		if st, err = r.plan(ctx, conn, sh); err != nil {
			return err
		}
		if err := r.progress.save(ctx, st); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
	if st.Finished {
		r.log.Info("backfill already finished", "table", r.table, "run", r.opts.RunID)
		return nil
	}
	r.log.Info("backfill", "table", r.table, "run", r.opts.RunID, "resumed", r.resumed, "ranges", len(st.Ranges),
		"paging_key", st.Paging, "estimated_rows", st.Estimate)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, r.opts.Parallel)
	errs := make(chan error, len(st.Ranges))
	var wg sync.WaitGroup
	for i, rs := range st.Ranges {
		if rs.Done {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-wctx.Done():
				errs <- wctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := r.work(wctx, i); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if !errors.Is(err, context.Canceled) || ctx.Err() != nil {
			all = append(all, err)
		}
	}
	if len(all) > 0 {
		return errors.Join(all...)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Finished = true
	if err := r.progress.save(ctx, r.st); err != nil {
		return err
	}
	r.report(true)
	return nil
}

// checkResume refuses to resume a run of another table or filter.
func (r *run) checkResume(st *state) error {
	if st.Schema != r.opts.Schema || st.Table != r.opts.Table {
		return fmt.Errorf("run %s is a backfill of %s, not %s", st.RunID, ident(st.Schema, st.Table), r.table)
	}
	if st.Where != r.opts.Where {
		return fmt.Errorf("run %s of %s was started with the where filter %q, not %q", st.RunID, r.table, st.Where, r.opts.Where)
	}
	return nil
}

// version returns the mapping of shape sh, storing its event schema in the
// schema store the first time.
func (r *run) version(ctx context.Context, sh *shape) (*version, error) {
	sig := sh.signature()
	r.vmu.Lock()
	defer r.vmu.Unlock()
	if v, ok := r.versions[sig]; ok {
		return v, nil
	}
	t, err := schema.MapTable(r.opts.Schema, r.opts.Table, sh.schemaColumns(), r.resolver)
	if err != nil {
		return nil, err
	}
	es, err := schema.NewEventSchema(t)
	if err != nil {
		return nil, err
	}
	if err := r.store.Put(ctx, es); err != nil {
		return nil, err
	}
	cl, err := r.store.Changelog(ctx, es)
	if err != nil {
		return nil, err
	}
	enc, err := schema.NewChangelogEncoder(cl)
	if err != nil {
		return nil, err
	}
	v := &version{table: t, es: es, cl: cl, enc: enc}
	r.versions[sig] = v
	return v, nil
}

// sizeQuery estimates the rows and counts the heap blocks of a table and,
// for a partitioned one, of its partitions.
const sizeQuery = `
SELECT COALESCE(sum(c.reltuples) FILTER (WHERE c.reltuples >= 0), -1)::bigint,
       COALESCE(sum(c.relpages), 0)::bigint,
       COALESCE(sum(pg_relation_size(c.oid) / current_setting('block_size')::bigint), 0)::bigint,
       bool_or(c.reltuples < 0)
FROM (SELECT $1::regclass AS relid UNION SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf) p
JOIN pg_class c ON c.oid = p.relid
WHERE c.relkind <> 'p'`

// plan cuts the table into Parallel ranges.
func (r *run) plan(ctx context.Context, conn *pgx.Conn, sh *shape) (*state, error) {
	var estimate, relpages, blocks int64
	var unanalyzed *bool
	if err := conn.QueryRow(ctx, sizeQuery, r.table).Scan(&estimate, &relpages, &blocks, &unanalyzed); err != nil {
		return nil, fmt.Errorf("reading the size of %s: %w", r.table, err)
	}
	if unanalyzed != nil && *unanalyzed {
		estimate = -1
	}
	st := &state{RunID: r.opts.RunID, Schema: r.opts.Schema, Table: r.opts.Table, Where: r.opts.Where,
		Paging: sh.pagingNames(), ChunkRows: r.opts.ChunkRows, Started: time.Now().UTC(), Estimate: estimate}
	n := r.opts.Parallel
	if len(sh.Paging) == 0 {
		perBlock := int64(100) // unknown until the table is analyzed
		if estimate > 0 && relpages > 0 {
			perBlock = max(1, estimate/relpages)
		}
		bpc := uint32(max(1, int64(r.opts.ChunkRows)/perBlock))
		for _, b := range splitBlocks(uint32(blocks), n) {
			st.Ranges = append(st.Ranges, &rangeState{FromBlock: b[0], ToBlock: b[1], NextBlock: b[0], BlocksPerChunk: bpc})
		}
		return st, nil
	}
	var bounds [][]string
	if n > 1 && blocks > 0 {
		percent := min(100, 100*float64(64*n)/float64(blocks))
		rows, err := conn.Query(ctx, sampleSQL(r.table, sh.pagingNames(), percent))
		if err != nil {
			return nil, fmt.Errorf("sampling the keys of %s: %w", r.table, err)
		}
		var sample [][]string
		for rows.Next() {
			k := make([]string, len(sh.Paging))
			ptrs := make([]any, len(k))
			for i := range k {
				ptrs[i] = &k[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sampling the keys of %s: %w", r.table, err)
			}
			sample = append(sample, k)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sampling the keys of %s: %w", r.table, err)
		}
		bounds = splitSample(sample, n)
	}
	var lower []string
	for _, b := range bounds {
		st.Ranges = append(st.Ranges, &rangeState{Lower: lower, Upper: b})
		lower = b
	}
	st.Ranges = append(st.Ranges, &rangeState{Lower: lower})
	return st, nil
}

// remark writes again the pending marker of each range's last recorded
// object: a stop may have come between the progress and the marker.
func (r *run) remark(ctx context.Context, st *state) error {
	for _, rs := range st.Ranges {
		if rs.LastObject == "" {
			continue
		}
		attrs, err := r.bucket.Object(rs.LastObject).Attrs(ctx)
		if err != nil {
			return fmt.Errorf("reading %s: %w", rs.LastObject, err)
		}
		if err := r.writeMarker(ctx, rs.LastObject, attrs.Metadata); err != nil {
			return err
		}
	}
	return nil
}

// report calls the Progress callback; r.mu is held.
func (r *run) report(done bool) {
	if r.opts.Progress == nil || r.st == nil {
		return
	}
	// What the progress object says: other ranges may have advanced st
	// and wait for the save that holds them.
	rows, chunks, objects := r.savedTotals[0], r.savedTotals[1], r.savedTotals[2]
	if done {
		rows, chunks, objects = r.st.totals()
	}
	p := Progress{Schema: r.opts.Schema, Table: r.opts.Table, RunID: r.opts.RunID, Rows: rows, Chunks: chunks, Objects: objects,
		EstimatedRows: r.st.Estimate, Elapsed: time.Since(r.start), Done: done}
	if s := p.Elapsed.Seconds(); s > 0 {
		p.RowsPerSecond = float64(r.rows) / s
	}
	if p.RowsPerSecond > 0 && p.EstimatedRows > rows && !done {
		p.ETA = time.Duration(float64(p.EstimatedRows-rows) / p.RowsPerSecond * float64(time.Second))
	}
	r.opts.Progress(p)
}
