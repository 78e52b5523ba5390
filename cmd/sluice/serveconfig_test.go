package main

import (
	"flag"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/server"
)

// TestConfigNamesAreFields keeps the flag table true to server.Config: a
// renamed field would silently lose its flag name in errors.
func TestConfigNamesAreFields(t *testing.T) {
	typ := reflect.TypeOf(server.Config{})
	for field := range configNames {
		ft := typ
		for _, part := range strings.Split(field, ".") {
			f, ok := ft.FieldByName(part)
			if !ok {
				t.Errorf("configNames has %q, which is not a field of server.Config", field)
				break
			}
			ft = f.Type
		}
	}
}

// TestConfigErrorsNameFlags checks that every mistake a user can make in
// the settings `sluice serve` fills is reported with the flag or
// environment variable, and that a field the command does not fill keeps
// its field name.
func TestConfigErrorsNameFlags(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Addr = "8000"
	cfg.APIKeys = []string{" "}
	cfg.QueueOverflowPolicy = "evict"
	cfg.QueueBackpressureThreshold = 2
	cfg.CompressionThreshold = -1
	cfg.IdempotencyWindow = 0
	cfg.MaxBodyBytes = 0
	cfg.LogFormat = "xml"
	cfg.ReadHeaderTimeout, cfg.BodyTimeout, cfg.ShutdownTimeout = 0, 0, 0
	cfg.Limits = server.Limits{MaxQueues: -1}
	cfg.CORSOrigins = []string{"https://app.example.com/path"}
	cfg.WebSocketOrigins = []string{"[bad"}
	cfg.PollInterval = 0 // not a setting of the command
	err := configError(cfg.Validate())
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for field, name := range configNames {
		if field == "QueueMaxSize" {
			continue // any value is valid (<= 0: unbounded)
		}
		if !strings.Contains(msg, name+" ") {
			t.Errorf("%s: error does not name %s:\n%s", field, name, msg)
		}
	}
	if !strings.Contains(msg, "PollInterval 0s: want a positive duration") {
		t.Errorf("a field the command does not fill lost its name:\n%s", msg)
	}
	if !strings.HasPrefix(msg, "invalid configuration: ") || strings.Contains(msg, "Limits.") {
		t.Errorf("error:\n%s", msg)
	}
}

// TestUIFlag: the dashboard is on by default on loopback only; --ui
// overrides that either way.
func TestUIFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		addr string
		want bool
	}{
		{nil, "127.0.0.1:8000", true},
		{nil, "localhost:8000", true},
		{nil, "[::1]:8000", true},
		{nil, "0.0.0.0:8000", false},
		{nil, ":8000", false},
		{nil, "10.0.0.5:8000", false},
		{nil, "service.example:8000", false},
		{[]string{"--ui=false"}, "127.0.0.1:8000", false},
		{[]string{"--ui"}, "0.0.0.0:8000", true},
		{[]string{"--ui=true"}, ":8000", true},
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		ui := addUIFlag(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := ui.enabled(tc.addr); got != tc.want {
			t.Errorf("%v at %s: dashboard %v, want %v", tc.args, tc.addr, got, tc.want)
		}
	}
}

// TestOriginFlags checks that --cors-origins and --ws-origins fill the
// configuration, win over their environment variables, and fall back to
// them.
func TestOriginFlags(t *testing.T) {
	env := map[string]string{"SLUICE_CORS_ORIGINS": "https://env.example", "SLUICE_WS_ORIGINS": "env.example"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		args     []string
		cors, ws []string
	}{
		{nil, []string{"https://env.example"}, []string{"env.example"}},
		{[]string{"--cors-origins", "*", "--ws-origins", "a.example, *.b.example"}, []string{"*"}, []string{"a.example", "*.b.example"}},
		{[]string{"--cors-origins", "https://a.example,http://b.example:8080"}, []string{"https://a.example", "http://b.example:8080"}, []string{"env.example"}},
		{[]string{"--cors-origins", "", "--ws-origins", ""}, nil, nil},
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		o := addOriginFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg := server.DefaultConfig()
		o.apply(fs, getenv, &cfg)
		if !reflect.DeepEqual(cfg.CORSOrigins, tc.cors) || !reflect.DeepEqual(cfg.WebSocketOrigins, tc.ws) {
			t.Errorf("%q: cors %q ws %q, want %q %q", tc.args, cfg.CORSOrigins, cfg.WebSocketOrigins, tc.cors, tc.ws)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q: %v", tc.args, err)
		}
	}
}
