package localstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pgx/v5"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// CheckResult is one service's round trip, as measured.
type CheckResult struct {
	Service string
	What    string
	Took    time.Duration
	Err     error
}

// Check drives one real round trip through each service of the stack and
// reports what happened and how long it took: a committed insert decoded
// from a pgoutput slot, an ordered message published and received, an object
// written, refused a second time, and read back, and an Avro file loaded into
// BigQuery and queried back.
func (s *Stack) Check(ctx context.Context) []CheckResult {
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	checks := []struct {
		service string
		run     func(context.Context, string) (string, error)
	}{
		{"postgres", s.checkPostgres},
		{"pubsub", s.checkPubSub},
		{"gcs", s.checkGCS},
		{"bigquery", s.checkBigQuery},
	}
	var out []CheckResult
	for _, c := range checks {
		start := time.Now()
		what, err := c.run(ctx, suffix)
		out = append(out, CheckResult{Service: c.service, What: what, Took: time.Since(start), Err: err})
	}
	return out
}

func (s *Stack) checkPostgres(ctx context.Context, suffix string) (string, error) {
	conn, err := pgx.Connect(ctx, s.Postgres.DSN(s.Database))
	if err != nil {
		return "", fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(ctx)
	table := "tributary_check_" + suffix
	steps := []string{
		"CREATE TABLE " + pgx.Identifier{table}.Sanitize() + " (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
		"CREATE PUBLICATION " + pgx.Identifier{table}.Sanitize() + " FOR TABLE " + pgx.Identifier{table}.Sanitize(),
	}
	for _, q := range steps {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", fmt.Errorf("preparing: %w", err)
		}
	}
	defer func() {
		_, _ = conn.Exec(ctx, "DROP PUBLICATION "+pgx.Identifier{table}.Sanitize())
		_, _ = conn.Exec(ctx, "DROP TABLE "+pgx.Identifier{table}.Sanitize())
	}()
	if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput', true)", table); err != nil {
		return "", fmt.Errorf("creating a pgoutput slot: %w", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{table}.Sanitize()+" (id) SELECT g FROM generate_series(1, 3) g"); err != nil {
		return "", fmt.Errorf("inserting: %w", err)
	}
	var inserts int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_get_binary_changes($1::name, NULL, NULL,
		'proto_version', '1', 'publication_names', $2::text) WHERE substr(data, 1, 1) = 'I'::bytea`, table, table).Scan(&inserts)
	if err != nil {
		return "", fmt.Errorf("decoding the slot: %w", err)
	}
	if inserts != 3 {
		return "", fmt.Errorf("the slot decoded %d inserts, want 3", inserts)
	}
	return "3 committed inserts decoded from a pgoutput slot", nil
}

func (s *Stack) checkPubSub(ctx context.Context, suffix string) (string, error) {
	conn, err := grpc.NewClient(s.PubSubAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	client, err := pubsub.NewClient(ctx, s.Project, option.WithGRPCConn(conn))
	if err != nil {
		return "", err
	}
	defer client.Close()
	topic := "projects/" + s.Project + "/topics/tributary-check-" + suffix
	sub := "projects/" + s.Project + "/subscriptions/tributary-check-" + suffix
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		return "", fmt.Errorf("creating topic: %w", err)
	}
	defer func() { _ = client.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: topic}) }()
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topic, EnableMessageOrdering: true,
	}); err != nil {
		return "", fmt.Errorf("creating subscription: %w", err)
	}
	defer func() {
		_ = client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: sub})
	}()
	pub := client.Publisher(topic)
	pub.EnableMessageOrdering = true
	const n = 5
	for i := 0; i < n; i++ {
		if _, err := pub.Publish(ctx, &pubsub.Message{OrderingKey: "check/0", Data: []byte(strconv.Itoa(i))}).Get(ctx); err != nil {
			return "", fmt.Errorf("publishing: %w", err)
		}
	}
	pub.Stop()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []string
	err = client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		got = append(got, string(m.Data))
		m.Ack()
		if len(got) == n {
			cancel()
		}
	})
	if err != nil {
		return "", fmt.Errorf("receiving: %w", err)
	}
	for i, g := range got {
		if g != strconv.Itoa(i) {
			return "", fmt.Errorf("received %v: out of order", got)
		}
	}
	if len(got) != n {
		return "", fmt.Errorf("received %d of %d messages", len(got), n)
	}
	return fmt.Sprintf("%d messages with one ordering key received in order", n), nil
}

func (s *Stack) storageClient(ctx context.Context) (*storage.Client, error) {
	return storage.NewClient(ctx, gcsClientOptions(s.GCSURL)...)
}

func (s *Stack) checkGCS(ctx context.Context, suffix string) (string, error) {
	client, err := s.storageClient(ctx)
	if err != nil {
		return "", err
	}
	defer client.Close()
	obj := client.Bucket(s.Bucket).Object("_check/" + suffix + ".txt")
	defer func() { _ = obj.Delete(ctx) }()
	if err := writeNew(ctx, obj, []byte("first")); err != nil {
		return "", fmt.Errorf("writing: %w", err)
	}
	if err := writeNew(ctx, obj, []byte("second")); err == nil {
		return "", errors.New("a second write with ifGenerationMatch=0 was accepted")
	}
	r, err := obj.NewReader(ctx)
	if err != nil {
		return "", fmt.Errorf("reading: %w", err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	if string(data) != "first" {
		return "", fmt.Errorf("read back %q, want %q", data, "first")
	}
	return "object written, overwrite refused (ifGenerationMatch=0), read back", nil
}

func writeNew(ctx context.Context, obj *storage.ObjectHandle, data []byte) error {
	w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

const checkSchema = `{"type":"record","name":"check","fields":[
 {"name":"id","type":"long"},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":9}}]}`

func (s *Stack) checkBigQuery(ctx context.Context, suffix string) (string, error) {
	gcs, err := s.storageClient(ctx)
	if err != nil {
		return "", err
	}
	defer gcs.Close()
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: checkSchema})
	if err != nil {
		return "", err
	}
	const rows = 3
	for i := 1; i <= rows; i++ {
		amount := new(big.Rat).SetFrac64(int64(i)*1000000001, 1000000000)
		if err := w.Append([]any{map[string]any{"id": int64(i), "day": time.Date(2026, 11, i, 0, 0, 0, 0, time.UTC), "amount": amount}}); err != nil {
			return "", fmt.Errorf("encoding Avro: %w", err)
		}
	}
	name := "_check/" + suffix + ".avro"
	obj := gcs.Bucket(s.Bucket).Object(name)
	defer func() { _ = obj.Delete(ctx) }()
	if err := writeNew(ctx, obj, buf.Bytes()); err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	bq, err := bigquery.NewClient(ctx, s.Project, option.WithEndpoint(s.BigQueryURL+"/bigquery/v2/"), option.WithoutAuthentication())
	if err != nil {
		return "", err
	}
	defer bq.Close()
	table := bq.Dataset(s.Dataset).Table("_tributary_check_" + suffix)
	defer func() { _ = table.Delete(ctx) }()
	ref := bigquery.NewGCSReference("gs://" + s.Bucket + "/" + name)
	ref.SourceFormat = bigquery.Avro
	loader := table.LoaderFrom(ref)
	loader.UseAvroLogicalTypes = true
	job, err := loader.Run(ctx)
	if err != nil {
		return "", fmt.Errorf("starting the AVRO load: %w", err)
	}
	status, err := job.Wait(ctx)
	if err == nil {
		err = status.Err()
	}
	if err != nil {
		return "", fmt.Errorf("loading: %w", err)
	}
	q := bq.Query("SELECT COUNT(*), CAST(SUM(amount) AS STRING), CAST(MAX(day) AS STRING) FROM `" + s.Dataset + "." + table.TableID + "`")
	it, err := q.Read(ctx)
	if err != nil {
		return "", fmt.Errorf("querying: %w", err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil && !errors.Is(err, iterator.Done) {
		return "", fmt.Errorf("reading the query result: %w", err)
	}
	if len(row) != 3 || fmt.Sprint(row[0]) != strconv.Itoa(rows) || fmt.Sprint(row[1]) != "6.000000006" || fmt.Sprint(row[2]) != "2026-11-03" {
		return "", fmt.Errorf("query returned %v, want [3 6.000000006 2026-11-03]", row)
	}
	return fmt.Sprintf("Avro file of %d rows loaded from GCS and queried back exactly", rows), nil
}
