package bqavro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"cloud.google.com/go/storage"
	"github.com/linkedin/goavro/v2"
	bigquery "google.golang.org/api/bigquery/v2"
	"google.golang.org/api/iterator"
)

// loadError is a conversion failure with the BigQuery error reason it maps to.
type loadError struct {
	reason string
	err    error
}

func (e *loadError) Error() string { return e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

func invalid(err error) error  { return &loadError{reason: "invalid", err: err} }
func notFound(err error) error { return &loadError{reason: "notFound", err: err} }

// converted is one source object turned into NDJSON.
type converted struct {
	source string
	size   int64 // bytes of the source object
	rows   int64
	schema *Schema
	ndjson []byte
}

// rewriteAvroLoad converts every source object of an AVRO load, writes the
// NDJSON objects to the scratch bucket and returns the job insert to forward,
// with what the emulator's answers about the job lack. Nothing is written
// until every object has converted.
func (p *Proxy) rewriteAvroLoad(r *http.Request, job *bigquery.Job) (*avroLoad, []byte, error) {
	ctx := r.Context()
	load := job.Configuration.Load
	if !load.UseAvroLogicalTypes {
		return nil, nil, invalid(errors.New("the local stack loads AVRO only with useAvroLogicalTypes=true"))
	}
	if job.JobReference == nil || job.JobReference.JobId == "" {
		return nil, nil, invalid(errors.New("an AVRO load through the local stack needs a job ID"))
	}
	objects, err := p.expandSources(ctx, load.SourceUris)
	if err != nil {
		return nil, nil, err
	}
	original := *load
	info := &avroLoad{config: &original, stats: &bigquery.JobStatistics3{InputFiles: int64(len(objects))}}
	parts := make([]converted, 0, len(objects))
	for _, o := range objects {
		c, err := p.convertObject(ctx, o)
		if err != nil {
			return nil, nil, err
		}
		info.stats.InputFileBytes += c.size
		info.stats.OutputRows += c.rows
		parts = append(parts, c)
	}
	uris, err := p.writeScratch(ctx, job.JobReference.JobId, parts)
	if err != nil {
		return nil, nil, err
	}
	body, err := forwardedLoad(job, parts[0].schema, uris)
	return info, body, err
}

// forwardedLoad turns the AVRO load into a NEWLINE_DELIMITED_JSON load of uris.
func forwardedLoad(job *bigquery.Job, schema *Schema, uris []string) ([]byte, error) {
	load := job.Configuration.Load
	if load.Schema == nil || len(load.Schema.Fields) == 0 {
		fields, err := schema.FieldsForDecimalTargets(load.DecimalTargetTypes)
		if err != nil {
			return nil, invalid(err)
		}
		load.Schema = &bigquery.TableSchema{Fields: fields}
	}
	load.SourceFormat = "NEWLINE_DELIMITED_JSON"
	load.SourceUris = uris
	load.UseAvroLogicalTypes = false
	load.Autodetect = false
	body, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encoding rewritten job: %w", err)
	}
	return body, nil
}

type objectRef struct {
	bucket, name string
}

func (o objectRef) String() string { return "gs://" + o.bucket + "/" + o.name }

// expandSources resolves source URIs, each either one object or a pattern
// whose '*' matches any run of characters, into objects in name order.
func (p *Proxy) expandSources(ctx context.Context, uris []string) ([]objectRef, error) {
	if len(uris) == 0 {
		return nil, invalid(errors.New("load job has no source URIs"))
	}
	var out []objectRef
	for _, uri := range uris {
		bucket, name, ok := splitGCSURI(uri)
		if !ok {
			return nil, invalid(fmt.Errorf("source URI %q is not gs://bucket/object", uri))
		}
		if !strings.Contains(name, "*") {
			out = append(out, objectRef{bucket, name})
			continue
		}
		matched, err := p.listMatching(ctx, bucket, name)
		if err != nil {
			return nil, err
		}
		if len(matched) == 0 {
			return nil, notFound(fmt.Errorf("Not found: URI %s", uri))
		}
		out = append(out, matched...)
	}
	return out, nil
}

func splitGCSURI(uri string) (bucket, name string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "gs://")
	if !ok {
		return "", "", false
	}
	bucket, name, ok = strings.Cut(rest, "/")
	return bucket, name, ok && bucket != "" && name != ""
}

func (p *Proxy) listMatching(ctx context.Context, bucket, pattern string) ([]objectRef, error) {
	parts := strings.Split(pattern, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	re := regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
	it := p.gcs.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: literalPrefix(pattern)})
	var out []objectRef
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, notFoundIfMissing(fmt.Errorf("listing gs://%s/%s: %w", bucket, pattern, err))
		}
		if re.MatchString(attrs.Name) {
			out = append(out, objectRef{bucket, attrs.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// literalPrefix is the literal prefix of a pattern, before its first '*'.
func literalPrefix(pattern string) string {
	prefix, _, _ := strings.Cut(pattern, "*")
	return prefix
}

func notFoundIfMissing(err error) error {
	if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
		return notFound(err)
	}
	return &loadError{reason: "backendError", err: err}
}

// convertObject reads one OCF object and converts all its records.
func (p *Proxy) convertObject(ctx context.Context, o objectRef) (converted, error) {
	data, err := p.readObject(ctx, o)
	if err != nil {
		return converted{}, err
	}
	schema, ndjson, err := ConvertOCF(data)
	if err != nil {
		return converted{}, invalid(fmt.Errorf("Error while reading data, error message: converting %s: %w", o, err))
	}
	rows := int64(bytes.Count(ndjson, []byte{'\n'}))
	return converted{source: o.String(), size: int64(len(data)), rows: rows, schema: schema, ndjson: ndjson}, nil
}

func (p *Proxy) readObject(ctx context.Context, o objectRef) ([]byte, error) {
	rd, err := p.gcs.Bucket(o.bucket).Object(o.name).NewReader(ctx)
	if err != nil {
		if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
			return nil, notFound(fmt.Errorf("Not found: URI %s: %w", o, err))
		}
		return nil, &loadError{reason: "backendError", err: fmt.Errorf("reading object %s: %w", o, err)}
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, &loadError{reason: "backendError", err: fmt.Errorf("reading object %s: %w", o, err)}
	}
	return data, nil
}

// ConvertOCF decodes an Avro object container file and returns its writer
// schema and its records as newline-delimited JSON (see RecordJSON).
func ConvertOCF(data []byte) (*Schema, []byte, error) {
	rd, err := goavro.NewOCFReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil, fmt.Errorf("opening OCF: %w", err)
	}
	schema, err := ParseSchema(string(rd.MetaData()["avro.schema"]))
	if err != nil {
		return nil, nil, err
	}
	var out []byte
	for n := 0; rd.Scan(); n++ {
		rec, err := rd.Read()
		if err != nil {
			return nil, nil, fmt.Errorf("decoding record %d: %w", n, err)
		}
		line, err := RecordJSON(schema, rec)
		if err != nil {
			return nil, nil, fmt.Errorf("converting record %d: %w", n, err)
		}
		out = append(append(out, line...), '\n')
	}
	if err := rd.Err(); err != nil {
		return nil, nil, fmt.Errorf("decoding OCF: %w", err)
	}
	return schema, out, nil
}

// writeScratch writes one NDJSON object per converted source and returns their URIs.
func (p *Proxy) writeScratch(ctx context.Context, jobID string, parts []converted) ([]string, error) {
	uris := make([]string, 0, len(parts))
	for n, c := range parts {
		name := fmt.Sprintf("_bqavro/%s/%d.json", jobID, n)
		w := p.gcs.Bucket(p.scratch).Object(name).NewWriter(ctx)
		w.ContentType = "application/x-ndjson"
		_, err := w.Write(c.ndjson)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, &loadError{reason: "backendError", err: fmt.Errorf("writing gs://%s/%s for %s: %w", p.scratch, name, c.source, err)}
		}
		uris = append(uris, "gs://"+p.scratch+"/"+name)
	}
	return uris, nil
}
