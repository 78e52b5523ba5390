package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	got, err := parseEnvFile("# settings\n\nREDIS_URL=redis://:pw@h:6379/0\r\nexport QUEUE_MAX_SIZE = 5 # a comment\n" +
		"A='single # kept $HOME'\nB=\"dq \\\"x\\\" \\\\ \\n end\" # c\nC=\nD=a#b\nA2=last\nA2=wins\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"REDIS_URL": "redis://:pw@h:6379/0", "QUEUE_MAX_SIZE": "5", "A": "single # kept $HOME",
		"B": "dq \"x\" \\ \n end", "C": "", "D": "a#b", "A2": "wins",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"NOEQUALS secret1", "1X=secret1", "A B=secret1", "P='secret1", "P=\"secret1", "P='x' secret1"} {
		_, err := parseEnvFile("OK=1\n" + bad + "\n")
		if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "secret1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// maxSizeOf runs `queue pressure q` and returns the max_size it printed.
func maxSizeOf(t *testing.T, env map[string]string, extra ...string) string {
	t.Helper()
	r := cli(t, env, "", append([]string{"queue", "pressure", "q"}, extra...)...).want(t, 0)
	i := strings.Index(r.stdout, `"max_size":`)
	if i < 0 {
		t.Fatalf("no max_size: %s", r.stdout)
	}
	v, _, _ := strings.Cut(r.stdout[i+len(`"max_size":`):], ",")
	return v
}

// Precedence: flag > environment > env file > default. Not parallel: it
// changes the working directory.
func TestEnvFilePrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	noEnv := map[string]string{}
	if got := maxSizeOf(t, noEnv); got != "10000" {
		t.Fatalf("no .env: max_size %s", got)
	}
	if err := os.WriteFile(".env", []byte("QUEUE_MAX_SIZE=7\nREDIS_PASSWORD=hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := maxSizeOf(t, noEnv); got != "7" {
		t.Fatalf(".env: max_size %s", got)
	}
	env := map[string]string{"QUEUE_MAX_SIZE": "8"}
	if got := maxSizeOf(t, env); got != "8" {
		t.Fatalf("environment over .env: max_size %s", got)
	}
	if got := maxSizeOf(t, env, "--max-size", "9"); got != "9" {
		t.Fatalf("flag over environment: max_size %s", got)
	}
	other := filepath.Join(dir, "other.env")
	if err := os.WriteFile(other, []byte("QUEUE_MAX_SIZE=11\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := maxSizeOf(t, noEnv, "--env-file", other); got != "11" {
		t.Fatalf("--env-file: max_size %s", got)
	}
	if got := maxSizeOf(t, noEnv, "--env-file="+other); got != "11" {
		t.Fatalf("--env-file=: max_size %s", got)
	}

	// A named file must exist; the default may be absent.
	r := cli(t, noEnv, "", "queue", "len", "q", "--env-file", filepath.Join(dir, "missing.env")).want(t, exitUsage)
	if !strings.Contains(r.stderr, "missing.env") || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("missing file: %q", r.stderr)
	}
	// A broken file names the line, not the text; version still works.
	if err := os.WriteFile(".env", []byte("REDIS_PASSWORD='hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, noEnv, "", "queue", "len", "q").want(t, exitUsage)
	if !strings.Contains(r.stderr, `".env": line 1`) || strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("broken .env: %q", r.stderr)
	}
	cli(t, noEnv, "", "version").want(t, 0)
	if err := os.Remove(".env"); err != nil {
		t.Fatal(err)
	}
	cli(t, noEnv, "", "queue", "len", "q").want(t, 0)
}

func TestEnvFileArg(t *testing.T) {
	rest, path, explicit, err := envFileArg([]string{"queue", "add", "q", "--env-file", "x.env", "--", "--env-file"})
	if err != nil || path != "x.env" || !explicit || !reflect.DeepEqual(rest, []string{"queue", "add", "q", "--", "--env-file"}) {
		t.Fatalf("%q %q %v %v", rest, path, explicit, err)
	}
	if _, _, _, err := envFileArg([]string{"queue", "len", "--env-file"}); exitCode(err) != exitUsage {
		t.Fatalf("missing value: %v", err)
	}
}
