// Command benchreport is `make bench`: it runs the benchmarks that measure
// tributary against a reference in the same run (go test -bench, package by
// package, each raw output kept under bench/results/), reads the figures the
// benchmarks report (b.ReportMetric units included) and prints one table —
// metric, measured, reference, ratio, target, met — which it also writes as
// JSON under bench/results/ with the machine it ran on. Every number comes
// from a benchmark's output: nothing here measures or types in a figure.
//
// Rows come from a fixed list (specs) in the order; any latency
// quantile in milliseconds that a benchmark reports (p50-ms, p99-ms …) is
// added as a row of its own, so a new latency benchmark appears unasked.
//
//	go run ./internal/benchreport [-steps capture,sink] [-big-rows N] [-out DIR]
package main
