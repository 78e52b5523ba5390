package main

import (
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// TestGroupHelp: each command group answers -h with its commands, on
// stdout and with exit status 0, as `sluice help` does.
func TestGroupHelp(t *testing.T) {
	for _, tc := range []struct {
		group string
		want  []string
	}{
		{"queue", []string{"usage: sluice queue <verb>", "queue add QUEUE JSON", "queue clear QUEUE", "--redis URL"}},
		{"dlq", []string{"usage: sluice dlq <verb>", "dlq stats QUEUE", "dlq purge QUEUE --kind", "--data-dir DIR"}},
		{"bench", []string{"usage: sluice bench <suite>", "bench queue|cache|lock|pubsub|http", "sluice bench <suite> -h"}},
	} {
		for _, flag := range []string{"-h", "--help", "help"} {
			t.Run(tc.group+" "+flag, func(t *testing.T) {
				r := cli(t, nil, "", tc.group, flag).want(t, exitOK)
				for _, w := range tc.want {
					if !strings.Contains(r.stdout, w) {
						t.Errorf("%s %s: stdout lacks %q:\n%s", tc.group, flag, w, r.stdout)
					}
				}
				if r.stderr != "" {
					t.Errorf("%s %s: stderr: %s", tc.group, flag, r.stderr)
				}
			})
		}
	}
}

func TestVersionFlags(t *testing.T) {
	want := "sluice " + sluice.Version + " (" + runtime.Version()
	for _, arg := range []string{"version", "--version", "-v"} {
		r := cli(t, nil, "", arg).want(t, exitOK)
		if !strings.HasPrefix(r.stdout, want) {
			t.Errorf("%s: stdout %q, want it to start with %q", arg, r.stdout, want)
		}
	}
}

// TestHelpSpellsFlagsWithTwoDashes: a command's -h lists each flag as
// --name followed by the type of its value, as the README writes them.
func TestHelpSpellsFlagsWithTwoDashes(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"queue", "get", "-h"}, []string{"--timeout duration", "--redis string", "--key-prefix string"}},
		{[]string{"queue", "add", "-h"}, []string{"--policy string", "--max-size int", "--string\n"}},
		{[]string{"queue", "declare", "-h"}, []string{"--max-size int", "--lease duration", "--max-deliveries int", "--json\n"}},
		{[]string{"queue", "delete", "-h"}, []string{"--force\n"}},
		{[]string{"dlq", "list", "-h"}, []string{"--kind string", "--limit int", `(default "overflow")`}},
		{[]string{"serve", "-h"}, []string{"--addr string", "--max-body-bytes int", "--body-timeout duration", "--log-level string"}},
		{[]string{"bench", "queue", "-h"}, []string{"--duration duration", "--json\n", "--goroutines string"}},
	}
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z]`)
	for _, tc := range cases {
		r := cli(t, nil, "", tc.args...).want(t, exitOK)
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: help lacks %q:\n%s", tc.args, w, r.stderr)
			}
		}
		if m := singleDash.FindString(r.stderr); m != "" {
			t.Errorf("%v: help spells a flag with one dash (%q):\n%s", tc.args, m, r.stderr)
		}
	}
}
