package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-cdc/tributary/sink"
)

// sinkHealth is the sink's part of /healthz.
func sinkHealth(s *sink.Sink) map[string]healthFunc {
	return map[string]healthFunc{"sink": s.Health}
}

// sinkCollectors are the sink's metrics.
func sinkCollectors(s *sink.Sink) []prometheus.Collector { return s.Collectors() }
