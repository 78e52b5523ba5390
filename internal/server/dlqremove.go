package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// handleDLQRemove is DELETE /v1/queues/{name}/dlq/{index}?kind=&digest=:
// one entry, named by its index and, so that a shifted index never
// deletes another entry, its digest as listed. 200 {"deleted":true}, or
// 409 when the entry at index is not that one (any more).
func (s *Server) handleDLQRemove(w http.ResponseWriter, r *http.Request) error {
	q, p, kind, err := s.dlqParams(r, "")
	if err != nil {
		return err
	}
	index, perr := strconv.ParseInt(r.PathValue("index"), 10, 64)
	if perr != nil || index < 0 {
		p.fail("index", r.PathValue("index"), "a DLQ index, 0 or more")
	}
	digest := p.str("digest")
	if digest == "" {
		p.fail("digest", "", "the entry's digest as listed (required)")
	}
	if p.err != nil {
		return p.err
	}
	var ok bool
	err = s.write(r, func(ctx context.Context) (err error) {
		ok, err = q.DLQ(kind).Remove(ctx, index, digest)
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	if !ok {
		s.reply(w, r, http.StatusConflict, errorBody{Error: fmt.Sprintf(
			"the %s DLQ has no such entry at index %d: it changed since it was listed (read it again)", kind, index)},
			"queue", q.Name(), "kind", kind, "index", index)
		return nil
	}
	s.reply(w, r, http.StatusOK, map[string]bool{"deleted": true}, "queue", q.Name(), "kind", kind, "index", index)
	return nil
}
