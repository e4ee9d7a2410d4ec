package bqavro

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/linkedin/goavro/v2"
	bigquery "google.golang.org/api/bigquery/v2"
)

// stubEmulator stands in for the emulator's jobs API: it stores inserted jobs
// and answers jobs.get for them.
type stubEmulator struct {
	mu      sync.Mutex
	jobs    map[string][]byte
	inserts int
}

func (s *stubEmulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const prefix = "/bigquery/v2/projects/p/jobs"
	switch {
	case r.Method == http.MethodPost && r.URL.Path == prefix:
		body, _ := io.ReadAll(r.Body)
		var job bigquery.Job
		_ = json.Unmarshal(body, &job)
		s.inserts++
		s.jobs[job.JobReference.JobId] = body
		_, _ = w.Write(body)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, prefix+"/"):
		body, ok := s.jobs[strings.TrimPrefix(r.URL.Path, prefix+"/")]
		if !ok {
			http.Error(w, `{"error":{"code":404}}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write(body)
	default:
		w.WriteHeader(http.StatusTeapot)
	}
}

func newTestProxy(t *testing.T) (*httptest.Server, *stubEmulator, *fakestorage.Server) {
	t.Helper()
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
	if err != nil {
		t.Fatal(err)
	}
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "src"})
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "scratch"})
	stub := &stubEmulator{jobs: map[string][]byte{}}
	emu := httptest.NewServer(stub)
	target, _ := url.Parse(emu.URL)
	p, err := New(target, gcs.Client(), "scratch")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); emu.Close(); gcs.Stop() })
	return srv, stub, gcs
}

func ocf(t *testing.T, schema string, records ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(records); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func postJob(t *testing.T, base, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(base+"/bigquery/v2/projects/p/jobs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func getJob(t *testing.T, base, id string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/bigquery/v2/projects/p/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func avroLoadJob(id string, uris ...string) string {
	b, _ := json.Marshal(&bigquery.Job{
		JobReference: &bigquery.JobReference{ProjectId: "p", JobId: id},
		Configuration: &bigquery.JobConfiguration{Load: &bigquery.JobConfigurationLoad{
			SourceFormat: "AVRO", UseAvroLogicalTypes: true, SourceUris: uris,
			DestinationTable: &bigquery.TableReference{ProjectId: "p", DatasetId: "d", TableId: "t"},
		}},
	})
	return string(b)
}

func TestProxyRewritesAvroLoad(t *testing.T) {
	srv, stub, gcs := newTestProxy(t)
	schema := `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"s","type":["null","string"]}]}`
	for name, id := range map[string]int64{"in/a.avro": 1, "in/b.avro": 2, "other/c.avro": 3} {
		gcs.CreateObject(fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "src", Name: name},
			Content:     ocf(t, schema, map[string]any{"id": id, "s": nil}),
		})
	}
	code, body := postJob(t, srv.URL, avroLoadJob("job1", "gs://src/in/*.avro"))
	if code != http.StatusOK {
		t.Fatalf("insert: %d %s", code, body)
	}
	var job bigquery.Job
	if err := json.Unmarshal(stub.jobs["job1"], &job); err != nil {
		t.Fatal(err)
	}
	load := job.Configuration.Load
	if load.SourceFormat != "NEWLINE_DELIMITED_JSON" || strings.Join(load.SourceUris, ",") != "gs://scratch/_bqavro/job1/0.json,gs://scratch/_bqavro/job1/1.json" {
		t.Errorf("forwarded load: format %s, uris %v", load.SourceFormat, load.SourceUris)
	}
	if got, _ := json.Marshal(load.Schema.Fields); string(got) != `[{"mode":"REQUIRED","name":"id","type":"INTEGER"},{"mode":"NULLABLE","name":"s","type":"STRING"}]` {
		t.Errorf("forwarded schema: %s", got)
	}
	for _, answer := range [][]byte{body, getJob(t, srv.URL, "job1")} {
		var seen bigquery.Job
		if err := json.Unmarshal(answer, &seen); err != nil {
			t.Fatal(err)
		}
		if l := seen.Configuration.Load; l.SourceFormat != "AVRO" || l.SourceUris[0] != "gs://src/in/*.avro" || seen.Statistics.Load.OutputRows != 2 || seen.Statistics.Load.InputFiles != 2 {
			t.Errorf("answer about the job does not show the AVRO load: %s", answer)
		}
	}
	obj, err := gcs.GetObject("scratch", "_bqavro/job1/1.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Content) != `{"id":2,"s":null}`+"\n" {
		t.Errorf("scratch object: %q", obj.Content)
	}
}

func TestProxyRefusesDuplicateJobID(t *testing.T) {
	srv, stub, _ := newTestProxy(t)
	query := `{"jobReference":{"projectId":"p","jobId":"q1","location":"US"},"configuration":{"query":{"query":"SELECT 1"}}}`
	if code, body := postJob(t, srv.URL, query); code != http.StatusOK {
		t.Fatalf("first insert: %d %s", code, body)
	}
	code, body := postJob(t, srv.URL, query)
	if code != http.StatusConflict || !strings.Contains(string(body), `"Already Exists: Job p:US.q1"`) || !strings.Contains(string(body), `"reason":"duplicate"`) {
		t.Errorf("second insert: %d %s", code, body)
	}
	if stub.inserts != 1 {
		t.Errorf("emulator saw %d inserts, want 1", stub.inserts)
	}
}

func TestProxyFailsBadAvroLoadAsJob(t *testing.T) {
	srv, stub, gcs := newTestProxy(t)
	gcs.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "src", Name: "bad.avro"},
		Content:     []byte("not avro"),
	})
	tests := []struct {
		id, uri, reason, message string
	}{
		{"missing", "gs://src/none.avro", "notFound", "Not found: URI gs://src/none.avro"},
		{"nomatch", "gs://src/none/*.avro", "notFound", "Not found: URI gs://src/none/*.avro"},
		{"garbage", "gs://src/bad.avro", "invalid", "converting gs://src/bad.avro: opening OCF"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			code, body := postJob(t, srv.URL, avroLoadJob(tt.id, tt.uri))
			if code != http.StatusOK {
				t.Fatalf("insert: %d %s", code, body)
			}
			resp, err := http.Get(srv.URL + "/bigquery/v2/projects/p/jobs/" + tt.id + "?location=US")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var job bigquery.Job
			if err := json.NewDecoder(resp.Body).Decode(&job); err != nil {
				t.Fatal(err)
			}
			e := job.Status.ErrorResult
			if job.Status.State != "DONE" || e == nil || e.Reason != tt.reason || !strings.Contains(e.Message, tt.message) {
				t.Errorf("job status: %+v %+v", job.Status, e)
			}
			if code, _ := postJob(t, srv.URL, avroLoadJob(tt.id, tt.uri)); code != http.StatusConflict {
				t.Errorf("reusing a failed job's ID: %d, want 409", code)
			}
		})
	}
	if stub.inserts != 0 {
		t.Errorf("emulator saw %d inserts, want 0", stub.inserts)
	}
}

func TestProxyForwardsOtherRequests(t *testing.T) {
	srv, _, _ := newTestProxy(t)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/upload/bigquery/v2/projects/p/jobs", strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("upload was not forwarded untouched: %d", resp.StatusCode)
	}
}
