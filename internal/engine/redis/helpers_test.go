package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

func splitLines(s string) []string {
	return strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

func unwrapOverflow(t *testing.T, env string) string {
	t.Helper()
	var doc struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(env), &doc); err != nil {
		t.Fatalf("overflow entry %q: %v", env, err)
	}
	return doc.Data
}

func res(accepted bool, length, dropped, moved int64) engine.AddResult {
	return engine.AddResult{Accepted: accepted, QueueLength: length, Dropped: dropped, MovedToDLQ: moved}
}
