package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-cdc/tributary/sink"
)

// sinkHealth is the sink's part of /healthz: up while Run runs.
func sinkHealth(s *sink.Sink) map[string]healthFunc {
	return map[string]healthFunc{
		"sink": func(ctx context.Context) (bool, any) { return true, map[string]any{"running": true} },
	}
}

// sinkCollectors are the sink's metrics.
func sinkCollectors(s *sink.Sink) []prometheus.Collector { return nil }
