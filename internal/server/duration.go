package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Every duration a route takes, in the query (ttl, timeout, lease, delay)
// or in a JSON body (ttl_ms, wait_ms), is read by parseDuration: a Go
// duration ("1.5s", "2m", "250ms"), or a bare number in the unit the
// parameter was first given in, so that older clients keep working
// (seconds for ttl, timeout, lease and delay; milliseconds for the _ms
// fields).

// errNotDuration is a value that is neither form.
var errNotDuration = errors.New("not a duration")

// parseDuration reads v as a Go duration or as a bare decimal number of
// unit (time.Second or time.Millisecond). The bare number is read by
// time.ParseDuration too, with the unit's suffix added, so that it is
// exact ("0.1" seconds is 100ms, not a float's approximation) and
// overflow is an error, not a wrapped value.
func parseDuration(v string, unit time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, errNotDuration
	}
	if strings.Trim(v, "+-.0123456789") == "" {
		v += unitSuffix(unit)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errNotDuration
	}
	return d, nil
}

// unitSuffix is the time.ParseDuration suffix of unit.
func unitSuffix(unit time.Duration) string {
	if unit == time.Millisecond {
		return "ms"
	}
	return "s"
}

// unitName names unit in errors.
func unitName(unit time.Duration) string {
	if unit == time.Millisecond {
		return "milliseconds"
	}
	return "seconds"
}

// durationRange checks d against [lo, hi] and words both failures the
// same way for every route; given is the parameter as sent
// (`parameter timeout="soon"`, `"ttl_ms": 0`).
func durationRange(given string, d time.Duration, err error, unit, lo, hi time.Duration) (time.Duration, error) {
	if err != nil || d < lo || d > hi {
		return 0, badRequest("%s: want a duration such as 1.5s or 2m, or a number of %s, from %v to %v",
			given, unitName(unit), lo, hi)
	}
	return d, nil
}

// duration returns a duration query parameter (see parseDuration; a bare
// number counts seconds) in [lo, hi], or def when absent.
func (p *params) duration(name string, def, lo, hi time.Duration) time.Duration {
	v := p.str(name)
	if v == "" {
		return def
	}
	d, err := parseDuration(v, time.Second)
	if d, err = durationRange(fmt.Sprintf("parameter %s=%q", name, v), d, err, time.Second, lo, hi); err != nil {
		if p.err == nil {
			p.err = err
		}
		return def
	}
	return d
}

// msDuration is a JSON body's duration field (ttl_ms, wait_ms): a number
// of milliseconds, or a string holding a Go duration or a number of
// milliseconds. set tells an absent or null field from zero.
type msDuration struct {
	raw string // the JSON text, for errors
	d   time.Duration
	err error
	set bool
}

// UnmarshalJSON keeps a malformed value's error for field, which words it
// with the field's name; only JSON that is not a number or a string fails
// the decode itself.
func (m *msDuration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*m = msDuration{}
		return nil
	}
	m.raw, m.set = string(b), true
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		m.d, m.err = parseDuration(s, time.Millisecond)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		m.d, m.err = parseDuration(string(b), time.Millisecond)
	default:
		return fmt.Errorf("want a number of milliseconds or a duration string, got %s", b)
	}
	return nil
}

// field checks the field named name: required fields must be set and
// above zero; every value must lie in [0, hi].
func (m msDuration) field(name string, required bool, hi time.Duration) (time.Duration, error) {
	if !m.set {
		if required {
			return 0, badRequest("%q is required: a duration such as 1.5s, or a number of milliseconds", name)
		}
		return 0, nil
	}
	lo := time.Duration(0)
	if required {
		lo = time.Millisecond
	}
	return durationRange(fmt.Sprintf("%q: %s", name, m.raw), m.d, m.err, time.Millisecond, lo, hi)
}
