package localstack_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"google.golang.org/api/googleapi"

	"github.com/tributary-cdc/tributary/internal/gcp"
	"github.com/tributary-cdc/tributary/internal/localstack"
)

// stack is shared by the package's integration tests; TestMain starts it.
var stack *localstack.Stack

func TestMain(m *testing.M) {
	if os.Getenv(receiverEnv) != "" {
		os.Exit(receiveOrdered())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var err error
	stack, err = localstack.Start(ctx, localstack.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the local stack: %v\n", err)
		os.Exit(1)
	}
	if err := stack.Setenv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := stack.Close(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the local stack: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// The cluster runs as an unprivileged user even when the tests run as root,
// has wal_level=logical, and streams a committed insert through a pgoutput
// slot.
func TestIntegrationPostgresLogicalSlot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, stack.Postgres.DSN(stack.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var walLevel, user string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_user").Scan(&walLevel, &user); err != nil {
		t.Fatal(err)
	}
	if walLevel != "logical" {
		t.Fatalf("wal_level = %q, want logical", walLevel)
	}
	info, err := os.Stat(filepath.Join(stack.Postgres.Dir, "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := info.Sys().(*syscall.Stat_t).Uid; uid == 0 {
		t.Fatalf("the cluster's files belong to root; the server must run unprivileged")
	}
	for _, q := range []string{
		`CREATE TABLE "Slot Probe" (id bigint PRIMARY KEY, v text)`,
		`CREATE PUBLICATION probe_pub FOR TABLE "Slot Probe"`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	repl, err := pgconn.Connect(ctx, stack.Postgres.DSN(stack.Database)+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(ctx)
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, "probe_slot", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true})
	if err != nil {
		t.Fatalf("creating a pgoutput slot: %v", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO "Slot Probe" VALUES (7, 'seven')`); err != nil {
		t.Fatal(err)
	}
	start, err := pglogrepl.ParseLSN(slot.ConsistentPoint)
	if err != nil {
		t.Fatal(err)
	}
	err = pglogrepl.StartReplication(ctx, repl, "probe_slot", start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'probe_pub'"},
	})
	if err != nil {
		t.Fatalf("starting replication: %v", err)
	}
	rel, values := receiveInsert(ctx, t, repl)
	if rel != "Slot Probe" || len(values) != 2 || values[0] != "7" || values[1] != "seven" {
		t.Fatalf("got insert into %q with %q, want \"Slot Probe\" with [7 seven]", rel, values)
	}
}

// receiveInsert reads replication messages until the first insert and returns
// its relation name and text values.
func receiveInsert(ctx context.Context, t *testing.T, repl *pgconn.PgConn) (string, []string) {
	t.Helper()
	relations := map[uint32]string{}
	for {
		msg, err := repl.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receiving replication message: %v", err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		lm, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			t.Fatal(err)
		}
		switch m := lm.(type) {
		case *pglogrepl.RelationMessage:
			relations[m.RelationID] = m.RelationName
		case *pglogrepl.InsertMessage:
			var vals []string
			for _, c := range m.Tuple.Columns {
				vals = append(vals, string(c.Data))
			}
			return relations[m.RelationID], vals
		}
	}
}

const receiverEnv = "TRIBUTARY_TEST_RECEIVER"

// A second process, reaching the fake only through PUBSUB_EMULATOR_HOST,
// receives messages published with ordering keys in their publish order.
func TestIntegrationPubSubOrderedAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := gcp.PubSub(ctx, stack.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topicName := "projects/" + stack.Project + "/topics/ordered"
	subName := "projects/" + stack.Project + "/subscriptions/ordered-sub"
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicName}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: subName, Topic: topicName, EnableMessageOrdering: true, AckDeadlineSeconds: 10,
	}); err != nil {
		t.Fatal(err)
	}
	const perKey = 40
	keys := []string{"public.orders/0", "public.orders/1", `public."Order Items"/7`}
	pub := client.Publisher(topicName)
	pub.EnableMessageOrdering = true
	var results []*pubsub.PublishResult
	for i := 0; i < perKey; i++ {
		for _, k := range keys {
			results = append(results, pub.Publish(ctx, &pubsub.Message{OrderingKey: k, Data: []byte(strconv.Itoa(i))}))
		}
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			t.Fatalf("publishing: %v", err)
		}
	}
	pub.Stop()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), receiverEnv+"="+subName, "TRIBUTARY_TEST_RECEIVE_COUNT="+strconv.Itoa(perKey*len(keys)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("receiver process: %v\n%s", err, stderr.String())
	}
	got := map[string][]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(val)
		got[key] = append(got[key], n)
	}
	for _, k := range keys {
		if len(got[k]) != perKey {
			t.Fatalf("key %q: received %d messages, want %d", k, len(got[k]), perKey)
		}
		for i, n := range got[k] {
			if n != i {
				t.Fatalf("key %q: message %d carries %d: out of order %v", k, i, n, got[k])
			}
		}
	}
}

// receiveOrdered is the receiving process: it prints "key\tdata" lines in the
// order messages arrive, acking each, until it has the expected count.
func receiveOrdered() int {
	want, _ := strconv.Atoi(os.Getenv("TRIBUTARY_TEST_RECEIVE_COUNT"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if os.Getenv("PUBSUB_EMULATOR_HOST") == "" {
		fmt.Fprintln(os.Stderr, "PUBSUB_EMULATOR_HOST is not set")
		return 2
	}
	project := os.Getenv("TRIBUTARY_PROJECT")
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer client.Close()
	sub := client.Subscriber(os.Getenv(receiverEnv))
	sub.ReceiveSettings.NumGoroutines = 4
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	n := 0
	err = sub.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("%s\t%s\n", m.OrderingKey, m.Data)
		m.Ack()
		if n++; n == want {
			stop()
		}
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "receiving: %v\n", err)
		return 2
	}
	if n < want {
		fmt.Fprintf(os.Stderr, "received %d of %d messages\n", n, want)
		return 1
	}
	return 0
}

// A second write of the same object with ifGenerationMatch=0 is refused, the
// first write's content stays, and the object is on disk under the stack's
// directory.
func TestIntegrationGCSRefusesOverwrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := gcp.Storage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	obj := client.Bucket(stack.Bucket).Object("tributary/probe/dt=2026-11-21/0-1-w.avro")
	write := func(data string) error {
		w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
		if _, err := io.WriteString(w, data); err != nil {
			return err
		}
		return w.Close()
	}
	if err := write("first"); err != nil {
		t.Fatalf("first write: %v", err)
	}
	err = write("second")
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) || gerr.Code != http.StatusPreconditionFailed {
		t.Fatalf("second write with ifGenerationMatch=0: got %v, want HTTP 412", err)
	}
	r, err := obj.NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	r.Close()
	if string(data) != "first" {
		t.Fatalf("object holds %q after the refused write, want %q", data, "first")
	}
	matches, _ := filepath.Glob(filepath.Join(stack.Dir, "gcs", stack.Bucket, "tributary", "probe", "*", "*"))
	if len(matches) == 0 {
		t.Fatalf("object not found on disk under %s", filepath.Join(stack.Dir, "gcs"))
	}
}
