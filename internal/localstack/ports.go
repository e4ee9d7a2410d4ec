package localstack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// freePort asks the kernel for a free loopback TCP port that this process
// has not handed out before. The port is released before it is returned, so
// a caller that loses the race to another process gets a bind error and
// retries with another port.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[port] {
			given[port] = true
			return port, nil
		}
	}
}

// waitFor polls ready every 50ms until it returns nil, ctx ends or timeout
// passes; the last error from ready is wrapped into the timeout error.
func waitFor(ctx context.Context, what string, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s (%s): %w", what, timeout, last)
		case <-t.C:
		}
	}
}

// httpReady reports whether url answers an HTTP GET with a status below 500.
func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		return nil
	}
}
