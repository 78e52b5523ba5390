package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/keyspace"
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

// pathKey reads the path value param and checks it with validKey.
func pathKey(r *http.Request, param, what string) (string, error) {
	k := r.PathValue(param)
	return k, validKey(what, k)
}

// The service keeps its cache entries and locks in namespaces of their own
// (keyspace.ServiceCacheKey, ServiceLockName), so that no key given over
// HTTP can address a queue, a DLQ, Sluice's own keys or an entry of the
// other kind: PUT /v1/cache/jobs never touches the queue jobs, and GET
// /v1/cache/L never reads lock L's token. Replies and logs name the key as
// the client gave it.

// cacheKey is the library cache key of the route's {key}.
func cacheKey(r *http.Request) (key, stored string, err error) {
	key, err = pathKey(r, "key", "cache key")
	return key, keyspace.ServiceCacheKey(key), err
}

// lockName is the library lock name of the route's {name}.
func lockName(r *http.Request) (name, stored string, err error) {
	name, err = pathKey(r, "name", "lock name")
	return name, keyspace.ServiceLockName(name), err
}

// handleCachePut is PUT /v1/cache/{key}?ttl=300 (seconds; absent or 0:
// no expiry).
func (s *Server) handleCachePut(w http.ResponseWriter, r *http.Request) error {
	key, stored, err := cacheKey(r)
	if err != nil {
		return err
	}
	p := queryParams(r)
	ttl := p.seconds("ttl", 0, maxCacheTTL)
	if p.err != nil {
		return p.err
	}
	v, err := decodeBody(s, w, r, decodeCacheValue)
	if err != nil {
		return err
	}
	err = s.write(r, func(ctx context.Context) error { return s.client.Cache().Set(ctx, stored, v, ttl) })
	if err != nil {
		return afterWrite(err)
	}
	s.noContent(w, r, "key", key)
	return nil
}

// handleCacheGet is GET and HEAD /v1/cache/{key}: 200 with the value, or
// 404.
func (s *Server) handleCacheGet(w http.ResponseWriter, r *http.Request) error {
	_, stored, err := cacheKey(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		n, err := s.client.Cache().Exists(r.Context(), stored)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		if n == 0 {
			w.WriteHeader(http.StatusNotFound)
		}
		return nil
	}
	it, ok, err := s.client.Cache().Get(r.Context(), stored)
	if err != nil {
		return err
	}
	if !ok {
		writeError(w, http.StatusNotFound, "cache key not found")
		return nil
	}
	_ = writeJSON(w, http.StatusOK, it)
	return nil
}

// handleCacheDelete is DELETE /v1/cache/{key} -> {"deleted": bool}.
func (s *Server) handleCacheDelete(w http.ResponseWriter, r *http.Request) error {
	key, stored, err := cacheKey(r)
	if err != nil {
		return err
	}
	var n int64
	err = s.write(r, func(ctx context.Context) (err error) {
		n, err = s.client.Cache().Delete(ctx, stored)
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	s.reply(w, r, http.StatusOK, map[string]bool{"deleted": n > 0}, "key", key)
	return nil
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

// lockBody is what the lock routes with a body share: the lock name, then
// the body.
func (s *Server) lockBody(w http.ResponseWriter, r *http.Request) (name, stored string, body []byte, err error) {
	name, stored, err = lockName(r)
	if err != nil {
		return "", "", nil, err
	}
	body, err = s.readBody(w, r)
	return name, stored, body, err
}

// lockNotHeld answers a refresh or release whose token does not hold the
// lock. The library's error would name the lock as the service stores it,
// not as the client gave it (in the path, which it knows).
const lockNotHeld = "lock not held: the token does not hold it (it expired, or another owner has it)"

// heldLock is the lock a client names with its token. Any replica of the
// service can refresh or release: the token is the proof of ownership,
// checked atomically by the engine.
func (s *Server) heldLock(name, token string) (*sluice.Lock, error) {
	lk, err := s.client.LockFromToken(name, token)
	if err != nil {
		return nil, badRequest("%s", clientText(err))
	}
	return lk, nil
}

// handleLockAcquire is POST /v1/locks/{name} {"ttl_ms","wait_ms"}: 200
// with the token, or 409 when it stayed held for wait_ms.
func (s *Server) handleLockAcquire(w http.ResponseWriter, r *http.Request) error {
	name, stored, body, err := s.lockBody(w, r)
	if err != nil {
		return err
	}
	ttl, wait, err := decodeLockAcquire(body)
	if err != nil {
		return err
	}
	if wait > s.cfg.MaxWait {
		return badRequest("\"wait_ms\" must be at most %d", s.cfg.MaxWait.Milliseconds())
	}
	var lk *sluice.Lock
	err = s.waitOp(r, wait, func(ctx context.Context) (err error) {
		lk, err = s.client.Acquire(ctx, stored, ttl, &sluice.LockOptions{Wait: wait})
		return err
	})
	switch {
	case errors.Is(err, sluice.ErrLockHeld):
		s.reply(w, r, http.StatusConflict, errorBody{Error: "lock is held by another owner"}, "lock", name)
		return nil
	case err != nil:
		return afterWrite(err)
	}
	if r.Context().Err() != nil {
		// Nobody will ever know this token: free the lock now rather than
		// leave it blocking others until its TTL runs out.
		rerr := s.write(r, lk.Release)
		s.undelivered(r, "released", "lock", name, "release_err", rerr)
		return nil //nolint:nilerr // nobody is left to answer; rerr is logged
	}
	if werr := writeJSON(w, http.StatusOK, replyOf(lk)); werr != nil {
		s.undelivered(r, "ok", "lock", name, "reply_err", werr)
	}
	return nil
}

// handleLockRefresh is POST /v1/locks/{name}/refresh {"token","ttl_ms"}.
func (s *Server) handleLockRefresh(w http.ResponseWriter, r *http.Request) error {
	name, stored, body, err := s.lockBody(w, r)
	if err != nil {
		return err
	}
	token, ttl, err := decodeLockRefresh(body)
	if err != nil {
		return err
	}
	lk, err := s.heldLock(stored, token)
	if err != nil {
		return err
	}
	err = s.write(r, func(ctx context.Context) error { return lk.Refresh(ctx, ttl) })
	if errors.Is(err, sluice.ErrLockNotHeld) {
		s.reply(w, r, http.StatusConflict, errorBody{Error: lockNotHeld}, "lock", name)
		return nil
	}
	if err != nil {
		return afterWrite(err)
	}
	s.reply(w, r, http.StatusOK, replyOf(lk), "lock", name)
	return nil
}

// handleLockRelease is DELETE /v1/locks/{name}?token=: 204, or 409 when
// the token does not hold the lock.
func (s *Server) handleLockRelease(w http.ResponseWriter, r *http.Request) error {
	name, stored, err := lockName(r)
	if err != nil {
		return err
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return badRequest("parameter token is required")
	}
	lk, err := s.heldLock(stored, token)
	if err != nil {
		return err
	}
	err = s.write(r, lk.Release)
	if errors.Is(err, sluice.ErrLockNotHeld) {
		s.reply(w, r, http.StatusConflict, errorBody{Error: lockNotHeld}, "lock", name)
		return nil
	}
	if err != nil {
		return afterWrite(err)
	}
	s.noContent(w, r, "lock", name)
	return nil
}
