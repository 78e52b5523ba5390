package embedded

// match reports whether s matches the glob pattern with the semantics of
// Redis's stringmatchlen (PSUBSCRIBE, KEYS): '*' any run of bytes, '?' one
// byte, "[...]" a byte from a set with ranges ("a-z", reversed ranges
// accepted) and '^' negation, '\' escaping the next byte inside and outside
// sets. Matching is on bytes, case-sensitive. Malformed patterns behave as
// Redis makes them behave: an unclosed '[' set ends at the pattern's end,
// and a trailing '\' matches a literal backslash.
func match(pattern, s string) bool {
	skip := false
	return matchAt(pattern, s, &skip, 0)
}

// maxGlobNesting bounds the recursion on '*', as Redis does, so that a
// pathological pattern cannot exhaust the stack.
const maxGlobNesting = 1000

// matchAt matches p against s. skipLonger is set once a '*' found no
// match for the rest of the pattern anywhere in the rest of the string:
// then no earlier '*' can match either, which keeps patterns with many
// stars linear instead of exponential.
func matchAt(p, s string, skipLonger *bool, nesting int) bool {
	if nesting > maxGlobNesting {
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if matchAt(p[1:], s, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			var ok bool
			p, ok = matchSet(p[1:], s[0])
			if !ok {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		// p[0] is the last byte of the element just matched.
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// matchSet matches c against the set whose body starts p (after '['). It
// returns p positioned on the set's closing ']' (or on its last byte when
// the set is unclosed), so the caller's step past one byte leaves the set.
func matchSet(p string, c byte) (string, bool) {
	negate := len(p) > 0 && p[0] == '^'
	if negate {
		p = p[1:]
	}
	matched := false
	for {
		if len(p) == 0 {
			// Unclosed: Redis steps back one byte so the caller's advance
			// lands at the end of the pattern.
			p = " "
			break
		}
		if p[0] == '\\' && len(p) >= 2 {
			p = p[1:]
			if p[0] == c {
				matched = true
			}
		} else if p[0] == ']' {
			break
		} else if len(p) >= 3 && p[1] == '-' {
			// Redis compares these as C chars, signed on the platforms it
			// mostly runs on; keep that for bytes >= 0x80.
			lo, hi, x := int(int8(p[0])), int(int8(p[2])), int(int8(c))
			if lo > hi {
				lo, hi = hi, lo
			}
			p = p[2:]
			if x >= lo && x <= hi {
				matched = true
			}
		} else if p[0] == c {
			matched = true
		}
		p = p[1:]
	}
	if negate {
		matched = !matched
	}
	return p, matched
}
