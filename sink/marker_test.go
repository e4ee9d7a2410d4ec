package sink

import (
	"testing"

	"cloud.google.com/go/pubsub/v2"

	"github.com/tributary-cdc/tributary/schema"
)

func TestMarkerRecordNames(t *testing.T) {
	tests := []struct {
		layout              Layout
		schema, table, id   string
		bucket              int
		wantDir, wantRecord string
	}{
		{Layout{Prefix: "tributary", Database: "shop"}, "public", "orders", "m1", 7,
			"tributary/_sink/markers/shop/public.orders/m1/", "tributary/_sink/markers/shop/public.orders/m1/7"},
		{Layout{Database: "shop"}, "public", "orders", "m1", 0,
			"_sink/markers/shop/public.orders/m1/", "_sink/markers/shop/public.orders/m1/0"},
		{Layout{Prefix: "/a/b/", Database: "db"}, "Sales", "Order Lines", "x", 31,
			"a/b/_sink/markers/db/" + schema.GCSSegment("Sales", "Order Lines") + "/x/", "a/b/_sink/markers/db/" + schema.GCSSegment("Sales", "Order Lines") + "/x/31"},
	}
	for _, tt := range tests {
		if got := tt.layout.MarkerDir(tt.schema, tt.table, tt.id); got != tt.wantDir {
			t.Errorf("MarkerDir = %q, want %q", got, tt.wantDir)
		}
		if got := tt.layout.MarkerRecord(tt.schema, tt.table, tt.id, tt.bucket); got != tt.wantRecord {
			t.Errorf("MarkerRecord = %q, want %q", got, tt.wantRecord)
		}
	}
}

// A marker waits for the flush of the changes buffered before it, then for
// a load round; one behind a nacked change is nacked.
func TestMarkerWaitsForItsFlush(t *testing.T) {
	s := &Sink{cfg: Config{}.withDefaults()}
	tb := newTable(s, tableKey{"public", "orders"})
	mk := func(b int) *schema.Marker {
		return &schema.Marker{ID: "m", Schema: "public", Table: "orders", Bucket: b, Buckets: 4}
	}

	// Nothing buffered, nothing pending: ready for a load round at once.
	tb.addMarker(&pubsub.Message{OrderingKey: "public.orders/0"}, mk(0))
	if len(tb.loadWait) != 1 || len(tb.markers) != 0 || len(tb.loadKick) != 1 {
		t.Fatalf("quiet table: loadWait %d, markers %d, kicked %d", len(tb.loadWait), len(tb.markers), len(tb.loadKick))
	}
	<-tb.loadKick
	if w := tb.takeLoadWait(); len(w) != 1 || len(tb.loadWait) != 0 {
		t.Fatalf("takeLoadWait took %d", len(w))
	}

	// A change buffered before the marker: the marker waits for its flush.
	tb.add(received{msg: &pubsub.Message{OrderingKey: "public.orders/1", Data: []byte("x")}, ev: envelope{Op: 'c'}})
	tb.addMarker(&pubsub.Message{OrderingKey: "public.orders/1"}, mk(1))
	if len(tb.markers) != 1 || tb.markers[0].gen != 1 || len(tb.loadWait) != 0 {
		t.Fatalf("behind a buffered change: markers %+v, loadWait %d", tb.markers, len(tb.loadWait))
	}
	buf, _, gen := tb.take(true)
	if len(buf) != 1 || gen != 1 {
		t.Fatalf("take: %d changes, gen %d", len(buf), gen)
	}
	// A marker arriving while that flush is under way waits for it too.
	tb.addMarker(&pubsub.Message{OrderingKey: "public.orders/2"}, mk(2))
	if len(tb.markers) != 2 || tb.markers[1].gen != 1 {
		t.Fatalf("during a flush: markers %+v", tb.markers)
	}
	tb.pending["obj"] = true // the flush wrote an object: load at the next interval, not at once
	tb.flushedGen(gen, true)
	if len(tb.markers) != 0 || len(tb.loadWait) != 2 || len(tb.loadKick) != 0 {
		t.Fatalf("after the flush: markers %d, loadWait %d, kicked %d", len(tb.markers), len(tb.loadWait), len(tb.loadKick))
	}
	w := tb.takeLoadWait()
	tb.returnLoadWait(w) // a failed round: they wait for the next
	if len(tb.loadWait) != 2 {
		t.Fatalf("after a failed round: loadWait %d", len(tb.loadWait))
	}

	// A flush that did not write its changes: the markers behind it are
	// nacked, not recorded.
	tb.add(received{msg: &pubsub.Message{OrderingKey: "public.orders/1", Data: []byte("y")}, ev: envelope{Op: 'c'}})
	tb.addMarker(&pubsub.Message{OrderingKey: "public.orders/1"}, mk(1))
	_, _, gen = tb.take(true)
	tb.flushedGen(gen, false)
	if len(tb.markers) != 0 || len(tb.loadWait) != 2 {
		t.Fatalf("after a failed flush: markers %d, loadWait %d", len(tb.markers), len(tb.loadWait))
	}

	// Behind a change nacked on its key: nacked, once.
	tb.nacked["public.orders/3"] = true
	tb.addMarker(&pubsub.Message{OrderingKey: "public.orders/3"}, mk(3))
	if len(tb.markers) != 0 || len(tb.loadWait) != 2 || tb.nacked["public.orders/3"] {
		t.Fatalf("behind a nacked change: markers %d, loadWait %d", len(tb.markers), len(tb.loadWait))
	}
}
