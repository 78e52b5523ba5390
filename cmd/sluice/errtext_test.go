package main

import (
	"strings"
	"testing"
)

// Error messages say "sluice: " once, and the flag or setting they concern
// once.
func TestErrorMessages(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"dlq", "list", "q", "--kind", "sideways"},
			`sluice: --kind "sideways": want overflow or failed`},
		{nil, []string{"queue", "add", "q", "{}", "--policy", "sometimes"},
			`sluice: --policy "sometimes": want reject, dlq or drop_oldest`},
		{nil, []string{"queue", "len", "no spaces"},
			`sluice: invalid name: queue name "no spaces" has ' ' at byte 2; allowed: letters, digits and _ . : - { }`},
		{nil, []string{"queue", "len", "q", "--redis", "ftp://u:pw@x"},
			`sluice: --redis: open: invalid engine URL "ftp://u:xxxxx@x": unsupported scheme (want redis, rediss, redis+cluster, redis+sentinel, file or mem; a directory is file:///abs/dir or file:rel/dir)`},
	} {
		r := cli(t, c.env, "", c.args...).want(t, exitUsage)
		// The message is the last line; a note on the engine may come first.
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if lines[len(lines)-1] != c.want {
			t.Errorf("%v: stderr %q\nwant %q", c.args, r.stderr, c.want)
		}
	}
}

// A wrong value of a serve flag names that flag, once, and no other: not
// the engine's flag (--data-dir, --redis) nor a flag left at its default.
func TestServeBadValueNamesItsFlagOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		flag string
		args []string
	}{
		{"--fsync", []string{"--fsync", "never"}},
		{"--fsync", []string{"--data-dir", dir, "--fsync", "never"}},
		{"--fsync", []string{"--redis", "redis://127.0.0.1:1/0", "--fsync", "ALWAYS"}},
		{"--min-replicas-ack", []string{"--min-replicas-ack", "-1"}},
		{"--min-replicas-ack", []string{"--data-dir", dir, "--min-replicas-ack", "-1"}},
		{"--log-level", []string{"--log-level", "loud"}},
		{"--log-format", []string{"--log-format", "xml"}},
		{"--addr", []string{"--addr", "nowhere"}},
		{"--api-keys", []string{"--api-keys", "a,,b"}},
		{"--max-body-bytes", []string{"--max-body-bytes", "0"}},
		{"--idempotency-window", []string{"--idempotency-window", "0s"}},
		{"--read-header-timeout", []string{"--read-header-timeout", "-1s"}},
		{"--body-timeout", []string{"--body-timeout", "0s"}},
		{"--shutdown-timeout", []string{"--shutdown-timeout", "-1s"}},
		{"--max-stream-clients", []string{"--max-stream-clients", "-1"}},
		{"--max-channels-per-client", []string{"--max-channels-per-client", "-1"}},
		{"--max-subscriptions", []string{"--max-subscriptions", "-1"}},
		{"--client-buffer-bytes", []string{"--client-buffer-bytes", "-1"}},
		{"--max-queues", []string{"--max-queues", "-1"}},
	} {
		r := cli(t, nil, "", append([]string{"serve"}, c.args...)...).want(t, exitUsage)
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		msg := lines[len(lines)-1]
		if strings.Count(msg, c.flag) != 1 || strings.Count(msg, "--") != 1 {
			t.Errorf("%v: message %q names %s other than once, or names another flag", c.args, msg, c.flag)
		}
	}
	r := cli(t, nil, "", "serve", "--data-dir", dir, "--fsync", "never").want(t, exitUsage)
	if want := "sluice: --fsync \"never\": want everysec or always\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}
