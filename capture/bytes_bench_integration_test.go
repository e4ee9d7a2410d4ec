package capture_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tributary-cdc/tributary/capture"
)

// BenchmarkIntegrationEventBytesVsDebezium publishes inserts and then
// updates of 10-column rows through capture and compares the bytes of each
// Pub/Sub message (data, attributes and ordering key) with the value of the
// event Debezium's PostgreSQL connector would write for the same row through
// Kafka Connect's JSON converter with schemas enabled (schema + payload, in
// its documented default representation: precise decimals as base64 of the
// unscaled value, timestamptz as an ISO-8601 string, dates as days since the
// epoch). Debezium's key record is not counted, which favours it. Rows from
// TRIBUTARY_BENCH_BYTES_ROWS (default 500, each inserted and updated once).
// Run with -benchtime=1x.
func BenchmarkIntegrationEventBytesVsDebezium(b *testing.B) {
	rows := envInt("TRIBUTARY_BENCH_BYTES_ROWS", 500)
	h := newHarness(b, "bytes_bench", []capture.TableName{{Schema: "public", Name: "bytes_rows"}},
		`CREATE TABLE bytes_rows (`+benchColumns+`)`)
	h.start()
	defer h.stop()
	b.ResetTimer()
	ctx := context.Background()
	benchInsert(b, h, "bytes_rows", 1, rows, rows)
	inserted := debeziumRows(b, h)
	h.exec(`UPDATE bytes_rows SET a = a + 1, c = c || '-updated', f = f + interval '1 hour'`)
	updated := debeziumRows(b, h)
	got := distinct(h.waitFor(2*rows, 2*time.Minute))

	var ours, theirs int
	var db string
	if err := h.db.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		b.Fatal(err)
	}
	for _, r := range got {
		ours += len(r.msg.Data) + len(r.msg.OrderingKey)
		for k, v := range r.msg.Attributes {
			ours += len(k) + len(v)
		}
		idv := r.event.After["id"]
		if u, ok := idv.(map[string]any); ok { // an Avro union
			for _, v := range u {
				idv = v
			}
		}
		id, ok := idv.(int64)
		if !ok {
			b.Fatalf("event %s: id is %T", r.event.Identity(), r.event.After["id"])
		}
		after := inserted[id]
		if r.event.Op == "u" {
			after = updated[id]
		}
		if after == nil {
			b.Fatalf("event %s (%s): no row %d read from Postgres", r.event.Identity(), r.event.Op, id)
		}
		env, err := json.Marshal(debeziumEnvelope(r.event.Op, db, r.event.Schema, r.event.Table, after,
			r.event.CommitTime, r.event.Xid, r.event.LSN))
		if err != nil {
			b.Fatal(err)
		}
		theirs += len(env)
	}
	perOurs, perTheirs := float64(ours)/float64(len(got)), float64(theirs)/float64(len(got))
	b.ReportMetric(perOurs, "pubsub-B/event")
	b.ReportMetric(perTheirs, "debezium-json-B/event")
	b.ReportMetric(perOurs/perTheirs, "bytes-ratio")
	fmt.Fprintf(os.Stderr, "event bytes: %d events; Pub/Sub %.1f B/event, Debezium JSON envelope %.1f B/event, ratio %.3f (target <= 0.2)\n",
		len(got), perOurs, perTheirs, perOurs/perTheirs)
}

// debeziumRows reads bytes_rows as the Debezium connector represents each
// column, by id.
func debeziumRows(b *testing.B, h *harness) map[int64]map[string]any {
	b.Helper()
	rs, err := h.db.Query(context.Background(), `SELECT id, a, b, c, d, (e * 100)::bigint, f, (g - '1970-01-01'::date), h, i FROM bytes_rows`)
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	out := map[int64]map[string]any{}
	for rs.Next() {
		var (
			id, bb, unscaled int64
			a, days          int32
			c, d             string
			f                time.Time
			hh               bool
			i                float64
		)
		if err := rs.Scan(&id, &a, &bb, &c, &d, &unscaled, &f, &days, &hh, &i); err != nil {
			b.Fatal(err)
		}
		out[id] = map[string]any{
			"id": id, "a": a, "b": bb, "c": c, "d": d,
			"e": javaBigIntegerBytes(unscaled), // encoding/json writes []byte as base64, as Kafka Connect does
			"f": f.UTC().Format("2006-01-02T15:04:05.999999Z07:00"),
			"g": days, "h": hh, "i": i,
		}
	}
	if err := rs.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// javaBigIntegerBytes is BigInteger.toByteArray: the shortest big-endian
// two's complement of v, how Kafka Connect's Decimal carries the unscaled
// value.
func javaBigIntegerBytes(v int64) []byte {
	n := big.NewInt(v)
	if v >= 0 {
		raw := n.Bytes()
		if len(raw) == 0 || raw[0]&0x80 != 0 {
			raw = append([]byte{0}, raw...)
		}
		return raw
	}
	// Negative: two's complement over the shortest width holding it.
	for width := 1; width <= 8; width++ {
		if v >= -(int64(1) << (8*width - 1)) {
			out := make([]byte, width)
			u := uint64(v)
			for i := width - 1; i >= 0; i-- {
				out[i] = byte(u)
				u >>= 8
			}
			return out
		}
	}
	return nil
}

// dbzField is a Kafka Connect schema field as the JSON converter writes it.
type dbzField struct {
	Type       string            `json:"type"`
	Fields     []dbzField        `json:"fields,omitempty"`
	Optional   bool              `json:"optional"`
	Name       string            `json:"name,omitempty"`
	Version    int               `json:"version,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
	Default    any               `json:"default,omitempty"`
	Field      string            `json:"field,omitempty"`
}

// debeziumEnvelope is the value of a Debezium PostgreSQL change event for
// a bytes_rows row (before null: the default replica identity), with its
// Kafka Connect schema, as the JSON converter writes it.
func debeziumEnvelope(op, db, schemaName, table string, after map[string]any, commit time.Time, xid int64, lsn uint64) map[string]any {
	server := "tributary"
	prefix := server + "." + schemaName + "." + table
	opt := func(typ, field string) dbzField { return dbzField{Type: typ, Optional: true, Field: field} }
	row := []dbzField{
		{Type: "int64", Optional: false, Field: "id"},
		opt("int32", "a"), opt("int64", "b"), opt("string", "c"), opt("string", "d"),
		{Type: "bytes", Optional: true, Name: "org.apache.kafka.connect.data.Decimal", Version: 1,
			Parameters: map[string]string{"scale": "2", "connect.decimal.precision": "12"}, Field: "e"},
		{Type: "string", Optional: true, Name: "io.debezium.time.ZonedTimestamp", Version: 1, Field: "f"},
		{Type: "int32", Optional: true, Name: "io.debezium.time.Date", Version: 1, Field: "g"},
		opt("boolean", "h"), opt("double", "i"),
	}
	req := func(typ, field string) dbzField { return dbzField{Type: typ, Optional: false, Field: field} }
	source := []dbzField{
		req("string", "version"), req("string", "connector"), req("string", "name"), req("int64", "ts_ms"),
		{Type: "string", Optional: true, Name: "io.debezium.data.Enum", Version: 1,
			Parameters: map[string]string{"allowed": "true,last,false,incremental"}, Default: "false", Field: "snapshot"},
		req("string", "db"), opt("string", "sequence"), opt("int64", "ts_us"), opt("int64", "ts_ns"),
		req("string", "schema"), req("string", "table"), opt("int64", "txId"), opt("int64", "lsn"), opt("int64", "xmin"),
	}
	envelope := dbzField{Type: "struct", Optional: false, Name: prefix + ".Envelope", Version: 2, Fields: []dbzField{
		{Type: "struct", Fields: row, Optional: true, Name: prefix + ".Value", Field: "before"},
		{Type: "struct", Fields: row, Optional: true, Name: prefix + ".Value", Field: "after"},
		{Type: "struct", Fields: source, Optional: false, Name: "io.debezium.connector.postgresql.Source", Field: "source"},
		{Type: "struct", Fields: []dbzField{req("string", "id"), req("int64", "total_order"), req("int64", "data_collection_order")},
			Optional: true, Name: "event.block", Version: 1, Field: "transaction"},
		req("string", "op"), opt("int64", "ts_ms"), opt("int64", "ts_us"), opt("int64", "ts_ns"),
	}}
	ms := commit.UnixMilli()
	return map[string]any{
		"schema": envelope,
		"payload": map[string]any{
			"before": nil, "after": after,
			"source": map[string]any{
				"version": "2.7.0.Final", "connector": "postgresql", "name": server, "ts_ms": ms, "snapshot": "false",
				"db": db, "sequence": `["` + strconv.FormatUint(lsn, 10) + `","` + strconv.FormatUint(lsn, 10) + `"]`,
				"ts_us": commit.UnixMicro(), "ts_ns": commit.UnixNano(),
				"schema": schemaName, "table": table, "txId": xid, "lsn": lsn, "xmin": nil,
			},
			"transaction": nil, "op": op, "ts_ms": ms, "ts_us": commit.UnixMicro(), "ts_ns": commit.UnixNano(),
		},
	}
}
