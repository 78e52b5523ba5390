package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/sluicehq/sluice/internal/server"
)

// configNames names, for each server.Config field `sluice serve` fills,
// the flag and environment variable a user sets it with. server.Config
// speaks of its fields only; its errors are worded here with these names.
var configNames = map[string]string{ //nolint:gosec // G101: flag and variable names, not credentials
	"Addr":                        "--addr/SLUICE_ADDR",
	"APIKeys":                     "--api-keys/SLUICE_API_KEYS",
	"QueueMaxSize":                "QUEUE_MAX_SIZE",
	"QueueOverflowPolicy":         "QUEUE_OVERFLOW_POLICY",
	"QueueBackpressureThreshold":  "QUEUE_BACKPRESSURE_THRESHOLD",
	"CompressionThreshold":        "REDIS_COMPRESSION_THRESHOLD",
	"IdempotencyWindow":           "--idempotency-window",
	"MaxBodyBytes":                "--max-body-bytes",
	"LogFormat":                   "--log-format",
	"ReadHeaderTimeout":           "--read-header-timeout",
	"BodyTimeout":                 "--body-timeout",
	"ShutdownTimeout":             "--shutdown-timeout",
	"Limits.MaxStreamClients":     "--max-stream-clients",
	"Limits.MaxChannelsPerClient": "--max-channels-per-client",
	"Limits.MaxSubscriptions":     "--max-subscriptions",
	"Limits.ClientBufferBytes":    "--client-buffer-bytes",
	"Limits.MaxQueues":            "--max-queues",
	"CORSOrigins":                 "--cors-origins/SLUICE_CORS_ORIGINS",
	"WebSocketOrigins":            "--ws-origins/SLUICE_WS_ORIGINS",
}

// originFlags are serve's flags for pages served from other origins:
// CORS for the API, and the origin check of the WebSocket routes.
type originFlags struct {
	cors, ws string
}

func addOriginFlags(fs *flag.FlagSet) *originFlags {
	var o originFlags
	fs.StringVar(&o.cors, "cors-origins", "", `comma-separated origins (https://app.example.com) whose pages may call the API; "*" allows any (env SLUICE_CORS_ORIGINS; default none)`)
	fs.StringVar(&o.ws, "ws-origins", "", "comma-separated host patterns (*.example.com) of pages on other origins that may open WebSockets (env SLUICE_WS_ORIGINS; default none: same origin only)")
	return &o
}

// apply sets the origins of cfg: the flags when given, else the
// environment's variables.
func (o *originFlags) apply(fs *flag.FlagSet, getenv func(string) string, cfg *server.Config) {
	cfg.CORSOrigins = splitList(pick(fs, "cors-origins", o.cors, getenv("SLUICE_CORS_ORIGINS"), ""))
	cfg.WebSocketOrigins = splitList(pick(fs, "ws-origins", o.ws, getenv("SLUICE_WS_ORIGINS"), ""))
}

// splitList splits a comma-separated list, trimming spaces; "" is none.
// An empty element stays, for Validate to name.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// configError words server.Config.Validate's error with the names the
// user set: each *server.ConfigError of a field the command fills names
// its flag or environment variable instead of the field. Fields the
// command leaves at their defaults keep their names (a failure there is
// the program's, not the user's).
func configError(err error) error {
	leaves := flatten(err)
	if len(leaves) == 0 {
		return err
	}
	out := make([]error, len(leaves))
	for i, ce := range leaves {
		out[i] = ce
		if name, ok := configNames[ce.Field]; ok {
			out[i] = fmt.Errorf("%s %s: want %s", name, ce.Value, ce.Want)
		}
	}
	return fmt.Errorf("invalid configuration: %w", errors.Join(out...))
}

// flatten returns the *server.ConfigError leaves of err's tree, or nil
// when it holds none (an error of another kind passes through as it is).
func flatten(err error) []*server.ConfigError {
	switch u := err.(type) { //nolint:errorlint // this is the walk of the error tree that errors.As would do
	case *server.ConfigError:
		return []*server.ConfigError{u}
	case interface{ Unwrap() []error }:
		var out []*server.ConfigError
		for _, e := range u.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return flatten(u.Unwrap())
	}
	return nil
}

// uiFlag is --ui: the dashboard. Unset, it is on when the service listens
// on a loopback address only: a service reachable from the network shows
// its queues' contents only when asked to (--ui=true), API keys or not.
type uiFlag struct {
	fs *flag.FlagSet
	on bool
}

func addUIFlag(fs *flag.FlagSet) *uiFlag {
	u := &uiFlag{fs: fs}
	fs.BoolVar(&u.on, "ui", false, "serve the web dashboard at /ui/ (default: on when --addr is a loopback address, off otherwise)")
	return u
}

// enabled reports whether the dashboard is served at addr.
func (u *uiFlag) enabled(addr string) bool {
	if isSet(u.fs, "ui") {
		return u.on
	}
	return loopbackAddr(addr)
}

// loopbackAddr reports whether host:port listens on loopback only:
// "localhost", or an IP address that is a loopback one (an empty host
// or 0.0.0.0 listens on every interface).
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
