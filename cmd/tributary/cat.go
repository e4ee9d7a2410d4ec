package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/linkedin/goavro/v2"
	"github.com/spf13/cobra"

	"github.com/tributary-cdc/tributary/internal/gcp"
)

func newCatCmd() *cobra.Command {
	var withSchema bool
	cmd := &cobra.Command{
		Use:   "cat gs://bucket/object.avro | file.avro",
		Short: "Print the records of an Avro object file as JSON lines",
		Long: `cat decodes an Avro object container file (a local path, or gs://bucket/name read
through the Cloud Storage client, which honours STORAGE_EMULATOR_HOST) and prints one record
per line in Avro's JSON encoding, exactly as stored. --schema prints the writer schema first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCat(cmd.Context(), args[0], withSchema, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&withSchema, "schema", false, "print the writer schema before the records")
	return cmd
}

func runCat(ctx context.Context, src string, withSchema bool, out io.Writer) error {
	r, err := openSource(ctx, src)
	if err != nil {
		return err
	}
	defer r.Close()
	ocf, err := goavro.NewOCFReader(bufio.NewReader(r))
	if err != nil {
		return fmt.Errorf("reading %s: not an Avro object container file: %w", src, err)
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	codec := ocf.Codec()
	if withSchema {
		fmt.Fprintln(w, codec.Schema())
	}
	order := fieldOrder(codec.Schema())
	n := 0
	for ocf.Scan() {
		rec, err := ocf.Read()
		if err != nil {
			return fmt.Errorf("reading record %d of %s: %w", n, src, err)
		}
		line, err := codec.TextualFromNative(nil, rec)
		if err != nil {
			return fmt.Errorf("printing record %d of %s: %w", n, src, err)
		}
		line = inOrder(line, order)
		w.Write(line)
		w.WriteByte('\n')
		n++
	}
	if err := ocf.Err(); err != nil {
		return fmt.Errorf("reading %s after %d records: %w", src, n, err)
	}
	return nil
}

// openSource opens a local file or a gs://bucket/name object.
func openSource(ctx context.Context, src string) (io.ReadCloser, error) {
	rest, ok := strings.CutPrefix(src, "gs://")
	if !ok {
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", src, err)
		}
		return f, nil
	}
	bucket, name, ok := strings.Cut(rest, "/")
	if !ok || bucket == "" || name == "" {
		return nil, fmt.Errorf("%q is not gs://bucket/object", src)
	}
	client, err := gcp.Storage(ctx)
	if err != nil {
		return nil, err
	}
	r, err := client.Bucket(bucket).Object(name).NewReader(ctx)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("opening %s: %w", src, err)
	}
	return readCloser{r, func() error { r.Close(); return client.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// fieldOrder lists a record schema's top-level field names in order.
func fieldOrder(schema string) []string {
	var rec struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if json.Unmarshal([]byte(schema), &rec) != nil {
		return nil
	}
	names := make([]string, len(rec.Fields))
	for i, f := range rec.Fields {
		names[i] = f.Name
	}
	return names
}

// inOrder rewrites a record's JSON with its top-level fields in schema
// order (the Avro library prints them in map order); values are kept
// byte for byte.
func inOrder(line []byte, order []string) []byte {
	var fields map[string]json.RawMessage
	if len(order) == 0 || json.Unmarshal(line, &fields) != nil || len(fields) != len(order) {
		return line
	}
	out := []byte{'{'}
	for i, name := range order {
		v, ok := fields[name]
		if !ok {
			return line
		}
		if i > 0 {
			out = append(out, ',')
		}
		key, _ := json.Marshal(name)
		out = append(append(append(out, key...), ':'), v...)
	}
	return append(out, '}')
}
