package bqavro

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// schemaOf wraps one field type in a record schema.
func schemaOf(fieldType string) string {
	return `{"type":"record","name":"r","namespace":"ns","fields":[{"name":"f","type":` + fieldType + `}]}`
}

func TestTableSchemaField(t *testing.T) {
	tests := []struct {
		name, avro, want string
	}{
		{"boolean", `"boolean"`, `{"mode":"REQUIRED","name":"f","type":"BOOLEAN"}`},
		{"int", `"int"`, `{"mode":"REQUIRED","name":"f","type":"INTEGER"}`},
		{"long", `"long"`, `{"mode":"REQUIRED","name":"f","type":"INTEGER"}`},
		{"float", `"float"`, `{"mode":"REQUIRED","name":"f","type":"FLOAT"}`},
		{"double", `"double"`, `{"mode":"REQUIRED","name":"f","type":"FLOAT"}`},
		{"bytes", `"bytes"`, `{"mode":"REQUIRED","name":"f","type":"BYTES"}`},
		{"string", `"string"`, `{"mode":"REQUIRED","name":"f","type":"STRING"}`},
		{"nullable", `["null","long"]`, `{"mode":"NULLABLE","name":"f","type":"INTEGER"}`},
		{"nullable null last", `["string","null"]`, `{"mode":"NULLABLE","name":"f","type":"STRING"}`},
		{"enum", `{"type":"enum","name":"e","symbols":["A","B"]}`, `{"mode":"REQUIRED","name":"f","type":"STRING"}`},
		{"fixed", `{"type":"fixed","name":"x","size":4}`, `{"mode":"REQUIRED","name":"f","type":"BYTES"}`},
		{"array", `{"type":"array","items":"long"}`, `{"mode":"REPEATED","name":"f","type":"INTEGER"}`},
		{"nullable array", `["null",{"type":"array","items":"string"}]`, `{"mode":"REPEATED","name":"f","type":"STRING"}`},
		{"map", `{"type":"map","values":["null","double"]}`,
			`{"fields":[{"mode":"REQUIRED","name":"key","type":"STRING"},{"mode":"NULLABLE","name":"value","type":"FLOAT"}],"mode":"REPEATED","name":"f","type":"RECORD"}`},
		{"record", `{"type":"record","name":"in","fields":[{"name":"a","type":"int","doc":"the a"}]}`,
			`{"fields":[{"description":"the a","mode":"REQUIRED","name":"a","type":"INTEGER"}],"mode":"REQUIRED","name":"f","type":"RECORD"}`},
		{"date", `{"type":"int","logicalType":"date"}`, `{"mode":"REQUIRED","name":"f","type":"DATE"}`},
		{"time-millis", `{"type":"int","logicalType":"time-millis"}`, `{"mode":"REQUIRED","name":"f","type":"TIME"}`},
		{"time-micros", `{"type":"long","logicalType":"time-micros"}`, `{"mode":"REQUIRED","name":"f","type":"TIME"}`},
		{"timestamp-millis", `{"type":"long","logicalType":"timestamp-millis"}`, `{"mode":"REQUIRED","name":"f","type":"TIMESTAMP"}`},
		{"timestamp-micros", `["null",{"type":"long","logicalType":"timestamp-micros"}]`, `{"mode":"NULLABLE","name":"f","type":"TIMESTAMP"}`},
		{"local-timestamp-millis", `{"type":"long","logicalType":"local-timestamp-millis"}`, `{"mode":"REQUIRED","name":"f","type":"DATETIME"}`},
		{"local-timestamp-micros", `{"type":"long","logicalType":"local-timestamp-micros"}`, `{"mode":"REQUIRED","name":"f","type":"DATETIME"}`},
		{"datetime string", `{"type":"string","logicalType":"datetime"}`, `{"mode":"REQUIRED","name":"f","type":"DATETIME"}`},
		{"uuid", `{"type":"string","logicalType":"uuid"}`, `{"mode":"REQUIRED","name":"f","type":"STRING"}`},
		{"json", `{"type":"string","sqlType":"JSON"}`, `{"mode":"REQUIRED","name":"f","type":"JSON"}`},
		{"logical type on wrong base is ignored", `{"type":"int","logicalType":"timestamp-micros"}`, `{"mode":"REQUIRED","name":"f","type":"INTEGER"}`},
		{"duration is fixed", `{"type":"fixed","name":"d","size":12,"logicalType":"duration"}`, `{"mode":"REQUIRED","name":"f","type":"BYTES"}`},
		{"numeric 38,9", `{"type":"bytes","logicalType":"decimal","precision":38,"scale":9}`, `{"mode":"REQUIRED","name":"f","type":"NUMERIC"}`},
		{"numeric 29,0", `{"type":"bytes","logicalType":"decimal","precision":29}`, `{"mode":"REQUIRED","name":"f","type":"NUMERIC"}`},
		{"bignumeric 30,0", `{"type":"bytes","logicalType":"decimal","precision":30,"scale":0}`, `{"mode":"REQUIRED","name":"f","type":"BIGNUMERIC"}`},
		{"bignumeric 38,10", `{"type":"bytes","logicalType":"decimal","precision":38,"scale":10}`, `{"mode":"REQUIRED","name":"f","type":"BIGNUMERIC"}`},
		{"bignumeric 76,38", `{"type":"fixed","name":"d","size":32,"logicalType":"decimal","precision":76,"scale":38}`, `{"mode":"REQUIRED","name":"f","type":"BIGNUMERIC"}`},
		{"named reference", `{"type":"array","items":{"type":"record","name":"p","fields":[{"name":"q","type":{"type":"enum","name":"e","symbols":["X"]}},{"name":"r","type":"e"}]}}`,
			`{"fields":[{"mode":"REQUIRED","name":"q","type":"STRING"},{"mode":"REQUIRED","name":"r","type":"STRING"}],"mode":"REPEATED","name":"f","type":"RECORD"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, err := TableSchema(schemaOf(tt.avro))
			if err != nil {
				t.Fatalf("TableSchema: %v", err)
			}
			got, err := json.Marshal(fields[0])
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestTableSchemaErrors(t *testing.T) {
	tests := []struct {
		name, avro, wantErr string
	}{
		{"multi-branch union", `["null","long","string"]`, "field f: only unions of null and one other type"},
		{"union without null", `["long","string"]`, "field f: only unions"},
		{"null only", `"null"`, "field f: a field of type null"},
		{"array of arrays", `{"type":"array","items":{"type":"array","items":"int"}}`, "field f: arrays of arrays"},
		{"decimal too wide", `{"type":"bytes","logicalType":"decimal","precision":77,"scale":38}`, "field f: decimal(77, 38) fits none of the decimal target types"},
		{"decimal scale too big", `{"type":"bytes","logicalType":"decimal","precision":40,"scale":39}`, "fits none"},
		{"decimal without precision", `{"type":"bytes","logicalType":"decimal"}`, "field f: decimal needs"},
		{"unknown name", `"nope"`, `field f: unknown type "nope"`},
		{"recursive", `{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}`, "field f.next: recursive type ns.node"},
		{"nested path", `{"type":"record","name":"in","fields":[{"name":"deep","type":["null","int","long"]}]}`, "field f.deep: only unions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := TableSchema(schemaOf(tt.avro))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("TableSchema error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestFieldsForDecimalTargets(t *testing.T) {
	tests := []struct {
		prec, scale int
		targets     []string
		want        string
	}{
		{38, 9, nil, "NUMERIC"},
		{38, 9, []string{"BIGNUMERIC", "NUMERIC"}, "NUMERIC"},
		{38, 9, []string{"BIGNUMERIC"}, "BIGNUMERIC"},
		{38, 9, []string{"STRING"}, "STRING"},
		{40, 10, []string{"NUMERIC", "STRING"}, "STRING"},
		{77, 38, []string{"NUMERIC", "BIGNUMERIC", "STRING"}, "STRING"},
		{40, 10, []string{"NUMERIC"}, "error"},
	}
	for _, tt := range tests {
		avro := fmt.Sprintf(`{"type":"bytes","logicalType":"decimal","precision":%d,"scale":%d}`, tt.prec, tt.scale)
		s, err := ParseSchema(schemaOf(avro))
		if err != nil {
			t.Fatalf("ParseSchema: %v", err)
		}
		got := "error"
		if fields, err := s.FieldsForDecimalTargets(tt.targets); err == nil {
			got = fields[0].Type
		}
		if got != tt.want {
			t.Errorf("decimal(%d, %d) with targets %v: got %s, want %s", tt.prec, tt.scale, tt.targets, got, tt.want)
		}
	}
}

func TestTableSchemaTopLevel(t *testing.T) {
	for _, s := range []string{`"long"`, `not json`, `{"type":"record","name":"r"}`} {
		if _, err := TableSchema(s); err == nil {
			t.Errorf("TableSchema(%s) succeeded, want an error", s)
		}
	}
}
