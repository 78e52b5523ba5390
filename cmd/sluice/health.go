package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// health is `sluice health`: exit 0 when the service answers 200 on
// /health/live, 1 otherwise. Container images without a shell or curl
// (distroless, scratch) run it as their HEALTHCHECK.
func (e *env) health(ctx context.Context, args []string) error {
	fs := newFlagSet("health", "health [--url URL] [--timeout D]", e.stderr)
	url := fs.String("url", "", "URL to check (default: /health/live on --addr)")
	addr := fs.String("addr", "", "the service's listen address, as serve takes it (env SLUICE_ADDR; default 127.0.0.1:8000); a wildcard host is checked on loopback")
	timeout := durationFlag(fs, "timeout", 3*time.Second, "longest wait for the answer")
	if _, err := parseArgsFor(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("health: --timeout %v: want more than 0", *timeout)
	}
	target := *url
	if target == "" {
		a := *addr
		if a == "" {
			a = e.getenv("SLUICE_ADDR")
		}
		if a == "" {
			a = "127.0.0.1:8000"
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return usagef("health: address %q: want host:port", a)
		}
		// A server listening on every interface answers on loopback.
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		target = "http://" + net.JoinHostPort(host, port) + "/health/live"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return usagef("health: --url %q: %v", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s", target, resp.Status)
	}
	fmt.Fprintln(e.stdout, "ok")
	return nil
}
