package server

import (
	"strings"
	"testing"
)

// TestEngineUpMetric: the engine's health is a gauge, so an alert can tell
// an engine that stopped answering from queues that went quiet.
func TestEngineUpMetric(t *testing.T) {
	t.Parallel()
	c := openClient(t, "embedded")
	b := start(t, c, nil)
	scrape := func() string {
		code, body := b.do("GET", "/metrics", nil)
		if code != 200 {
			t.Fatalf("metrics: %d", code)
		}
		return string(body)
	}
	if text := scrape(); !strings.Contains(text, "\nsluice_engine_up 1\n") || !strings.Contains(text, "\nsluice_engine_warnings ") {
		t.Fatalf("metrics of a healthy engine lack sluice_engine_up 1 or sluice_engine_warnings:\n%s", grepLines(text, "sluice_engine_"))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if text := scrape(); !strings.Contains(text, "\nsluice_engine_up 0\n") {
		t.Fatalf("metrics of a closed engine lack sluice_engine_up 0:\n%s", grepLines(text, "sluice_engine_"))
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
