package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/internal/config"
	"github.com/tributary-cdc/tributary/sink"
)

// The file's modes and soft deletes reach the sink, keyed as Postgres
// spells the tables.
func TestSinkConfigModes(t *testing.T) {
	cfg, err := config.LoadBytes("t.yaml", []byte(`
project: my-project
postgres: {url: "postgres://u@h/shop"}
gcs: {bucket: my-bucket}
bigquery: {dataset: ds}
sink:
  mode: stream
  stream_apply_interval: 3s
  tables:
    public.orders: {mode: load, soft_delete: true}
    'public."Order Items"': {soft_delete: true}
`), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sinkConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Mode != sink.ModeStream || sc.StreamApplyInterval != 3*time.Second {
		t.Errorf("mode %q, stream apply interval %s", sc.Mode, sc.StreamApplyInterval)
	}
	want := map[string]sink.TableConfig{
		"public.orders":      {Mode: sink.ModeLoad, SoftDelete: true},
		"public.Order Items": {SoftDelete: true},
	}
	if !reflect.DeepEqual(sc.Tables, want) {
		t.Errorf("tables %+v, want %+v", sc.Tables, want)
	}
}
