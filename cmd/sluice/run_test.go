package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

func TestVersion(t *testing.T) {
	r := cli(t, nil, "", "version").want(t, exitOK)
	if !strings.Contains(r.stdout, "sluice "+sluice.Version) {
		t.Fatalf("version printed %q", r.stdout)
	}
}

func TestHelp(t *testing.T) {
	r := cli(t, nil, "", "help").want(t, exitOK)
	if !strings.Contains(r.stdout, "queue add QUEUE JSON") {
		t.Fatalf("help printed %q", r.stdout)
	}
	cli(t, nil, "", "queue", "add", "-h").want(t, exitOK)
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		message string // part of stderr
	}{
		{"no command", nil, nil, "usage: sluice"},
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"queue without verb", nil, []string{"queue"}, "missing subcommand"},
		{"unknown queue verb", nil, []string{"queue", "pop", "q"}, `unknown subcommand "pop"`},
		{"add without item", nil, []string{"queue", "add", "q"}, "missing JSON"},
		{"add too many", nil, []string{"queue", "add", "q", "{}", "extra"}, `unexpected argument "extra"`},
		{"add not JSON", nil, []string{"queue", "add", "q", "{nope"}, "not valid JSON"},
		{"add bad policy", nil, []string{"queue", "add", "q", "{}", "--policy", "sometimes"}, "--policy"},
		{"bad queue name", nil, []string{"queue", "len", "no spaces"}, "invalid name"},
		{"unknown flag", nil, []string{"queue", "len", "q", "--verbose"}, "flag provided but not defined"},
		{"bad timeout", nil, []string{"queue", "get", "q", "--timeout", "soon"}, "invalid duration"},
		{"negative timeout", nil, []string{"queue", "get", "q", "--timeout", "-1s"}, "negative duration"},
		{"bad threshold", nil, []string{"queue", "pressure", "q", "--threshold", "2"}, "--threshold"},
		{"two engines", nil, []string{"queue", "len", "q", "--redis", "redis://127.0.0.1:6379/0", "--data-dir", "/tmp/x"}, "--redis and --data-dir"},
		{"two engines in env", map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "SLUICE_DATA_DIR": "/tmp/x"}, []string{"queue", "len", "q"}, "REDIS_URL and SLUICE_DATA_DIR"},
		{"bad QUEUE_MAX_SIZE", map[string]string{"QUEUE_MAX_SIZE": "lots"}, []string{"queue", "len", "q"}, "QUEUE_MAX_SIZE"},
		{"bad QUEUE_OVERFLOW_POLICY", map[string]string{"QUEUE_OVERFLOW_POLICY": "maybe"}, []string{"queue", "len", "q"}, "QUEUE_OVERFLOW_POLICY"},
		{"bad QUEUE_BACKPRESSURE_THRESHOLD", map[string]string{"QUEUE_BACKPRESSURE_THRESHOLD": "1.5"}, []string{"queue", "len", "q"}, "QUEUE_BACKPRESSURE_THRESHOLD"},
		{"bad REDIS_COMPRESSION_ENABLED", map[string]string{"REDIS_COMPRESSION_ENABLED": "sometimes"}, []string{"queue", "len", "q"}, "REDIS_COMPRESSION_ENABLED"},
		{"bad REDIS_COMPRESSION_THRESHOLD", map[string]string{"REDIS_COMPRESSION_THRESHOLD": "-3"}, []string{"queue", "len", "q"}, "REDIS_COMPRESSION_THRESHOLD"},
		{"dlq without verb", nil, []string{"dlq"}, "missing subcommand"},
		{"dlq bad kind", nil, []string{"dlq", "list", "q", "--kind", "sideways"}, "--kind"},
		{"dlq purge needs kind", nil, []string{"dlq", "purge", "q"}, "--kind is required"},
		{"dlq negative count", nil, []string{"dlq", "requeue", "q", "--count", "-1"}, "--count"},
		{"dlq bad limit", nil, []string{"dlq", "list", "q", "--limit", "0"}, "--limit"},
		{"bench without suite", nil, []string{"bench"}, "missing suite"},
		{"bench unknown suite", nil, []string{"bench", "disk"}, `unknown suite "disk"`},
		{"bench bad engine", nil, []string{"bench", "queue", "--engine", "postgres"}, "--engine"},
		{"bench bad duration", nil, []string{"bench", "queue", "--duration", "0"}, "--duration"},
		{"bench bad item size", nil, []string{"bench", "queue", "--item-size", "3"}, "--item-size"},
		{"bench bad goroutines", nil, []string{"bench", "queue", "--goroutines", "1,x"}, "--goroutines"},
		{"serve positional", nil, []string{"serve", "now"}, `unexpected argument "now"`},
		{"serve bad log format", nil, []string{"serve", "--log-format", "xml"}, "--log-format"},
		{"serve bad fsync", nil, []string{"serve", "--fsync", "never"}, `--fsync "never"`},
		{"serve negative replicas", nil, []string{"serve", "--min-replicas-ack", "-1"}, "--min-replicas-ack"},
		{"serve bad addr", map[string]string{"SLUICE_ADDR": "nowhere"}, []string{"serve"}, "SLUICE_ADDR"},
		{"serve empty api key", nil, []string{"serve", "--api-keys", "a,,b"}, "--api-keys"},
		{"serve bad body limit", nil, []string{"serve", "--max-body-bytes", "0"}, "--max-body-bytes"},
		{"serve bad idempotency window", nil, []string{"serve", "--idempotency-window", "0s"}, "--idempotency-window"},
		{"serve bad REDIS_URL", map[string]string{"REDIS_URL": "redis://:pw@host:notaport/0"}, []string{"serve"}, "REDIS_URL: "},
		{"bad --redis scheme", nil, []string{"queue", "len", "q", "--redis", "ftp://x"}, "--redis: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := cli(t, c.env, "", c.args...).want(t, exitUsage)
			if !strings.Contains(r.stderr, c.message) {
				t.Fatalf("stderr %q does not mention %q", r.stderr, c.message)
			}
			if strings.Contains(r.stderr, ":pw@") {
				t.Fatalf("stderr shows a password: %q", r.stderr)
			}
			if c.name != "no command" && strings.Contains(c.name, "add") && r.stdout != "" {
				t.Fatalf("bad arguments printed %q on stdout", r.stdout)
			}
		})
	}
}

func TestRuntimeErrorExitsOne(t *testing.T) {
	t.Parallel()
	// A data dir that is a regular file cannot be opened.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cli(t, nil, "", "queue", "len", "q", "--data-dir", file).want(t, exitFailure)
	if r.stdout != "" || !strings.HasPrefix(r.stderr, "sluice: open embedded engine: ") || !strings.Contains(r.stderr, file) {
		t.Fatalf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestEphemeralEngineSaysSo(t *testing.T) {
	t.Parallel()
	r := cli(t, nil, "", "queue", "len", "q").want(t, exitOK)
	if strings.TrimSpace(r.stdout) != "0" || !strings.Contains(r.stderr, "nothing outlives this command") {
		t.Fatalf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestParseArgsAnywhere(t *testing.T) {
	fs := newFlagSet("t", "t", &strings.Builder{})
	policy := fs.String("policy", "", "")
	n := fs.Int("n", 0, "")
	pos, err := parseArgs(fs, []string{"q", "--policy", "reject", `{"a": 1}`, "-n", "3", "--", "-5", "--policy"})
	if err != nil {
		t.Fatal(err)
	}
	if *policy != "reject" || *n != 3 {
		t.Fatalf("flags: policy %q n %d", *policy, *n)
	}
	want := []string{"q", `{"a": 1}`, "-5", "--policy"}
	if strings.Join(pos, "|") != strings.Join(want, "|") {
		t.Fatalf("positional %q, want %q", pos, want)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]string{"5": "5s", "0.25": "250ms", "1m": "1m0s", "0": "0s"} {
		d, err := parseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1", "-2s"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) accepted", in)
		}
	}
}

func TestDisplayURLRedactsPasswords(t *testing.T) {
	got := displayURL("redis://user:hunter2@127.0.0.1:6379/0")
	if strings.Contains(got, "hunter2") {
		t.Fatalf("displayURL leaked the password: %q", got)
	}
	if displayURL("file:///var/lib/sluice") != "file:///var/lib/sluice" {
		t.Fatal("displayURL changed a file URL")
	}
}

func TestSettingsReachTheClientConfig(t *testing.T) {
	env := map[string]string{
		"REDIS_PASSWORD": "pw", "QUEUE_MAX_SIZE": "0", "QUEUE_OVERFLOW_POLICY": "drop_oldest",
		"QUEUE_BACKPRESSURE_THRESHOLD": "0.5", "REDIS_COMPRESSION_ENABLED": "off", "REDIS_COMPRESSION_THRESHOLD": "2048",
	}
	s, err := loadSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.config("pfx:", nil)
	want := sluice.QueueSettings{MaxSize: sluice.Unbounded, Policy: sluice.PolicyDropOldest, PressureThreshold: 0.5}
	if cfg.Password != "pw" || cfg.KeyPrefix != "pfx:" || cfg.Queue != want ||
		!cfg.DisableCompression || cfg.CompressionThreshold != 2048 {
		t.Fatalf("config %+v", cfg)
	}
	// Nothing set: the documented defaults, compression on.
	s, err = loadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg = s.config("", nil)
	want = sluice.QueueSettings{MaxSize: sluice.DefaultMaxSize, Policy: sluice.DefaultPolicy, PressureThreshold: sluice.DefaultPressureThreshold}
	if cfg.Password != "" || cfg.KeyPrefix != "" || cfg.Queue != want || cfg.DisableCompression {
		t.Fatalf("default config %+v", cfg)
	}
}

// A data directory whose name holds characters that mean something in a
// URL (%, ?, #, space) is used as it is.
func TestDataDirWithURLCharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "100% sure?#1")
	cli(t, nil, "", "queue", "add", "q", `"x"`, "--data-dir", dir).want(t, exitOK)
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		t.Fatalf("data directory %q: %d entries, %v", dir, len(entries), err)
	}
	r := cli(t, nil, "", "queue", "len", "q", "--data-dir", dir).want(t, exitOK)
	if strings.TrimSpace(r.stdout) != "1" {
		t.Fatalf("queue len after an add: %q (stderr %q)", r.stdout, r.stderr)
	}
}
