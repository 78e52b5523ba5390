package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestComposeFile checks what compose.yaml promises without a container
// runtime: every file it mounts exists, and Redis runs with the settings
// the README's Production Redis checklist asks for.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	mounts := regexp.MustCompile(`(?m)^\s+- \./([^:]+):`).FindAllStringSubmatch(text, -1)
	if len(mounts) == 0 {
		t.Fatal("compose.yaml mounts no file of deploy/")
	}
	for _, m := range mounts {
		if _, err := os.Stat(filepath.FromSlash(m[1])); err != nil {
			t.Errorf("compose.yaml mounts ./%s: %v", m[1], err)
		}
	}
	for _, want := range []string{
		"--appendonly\n      - \"yes\"", "--maxmemory-policy\n      - noeviction",
		"REDIS_URL: redis://redis:6379/0", `SLUICE_DATA_DIR: ""`, "context: ..",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("compose.yaml lacks %q", want)
		}
	}
	if _, err := os.Stat("../Dockerfile"); err != nil {
		t.Errorf("compose.yaml builds ..: %v", err)
	}
}
