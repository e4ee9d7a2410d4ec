package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"wrapped admin shutdown", fmt.Errorf("receiving replication message: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"slot active for another pid", &pgconn.PgError{Code: "55006", Message: `replication slot "s" is active for PID 42`}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"eof", fmt.Errorf("receiving: %w", io.ErrUnexpectedEOF), true},
		{"publish failed", fmt.Errorf("confirming: %w", &publishError{key: "public.t/1", err: errors.New("unavailable")}), true},
		{"insufficient privilege", &pgconn.PgError{Code: "42501"}, false},
		{"bad password", &pgconn.PgError{Code: "28P01"}, false},
		{"fatal with fix", fmt.Errorf("starting: %w", fatal(errors.New("wal_level is replica"), "set wal_level=logical")), false},
		{"cancelled", fmt.Errorf("receiving: %w", context.Canceled), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
