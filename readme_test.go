package sluice_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlock matches a fenced ```go block of a Markdown file.
var goBlock = regexp.MustCompile("(?ms)^```go\n(.*?)^```\n")

// readmeGoBlocks returns the Go blocks of a Markdown file, each a complete
// source file.
func readmeGoBlocks(t *testing.T, path string) []string {
	t.Helper()
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range goBlock.FindAllStringSubmatch(string(md), -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

func TestReadmeGoBlocksAreFound(t *testing.T) {
	blocks := readmeGoBlocks(t, "README.md")
	if len(blocks) < 2 {
		t.Fatalf("found %d Go blocks in README.md, want the quick start and the idempotency example", len(blocks))
	}
	for i, b := range blocks {
		if !strings.HasPrefix(b, "package ") {
			t.Errorf("README.md Go block %d does not start with a package clause: it must be a complete file so that it compiles as written:\n%s", i+1, b)
		}
	}
}

// TestReadmeCompiles builds and vets every Go block of README.md as its own
// package, in a module that uses this one through a replace directive, so
// that what a reader copies compiles as written. It needs the go command
// and the module cache of this module's dependencies (no network: the
// proxy is off).
func TestReadmeCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeGoBlocks(t, "README.md")
	dir := t.TempDir()
	gomod := fmt.Sprintf("module readme\n\ngo 1.26.0\n\nrequire github.com/sluicehq/sluice v0.0.0\n\nreplace github.com/sluicehq/sluice => %s\n", root)
	writeTestFile(t, filepath.Join(dir, "go.mod"), gomod)
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "go.sum"), string(sum))
	for i, b := range blocks {
		writeTestFile(t, filepath.Join(dir, fmt.Sprintf("block%d", i+1), "main.go"), b)
	}
	for _, args := range [][]string{{"vet", "./..."}} {
		cmd := exec.Command(gobin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("go %s on the README's Go blocks: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
