package server

import (
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/sluicehq/sluice"
)

// One rule holds for every route and engine: text that is not UTF-8 is the
// client's mistake (400), wherever it is sent (path, query, body, WebSocket
// message), and it is never stored with its bad bytes replaced by U+FFFD,
// which is what decoding it into a Go string would silently do.

// badText is the 400 for text that is not UTF-8; it matches
// sluice.ErrInvalidUTF8 as the library's own refusals do.
func badText(what string, b []byte) error {
	off := invalidUTF8At(b)
	return fmt.Errorf("%w: %s is %w (first bad byte at offset %d)", errBadRequest, what, sluice.ErrInvalidUTF8, off)
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// checkRequestText checks the request's path (after percent-decoding) and
// query. A query that does not parse is refused too: r.URL.Query would
// drop the malformed pairs silently, so a misspelt escape in, say,
// ?timeout= would quietly become the default.
func checkRequestText(r *http.Request) error {
	if !utf8.ValidString(r.URL.Path) {
		return badText("the path (percent-decoded)", []byte(r.URL.Path))
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("malformed query string: %v (a literal %% must be sent as %%25)", err)
	}
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return badText("a query parameter name", []byte(k))
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return badText(fmt.Sprintf("query parameter %s", k), []byte(v))
			}
		}
	}
	return nil
}

// loneSurrogate reports whether the JSON string literal raw holds a \u
// escape of a UTF-16 surrogate that is not part of a pair. Such a string
// is valid JSON but not Unicode text; decoding it yields U+FFFD.
func loneSurrogate(raw []byte) bool {
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // an escaped character, maybe a backslash
			continue
		}
		r, ok := hex4(raw, i+2)
		switch {
		case !ok:
			return false // not valid JSON; the decoder reports it
		case r >= 0xD800 && r < 0xDC00:
			lo, ok := rune(0), false
			if i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				lo, ok = hex4(raw, i+8)
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
