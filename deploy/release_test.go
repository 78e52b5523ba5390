package deploy

import (
	"os"
	"strings"
	"testing"
)

// TestReleaseBuildsLikeTheScript: the release configuration builds with
// the flags of scripts/build.sh (which the image and these tests use), so
// a released binary is the one that was tested; and it builds the four
// platforms with checksums.
func TestReleaseBuildsLikeTheScript(t *testing.T) {
	t.Parallel()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	script, release := read("../scripts/build.sh"), read("../.goreleaser.yaml")
	for _, flag := range []string{"CGO_ENABLED=0", "-trimpath", `-s -w -X main.version=`, " -X main.commit=", "./cmd/sluice"} {
		if !strings.Contains(script, flag) {
			t.Errorf("scripts/build.sh lacks %q", flag)
		}
		if !strings.Contains(release, strings.TrimPrefix(flag, ".")) {
			t.Errorf(".goreleaser.yaml lacks %q, which scripts/build.sh builds with", flag)
		}
	}
	for _, want := range []string{"goos: [linux, darwin]", "goarch: [amd64, arm64]", "algorithm: sha256", "version: 2"} {
		if !strings.Contains(release, want) {
			t.Errorf(".goreleaser.yaml lacks %q", want)
		}
	}
}
