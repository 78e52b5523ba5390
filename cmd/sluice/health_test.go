package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthCommand(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/live" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer ts.Close()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}

	cli(t, nil, "", "health", "--url", ts.URL+"/health/live").want(t, exitOK)
	// The address serve listens on, wildcard host included, from the
	// environment as the container image sets it.
	cli(t, map[string]string{"SLUICE_ADDR": "0.0.0.0:" + port}, "", "health").want(t, exitOK)
	cli(t, nil, "", "health", "--addr", "[::]:"+port).want(t, exitOK)

	r := cli(t, nil, "", "health", "--url", ts.URL+"/nope").want(t, exitFailure)
	if !strings.Contains(r.stderr, "404") {
		t.Errorf("stderr %q does not give the status", r.stderr)
	}
	cli(t, nil, "", "health", "--addr", "nonsense").want(t, exitUsage)
	cli(t, nil, "", "health", "--timeout", "0").want(t, exitUsage)
	cli(t, nil, "", "health", "extra").want(t, exitUsage)
}
