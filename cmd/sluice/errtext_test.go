package main

import (
	"strings"
	"testing"
)

// Error messages say "sluice: " once, and the flag or setting they concern
// once.
func TestErrorMessages(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"dlq", "list", "q", "--kind", "sideways"},
			`sluice: --kind "sideways": want overflow or failed`},
		{nil, []string{"queue", "add", "q", "{}", "--policy", "sometimes"},
			`sluice: --policy "sometimes": want reject, dlq or drop_oldest`},
		{nil, []string{"queue", "len", "no spaces"},
			`sluice: invalid name: queue name "no spaces" has ' ' at byte 2; allowed: letters, digits and _ . : - { }`},
		{nil, []string{"queue", "len", "q", "--redis", "ftp://u:pw@x"},
			`sluice: --redis: open: invalid engine URL "ftp://u:xxxxx@x": unsupported scheme (want redis, rediss, redis+cluster, redis+sentinel, file or mem; a directory is file:///abs/dir or file:rel/dir)`},
	} {
		r := cli(t, c.env, "", c.args...).want(t, exitUsage)
		// The message is the last line; a note on the engine may come first.
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if lines[len(lines)-1] != c.want {
			t.Errorf("%v: stderr %q\nwant %q", c.args, r.stderr, c.want)
		}
	}
}
