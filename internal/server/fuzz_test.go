package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

var fuzzSeeds = []string{
	``, ` `, `{}`, `[]`, `null`, `1`, `"s"`, `"42"`, `"Z:abc"`, `{"a": [1, {"b": null}]}`, `[1, "two", {}]`,
	`{"a":`, `{} {}`, `"\ud800"`, `1e999`, "\xff\xfe", `{"ttl_ms": 1000, "wait_ms": 5}`, `{"token": "t", "ttl_ms": 1}`, `{"ttl_ms": "1.5s", "wait_ms": "2m"}`,
	`{"type": "subscribe", "channels": ["a", "b"]}`, `{"type": "ping"}`, `{"type": 1}`,
}

func FuzzDecodeItem(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodeItem(body)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		switch x := v.(type) {
		case string:
		case json.RawMessage:
			if !json.Valid(x) || x[0] == '"' {
				t.Fatalf("decoded item %q is not a non-string JSON value", x)
			}
		default:
			t.Fatalf("decoded item of type %T", v)
		}
		if _, err := decodeObject(body); err == nil && body != nil {
			var m map[string]any
			if json.Unmarshal(body, &m) != nil {
				t.Fatalf("decodeObject accepted %q", body)
			}
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := decodeBatch(body)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(body, &arr); err != nil || len(arr) != len(items) {
			t.Fatalf("accepted %q as %d items (%v)", body, len(items), err)
		}
	})
}

func FuzzDecodeLock(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if ttl, wait, err := decodeLockAcquire(body, time.Minute); err == nil {
			if ttl <= 0 || ttl > maxLockTTL || wait < 0 || wait > time.Minute {
				t.Fatalf("accepted ttl %v wait %v", ttl, wait)
			}
		} else if !errors.Is(err, errBadRequest) {
			t.Fatalf("error %v is not a bad request", err)
		}
		if token, ttl, err := decodeLockRefresh(body); err == nil {
			if token == "" || ttl <= 0 || ttl > maxLockTTL {
				t.Fatalf("accepted token %q ttl %v", token, ttl)
			}
		} else if !errors.Is(err, errBadRequest) {
			t.Fatalf("error %v is not a bad request", err)
		}
	})
}

func FuzzDecodeWSCommand(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := decodeWSCommand(data)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		switch cmd.Type {
		case "ping":
		case "subscribe", "unsubscribe":
			if len(cmd.Channels) == 0 {
				t.Fatal("accepted an empty channel list")
			}
			for _, c := range cmd.Channels {
				if validateChannel(c) != nil {
					t.Fatalf("accepted channel %q", c)
				}
			}
		default:
			t.Fatalf("accepted type %q", cmd.Type)
		}
	})
}

func FuzzQueryParams(f *testing.F) {
	for _, s := range []string{"timeout=5", "timeout=5s", "timeout=-1", "timeout=NaN", "timeout=1e308", "start=-3&end=9",
		"count=0", "lease=250ms", "channels=a,b", "channels=,", "kind=failed", "timeout=9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "/?"+q.Encode(), nil)
		p := queryParams(r)
		secs := p.duration("timeout", time.Second, 0, time.Minute)
		dur := p.duration("lease", time.Second, time.Millisecond, time.Hour)
		n := p.int("count", 1, 1, 1000)
		if p.err == nil {
			if secs < 0 || secs > time.Minute || dur < time.Millisecond || dur > time.Hour || n < 1 || n > 1000 {
				t.Fatalf("out of range accepted: %v %v %v", secs, dur, n)
			}
		} else if !errors.Is(p.err, errBadRequest) {
			t.Fatalf("error %v is not a bad request", p.err)
		}
		if chans, err := parseChannels(q.Get("channels"), DefaultLimits().MaxChannelsPerClient); err == nil {
			for _, c := range chans {
				if validateChannel(c) != nil {
					t.Fatalf("accepted channel %q", c)
				}
			}
		}
	})
}

// A declare body either gives settings every engine accepts, or is a 400.
func FuzzDecodeDeclare(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{`{}`, `{"max_size": 100, "policy": "reject"}`, `{"max_size": -1}`,
		`{"lease": "1.5s", "max_deliveries": 3}`, `{"lease": 2500}`, `{"pressure_threshold": 0.5}`,
		`{"policy": "nope"}`, `{"max_size": 1e3}`, `{"lease": "1.0005s"}`, `{"x": 1}`, `{} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := decodeDeclare(body)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if s.MaxSize < -1 || s.MaxSize > 1<<40 {
			t.Fatalf("accepted max_size %d", s.MaxSize)
		}
		if s.Policy != "" {
			if _, err := sluice.ParsePolicy(string(s.Policy)); err != nil {
				t.Fatalf("accepted policy %q", s.Policy)
			}
		}
		if !(s.PressureThreshold >= 0 && s.PressureThreshold <= 1) {
			t.Fatalf("accepted pressure_threshold %v", s.PressureThreshold)
		}
		if s.Lease < 0 || s.Lease > maxLease || s.Lease%time.Millisecond != 0 {
			t.Fatalf("accepted lease %v", s.Lease)
		}
		if s.MaxDeliveries < 0 || s.MaxDeliveries > 1000 {
			t.Fatalf("accepted max_deliveries %d", s.MaxDeliveries)
		}
	})
}
