package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks deploy/sluice.service with systemd-analyze:
// verify (directives, ExecStart) must pass and say nothing of this unit
// (a host's other units may draw remarks of their own), and the offline
// security review must rate the sandbox at most 2.0 of 10 (exposure "OK").
// The unit's ExecStart is pointed at the binary built for the tests,
// since verify checks that the command exists.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	analyze := tool(t, "systemd-analyze", "systemd")
	raw, err := os.ReadFile("sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	const installed = "/usr/local/bin/sluice"
	if !strings.Contains(string(raw), "ExecStart="+installed+" serve") {
		t.Fatalf("sluice.service: ExecStart does not run %s serve", installed)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=sluice", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"} {
		if !strings.Contains(string(raw), "\n"+want+"\n") {
			t.Errorf("sluice.service lacks %s", want)
		}
	}
	unit := filepath.Join(t.TempDir(), "sluice.service")
	writeFile(t, unit, strings.ReplaceAll(string(raw), installed, sluiceBinary(t)))
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || strings.Contains(string(out), "sluice") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
}
