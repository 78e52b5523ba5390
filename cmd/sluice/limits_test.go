package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that sends headers and then trickles its body must not hold
// SIGTERM: serve closes it when --shutdown-timeout runs out and exits 0.
func TestServeExitsZeroDespiteTricklingClient(t *testing.T) {
	t.Parallel()
	s := startService(t, nil, "--body-timeout", "1h", "--shutdown-timeout", "200ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // only a hang trips it
	if _, err := io.WriteString(conn, "POST /v1/queues/q/items HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// 100 Continue: the handler is reading the body.
	rd := bufio.NewReader(conn)
	resp, err := http.ReadResponse(rd, &http.Request{Method: http.MethodPost})
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v %v", resp, err)
	}
	if _, err := io.WriteString(conn, "{"); err != nil {
		t.Fatal(err)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exit code %d, want 0; log:\n%s", code, s.log.String())
	}
}

// With the default shutdown timeout, --body-timeout ends the trickled
// request (408) and the shutdown needs no force.
func TestServeBodyTimeout(t *testing.T) {
	t.Parallel()
	s := startService(t, nil, "--body-timeout", "100ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, "POST /v1/queues/q/items HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("want 408, got %v %v", resp, err)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exit code %d, want 0; log:\n%s", code, s.log.String())
	}
}

func TestServeLimitFlagsValidated(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--max-queues", "-1"}, {"--max-stream-clients", "0"}, {"--max-subscriptions", "0"},
		{"--max-channels-per-client", "0"}, {"--client-buffer-bytes", "0"}, {"--body-timeout", "0s"},
		{"--read-header-timeout", "-1s"}, {"--shutdown-timeout", "0s"},
	} {
		var stderr strings.Builder
		code := run(t.Context(), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), io.Discard, &stderr, func(string) string { return "" })
		if code != exitUsage || !strings.Contains(stderr.String(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("serve %v: exit %d, stderr %q; want %d naming the flag", args, code, stderr.String(), exitUsage)
		}
	}
}
