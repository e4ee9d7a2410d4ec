package capture_test

import (
	"context"
	"testing"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// openGate lets a capture process publishing to a topic without
// subscriptions start: capture waits until its topic has a subscription
// (Pub/Sub drops what a topic without one receives), so a benchmark that
// wants the in-process Pub/Sub fake to keep nothing subscribes until the
// slot is active, by when capture has looked, and then removes the
// subscription. Call it after the capture process has started.
func openGate(tb testing.TB, h *harness) {
	tb.Helper()
	ctx := context.Background()
	topic := "projects/" + stack.Project + "/topics/" + h.cfg.Topic
	sub := "projects/" + stack.Project + "/subscriptions/" + h.cfg.Topic + "_gate"
	if _, err := h.ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil && status.Code(err) != codes.AlreadyExists {
		tb.Fatalf("creating topic %s: %v", topic, err)
	}
	if _, err := h.ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		tb.Fatalf("creating subscription %s: %v", sub, err)
	}
	h.waitSlotActive()
	if err := h.ps.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: sub}); err != nil {
		tb.Fatalf("deleting subscription %s: %v", sub, err)
	}
}
