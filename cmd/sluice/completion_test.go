package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionCoversUsage: every command of the usage text completes,
// so a new command cannot be forgotten in the completion table.
func TestCompletionCoversUsage(t *testing.T) {
	r := cli(t, nil, "", "completion", "bash").want(t, 0)
	top := (&env{getenv: func(string) string { return "" }}).topCommands(t.Context())
	known := map[string]bool{}
	for _, c := range top {
		known[c.name] = true
	}
	for _, word := range usageCommands(usageText) {
		if !known[word] {
			t.Errorf("usage lists %q, the completion does not", word)
		}
	}
	if len(usageCommands(usageText)) < 20 || !known["help"] || !known["queue"] {
		t.Errorf("the usage text's command list was not found: %q", usageCommands(usageText))
	}
	for _, w := range []string{`words="serve queue dlq`, `inflight) flags="--api-key --cursor`, "--env-file", "complete -o default -F _sluice sluice"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("bash script lacks %q", w)
		}
	}
	got := usageCommands("usage: x\n\ncommands:\n  a B [--c]\n  d E --f | --g\n                 what d does\n  a h\n\nmore text\n  z\n")
	if strings.Join(got, " ") != "a d a" {
		t.Errorf("usageCommands: %q, want a d a", got)
	}
	cli(t, nil, "", "completion", "tcsh").want(t, exitUsage)
	cli(t, nil, "", "completion").want(t, exitUsage)
	cli(t, nil, "", "completion", "-h").want(t, 0)
}

// TestCompletionScriptsParse checks each script with its shell's syntax
// check, for the shells installed here.
func TestCompletionScriptsParse(t *testing.T) {
	for _, tc := range []struct {
		shell string
		check []string // the shell's arguments that check a file's syntax
	}{
		{"bash", []string{"-n"}},
		{"zsh", []string{"-n"}},
		{"fish", []string{"--no-execute"}},
	} {
		t.Run(tc.shell, func(t *testing.T) {
			path, err := exec.LookPath(tc.shell)
			if err != nil {
				t.Skipf("%s is not installed: its completion script is not checked", tc.shell)
			}
			script := cli(t, nil, "", "completion", tc.shell).want(t, 0).stdout
			file := filepath.Join(t.TempDir(), "sluice."+tc.shell)
			if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(path, append(tc.check, file)...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", tc.shell, tc.check, err, out)
			}
		})
	}
	// bash completes for real: the words it offers at a few positions.
	if _, err := exec.LookPath("bash"); err != nil {
		return
	}
	script := cli(t, nil, "", "completion", "bash").want(t, 0).stdout
	for _, tc := range []struct {
		words string
		want  string
	}{
		{"sluice qu", "queue"},
		{"sluice queue in", "inflight info"},
		{"sluice dlq stats q --j", "--json"},
		{"sluice queue len q --u", "--url"},
		{"sluice completion z", "zsh"},
	} {
		prog := script + `
COMP_WORDS=(` + tc.words + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_sluice
echo "${COMPREPLY[*]}"
`
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("%q: %q (%v), want %q", tc.words, out, err, tc.want)
		}
	}
}
