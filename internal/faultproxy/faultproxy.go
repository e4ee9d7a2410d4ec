package faultproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Faults says what to inject. The zero value injects nothing.
type Faults struct {
	// ErrorRate is the fraction of HTTP requests answered, without being
	// forwarded, with 503 Service Unavailable or 429 Too Many Requests (one
	// or the other at random). HTTP only.
	ErrorRate float64
	// ResetRate is, for HTTP, the fraction of requests whose connection is
	// reset (TCP RST) instead of answered; for TCP, the chance for each
	// chunk read from either side that the connection is reset instead of
	// the chunk being forwarded.
	ResetRate float64
	// StallRate is, for HTTP, the fraction of requests held for Stall before
	// being forwarded; for TCP, the chance for each chunk that it is held
	// for Stall before being forwarded.
	StallRate float64
	Stall     time.Duration
}

// Validate checks that the rates are fractions, add up to at most 1 and
// that a stall has a duration.
func (f Faults) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"ErrorRate", f.ErrorRate}, {"ResetRate", f.ResetRate}, {"StallRate", f.StallRate}} {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("faultproxy: %s %v is not within 0..1", r.name, r.v)
		}
	}
	if sum := f.ErrorRate + f.ResetRate + f.StallRate; sum > 1 {
		return fmt.Errorf("faultproxy: the rates add up to %v, more than 1", sum)
	}
	if f.StallRate > 0 && f.Stall <= 0 {
		return errors.New("faultproxy: StallRate set without a Stall duration")
	}
	return nil
}

// Counts is what a proxy has seen and injected since it started.
type Counts struct {
	// Requests counts HTTP requests, or TCP chunks, that reached the proxy.
	Requests int64
	// Connections counts accepted client connections.
	Connections int64
	// Status503 and Status429 count injected error answers (HTTP).
	Status503, Status429 int64
	// Resets counts connections reset; Stalls counts requests or chunks
	// held back.
	Resets, Stalls int64
}

func (c Counts) String() string {
	return fmt.Sprintf("%d requests on %d connections: %d×503, %d×429, %d resets, %d stalls",
		c.Requests, c.Connections, c.Status503, c.Status429, c.Resets, c.Stalls)
}

// counters are a proxy's Counts, updated concurrently.
type counters struct {
	requests, connections, s503, s429, resets, stalls atomic.Int64
}

func (c *counters) snapshot() Counts {
	return Counts{Requests: c.requests.Load(), Connections: c.connections.Load(), Status503: c.s503.Load(),
		Status429: c.s429.Load(), Resets: c.resets.Load(), Stalls: c.stalls.Load()}
}

// fault is what one request or chunk gets.
type fault int

const (
	pass fault = iota
	injectError
	injectReset
	injectStall
)

// state holds the faults in force.
type state struct {
	faults atomic.Pointer[Faults]
	counters
}

func (s *state) set(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.faults.Store(&f)
	return nil
}

// roll draws the fault for one request or chunk, and the stall it gets.
func (s *state) roll(errorsAllowed bool) (fault, time.Duration) {
	f := s.faults.Load()
	x := rand.Float64()
	if errorsAllowed {
		if x < f.ErrorRate {
			return injectError, 0
		}
		x -= f.ErrorRate
	}
	if x < f.ResetRate {
		return injectReset, 0
	}
	x -= f.ResetRate
	if x < f.StallRate {
		return injectStall, f.Stall
	}
	return pass, 0
}

// reset closes c with SO_LINGER 0, so the peer sees a TCP RST.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// HTTP is a fault-injecting reverse proxy for an HTTP service.
type HTTP struct {
	state
	l    net.Listener
	srv  *http.Server
	next http.Handler
}

// NewHTTP starts a proxy on a free loopback port forwarding to target
// (http://host:port), injecting nothing until Set.
func NewHTTP(target string) (*HTTP, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an http://host:port URL", target)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening: %w", err)
	}
	p := &HTTP{l: l}
	p.faults.Store(&Faults{})
	p.next = &httputil.ReverseProxy{
		// The Host header names the target, as if the client had called it:
		// fake-gcs-server, for one, routes by it.
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(u) },
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				p.connections.Add(1)
			}
		}}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// URL is the proxy's address as http://127.0.0.1:port.
func (p *HTTP) URL() string { return "http://" + p.l.Addr().String() }

// Addr is the proxy's host:port.
func (p *HTTP) Addr() string { return p.l.Addr().String() }

// Set replaces the faults in force.
func (p *HTTP) Set(f Faults) error { return p.set(f) }

// Counts returns what the proxy has seen and injected.
func (p *HTTP) Counts() Counts { return p.snapshot() }

// Close stops the proxy and closes its connections.
func (p *HTTP) Close() error { return p.srv.Close() }

// googleError is the JSON body Google's REST APIs answer errors with, which
// their client libraries parse into googleapi.Error.
type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Errors  []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"error"`
}

func (p *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f, stall := p.roll(true)
	switch f {
	case injectError:
		var body googleError
		e := &body.Error
		if rand.IntN(2) == 0 {
			p.s503.Add(1)
			e.Code, e.Status = http.StatusServiceUnavailable, "UNAVAILABLE"
			e.Errors = append(e.Errors, struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
			}{"backendError", ""})
		} else {
			p.s429.Add(1)
			e.Code, e.Status = http.StatusTooManyRequests, "RESOURCE_EXHAUSTED"
			e.Errors = append(e.Errors, struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
			}{"rateLimitExceeded", ""})
		}
		e.Message = fmt.Sprintf("faultproxy: injected %d", e.Code)
		e.Errors[0].Message = e.Message
		_, _ = io.Copy(io.Discard, r.Body) // so the connection stays usable
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(e.Code)
		_ = json.NewEncoder(w).Encode(body)
		return
	case injectReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			break // cannot reset this one (HTTP/2): forward it
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			break
		}
		p.resets.Add(1)
		reset(conn)
		return
	case injectStall:
		p.stalls.Add(1)
		if !sleep(r.Context(), stall) {
			return
		}
	}
	p.next.ServeHTTP(w, r)
}

// TCP is a fault-injecting proxy for a TCP service (gRPC, say): bytes are
// forwarded as they are, in chunks as read, each chunk a chance of a fault.
type TCP struct {
	state
	target string
	l      net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// NewTCP starts a proxy on a free loopback port forwarding to target
// (host:port), injecting nothing until Set.
func NewTCP(target string) (*TCP, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q is not host:port: %w", target, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening: %w", err)
	}
	p := &TCP{target: target, l: l, conns: map[net.Conn]bool{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.faults.Store(&Faults{})
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *TCP) Addr() string { return p.l.Addr().String() }

// Set replaces the faults in force; ErrorRate must be 0 (TCP has no
// answers to fake).
func (p *TCP) Set(f Faults) error {
	if f.ErrorRate != 0 {
		return errors.New("faultproxy: a TCP proxy cannot inject error answers (ErrorRate)")
	}
	return p.set(f)
}

// Counts returns what the proxy has seen and injected.
func (p *TCP) Counts() Counts { return p.snapshot() }

// Close stops accepting, closes every connection and waits for the copiers.
func (p *TCP) Close() error {
	p.cancel()
	err := p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *TCP) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.ctx.Err() != nil {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *TCP) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.connections.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *TCP) serve(client net.Conn) {
	defer p.wg.Done()
	var d net.Dialer
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		reset(client)
		return
	}
	if !p.track(client, true) || !p.track(server, true) {
		reset(client)
		reset(server)
		return
	}
	defer p.track(client, false)
	defer p.track(server, false)
	var once sync.Once
	kill := func(hard bool) {
		once.Do(func() {
			if hard {
				p.resets.Add(1)
				reset(client)
				reset(server)
				return
			}
			_ = client.Close()
			_ = server.Close()
		})
	}
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.requests.Add(1)
				f, stall := p.roll(false)
				switch f {
				case injectReset:
					kill(true)
					return
				case injectStall:
					p.stalls.Add(1)
					sleep(p.ctx, stall)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					kill(false)
					return
				}
			}
			if err != nil {
				kill(false)
				return
			}
		}
	}
	go pump(server, client)
	go pump(client, server)
	<-done
	<-done
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
