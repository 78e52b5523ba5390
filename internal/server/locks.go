package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// lockName is the library lock name of the route's {name}.
func lockName(r *http.Request) (name, stored string, err error) {
	name = r.PathValue("name")
	return name, keyspace.ServiceLockName(name), invalidName(keyspace.CheckServiceLockName(name))
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
	ttl, wait, err := decodeLockAcquire(body, s.cfg.MaxWait)
	if err != nil {
		return err
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

// lockState is GET /v1/locks/{name}'s answer: whether the lock is held
// and until when, never by whom (the token is the holder's proof).
type lockState struct {
	Name string `json:"name"`
	Held bool   `json:"held"`
	// TTLMillis and ExpiresAt are set when the lock is held and expires
	// (by the engine's count of the time left, and this server's clock).
	TTLMillis *int64     `json:"ttl_ms,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// handleLockLookup is GET /v1/locks/{name}: 200 {"name","held","ttl_ms",
// "expires_at"}, held or not.
func (s *Server) handleLockLookup(w http.ResponseWriter, r *http.Request) error {
	name, stored, err := lockName(r)
	if err != nil {
		return err
	}
	ttl, held, err := s.client.LockTTL(r.Context(), stored)
	if err != nil {
		return err
	}
	st := lockState{Name: name, Held: held}
	if held && ttl >= 0 {
		ms := ttl.Milliseconds()
		at := time.Now().Add(ttl).UTC().Truncate(time.Millisecond)
		st.TTLMillis, st.ExpiresAt = &ms, &at
	}
	_ = writeJSON(w, http.StatusOK, st)
	return nil
}
