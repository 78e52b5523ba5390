// Package deploy holds no code: its tests check the deployment files
// beside them (alert rules, dashboard, container recipe, service unit)
// with the real tools, and run the sluice binary built as releases build
// it.
package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// work is a directory for the whole run, readable by everyone: the
// binary built there must run as an unprivileged user too.
var work string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-deploy-")
	if err == nil {
		err = os.Chmod(dir, 0o755) //nolint:gosec // the unprivileged run of the binary must reach it
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	work = dir
	code := 0
	func() {
		defer func() { _ = os.RemoveAll(dir) }()
		code = runLeakChecked(m)
	}()
	os.Exit(code)
}

func runLeakChecked(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// tool returns the path of an external program the test needs. Without
// it the test skips, except under CI=true, where it fails: CI never
// passes by skipping.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (Debian package %s; .ci/run installs it)", name, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s", name, pkg)
	return ""
}

var build struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// sluiceBinary builds cmd/sluice once per run with scripts/build.sh, the
// script the Dockerfile and the release configuration build with.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	tool(t, "bash", "bash")
	build.once.Do(func() {
		build.path = filepath.Join(work, "sluice")
		cmd := exec.Command("bash", "scripts/build.sh", build.path)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "VERSION=0.0.0-test", "COMMIT=0123456789abcdef")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", build.err, build.out)
	}
	return build.path
}
