package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "redis://127.0.0.1:6379", "http://", "http://user:secret@host:1"} {
		_, err := New(u, "", nil)
		if err == nil {
			t.Fatalf("New(%q): no error", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("New(%q): error shows the password: %v", u, err)
		}
	}
}

func TestDoDecodesErrorsAndSendsKey(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/p/ok":
			_, _ = w.Write([]byte(`{"n":3}`))
		case "/p/busy":
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"engine unavailable"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`<html>not json</html>`))
		}
	}))
	defer ts.Close()
	c, err := New(ts.URL+"/p/", "k1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ N int }
	if _, err := c.do(context.Background(), http.MethodGet, "/ok", nil, nil, &out); err != nil || out.N != 3 {
		t.Fatalf("ok: %v %+v", err, out)
	}
	_, err = c.do(context.Background(), http.MethodGet, "/busy", nil, nil, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 503 || se.Message != "engine unavailable" || se.RetryAfter != 2*time.Second {
		t.Fatalf("busy: %#v", err)
	}
	_, err = c.do(context.Background(), http.MethodGet, "/missing", nil, nil, nil)
	if !IsStatus(err, 404) || err.Error() != "service answered 404 Not Found" {
		t.Fatalf("missing: %v", err)
	}
}
