package bqavro

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// The emulator takes a column declared "FLOAT" through the API (what the
// Go client sends for FLOAT64) as ZetaSQL's 32-bit FLOAT, while every
// FLOAT64 a query computes is a DOUBLE: "INSERT INTO t SELECT
// CAST(x AS FLOAT64)" into such a column is refused ("Query column has
// type DOUBLE which cannot be inserted into column x, which has type
// FLOAT"). In BigQuery FLOAT and FLOAT64 are one type. So the proxy
// declares such columns "FLOAT64" (a DOUBLE in the emulator) when tables
// are created or rebuilt and in load jobs' schemas, and answers with
// "FLOAT" as BigQuery does.

// tablesPath matches the tables collection of a dataset.
var tablesPath = regexp.MustCompile(`^(/bigquery/v2)?/projects/([^/]+)/datasets/([^/]+)/tables/?$`)

// floatsAsDouble rewrites, in a JSON object holding a "schema" (a table
// resource) or "fields", every field of type FLOAT to FLOAT64; floatsAsFloat
// does the reverse. Anything not JSON is returned as it is.
func floatsAsDouble(body []byte) []byte { return rewriteFloats(body, "FLOAT", "FLOAT64") }
func floatsAsFloat(body []byte) []byte  { return rewriteFloats(body, "FLOAT64", "FLOAT") }

func rewriteFloats(body []byte, from, to string) []byte {
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		return body
	}
	if !rewriteSchema(v, from, to) {
		return body
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// rewriteSchema rewrites the field types of the schema in v (a table
// resource, or a load configuration) and reports whether it changed any.
func rewriteSchema(v map[string]any, from, to string) bool {
	schema, _ := v["schema"].(map[string]any)
	if schema == nil {
		return false
	}
	return rewriteFields(schema["fields"], from, to)
}

func rewriteFields(fields any, from, to string) bool {
	list, _ := fields.([]any)
	changed := false
	for _, f := range list {
		m, _ := f.(map[string]any)
		if m == nil {
			continue
		}
		if t, _ := m["type"].(string); strings.EqualFold(t, from) {
			m["type"] = to
			changed = true
		}
		if rewriteFields(m["fields"], from, to) {
			changed = true
		}
	}
	return changed
}

// floatsInAnswer rewrites the answer to a table request (create, get,
// patch) so its FLOAT64 columns read FLOAT, as BigQuery answers.
func floatsInAnswer(resp *http.Response) error {
	path := resp.Request.URL.Path
	if resp.StatusCode != http.StatusOK || !(tablePath.MatchString(path) || tablesPath.MatchString(path)) {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	body = floatsAsFloat(body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// floatsInLoadJob rewrites the schema of a load job insert as
// floatsAsDouble does a table's.
func floatsInLoadJob(body []byte) []byte {
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		return body
	}
	conf, _ := v["configuration"].(map[string]any)
	load, _ := conf["load"].(map[string]any)
	if load == nil || !rewriteSchema(load, "FLOAT", "FLOAT64") {
		return body
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}
