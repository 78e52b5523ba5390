package redis

import (
	"strconv"
	"strings"
)

// ackArgs are the arguments of lease_ack_batch.lua for a list of delivery
// ids, and how to read its reply back into one result per id. Ids are
// parsed here, where it is cheap, rather than by Lua patterns in the
// script, where matching an id costs more than settling it: single ids go
// as they are, items of one batch as one group (its seq, the indices asked
// for and their tokens), which the script checks at once.
type ackArgs struct {
	args []string
	// singles[i] is the position in ids of the i-th single id.
	singles []int
	groups  []ackGroup
}

// ackGroup is the items of one batch in one ack: at[j] is the position in
// ids of index j+1, or -1 when it is not asked for.
type ackGroup struct {
	at []int
}

// maxBatchIndex is the most items in one leased batch (batch_max in
// scripts/batch.lua).
const maxBatchIndex = 1000

func newAckArgs(ids []string) ackArgs {
	var a ackArgs
	type group struct {
		at   []int
		toks []string
	}
	var order []string
	groups := map[string]*group{}
	a.args = append(a.args, "") // the count of single ids, set below
	for i, id := range ids {
		if id == "" || id[0] != 'b' {
			if isSingleID(id) {
				a.singles = append(a.singles, i)
				a.args = append(a.args, id)
			}
			continue
		}
		bseq, j, tok, ok := parseBatchID(id)
		if !ok {
			continue
		}
		g := groups[bseq]
		if g == nil {
			g = &group{}
			groups[bseq] = g
			order = append(order, bseq)
		}
		for len(g.at) < j {
			g.at = append(g.at, -1)
			g.toks = append(g.toks, "")
		}
		if g.at[j-1] >= 0 {
			continue // a repeated id settles nothing the second time
		}
		g.at[j-1], g.toks[j-1] = i, tok
	}
	a.args[0] = strconv.Itoa(len(a.singles))
	for _, bseq := range order {
		g := groups[bseq]
		var req, toks strings.Builder
		req.Grow(len(g.at))
		toks.Grow(tokenHex * len(g.at))
		for j, at := range g.at {
			if at < 0 {
				req.WriteByte('0')
				continue
			}
			req.WriteByte('1')
			toks.WriteString(g.toks[j])
		}
		a.args = append(a.args, bseq, req.String(), toks.String())
		a.groups = append(a.groups, ackGroup{at: g.at})
	}
	return a
}

// isSingleID tells whether id has the form of a single delivery,
// "<seq>.<delivery number>.<16 hex digits>".
func isSingleID(id string) bool {
	seq, rest, ok := strings.Cut(id, ".")
	if !ok || !digits(seq) {
		return false
	}
	n, tok, ok := strings.Cut(rest, ".")
	return ok && digits(n) && isToken(tok)
}

// parseBatchID splits "b<bseq>.<j>.<token>", with 1 <= j <= maxBatchIndex.
func parseBatchID(id string) (bseq string, j int, tok string, ok bool) {
	bseq, rest, ok := strings.Cut(id[1:], ".")
	if !ok || !digits(bseq) {
		return "", 0, "", false
	}
	js, tok, ok := strings.Cut(rest, ".")
	if !ok || !digits(js) || len(js) > 4 || !isToken(tok) {
		return "", 0, "", false
	}
	j, _ = strconv.Atoi(js)
	if j < 1 || j > maxBatchIndex {
		return "", 0, "", false
	}
	return bseq, j, tok, true
}

func digits(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if len(s) != tokenHex {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
