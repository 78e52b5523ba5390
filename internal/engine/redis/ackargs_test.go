package redis

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzAckArgs holds newAckArgs to what lease_ack_batch.lua expects of any
// list of ids: a count of single ids and that many, then groups whose
// request string and tokens agree, and every id used at most once.
func FuzzAckArgs(f *testing.F) {
	tok := "0123456789abcdef"
	f.Add("12.1."+tok, "b7.2."+tok, "b7.1."+tok)
	f.Add("b7.1000."+tok, "b7.1000."+tok, "b0.1."+tok)
	f.Add("", "b", "b..")
	f.Fuzz(func(t *testing.T, x, y, z string) {
		ids := []string{x, y, z, x}
		a := newAckArgs(ids)
		ns, err := strconv.Atoi(a.args[0])
		if err != nil || ns != len(a.singles) || 1+ns+3*len(a.groups) != len(a.args) {
			t.Fatalf("args %q for %d singles and %d groups", a.args, len(a.singles), len(a.groups))
		}
		used := map[int]bool{}
		for i, at := range a.singles {
			if a.args[1+i] != ids[at] || used[at] {
				t.Fatalf("single %d = %q, id %d = %q", i, a.args[1+i], at, ids[at])
			}
			used[at] = true
		}
		for g, grp := range a.groups {
			req, toks := a.args[1+ns+3*g+1], a.args[1+ns+3*g+2]
			if len(req) != len(grp.at) || len(req) > maxBatchIndex || len(toks) != tokenHex*strings.Count(req, "1") {
				t.Fatalf("group %d: request %q, %d token bytes, %v", g, req, len(toks), grp.at)
			}
			for j, at := range grp.at {
				if (at >= 0) != (req[j] == '1') || (at >= 0 && used[at]) {
					t.Fatalf("group %d index %d: at %d, request %q", g, j+1, at, req)
				}
				if at >= 0 {
					used[at] = true
				}
			}
		}
	})
}
