package bqavro

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	bigquery "google.golang.org/api/bigquery/v2"
)

// tablePath matches a single table, with or without the /bigquery/v2 prefix.
var tablePath = regexp.MustCompile(`^(/bigquery/v2)?/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)/?$`)

// tableRef names a table the proxy works on, with the path prefix the client
// used.
type tableRef struct {
	prefix, project, dataset, table string
}

func (t tableRef) path() string {
	return t.prefix + "/projects/" + url.PathEscape(t.project) + "/datasets/" + url.PathEscape(t.dataset) + "/tables/" + url.PathEscape(t.table)
}

// id is the table's name as BigQuery prints it in messages.
func (t tableRef) id() string { return t.project + ":" + t.dataset + "." + t.table }

// sql is the table's quoted name in GoogleSQL.
func (t tableRef) sql() string { return quoteSQL(t.project + "." + t.dataset + "." + t.table) }

// schemaChange is what a patch does to a table's schema that the emulator
// cannot do itself.
type schemaChange struct {
	// Added are the top-level columns the patch adds, in its order.
	Added []string
	// Relaxed are the columns (dotted paths) whose mode goes from REQUIRED
	// to NULLABLE.
	Relaxed []string
	// Nested are the fields the patch adds inside existing RECORD columns
	// (dotted paths).
	Nested []string
}

func (c schemaChange) empty() bool {
	return len(c.Added) == 0 && len(c.Relaxed) == 0 && len(c.Nested) == 0
}

// patchError is a schema patch the proxy refuses, with the HTTP status and
// the error reason of the answer.
type patchError struct {
	code   int
	reason string
	msg    string
}

func (e *patchError) Error() string { return e.msg }

// planSchemaPatch compares the schema a patch of table asks for (want) with
// the table's (have) and returns what changes, or the refusal BigQuery
// answers: a column or nested field missing from want, a changed type, a
// mode changed other than REQUIRED → NULLABLE, an added REQUIRED field, a
// name given twice. Names are compared as spelled, types through their
// aliases (INT64 is INTEGER, STRUCT is RECORD…), an empty mode is NULLABLE.
// Column order follows want.
func planSchemaPatch(table string, have, want []*bigquery.TableFieldSchema) (schemaChange, error) {
	var c schemaChange
	err := compareFields(table, "", have, want, &c)
	return c, err
}

func compareFields(table, parent string, have, want []*bigquery.TableFieldSchema, c *schemaChange) error {
	refuse := func(format string, args ...any) error {
		return &patchError{code: http.StatusBadRequest, reason: "invalid",
			msg: "Provided Schema does not match Table " + table + ". " + fmt.Sprintf(format, args...)}
	}
	byName := make(map[string]*bigquery.TableFieldSchema, len(want))
	for _, f := range want {
		if f == nil || f.Name == "" {
			return &patchError{code: http.StatusBadRequest, reason: "invalid", msg: "Empty field name in the schema of table " + table}
		}
		lower := strings.ToLower(f.Name)
		if byName[lower] != nil {
			return &patchError{code: http.StatusBadRequest, reason: "invalid", msg: "Duplicate column names in the schema of table " + table + ": " + joinName(parent, f.Name)}
		}
		byName[lower] = f
	}
	old := make(map[string]bool, len(have))
	for _, h := range have {
		path := joinName(parent, h.Name)
		w := byName[strings.ToLower(h.Name)]
		if w == nil || w.Name != h.Name {
			return refuse("Field %s is missing in new schema", path)
		}
		old[strings.ToLower(h.Name)] = true
		if ht, wt := canonicalType(h.Type), canonicalType(w.Type); ht != wt {
			return refuse("Field %s has changed type from %s to %s", path, ht, wt)
		}
		switch hm, wm := canonicalMode(h.Mode), canonicalMode(w.Mode); {
		case hm == wm:
		case hm == "REQUIRED" && wm == "NULLABLE":
			c.Relaxed = append(c.Relaxed, path)
		default:
			return refuse("Field %s has changed mode from %s to %s", path, hm, wm)
		}
		if canonicalType(h.Type) == "RECORD" {
			if err := compareFields(table, path, h.Fields, w.Fields, c); err != nil {
				return err
			}
		}
	}
	for _, w := range want {
		if old[strings.ToLower(w.Name)] {
			continue
		}
		path := joinName(parent, w.Name)
		if err := checkAdded(table, path, w); err != nil {
			return err
		}
		if parent == "" {
			c.Added = append(c.Added, w.Name)
		} else {
			c.Nested = append(c.Nested, path)
		}
	}
	return nil
}

// checkAdded refuses an added field that is REQUIRED or holds one.
func checkAdded(table, path string, f *bigquery.TableFieldSchema) error {
	if canonicalMode(f.Mode) == "REQUIRED" {
		return &patchError{code: http.StatusBadRequest, reason: "invalid",
			msg: "Provided Schema does not match Table " + table + ". Cannot add required fields to an existing schema. (field: " + path + ")"}
	}
	for _, sub := range f.Fields {
		if sub == nil || sub.Name == "" {
			return &patchError{code: http.StatusBadRequest, reason: "invalid", msg: "Empty field name in the schema of table " + table}
		}
		if err := checkAdded(table, path+"."+sub.Name, sub); err != nil {
			return err
		}
	}
	return nil
}

func joinName(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// canonicalType maps the type names BigQuery accepts to the ones it answers
// with.
func canonicalType(t string) string {
	switch t = strings.ToUpper(t); t {
	case "INT64":
		return "INTEGER"
	case "FLOAT64":
		return "FLOAT"
	case "BOOL":
		return "BOOLEAN"
	case "STRUCT":
		return "RECORD"
	}
	return t
}

func canonicalMode(m string) string {
	if m == "" {
		return "NULLABLE"
	}
	return strings.ToUpper(m)
}

// copySQL is the statement that copies every row of from into to: the
// columns named in cols take their values from from's columns of the same
// names, the columns named in empty (REPEATED ones from has not) take an
// empty array, as BigQuery's REPEATED columns are never NULL; to's other
// columns are left NULL.
func copySQL(to, from tableRef, cols, empty []string) string {
	into := make([]string, 0, len(cols)+len(empty))
	sel := make([]string, 0, len(cols)+len(empty))
	for _, c := range cols {
		into = append(into, quoteSQL(c))
		sel = append(sel, quoteSQL(c))
	}
	for _, c := range empty {
		into = append(into, quoteSQL(c))
		sel = append(sel, "[]")
	}
	return "INSERT INTO " + to.sql() + " (" + strings.Join(into, ", ") + ") SELECT " + strings.Join(sel, ", ") + " FROM " + from.sql()
}

// quoteSQL quotes an identifier (or a dotted path in one piece) for
// GoogleSQL.
func quoteSQL(ident string) string {
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`", "\n", `\n`, "\r", `\r`)
	return "`" + r.Replace(ident) + "`"
}

// outputOnly are the table resource's fields BigQuery sets itself; a
// patch's values for them are ignored.
var outputOnly = map[string]bool{
	"kind": true, "etag": true, "id": true, "selfLink": true, "tableReference": true,
	"creationTime": true, "lastModifiedTime": true, "type": true, "location": true,
	"numBytes": true, "numLongTermBytes": true, "numRows": true, "streamingBuffer": true,
}

// patchTable handles tables.patch (PATCH) and tables.update (PUT). A patch
// whose schema adds columns, relaxes REQUIRED ones or both — which the
// emulator would drop, keeping the table as it was — is carried out on
// rebuilt tables; a patch BigQuery refuses is refused; any other patch is
// forwarded untouched.
func (p *Proxy) patchTable(w http.ResponseWriter, r *http.Request, t tableRef) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJobBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("reading table patch: %v", err))
		return
	}
	var patch map[string]json.RawMessage
	if err := json.Unmarshal(body, &patch); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("parsing table patch: %v", err))
		return
	}
	forward := func() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		p.forward.ServeHTTP(w, r)
	}
	if _, ok := patch["schema"]; !ok {
		p.tableMu.RLock()
		defer p.tableMu.RUnlock()
		forward()
		return
	}
	var want bigquery.TableSchema
	if err := json.Unmarshal(patch["schema"], &want); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("parsing the patch's schema: %v", err))
		return
	}

	// No job runs and no other request reaches the emulator while the
	// table is rebuilt.
	p.insertMu.Lock()
	defer p.insertMu.Unlock()
	p.tableMu.Lock()
	defer p.tableMu.Unlock()
	ctx := r.Context()
	code, current, err := p.call(ctx, http.MethodGet, t.path(), nil)
	if err != nil {
		writeError(w, http.StatusBadGateway, "backendError", err.Error())
		return
	}
	if code != http.StatusOK {
		writeJSON(w, code, current)
		return
	}
	var have bigquery.Table
	if err := json.Unmarshal(current, &have); err != nil {
		writeError(w, http.StatusBadGateway, "backendError", fmt.Sprintf("parsing table %s: %v", t.id(), err))
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != have.Etag {
		writeError(w, http.StatusPreconditionFailed, "conditionNotMet", "Precondition check failed.")
		return
	}
	var haveFields []*bigquery.TableFieldSchema
	if have.Schema != nil {
		haveFields = have.Schema.Fields
	}
	change, err := planSchemaPatch(t.id(), haveFields, want.Fields)
	var pe *patchError
	if errors.As(err, &pe) {
		writeError(w, pe.code, pe.reason, pe.msg)
		return
	}
	if change.empty() {
		forward()
		return
	}
	if len(change.Nested) > 0 {
		writeError(w, http.StatusNotImplemented, "notImplemented",
			fmt.Sprintf("the local stack cannot add fields inside RECORD columns (%s of table %s)", strings.Join(change.Nested, ", "), t.id()))
		return
	}
	resource, err := patchedResource(current, patch, r.Method == http.MethodPut)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	answer, err := p.rebuild(ctx, t, haveFields, resource)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "backendError", fmt.Sprintf("changing the schema of %s: %v", t.id(), err))
		return
	}
	writeJSON(w, http.StatusOK, floatsAsFloat(answer))
}

// patchedResource is the table resource after the patch: the current one
// with the patch's fields replacing its own (PATCH), or the request's fields
// alone (PUT); the fields BigQuery sets itself are the table's either way.
func patchedResource(current []byte, patch map[string]json.RawMessage, replace bool) (map[string]json.RawMessage, error) {
	var cur map[string]json.RawMessage
	if err := json.Unmarshal(current, &cur); err != nil {
		return nil, fmt.Errorf("parsing the table: %w", err)
	}
	out := map[string]json.RawMessage{}
	for k, v := range cur {
		if outputOnly[k] || !replace {
			out[k] = v
		}
	}
	for k, v := range patch {
		if !outputOnly[k] {
			out[k] = v
		}
	}
	return out, nil
}

// rebuild gives table t the resource res (its schema the old columns and
// new ones): it creates a scratch table with the new schema, copies the
// rows into it, drops t, creates t again with res and copies the rows back,
// so the old rows read NULL in the added columns (an empty array in
// REPEATED ones). Every step that could
// fail on the new schema runs before t is dropped; a failure after it names
// the scratch table that still holds the rows. It returns the emulator's
// resource of the new t.
func (p *Proxy) rebuild(ctx context.Context, t tableRef, old []*bigquery.TableFieldSchema, res map[string]json.RawMessage) ([]byte, error) {
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	scratch := t
	scratch.table = "_bqavro_" + t.table + "_" + hex.EncodeToString(suffix[:])
	var schema bigquery.TableSchema
	if err := json.Unmarshal(res["schema"], &schema); err != nil {
		return nil, fmt.Errorf("parsing the new schema: %w", err)
	}
	oldCols := make([]string, len(old))
	for i, f := range old {
		oldCols[i] = f.Name
	}
	present := map[string]bool{}
	for _, c := range oldCols {
		present[c] = true
	}
	var newCols, repeated []string
	for _, f := range schema.Fields {
		newCols = append(newCols, f.Name)
		if !present[f.Name] && canonicalMode(f.Mode) == "REPEATED" {
			repeated = append(repeated, f.Name)
		}
	}
	ref := func(t tableRef) json.RawMessage {
		b, _ := json.Marshal(&bigquery.TableReference{ProjectId: t.project, DatasetId: t.dataset, TableId: t.table})
		return b
	}
	if err := p.createTable(ctx, scratch, map[string]json.RawMessage{"tableReference": ref(scratch), "schema": res["schema"]}); err != nil {
		return nil, fmt.Errorf("creating scratch table %s: %w", scratch.table, err)
	}
	if err := p.query(ctx, t, copySQL(scratch, t, oldCols, repeated)); err != nil {
		_ = p.deleteTable(ctx, scratch)
		return nil, fmt.Errorf("copying the rows to scratch table %s: %w", scratch.table, err)
	}
	if err := p.deleteTable(ctx, t); err != nil {
		_ = p.deleteTable(ctx, scratch)
		return nil, fmt.Errorf("dropping the table: %w", err)
	}
	res["tableReference"] = ref(t)
	for k := range outputOnly {
		if k != "tableReference" {
			delete(res, k)
		}
	}
	if err := p.createTable(ctx, t, res); err != nil {
		return nil, fmt.Errorf("creating the table again (its rows are in %s): %w", scratch.table, err)
	}
	if err := p.query(ctx, t, copySQL(t, scratch, newCols, nil)); err != nil {
		return nil, fmt.Errorf("copying the rows back (they are in %s): %w", scratch.table, err)
	}
	if err := p.deleteTable(ctx, scratch); err != nil {
		return nil, fmt.Errorf("dropping scratch table %s: %w", scratch.table, err)
	}
	code, body, err := p.call(ctx, http.MethodGet, t.path(), nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("emulator answered %d: %s", code, body)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the changed table: %w", err)
	}
	return body, nil
}

func (p *Proxy) createTable(ctx context.Context, t tableRef, res map[string]json.RawMessage) error {
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	body = floatsAsDouble(body)
	path := t.prefix + "/projects/" + url.PathEscape(t.project) + "/datasets/" + url.PathEscape(t.dataset) + "/tables"
	code, answer, err := p.call(ctx, http.MethodPost, path, body)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("emulator answered %d: %s", code, answer)
	}
	return err
}

func (p *Proxy) deleteTable(ctx context.Context, t tableRef) error {
	code, answer, err := p.call(ctx, http.MethodDelete, t.path(), nil)
	if err == nil && code != http.StatusOK && code != http.StatusNoContent {
		err = fmt.Errorf("emulator answered %d: %s", code, answer)
	}
	return err
}

// query runs a statement as a query job of t's project and waits for it
// (the emulator runs a query job before answering its insert).
func (p *Proxy) query(ctx context.Context, t tableRef, sql string) error {
	var id [8]byte
	_, _ = rand.Read(id[:])
	body, err := json.Marshal(&bigquery.Job{
		JobReference:  &bigquery.JobReference{ProjectId: t.project, JobId: "_bqavro_" + hex.EncodeToString(id[:])},
		Configuration: &bigquery.JobConfiguration{Query: &bigquery.JobConfigurationQuery{Query: sql, UseLegacySql: new(bool)}},
	})
	if err != nil {
		return err
	}
	code, answer, err := p.call(ctx, http.MethodPost, t.prefix+"/projects/"+url.PathEscape(t.project)+"/jobs", body)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: emulator answered %d: %s", sql, code, answer)
	}
	var job bigquery.Job
	if err := json.Unmarshal(answer, &job); err != nil {
		return fmt.Errorf("%s: parsing the job: %w", sql, err)
	}
	if job.Status == nil || job.Status.State != "DONE" {
		return fmt.Errorf("%s: the job is not done: %s", sql, answer)
	}
	if e := job.Status.ErrorResult; e != nil {
		return fmt.Errorf("%s: %s", sql, e.Message)
	}
	return nil
}

// call sends one request to the emulator and returns its status and body.
func (p *Proxy) call(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	u := *p.target
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath, u.RawQuery = "", ""
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, answer, nil
}
