package compattest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFixturesAreCurrent regenerates the fixtures with python3 and fails
// when they differ from the committed ones. Without python3 it skips,
// except under CI=true, where the fixtures must be checked.
func TestFixturesAreCurrent(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is not installed; CI must check the Python-generated fixtures")
		}
		t.Skip("python3 is not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command(python, filepath.Join("..", "..", "scripts", "compat-fixtures.py"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/compat-fixtures.py: %v\n%s", err, out)
	}
	for name, committed := range map[string][]byte{"python_json.json": jsonFixtures, "python_envelopes.json": envelopeFixtures} {
		fresh, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("%s is not what scripts/compat-fixtures.py writes now: run it and commit the result", name)
		}
	}
}
