package capture

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// FatalError is an error that retrying cannot fix: it says what an operator
// must change (wal_level, a missing privilege, a lost slot…).
type FatalError struct {
	Err error
	Fix string
}

func (e *FatalError) Error() string { return e.Err.Error() + " (fix: " + e.Fix + ")" }
func (e *FatalError) Unwrap() error { return e.Err }

func fatal(err error, fix string) error { return &FatalError{Err: err, Fix: fix} }

// Retryable reports whether capture may reconnect and resume from the slot
// after err: connection loss, a server shutting down or restarting, a slot
// held by another process, a failed publish. Errors that need an operator —
// FatalError, authentication, missing privileges or objects — are not.
// It is the one place capture classifies errors.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var fe *FatalError
	if errors.As(err, &fe) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin/crash shutdown, cannot connect now
			return true
		case pgErr.Code == "55006": // object in use: the slot is active for another process
			return true
		case strings.HasPrefix(pgErr.Code, "53"): // insufficient resources
			return true
		case pgErr.Code == "40001", pgErr.Code == "40P01":
			return true
		}
		return false
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// The server is down or restarting; authentication failures carry a PgError and were decided above.
		return true
	}
	var pubErr *publishError
	return errors.As(err, &pubErr)
}

// publishError is a failed Pub/Sub publish: the key it paused is resumed and
// the reader restarts from the last confirmed position, so nothing is skipped.
type publishError struct {
	key string
	err error
}

func (e *publishError) Error() string {
	return "publishing to ordering key " + e.key + ": " + e.err.Error()
}
func (e *publishError) Unwrap() error { return e.err }
