package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
)

// validKey checks cache keys and lock names: 1-512 bytes without spaces or
// control characters (what the library accepts for locks, and a safe
// subset for cache keys).
func validKey(what, k string) error {
	if len(k) < 1 || len(k) > 512 {
		return badRequest("invalid %s %q: want 1-512 bytes", what, k)
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] == 0x7f {
			return badRequest("invalid %s %q: no spaces or control characters", what, k)
		}
	}
	return nil
}

// maxCacheTTL bounds cache TTLs (a year).
const maxCacheTTL = 365 * 24 * time.Hour

// decodeCacheValue decodes a body holding one JSON value; cache values are
// stored as JSON, strings included.
func decodeCacheValue(body []byte) (json.RawMessage, error) {
	raw, err := singleValue(body)
	if err != nil {
		return nil, err
	}
	return raw, nil
}

// handleCachePut is PUT /v1/cache/{key}?ttl=300 (seconds; absent or 0:
// no expiry).
func (s *Server) handleCachePut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if err := validKey("cache key", key); err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	ttl := p.seconds("ttl", 0, maxCacheTTL)
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := decodeCacheValue(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.write(r, func(ctx context.Context) error { return s.client.Cache().Set(ctx, key, v, ttl) })
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	if r.Context().Err() != nil {
		s.undelivered(r, "ok", "key", key)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleCacheGet is GET and HEAD /v1/cache/{key}: 200 with the value, or
// 404.
func (s *Server) handleCacheGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if err := validKey("cache key", key); err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Method == http.MethodHead {
		n, err := s.client.Cache().Exists(r.Context(), key)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if n == 0 {
			w.WriteHeader(http.StatusNotFound)
		}
		return
	}
	it, ok, err := s.client.Cache().Get(r.Context(), key)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "cache key not found")
		return
	}
	_ = writeJSON(w, http.StatusOK, it)
}

// handleCacheDelete is DELETE /v1/cache/{key} -> {"deleted": bool}.
func (s *Server) handleCacheDelete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if err := validKey("cache key", key); err != nil {
		s.fail(w, r, err)
		return
	}
	var n int64
	err := s.write(r, func(ctx context.Context) (err error) {
		n, err = s.client.Cache().Delete(ctx, key)
		return err
	})
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	s.reply(w, r, http.StatusOK, map[string]bool{"deleted": n > 0}, "key", key)
}

// lockReply is the body of a successful acquire or refresh. A refresh
// knows no fencing token (it is issued at acquisition), so it leaves it out.
type lockReply struct {
	Token        string    `json:"token"`
	FencingToken int64     `json:"fencing_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
}

func replyOf(lk *sluice.Lock) lockReply {
	return lockReply{Token: lk.Token(), FencingToken: lk.Fence, ExpiresAt: lk.ExpiresAt().UTC()}
}

// handleLockAcquire is POST /v1/locks/{name} {"ttl_ms","wait_ms"}: 200
// with the token, or 409 when it stayed held for wait_ms.
func (s *Server) handleLockAcquire(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validKey("lock name", name); err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ttl, wait, err := decodeLockAcquire(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wait > s.cfg.MaxWait {
		s.fail(w, r, badRequest("\"wait_ms\" must be at most %d", s.cfg.MaxWait.Milliseconds()))
		return
	}
	var lk *sluice.Lock
	err = s.waitOp(r, wait, func(ctx context.Context) (err error) {
		lk, err = s.client.Acquire(ctx, name, ttl, sluice.LockOptions{Wait: wait})
		return err
	})
	switch {
	case errors.Is(err, sluice.ErrLockHeld):
		s.reply(w, r, http.StatusConflict, errorBody{Error: "lock is held by another owner"}, "lock", name)
		return
	case err != nil:
		s.replyErr(w, r, err)
		return
	}
	if r.Context().Err() != nil {
		// Nobody will ever know this token: free the lock now rather than
		// leave it blocking others until its TTL runs out.
		rerr := s.write(r, lk.Release)
		s.undelivered(r, "released", "lock", name, "release_err", rerr)
		return
	}
	if werr := writeJSON(w, http.StatusOK, replyOf(lk)); werr != nil {
		s.undelivered(r, "ok", "lock", name, "reply_err", werr)
	}
}

// handleLockRefresh is POST /v1/locks/{name}/refresh {"token","ttl_ms"}.
func (s *Server) handleLockRefresh(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validKey("lock name", name); err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	token, ttl, err := decodeLockRefresh(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Any replica of the service can refresh or release: the token is the
	// proof of ownership, checked atomically by the engine.
	lk, err := s.client.LockFromToken(name, token)
	if err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	err = s.write(r, func(ctx context.Context) error { return lk.Refresh(ctx, ttl) })
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	s.reply(w, r, http.StatusOK, replyOf(lk), "lock", name)
}

// handleLockRelease is DELETE /v1/locks/{name}?token=: 204, or 409 when
// the token does not hold the lock.
func (s *Server) handleLockRelease(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validKey("lock name", name); err != nil {
		s.fail(w, r, err)
		return
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		s.fail(w, r, badRequest("parameter token is required"))
		return
	}
	lk, err := s.client.LockFromToken(name, token)
	if err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	if err := s.write(r, lk.Release); err != nil {
		s.replyErr(w, r, err)
		return
	}
	if r.Context().Err() != nil {
		s.undelivered(r, "ok", "lock", name)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
