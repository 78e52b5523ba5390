package embedded

import "testing"

// Cases marked "redis" were checked against a real server with PSUBSCRIBE
// and PUBLISH.
func TestMatchTable(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "anything", true},
		{"*", "", false}, // redis: PUBLISH "" reaches no "*" subscriber
		{"", "", true},
		{"", "a", false},
		{"a*", "a", true},
		{"a*", "abc", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbb", false},
		{"*.jobs", "user.jobs", true},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, // reversed range
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{`[\]]`, "]", true},
		{`[\-]`, "-", true},
		{"[", "[", false},   // redis: an unclosed empty set matches nothing
		{"x[", "x[", false}, // redis
		{"x[", "x]", false}, // redis
		{`\`, `\`, true},    // redis: a trailing backslash is literal
		{`a\`, `a\`, true},  // redis
		{"[a", "a", true},   // unclosed set still matches its members
		{"[a", "ab", false},
		{"[]a]", "]", false}, // ']' right after '[' closes an empty set
		{"[]a]", "a]", false},
		{"a**b", "ab", true},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*d", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbccccccccccccccccc", false},
		{"[a-]", "-", false}, // "a-]" is the range a..] (reversed), and the set stays unclosed
	}
	for _, c := range cases {
		if got := match(c.pattern, c.s); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
		if got := refMatch(c.pattern, c.s); got != c.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (reference disagrees with the table)", c.pattern, c.s, got, c.want)
		}
	}
}

// FuzzMatch checks the matcher against an independent reference: the
// pattern is first parsed into elements by Redis's rules, then matched by
// dynamic programming, which needs none of the matcher's shortcuts.
func FuzzMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"*", "abc"}, {"a?c", "abc"}, {"[a-c]*", "b"}, {"[^a]", "b"}, {`\[`, "["},
		{"[", "a"}, {"*[", "x"}, {`[\`, `\`}, {"**?*", "ab"}, {"[z-a]", "m"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 64 {
			return
		}
		if got, want := match(pattern, s), refMatch(pattern, s); got != want {
			t.Fatalf("match(%q, %q) = %v, reference says %v", pattern, s, got, want)
		}
	})
}

type globElem struct {
	kind   byte // 'l' literal, '?' any, '*' star, '[' set
	lit    byte
	set    func(c byte) bool
	negate bool
}

func parseGlob(p string) []globElem {
	var out []globElem
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*':
			out = append(out, globElem{kind: '*'})
		case '?':
			out = append(out, globElem{kind: '?'})
		case '[':
			i++
			neg := i < len(p) && p[i] == '^'
			if neg {
				i++
			}
			type rng struct{ lo, hi int }
			var members []rng
			// An unclosed set ends with the pattern.
			for i < len(p) {
				if p[i] == '\\' && i+1 < len(p) {
					i++
					members = append(members, rng{int(int8(p[i])), int(int8(p[i]))})
				} else if p[i] == ']' {
					break
				} else if i+2 < len(p) && p[i+1] == '-' {
					lo, hi := int(int8(p[i])), int(int8(p[i+2]))
					if lo > hi {
						lo, hi = hi, lo
					}
					members = append(members, rng{lo, hi})
					i += 2
				} else {
					members = append(members, rng{int(int8(p[i])), int(int8(p[i]))})
				}
				i++
			}
			out = append(out, globElem{kind: '[', negate: neg, set: func(c byte) bool {
				x := int(int8(c))
				for _, m := range members {
					if x >= m.lo && x <= m.hi {
						return true
					}
				}
				return false
			}})
		case '\\':
			if i+1 < len(p) {
				i++
			}
			out = append(out, globElem{kind: 'l', lit: p[i]})
		default:
			out = append(out, globElem{kind: 'l', lit: p[i]})
		}
	}
	return out
}

func refMatch(pattern, s string) bool {
	if s == "" {
		// Redis never enters its loop for an empty string: only the empty
		// pattern matches it.
		return pattern == ""
	}
	el := parseGlob(pattern)
	// m[i][j]: el[i:] matches s[j:].
	m := make([][]bool, len(el)+1)
	for i := range m {
		m[i] = make([]bool, len(s)+1)
	}
	m[len(el)][len(s)] = true
	for i := len(el) - 1; i >= 0; i-- {
		for j := len(s); j >= 0; j-- {
			e := el[i]
			if e.kind == '*' {
				m[i][j] = m[i+1][j] || (j < len(s) && m[i][j+1])
				continue
			}
			if j == len(s) {
				continue
			}
			ok := false
			switch e.kind {
			case 'l':
				ok = e.lit == s[j]
			case '?':
				ok = true
			case '[':
				ok = e.set(s[j]) != e.negate
			}
			m[i][j] = ok && m[i+1][j+1]
		}
	}
	return m[0][0]
}
