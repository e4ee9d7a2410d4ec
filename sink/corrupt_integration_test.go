package sink

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/tributary-cdc/tributary/capture"
	"github.com/tributary-cdc/tributary/schema"
)

// A message whose envelope reads but whose row does not (the sink routes on
// the envelope alone and decodes rows when it writes them) goes to the
// dead-letter alone, with the reason: the changes buffered with it are
// written, loaded and applied, and the table stays equal to Postgres.
func TestIntegrationSinkCorruptRowAlone(t *testing.T) {
	needStack(t)
	p := newPipeline(t, "sink_corrupt", []capture.TableName{{Schema: "public", Name: "corrupt"}},
		`CREATE TABLE corrupt (id int PRIMARY KEY, v text)`)
	p.cfg.FlushAge = 3 * time.Second // the bad message and the next rows share a buffer
	p.startSink()
	defer p.stopSink(false)
	p.exec(`INSERT INTO corrupt SELECT g, 'v' || g FROM generate_series(1, 5) g`)
	p.waitVerified("corrupt", stack.Dataset, time.Minute)

	// A valid event of the table's schema version, cut short in its rows.
	ctx := context.Background()
	it := p.gcs.Bucket(p.cfg.Bucket).Objects(ctx, &storage.Query{Prefix: p.cfg.Prefix + "/_schemas/"})
	obj, err := it.Next()
	if err != nil {
		t.Fatalf("the table's schema on GCS: %v", err)
	}
	fp, err := strconv.ParseUint(strings.TrimSuffix(obj.Name[strings.LastIndex(obj.Name, "/")+1:], ".avsc"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	es, err := schema.NewStore(p.gcs, p.cfg.Bucket, p.cfg.Prefix).Get(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	// (No row images: the last byte is the after image's union branch.)
	good, err := es.Encode(nil, &schema.Event{Op: "c", CommitLSN: 1 << 40, LSN: 1 << 40, Seq: 0, Xid: 1,
		CommitTime: time.Now().UTC().Truncate(time.Microsecond), Schema: "public", Table: "corrupt"})
	if err != nil {
		t.Fatal(err)
	}
	bad := good[:len(good)-1]
	if _, err := es.DecodeHead(bad); err != nil {
		t.Fatalf("the cut event's envelope does not read: %v", err)
	}
	if _, err := es.Decode(bad); err == nil {
		t.Fatal("the cut event decodes whole")
	}
	pub := p.ps.Publisher(p.cfg.Topic)
	pub.EnableMessageOrdering = true
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: bad, OrderingKey: "corrupt-test"}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	pub.Stop()
	p.exec(`INSERT INTO corrupt SELECT g, 'v' || g FROM generate_series(6, 10) g`)
	p.exec(`UPDATE corrupt SET v = 'changed' WHERE id IN (1, 7)`)
	p.waitVerified("corrupt", stack.Dataset, time.Minute)

	// The one dead-letter names the message and the reason.
	var letters []string
	p.waitUntil("the cut message is dead-lettered", time.Minute, func() (bool, error) {
		letters = nil
		it := p.gcs.Bucket(p.cfg.Bucket).Objects(ctx, &storage.Query{Prefix: p.cfg.Prefix + "/_deadletter/"})
		for {
			o, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			} else if err != nil {
				return false, err
			}
			letters = append(letters, o.Name)
		}
		return len(letters) > 0, nil
	})
	if len(letters) != 1 || !strings.Contains(letters[0], "_undecodable") {
		t.Fatalf("dead-letters %v, want the cut message's alone", letters)
	}
	r, err := p.gcs.Bucket(p.cfg.Bucket).Object(letters[0]).NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var letter struct {
		Reason string `json:"reason"`
		Data   []byte `json:"data_base64"`
	}
	if err := json.NewDecoder(r).Decode(&letter); err != nil {
		t.Fatal(err)
	}
	if string(letter.Data) != string(bad) || !strings.Contains(letter.Reason, "decoding") {
		t.Errorf("dead-letter: reason %q, %d bytes of data (want the %d of the cut message)", letter.Reason, len(letter.Data), len(bad))
	}
	t.Logf("dead-lettered alone: %s (%s)", letters[0], letter.Reason)
}
