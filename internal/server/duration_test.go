package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    string
		unit time.Duration
		want time.Duration
		ok   bool
	}{
		{"1.5s", time.Second, 1500 * time.Millisecond, true},
		{"2m", time.Second, 2 * time.Minute, true},
		{"250ms", time.Millisecond, 250 * time.Millisecond, true},
		{"1h30m", time.Millisecond, 90 * time.Minute, true},
		{"5", time.Second, 5 * time.Second, true},                // ttl, timeout: seconds
		{"0.1", time.Second, 100 * time.Millisecond, true},       // exact, not a float's approximation
		{".5", time.Second, 500 * time.Millisecond, true},        // as strconv.ParseFloat took it
		{"5000", time.Millisecond, 5 * time.Second, true},        // ttl_ms: milliseconds
		{"1.5", time.Millisecond, 1500 * time.Microsecond, true}, // a fraction of the unit
		{"0", time.Second, 0, true},
		{"-1", time.Second, -time.Second, true}, // in range checks, not here
		{"-1s", time.Second, -time.Second, true},
		{"", time.Second, 0, false},
		{"soon", time.Second, 0, false},
		{"5x", time.Second, 0, false},
		{"1e3", time.Second, 0, false},
		{"NaN", time.Second, 0, false},
		{"Inf", time.Second, 0, false},
		{".", time.Second, 0, false},
		{"-", time.Second, 0, false},
		{"9223372036854775807", time.Second, 0, false}, // overflows: an error, not a wrapped value
		{"9223372036854775808ns", time.Second, 0, false},
	} {
		d, err := parseDuration(c.v, c.unit)
		if (err == nil) != c.ok || (c.ok && d != c.want) {
			t.Errorf("parseDuration(%q, %v) = %v, %v; want %v (ok %v)", c.v, c.unit, d, err, c.want, c.ok)
		}
	}
}

// TestDurationParameters runs every route's duration parameter through
// both of its forms at the edges of its range: accepted at the bound,
// refused one unit past it, so each form is shown to count in the unit
// the documentation gives. MaxWait is short so that an accepted wait on
// an empty queue ends at once, and queues hold an item so that gets and
// receives return without waiting.
func TestDurationParameters(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.MaxWait = 100 * time.Millisecond })
	type step struct {
		value  string
		status int // the answer when the value is accepted or refused
	}
	// lockName gives each acquire a lock of its own.
	var locks int
	lockName := func() string { locks++; return fmt.Sprintf("dur-%d", locks) }
	refill := func() {
		b.expect(200, "POST", "/detections", `{"n":1}`)
		b.expect(200, "POST", "/v1/queues/dq/items", `1`)
	}
	cases := []struct {
		route string
		req   func(v string) (status int, body []byte)
		steps []step
	}{
		{
			route: "GET /detections/next?timeout= (seconds)",
			req: func(v string) (int, []byte) {
				refill()
				return b.do("GET", "/detections/next?timeout="+v, nil)
			},
			steps: []step{{"0.1", 200}, {"100ms", 200}, {"0.101", 400}, {"101ms", 400}, {"1m", 400}, {"-1", 400}},
		},
		{
			route: "GET /v1/queues/{name}/next?timeout= (seconds)",
			req: func(v string) (int, []byte) {
				refill()
				return b.do("GET", "/v1/queues/dq/next?timeout="+v, nil)
			},
			steps: []step{{"0.1", 200}, {"0.1s", 200}, {"0.1001", 400}, {"100001us", 400}, {"-1s", 400}, {"forever", 400}},
		},
		{
			route: "POST /v1/queues/{name}/receive?timeout= (seconds)",
			req: func(v string) (int, []byte) {
				refill()
				return b.do("POST", "/v1/queues/dq/receive?timeout="+v, nil)
			},
			steps: []step{{"0", 200}, {"0.1", 200}, {"100ms", 200}, {"0.2", 400}, {"1m", 400}},
		},
		{
			route: "POST /v1/queues/{name}/receive?lease= (seconds)",
			req: func(v string) (int, []byte) {
				refill()
				return b.do("POST", "/v1/queues/dq/receive?lease="+v, nil)
			},
			steps: []step{{"86400", 200}, {"24h", 200}, {"0.001", 200}, {"1ms", 200}, {"1.5s", 200}, {"2m", 200},
				{"86401", 400}, {"24h0m1s", 400}, {"0.0009", 400}, {"0", 400}, {"999us", 400}},
		},
		{
			// An accepted delay reaches the lease lookup: 404 for this id.
			route: "POST /v1/queues/{name}/nack/{id}?delay= (seconds)",
			req: func(v string) (int, []byte) {
				return b.do("POST", "/v1/queues/dq/nack/1.1.0000000000000000?delay="+v, nil)
			},
			steps: []step{{"0", 404}, {"86400", 404}, {"24h", 404}, {"1.5s", 404}, {"2m", 404},
				{"86401", 400}, {"24h1ns", 400}, {"-1", 400}, {"-1s", 400}},
		},
		{
			route: "PUT /v1/cache/{key}?ttl= (seconds)",
			req: func(v string) (int, []byte) {
				return b.do("PUT", "/v1/cache/dur?ttl="+v, `1`)
			},
			steps: []step{{"0", 204}, {"300", 204}, {"31536000", 204}, {"8760h", 204}, {"1.5s", 204}, {"2m", 204},
				{"31536001", 400}, {"8760h0m1s", 400}, {"-5", 400}, {"soon", 400}},
		},
		{
			route: `POST /v1/locks/{name} {"ttl_ms"} (milliseconds)`,
			req: func(v string) (int, []byte) {
				return b.do("POST", "/v1/locks/"+lockName(), `{"ttl_ms": `+v+`}`)
			},
			steps: []step{{"86400000", 200}, {`"86400000"`, 200}, {`"24h"`, 200}, {"1", 200}, {`"1.5s"`, 200}, {`"2m"`, 200},
				{"86400001", 400}, {`"24h0m0.001s"`, 400}, {"0", 400}, {`"0s"`, 400}, {`"500us"`, 400}, {"-1", 400}, {`"soon"`, 400}, {"null", 400}},
		},
		{
			route: `POST /v1/locks/{name} {"wait_ms"} (milliseconds, at most MaxWait)`,
			req: func(v string) (int, []byte) {
				return b.do("POST", "/v1/locks/"+lockName(), `{"ttl_ms": "1m", "wait_ms": `+v+`}`)
			},
			steps: []step{{"0", 200}, {"100", 200}, {`"100ms"`, 200}, {`"0.1s"`, 200}, {"null", 200},
				{"101", 400}, {`"101ms"`, 400}, {"-1", 400}, {`"soon"`, 400}},
		},
		{
			route: `POST /v1/locks/{name}/refresh {"ttl_ms"} (milliseconds)`,
			req: func(v string) (int, []byte) {
				name := lockName()
				token, _ := b.expect(200, "POST", "/v1/locks/"+name, `{"ttl_ms": "1m"}`)["token"].(string)
				return b.do("POST", "/v1/locks/"+name+"/refresh", `{"token": "`+token+`", "ttl_ms": `+v+`}`)
			},
			steps: []step{{"60000", 200}, {`"2m"`, 200}, {`"1.5s"`, 200}, {`"1s", "wait_ms": 0`, 200},
				{"86400001", 400}, {"0", 400}, {`"-1s"`, 400}, {`"1s", "wait_ms": "1s"`, 400}},
		},
	}
	for _, c := range cases {
		for _, s := range c.steps {
			status, body := c.req(s.value)
			if status != s.status {
				t.Errorf("%s with %s: status %d, want %d; body %s", c.route, s.value, status, s.status, body)
				continue
			}
			if msg := string(body); status == 400 && !strings.Contains(msg, "duration") && !strings.Contains(msg, "required") &&
				!strings.Contains(msg, "does not apply") {
				t.Errorf("%s with %s: the 400 does not say what is wanted: %s", c.route, s.value, body)
			}
		}
	}
}

// FuzzParseDuration checks the parser on any text: it never panics, a
// value it accepts is either form read exactly (a Go duration reads back
// from its String, a bare whole number is that many units), and what it
// refuses is the one error routes turn into their 400.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1.5s", "2m", "5", "0.1", ".5", "5000", "-1", "1e3", "NaN", "9223372036854775807",
		"1h2m3.5s", "+3", "1..2", "0x10", "5 s", "µs", "3µs", "-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, unit := range []time.Duration{time.Second, time.Millisecond} {
			d, err := parseDuration(v, unit)
			if err != nil {
				if !errors.Is(err, errNotDuration) {
					t.Fatalf("parseDuration(%q): error %v is not errNotDuration", v, err)
				}
				continue
			}
			back, err := parseDuration(d.String(), unit)
			if err != nil || back != d {
				t.Fatalf("parseDuration(%q) = %v, whose String reads back as %v, %v", v, d, back, err)
			}
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n < 1<<20 && d != time.Duration(n)*unit {
				t.Fatalf("parseDuration(%q, %v) = %v, want %v", v, unit, d, time.Duration(n)*unit)
			}
		}
	})
}
