package engine

import (
	"encoding/json"
	"testing"
)

// Expected strings are json.dumps output of CPython 3.11 for the same dict.
func TestOverflowEnvelopeMatchesPython(t *testing.T) {
	cases := []struct{ queue, stored, want string }{
		{"q", `{"a": 1}`, `{"original_queue": "q", "data": "{\"a\": 1}", "reason": "queue_overflow", "overflow_policy": "dlq"}`},
		{"cam:1", "plain/text\n", `{"original_queue": "cam:1", "data": "plain/text\n", "reason": "queue_overflow", "overflow_policy": "dlq"}`},
		{"q", "é😀\x7f\x1f\\", `{"original_queue": "q", "data": "\u00e9\ud83d\ude00\u007f\u001f\\", "reason": "queue_overflow", "overflow_policy": "dlq"}`},
	}
	for _, tc := range cases {
		if got := OverflowEnvelope(tc.queue, tc.stored); got != tc.want {
			t.Errorf("OverflowEnvelope(%q, %q)\n got %s\nwant %s", tc.queue, tc.stored, got, tc.want)
		}
	}
}

func TestFailedEnvelope(t *testing.T) {
	e := FailedEntry{Queue: "jobs", Stored: `{"id": 7}`, Error: "boom", AttemptCount: 5,
		FirstFailedAt: "2026-11-25T22:10:00.000000+00:00", LastFailedAt: "2026-11-25T22:11:00.000000+00:00"}
	want := `{"original_job": {"id": 7}, "error": "boom", "attempt_count": 5, "first_failed_at": "2026-11-25T22:10:00.000000+00:00", "last_failed_at": "2026-11-25T22:11:00.000000+00:00", "queue_name": "jobs", "data": "{\"id\": 7}"}`
	if got := FailedEnvelope(e); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	e.Stored = "Z:abc"
	var m map[string]any
	if err := json.Unmarshal([]byte(FailedEnvelope(e)), &m); err != nil || m["original_job"] != "Z:abc" || m["data"] != "Z:abc" {
		t.Fatalf("string job: %v %v", m, err)
	}
}

func FuzzPyJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "é", "😀", "\x00\xff", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := PyJSONString(s)
		var back string
		if err := json.Unmarshal([]byte(q), &back); err != nil {
			t.Fatalf("PyJSONString(%q) = %s: %v", s, q, err)
		}
		want := string([]rune(s)) // invalid UTF-8 becomes U+FFFD, as in Go's decoding
		if back != want {
			t.Fatalf("round trip %q -> %s -> %q", s, q, back)
		}
	})
}
