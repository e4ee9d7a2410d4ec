package bqavro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	bigquery "google.golang.org/api/bigquery/v2"
)

// maxJobBody bounds the size of a job insert request the proxy reads.
const maxJobBody = 8 << 20

// jobsPath matches the jobs collection and single jobs, with or without the
// /bigquery/v2 prefix (the emulator serves both). Media uploads live under
// /upload/bigquery/v2 and never match: they are forwarded untouched.
var jobsPath = regexp.MustCompile(`^(/bigquery/v2)?/projects/([^/]+)/jobs(?:/([^/]+))?/?$`)

// Proxy forwards BigQuery REST calls to the emulator, converting AVRO load
// jobs and refusing duplicate job IDs on the way.
type Proxy struct {
	target  *url.URL
	forward *httputil.ReverseProxy
	client  *http.Client
	gcs     *storage.Client
	scratch string

	// insertMu makes the duplicate check and the insert of a job one step,
	// and keeps jobs out while a table's schema changes.
	insertMu sync.Mutex
	// tableMu is held exclusively while a table's schema changes and shared
	// by every other request forwarded outside a job insert, so none sees
	// the table half rebuilt.
	tableMu sync.RWMutex

	// stateMu guards failed and loads, both keyed by project and job ID.
	stateMu sync.Mutex
	// failed holds the job resources of AVRO loads the proxy failed itself,
	// so that jobs.get can report them as BigQuery would.
	failed map[string][]byte
	// loads holds what the emulator cannot know about forwarded AVRO loads.
	loads map[string]*avroLoad
}

// avroLoad is the original configuration and the statistics of an AVRO load,
// restored in the emulator's answers about the job.
type avroLoad struct {
	config *bigquery.JobConfigurationLoad
	stats  *bigquery.JobStatistics3
}

// loadKey marks a forwarded job insert with its key in Proxy.loads.
type loadKey struct{}

// New returns a proxy that forwards everything to the emulator at target,
// except load jobs with sourceFormat AVRO, which it rewrites: reads each source
// object (gs://bucket/name, also '*' wildcards) through gcs, decodes the OCF
// with goavro, converts every record to BigQuery's JSON form, writes NDJSON
// objects to scratchBucket under "_bqavro/<jobId>/<n>.json", and forwards the
// job as NEWLINE_DELIMITED_JSON with an explicit schema derived from the Avro
// writer schema (when the request carries no schema) — as BigQuery would
// derive it.
func New(target *url.URL, gcs *storage.Client, scratchBucket string) (*Proxy, error) {
	if target == nil || target.Scheme == "" || target.Host == "" {
		return nil, errors.New("creating proxy: target needs a scheme and a host")
	}
	if gcs == nil || scratchBucket == "" {
		return nil, errors.New("creating proxy: a storage client and a scratch bucket are required")
	}
	p := &Proxy{
		target:  target,
		forward: httputil.NewSingleHostReverseProxy(target),
		client:  &http.Client{Timeout: time.Minute},
		gcs:     gcs,
		scratch: scratchBucket,
		failed:  map[string][]byte{},
		loads:   map[string]*avroLoad{},
	}
	p.forward.ModifyResponse = func(resp *http.Response) error {
		if err := p.restoreAvroLoad(resp); err != nil {
			return err
		}
		return floatsInAnswer(resp)
	}
	return p, nil
}

// ServeHTTP handles job inserts, reads of jobs the proxy failed itself and
// table patches, and forwards every other request to the emulator.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, done := detached(r) // every call the proxy makes for r, too
	defer done()
	m := jobsPath.FindStringSubmatch(r.URL.Path)
	switch {
	case m != nil && m[3] == "" && r.Method == http.MethodPost:
		p.insertJob(w, r, m[1], m[2])
		return
	case m != nil && m[3] != "" && r.Method == http.MethodGet:
		if body, ok := p.failedJob(m[2], m[3]); ok {
			writeJSON(w, http.StatusOK, body)
			return
		}
	}
	if tablesPath.MatchString(r.URL.Path) && r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxJobBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("reading table insert: %v", err))
			return
		}
		body = floatsAsDouble(body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Del("Content-Length")
	}
	if m := tablePath.FindStringSubmatch(r.URL.Path); m != nil && (r.Method == http.MethodPatch || r.Method == http.MethodPut) {
		p.patchTable(w, r, tableRef{prefix: m[1], project: m[2], dataset: m[3], table: m[4]})
		return
	}
	p.tableMu.RLock()
	defer p.tableMu.RUnlock()
	p.forward.ServeHTTP(w, r)
}

// detached returns r with a context the client's going away does not
// cancel, and the function that ends it. BigQuery finishes a request
// whether or not its client stays; the emulator, given a cancelled request,
// closes the one database connection it serves every request with ("sql:
// connection is already closed") and from then on answers every request
// 500 — a process killed during a query or an insertAll would break the
// local stack for good. The request still ends: the emulator answers it and
// the answer is dropped. (The context must be cancellable: given one that
// is not, ReverseProxy cancels on the client's CloseNotify instead.)
func detached(r *http.Request) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	return r.WithContext(ctx), cancel
}

// failedJob returns the job resource of an AVRO load the proxy failed itself.
func (p *Proxy) failedJob(project, jobID string) ([]byte, bool) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	body, ok := p.failed[project+"/"+jobID]
	return body, ok
}

func (p *Proxy) insertJob(w http.ResponseWriter, r *http.Request, prefix, project string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJobBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("reading job insert: %v", err))
		return
	}
	var job bigquery.Job
	if err := json.Unmarshal(body, &job); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("parsing job insert: %v", err))
		return
	}
	p.insertMu.Lock()
	defer p.insertMu.Unlock()
	if dup, err := p.exists(r, prefix, project, &job); err != nil {
		writeError(w, http.StatusBadGateway, "backendError", err.Error())
		return
	} else if dup {
		writeDuplicate(w, project, job.JobReference)
		return
	}
	ctx := r.Context()
	if isAvroLoad(&job) {
		info, rewritten, err := p.rewriteAvroLoad(r, &job)
		if err != nil {
			p.failJob(w, project, &job, err)
			return
		}
		key := project + "/" + job.JobReference.JobId
		p.stateMu.Lock()
		p.loads[key] = info
		p.stateMu.Unlock()
		body, ctx = rewritten, context.WithValue(ctx, loadKey{}, key)
	}
	// BigQuery runs an inserted job to its end whether or not its client
	// stays; the emulator runs it inside the request and gives up when the
	// request is cancelled (see detached), and the next job would run
	// beside the abandoned one. So the job is forwarded detached from the
	// client (ServeHTTP), and insertMu is held until the emulator has
	// finished it.
	body = floatsInLoadJob(body)
	r = r.WithContext(ctx)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Length")
	p.forward.ServeHTTP(w, r)
}

func isAvroLoad(job *bigquery.Job) bool {
	c := job.Configuration
	return c != nil && c.Load != nil && strings.EqualFold(c.Load.SourceFormat, "AVRO")
}

// exists asks the emulator, and the proxy's own failed jobs, whether the job
// ID in the insert is taken.
func (p *Proxy) exists(r *http.Request, prefix, project string, job *bigquery.Job) (bool, error) {
	if job.JobReference == nil || job.JobReference.JobId == "" {
		return false, nil
	}
	id := job.JobReference.JobId
	if _, ok := p.failedJob(project, id); ok {
		return true, nil
	}
	u := *p.target
	u.Path = strings.TrimSuffix(u.Path, "/") + prefix + "/projects/" + url.PathEscape(project) + "/jobs/" + url.PathEscape(id)
	u.RawPath, u.RawQuery = "", ""
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return false, fmt.Errorf("checking job %s: %w", id, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("checking job %s: %w", id, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("checking job %s: emulator answered %s", id, resp.Status)
}

// failJob answers an AVRO load the proxy could not convert the way BigQuery
// answers a load that fails: the insert succeeds and the job is DONE with an
// error result. Without a job ID there is nothing to poll, so the error is
// returned on the insert itself.
func (p *Proxy) failJob(w http.ResponseWriter, project string, job *bigquery.Job, err error) {
	reason := "invalid"
	var le *loadError
	if errors.As(err, &le) {
		reason = le.reason
	}
	if job.JobReference == nil || job.JobReference.JobId == "" {
		writeError(w, http.StatusBadRequest, reason, err.Error())
		return
	}
	now := time.Now().UnixMilli()
	ref := job.JobReference
	if ref.ProjectId == "" {
		ref.ProjectId = project
	}
	proto := &bigquery.ErrorProto{Reason: reason, Message: err.Error()}
	job.Kind = "bigquery#job"
	job.Id = project + ":" + ref.JobId
	job.Status = &bigquery.JobStatus{State: "DONE", ErrorResult: proto, Errors: []*bigquery.ErrorProto{proto}}
	job.Statistics = &bigquery.JobStatistics{CreationTime: now, StartTime: now, EndTime: now}
	body, mErr := json.Marshal(job)
	if mErr != nil {
		writeError(w, http.StatusInternalServerError, "internalError", fmt.Sprintf("encoding failed job: %v", mErr))
		return
	}
	p.stateMu.Lock()
	p.failed[project+"/"+ref.JobId] = body
	p.stateMu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// restoreAvroLoad puts the original AVRO configuration and the load
// statistics back into the emulator's answers about a forwarded AVRO load: the
// insert itself and jobs.get.
func (p *Proxy) restoreAvroLoad(resp *http.Response) error {
	key, _ := resp.Request.Context().Value(loadKey{}).(string)
	if m := jobsPath.FindStringSubmatch(resp.Request.URL.Path); key == "" && m != nil && m[3] != "" && resp.Request.Method == http.MethodGet {
		key = m[2] + "/" + m[3]
	}
	p.stateMu.Lock()
	info := p.loads[key]
	p.stateMu.Unlock()
	if info == nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading emulator answer for job %s: %w", key, err)
	}
	var job bigquery.Job
	if err := json.Unmarshal(body, &job); err == nil && job.Configuration != nil {
		job.Configuration.Load = info.config
		if job.Statistics == nil {
			job.Statistics = &bigquery.JobStatistics{}
		}
		job.Statistics.Load = info.stats
		if b, err := json.Marshal(&job); err == nil {
			body = b
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// writeDuplicate answers as BigQuery does when a job ID is reused.
func writeDuplicate(w http.ResponseWriter, project string, ref *bigquery.JobReference) {
	name := project + ":" + ref.JobId
	if ref.Location != "" {
		name = project + ":" + ref.Location + "." + ref.JobId
	}
	writeErrorStatus(w, http.StatusConflict, "duplicate", "Already Exists: Job "+name, "ALREADY_EXISTS")
}

func writeError(w http.ResponseWriter, code int, reason, message string) {
	writeErrorStatus(w, code, reason, message, "")
}

// writeErrorStatus writes the error body of the Google APIs, which the Go
// client turns into a *googleapi.Error.
func writeErrorStatus(w http.ResponseWriter, code int, reason, message, status string) {
	type item struct {
		Message string `json:"message"`
		Domain  string `json:"domain"`
		Reason  string `json:"reason"`
	}
	type body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Errors  []item `json:"errors"`
		Status  string `json:"status,omitempty"`
	}
	b, _ := json.Marshal(map[string]body{"error": {
		Code: code, Message: message, Status: status,
		Errors: []item{{Message: message, Domain: "global", Reason: reason}},
	}})
	writeJSON(w, code, b)
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
