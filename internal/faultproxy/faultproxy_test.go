package faultproxy

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFaultsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Faults
		want string // "" valid, else a part of the error
	}{
		{"zero", Faults{}, ""},
		{"chaos", Faults{ErrorRate: 0.05, ResetRate: 0.02, StallRate: 0.02, Stall: 2 * time.Second}, ""},
		{"all errors", Faults{ErrorRate: 1}, ""},
		{"negative", Faults{ResetRate: -0.1}, "ResetRate -0.1 is not within 0..1"},
		{"above one", Faults{ErrorRate: 1.5}, "ErrorRate 1.5 is not within 0..1"},
		{"sum above one", Faults{ErrorRate: 0.6, ResetRate: 0.6}, "add up to 1.2"},
		{"stall without duration", Faults{StallRate: 0.1}, "without a Stall duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// echoServer answers every request with its method and path.
func echoServer(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func newHTTP(t *testing.T, target string) *HTTP {
	p, err := NewHTTP(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Post(url, "text/plain", strings.NewReader("ping"))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestHTTPForwardsWithoutFaults(t *testing.T) {
	p := newHTTP(t, echoServer(t).URL)
	code, body, err := get(http.DefaultClient, p.URL()+"/a/b")
	if err != nil || code != 200 || body != "POST /a/b ping" {
		t.Fatalf("got %d %q %v, want 200 \"POST /a/b ping\"", code, body, err)
	}
	if c := p.Counts(); c.Requests != 1 || c.Status503+c.Status429+c.Resets+c.Stalls != 0 {
		t.Fatalf("counts %s", c)
	}
}

func TestHTTPErrorAnswersInGoogleShape(t *testing.T) {
	p := newHTTP(t, echoServer(t).URL)
	if err := p.Set(Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	seen := map[int]int{}
	for i := 0; i < n; i++ {
		code, body, err := get(http.DefaultClient, p.URL()+"/x")
		if err != nil {
			t.Fatal(err)
		}
		var ge googleError
		if err := json.Unmarshal([]byte(body), &ge); err != nil || ge.Error.Code != code || len(ge.Error.Errors) != 1 {
			t.Fatalf("answer %d %q is not a Google JSON error of its status (%v)", code, body, err)
		}
		want := map[int]string{503: "backendError", 429: "rateLimitExceeded"}[code]
		if want == "" || ge.Error.Errors[0].Reason != want {
			t.Fatalf("answer %d with reason %q", code, ge.Error.Errors[0].Reason)
		}
		seen[code]++
	}
	c := p.Counts()
	if c.Status503 != int64(seen[503]) || c.Status429 != int64(seen[429]) || c.Requests != n {
		t.Fatalf("counts %s, answers seen %v", c, seen)
	}
	if seen[503] == 0 || seen[429] == 0 {
		t.Fatalf("%d answers were all one status: %v", n, seen)
	}
}

func TestHTTPResetsConnections(t *testing.T) {
	p := newHTTP(t, echoServer(t).URL)
	if err := p.Set(Faults{ResetRate: 1}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	_, _, err := get(c, p.URL()+"/x")
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("request through a resetting proxy: %v, want a connection reset", err)
	}
	if n := p.Counts().Resets; n != 1 {
		t.Fatalf("%d resets counted, want 1", n)
	}
}

func TestHTTPStalls(t *testing.T) {
	p := newHTTP(t, echoServer(t).URL)
	if err := p.Set(Faults{StallRate: 1, Stall: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, body, err := get(http.DefaultClient, p.URL()+"/x")
	took := time.Since(start)
	if err != nil || code != 200 || body != "POST /x ping" {
		t.Fatalf("got %d %q %v", code, body, err)
	}
	if took < 300*time.Millisecond {
		t.Fatalf("a stalled request took %s, want at least 300ms", took)
	}
	// Faults off again: no stall.
	if err := p.Set(Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(http.DefaultClient, p.URL()+"/x"); err != nil {
		t.Fatal(err)
	}
	if n := p.Counts().Stalls; n != 1 {
		t.Fatalf("%d stalls counted, want 1", n)
	}
}

// tcpEcho echoes every connection's bytes back.
func tcpEcho(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func TestTCP(t *testing.T) {
	p, err := NewTCP(tcpEcho(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	roundTrip := func() error {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "hello" {
			t.Fatalf("echo %q through the proxy", buf)
		}
		return nil
	}
	if err := roundTrip(); err != nil {
		t.Fatalf("without faults: %v", err)
	}
	if err := p.Set(Faults{ErrorRate: 0.1}); err == nil {
		t.Fatal("a TCP proxy took an ErrorRate")
	}
	if err := p.Set(Faults{ResetRate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("through a resetting proxy: %v, want a connection reset", err)
	}
	if err := p.Set(Faults{StallRate: 1, Stall: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := roundTrip(); err != nil {
		t.Fatalf("through a stalling proxy: %v", err)
	}
	// Two chunks, each way once: two stalls.
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("a round trip through a stalling proxy took %s, want at least 400ms", took)
	}
	c := p.Counts()
	if c.Connections != 3 || c.Resets != 1 || c.Stalls != 2 {
		t.Fatalf("counts %s, want 3 connections, 1 reset, 2 stalls", c)
	}
}
