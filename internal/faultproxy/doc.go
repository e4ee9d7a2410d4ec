// Package faultproxy is a loopback proxy that stands between a client and a
// server and injects faults into what passes: for HTTP (NewHTTP), error
// answers (503 and 429 in Google's JSON error shape), connections reset
// instead of answered, and requests stalled before they are forwarded; for
// any TCP protocol such as gRPC (NewTCP), connections reset and forwarding
// stalled. The faults can be changed at any time (Set) and everything
// injected is counted (Counts), so a test can compare what it injected with
// what the system under test reports.
//
// It owns the injection and nothing else: which service sits behind it and
// how clients are pointed at it is the test's business. Test and local use
// only; it never runs against Google Cloud.
package faultproxy
