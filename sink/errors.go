package sink

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Class says what an error allows.
type Class int

const (
	// Permanent: retrying the same request fails the same way; its data goes
	// to a dead-letter and the table goes on.
	Permanent Class = iota
	// Retryable: the service was busy, unreachable or timed out; the same
	// request may succeed after a backoff.
	Retryable
	// SchemaMismatch: BigQuery refused data because the table's schema
	// disagrees with it (a changed column type or mode). Not retryable as
	// it is; treated as Permanent until schema evolution handles it.
	SchemaMismatch
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case SchemaMismatch:
		return "schema_mismatch"
	default:
		return "permanent"
	}
}

// Classify decides what err from BigQuery or Cloud Storage allows, looking
// through wrapping with errors.As: HTTP 408, 429 and 5xx, BigQuery's
// backendError / rateLimitExceeded / internalError reasons, gRPC
// Unavailable / DeadlineExceeded / ResourceExhausted / Aborted / Internal,
// timeouts and connection failures are Retryable; BigQuery's "invalid"
// errors about a schema are SchemaMismatch; everything else, including
// other 4xx answers and errors it does not know, is Permanent. A nil error
// is Permanent too: callers classify failures only.
func Classify(err error) Class {
	var own *permanentError
	if err == nil || errors.As(err, &own) {
		return Permanent
	}
	var bqErr *bigquery.Error
	if errors.As(err, &bqErr) {
		return classifyReason(bqErr.Reason, bqErr.Message)
	}
	var multi bigquery.MultiError
	if errors.As(err, &multi) && len(multi) > 0 {
		return Classify(multi[0])
	}
	var gErr *googleapi.Error
	if errors.As(err, &gErr) {
		switch {
		case gErr.Code == http.StatusRequestTimeout, gErr.Code == http.StatusTooManyRequests, gErr.Code >= 500:
			return Retryable
		}
		for _, it := range gErr.Errors {
			if c := classifyReason(it.Reason, it.Message); c != Permanent {
				return c
			}
		}
		if gErr.Code == http.StatusBadRequest && isSchemaMessage(gErr.Message) {
			return SchemaMismatch
		}
		return Permanent
	}
	var grpcErr interface{ GRPCStatus() *status.Status }
	if errors.As(err, &grpcErr) {
		switch grpcErr.GRPCStatus().Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal:
			return Retryable
		}
		return Permanent
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return Retryable
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return Retryable // a timeout, or a failure to reach the service
	}
	return Permanent
}

func classifyReason(reason, message string) Class {
	switch reason {
	case "backendError", "internalError", "rateLimitExceeded", "jobBackendError", "jobRateLimitExceeded", "tableUnavailable":
		return Retryable
	case "invalid":
		if isSchemaMessage(message) {
			return SchemaMismatch
		}
	}
	return Permanent
}

// isSchemaMessage recognises BigQuery's messages about data that disagrees
// with a table's schema.
func isSchemaMessage(m string) bool {
	m = strings.ToLower(m)
	for _, s := range []string{"provided schema does not match", "has changed type", "has changed mode", "cannot add required field", "schema update options"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// permanentError marks a failure of the sink's own making (encoding a
// record the schema should have accepted) as Permanent whatever it wraps.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// isDuplicateJob reports BigQuery's answer to a job ID that exists.
func isDuplicateJob(err error) bool {
	var gErr *googleapi.Error
	return errors.As(err, &gErr) && gErr.Code == http.StatusConflict
}

// isPreconditionFailed reports GCS refusing to overwrite an object.
func isPreconditionFailed(err error) bool {
	var gErr *googleapi.Error
	return errors.As(err, &gErr) && gErr.Code == http.StatusPreconditionFailed
}

// isNotFound reports a missing object or table.
func isNotFound(err error) bool {
	var gErr *googleapi.Error
	return errors.As(err, &gErr) && gErr.Code == http.StatusNotFound
}
