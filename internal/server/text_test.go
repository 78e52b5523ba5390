package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestInvalidUTF8IsRefusedEverywhere holds every route and both engines to
// one rule: text that is not UTF-8 (or a JSON string that is not Unicode)
// is a 400 JSON error, and nothing is stored, with U+FFFD or otherwise.
func TestInvalidUTF8IsRefusedEverywhere(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, method, path, body string
		want                     string // in the error message
	}{
		{"detection", "POST", "/detections", "{\"a\": \"\xff\"}", "UTF-8"},
		{"add string", "POST", "/v1/queues/q/items", "\"\xff\"", "UTF-8"},
		{"add object", "POST", "/v1/queues/q/items", "{\"a\": \"x\xc3\"}", "UTF-8"},
		{"add lone surrogate", "POST", "/v1/queues/q/items", `"\ud800"`, "surrogate"},
		{"add lone low surrogate", "POST", "/v1/queues/q/items", `"a\udc00b"`, "surrogate"},
		{"add reversed pair", "POST", "/v1/queues/q/items", `"\ude00\ud83d"`, "surrogate"},
		{"batch string", "POST", "/v1/queues/q/batch", "[\"ok\", \"\xfe\"]", "UTF-8"},
		{"batch object", "POST", "/v1/queues/q/batch", "[{\"a\": \"\xff\"}]", "UTF-8"},
		{"batch lone surrogate", "POST", "/v1/queues/q/batch", `["ok", "\ud83d"]`, "surrogate"},
		{"publish string", "POST", "/v1/channels/c/messages", "\"\xff\"", "UTF-8"},
		{"publish object", "POST", "/v1/channels/c/messages", "{\"a\": \"\xff\"}", "UTF-8"},
		{"publish lone surrogate", "POST", "/v1/channels/c/messages", `"\udfff"`, "surrogate"},
		{"cache string", "PUT", "/v1/cache/k", "\"\xff\"", "UTF-8"},
		{"cache object", "PUT", "/v1/cache/k", "{\"a\": \"\xed\xa0\x80\"}", "UTF-8"},
		{"lock body", "POST", "/v1/locks/l", "{\"ttl_ms\": 1000, \"x\": \"\xff\"}", "UTF-8"},
		{"lock refresh body", "POST", "/v1/locks/l/refresh", "{\"token\": \"\xff\", \"ttl_ms\": 1000}", "UTF-8"},
		{"channel name", "POST", "/v1/channels/c%FF/messages", `1`, "UTF-8"},
		{"cache key put", "PUT", "/v1/cache/k%FF", `1`, "UTF-8"},
		{"cache key get", "GET", "/v1/cache/k%C3", "", "UTF-8"},
		{"lock name", "POST", "/v1/locks/l%FF", `{"ttl_ms": 1000}`, "UTF-8"},
		{"delivery id", "POST", "/v1/queues/q/ack/1%FF", "", "UTF-8"},
		{"nack reason", "POST", "/v1/queues/q/nack/1.1?reason=%FF", "", "UTF-8"},
		{"lock token", "DELETE", "/v1/locks/l?token=%FF", "", "UTF-8"},
		{"sse channels", "GET", "/v1/events?channels=a%FF", "", "UTF-8"},
		{"websocket channels", "GET", "/v1/ws?channels=a%FF", "", "UTF-8"},
		{"query name", "GET", "/v1/queues/q/items?%FF=1", "", "UTF-8"},
		{"malformed query", "GET", "/v1/queues/q/items?start=%zz", "", "malformed query"},
	}
	engines(t, nil, func(t *testing.T, b *bundle) {
		for _, c := range cases {
			var body any
			if c.body != "" {
				body = c.body
			}
			msg := b.expectError(400, c.method, c.path, body)
			if !strings.Contains(msg, c.want) {
				t.Errorf("%s: %s %s: error %q does not mention %q", c.name, c.method, c.path, msg, c.want)
			}
		}
		// Nothing was stored by any of them.
		if m := b.expect(200, "GET", "/v1/queues/q", nil); m["current_length"] != 0.0 {
			t.Errorf("queue q after refused adds: %v", m)
		}
		if m := b.expect(200, "GET", "/v1/queues/"+DetectionsQueue, nil); m["current_length"] != 0.0 {
			t.Errorf("detections after a refused add: %v", m)
		}
		b.expectError(404, "GET", "/v1/cache/k", nil)
		b.expect(200, "POST", "/v1/locks/l", `{"ttl_ms": 1000}`)
	})
}

// TestValidUnicodeIsKept checks the other side of the rule: U+FFFD sent
// on purpose, escaped or not, and surrogate pairs are stored as sent.
func TestValidUnicodeIsKept(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		for _, c := range []struct{ body, want string }{
			{`"\ufffd"`, "\ufffd"},
			{"\"\xef\xbf\xbd raw\"", "\ufffd raw"},
			{`"\ud83d\ude00"`, "\U0001F600"},
			{`"\\ud800 is text"`, `\ud800 is text`},
		} {
			b.expect(200, "POST", "/v1/queues/u/items", c.body)
			m := b.expect(200, "GET", "/v1/queues/u/next", nil)
			if m["item"] != c.want {
				t.Errorf("add %s: got back %q, want %q", c.body, m["item"], c.want)
			}
		}
	})
}

func TestWebSocketRefusesInvalidUTF8(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	c := b.dial("/v1/ws")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("{\"type\": \"subscribe\", \"channels\": [\"a\xff\"]}")); err != nil {
		t.Fatal(err)
	}
	m := wsRead(t, c)
	if m["type"] != "error" || !strings.Contains(m["error"].(string), "UTF-8") {
		t.Fatalf("reply to a subscribe with invalid UTF-8: %v", m)
	}
}

func TestLoneSurrogate(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		`"plain"`:              false,
		`"\ud83d\ude00"`:       false,
		`"\uD83D\uDE00"`:       false,
		`"\ud800"`:             true,
		`"\udc00"`:             true,
		`"\ud800x"`:            true,
		`"\ud800\u0041"`:       true,
		`"\ud800\ud800"`:       true,
		`"\\ud800"`:            false, // an escaped backslash, then text
		`"\\\ud800"`:           true,
		`"a\"\ud83d\ude00\"b"`: false,
		`"\ud83d\ude00\udc00"`: true,
		`"\ufffd\u0000\u20ac"`: false,
		`"\ud800\`:             true,
		`"\u12"`:               false, // not JSON; the decoder says so
	} {
		if got := loneSurrogate([]byte(raw)); got != want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", raw, got, want)
		}
	}
}
