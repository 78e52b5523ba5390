package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestServeLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level       string
		debug, info bool
	}{
		{"debug", true, true},
		{"info", false, true},
		{"WARN", false, false},
		{"error", false, false},
	} {
		t.Run(tc.level, func(t *testing.T) {
			level, err := parseLogLevel(tc.level)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log := newLogger("json", level, &env{stderr: &buf})
			log.Debug("a debug record")
			log.Info("an info record")
			log.Error("an error record")
			out := buf.String()
			if got := strings.Contains(out, "a debug record"); got != tc.debug {
				t.Errorf("debug record written: %v, want %v\n%s", got, tc.debug, out)
			}
			if got := strings.Contains(out, "an info record"); got != tc.info {
				t.Errorf("info record written: %v, want %v\n%s", got, tc.info, out)
			}
			if !strings.Contains(out, "an error record") {
				t.Errorf("error record missing:\n%s", out)
			}
		})
	}
}

func TestServeLogLevelRefusesUnknownNames(t *testing.T) {
	r := cli(t, nil, "", "serve", "--addr", "127.0.0.1:0", "--log-level", "loud").want(t, exitUsage)
	if !strings.Contains(r.stderr, `--log-level "loud": want debug, info, warn or error`) {
		t.Fatalf("stderr: %s", r.stderr)
	}
}

func TestServeHelpListsLogLevel(t *testing.T) {
	r := cli(t, nil, "", "serve", "-h").want(t, exitOK)
	if !strings.Contains(r.stderr, "log-level") {
		t.Fatalf("serve -h does not list --log-level:\n%s", r.stderr)
	}
}

// TestJSONLogDurations: durations in the JSON log are strings such as
// "1.5s", as in the text log, not integer nanoseconds; inside groups too.
func TestJSONLogDurations(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger("json", slog.LevelInfo, &env{stderr: &buf})
	log.Info("waited", "took", 1500*time.Millisecond, slog.Group("limits", "timeout", 30*time.Second), "count", 3)
	var rec struct {
		Took   any `json:"took"`
		Count  any `json:"count"`
		Limits struct {
			Timeout any `json:"timeout"`
		} `json:"limits"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if rec.Took != "1.5s" || rec.Limits.Timeout != "30s" {
		t.Fatalf("durations: took=%#v timeout=%#v, want \"1.5s\" and \"30s\"\n%s", rec.Took, rec.Limits.Timeout, buf.String())
	}
	if rec.Count != float64(3) {
		t.Fatalf("a number that is not a duration changed: %#v", rec.Count)
	}
}
