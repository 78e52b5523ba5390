package sluice

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/keyspace"
)

// LockOptions tune Acquire. A nil *LockOptions, like the zero value, makes
// one attempt.
type LockOptions struct {
	// Wait is how long Acquire keeps trying while the lock is held
	// (0: one attempt, like TryAcquire).
	Wait time.Duration
	// RetryDelay is the pause between attempts, jittered by up to 50 %
	// (default 25 ms).
	RetryDelay time.Duration
}

// Lock is a held distributed lock. The zero value is not usable.
type Lock struct {
	c     *Client
	name  string
	token string
	// Fence strictly increases with every acquisition of this lock name,
	// by any holder: pass it to the resources the lock protects so they can
	// refuse a stale holder's writes.
	Fence int64

	mu        sync.Mutex
	expiresAt time.Time
	stopKeep  func()
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Token identifies this holder; release and refresh check it.
func (l *Lock) Token() string { return l.token }

// ExpiresAt is when the lock expires unless refreshed (by this process's
// clock, measured from before the request that set it).
func (l *Lock) ExpiresAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiresAt
}

func validateLock(name string, ttl time.Duration) error {
	if err := checkText(ErrInvalidName, "lock name", name); err != nil {
		return err
	}
	if err := keyspace.CheckKey("lock name", name); err != nil {
		return fmt.Errorf("sluice: %w: %w", ErrInvalidName, err)
	}
	if ttl <= 0 {
		return fmt.Errorf("sluice: %w: lock TTL must be positive, got %v", ErrInvalidArgument, ttl)
	}
	return nil
}

// TryAcquire takes the lock once, without waiting. ok is false when it is
// held by someone else.
//
// name is a raw key name (behind the client's key prefix), as the Python service's
// SET lock:camera:1 NX uses, so a lock here excludes that one too. A key
// holding a list (a queue or a DLQ) is refused with ErrWrongType; any
// other string there (a cache entry, another client's lock) cannot be told
// from a held lock and is reported held. Its fencing counter,
// sluice#fence:<name>, makes the name a lock's for good: Cache().Set
// refuses it.
func (c *Client) TryAcquire(ctx context.Context, name string, ttl time.Duration) (*Lock, bool, error) {
	if err := validateLock(name, ttl); err != nil {
		return nil, false, err
	}
	var b [16]byte
	if _, err := cryptorand.Read(b[:]); err != nil {
		return nil, false, fmt.Errorf("sluice: lock token: %w", err)
	}
	token := hex.EncodeToString(b[:])
	start := time.Now()
	fence, ok, err := c.eng.LockAcquire(ctx, name, token, ttl)
	if err != nil {
		return nil, false, fmt.Errorf("sluice: acquire lock %q: %w", name, err)
	}
	if !ok {
		return nil, false, nil
	}
	return &Lock{c: c, name: name, token: token, Fence: fence, expiresAt: start.Add(ttl)}, true, nil
}

// LockFromToken returns a handle on a lock held under token, taken
// elsewhere (another process, an HTTP client), so that it can be refreshed
// or released here. Nothing is checked until Refresh or Release, which
// answer ErrLockNotHeld when token does not hold the lock. Fence and
// ExpiresAt are unknown (zero) on such a handle.
func (c *Client) LockFromToken(name, token string) (*Lock, error) {
	if err := validateLock(name, time.Second); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("sluice: %w: empty lock token", ErrInvalidArgument)
	}
	return &Lock{c: c, name: name, token: token}, nil
}

// LockTTL reports whether the lock name is held and its remaining time to
// live, with millisecond precision (-1 when it has no expiry, as a raw key
// set by another program may). It never reveals the holder's token. name
// is a raw key name, as for TryAcquire.
func (c *Client) LockTTL(ctx context.Context, name string) (ttl time.Duration, held bool, err error) {
	if err := validateLock(name, time.Second); err != nil {
		return 0, false, err
	}
	ttl, held, err = c.eng.LockTTL(ctx, name)
	if err != nil {
		return 0, false, fmt.Errorf("sluice: lock ttl %q: %w", name, err)
	}
	return ttl, held, nil
}

// Acquire takes the lock, retrying for up to opts.Wait while it is held.
// It returns ErrLockHeld when the wait runs out, ctx's error when ctx ends.
// opts may be nil (see LockOptions).
func (c *Client) Acquire(ctx context.Context, name string, ttl time.Duration, lockOpts *LockOptions) (*Lock, error) {
	var opts LockOptions
	if lockOpts != nil {
		opts = *lockOpts
	}
	if opts.Wait < 0 || opts.RetryDelay < 0 {
		return nil, fmt.Errorf("sluice: %w: negative lock Wait %v or RetryDelay %v", ErrInvalidArgument, opts.Wait, opts.RetryDelay)
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 25 * time.Millisecond
	}
	deadline := time.Now().Add(opts.Wait)
	for {
		l, ok, err := c.TryAcquire(ctx, name, ttl)
		if err != nil || ok {
			return l, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("sluice: acquire lock %q: %w (waited %v)", name, ErrLockHeld, opts.Wait)
		}
		pause := min(opts.RetryDelay+time.Duration(rand.Int64N(int64(opts.RetryDelay)/2+1)), left)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("sluice: acquire lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// Release frees the lock if this holder still has it. ErrLockNotHeld means
// it expired (or another holder took it after expiry); nothing is deleted.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	stop := l.stopKeep
	l.stopKeep = nil
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	if err := l.c.eng.LockRelease(ctx, l.name, l.token); err != nil {
		return fmt.Errorf("sluice: release lock %q: %w", l.name, err)
	}
	return nil
}

// Refresh extends the lock to ttl from now if this holder still has it;
// otherwise ErrLockNotHeld.
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("sluice: %w: lock TTL must be positive, got %v", ErrInvalidArgument, ttl)
	}
	start := time.Now()
	if err := l.c.eng.LockRefresh(ctx, l.name, l.token, ttl); err != nil {
		return fmt.Errorf("sluice: refresh lock %q: %w", l.name, err)
	}
	l.mu.Lock()
	l.expiresAt = start.Add(ttl)
	l.mu.Unlock()
	return nil
}

// KeepAlive refreshes the lock in the background every ttl/3 and returns a
// context derived from ctx that is cancelled the moment the lock is lost
// (refresh refused, or no successful refresh before it expired), so work
// guarded by the lock can stop. Release (or cancelling ctx) stops the
// keep-alive. A second call replaces the first one's keep-alive.
func (l *Lock) KeepAlive(ctx context.Context, ttl time.Duration) context.Context {
	l.mu.Lock()
	previous := l.stopKeep
	l.stopKeep = nil
	l.mu.Unlock()
	if previous != nil {
		previous()
	}
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	stopped := make(chan struct{})
	var once sync.Once
	stop := func() {
		once.Do(func() { close(done) })
		<-stopped
	}
	l.mu.Lock()
	l.stopKeep = stop
	l.mu.Unlock()
	go func() {
		defer close(stopped)
		defer cancel(ErrLockNotHeld)
		interval := max(ttl/3, time.Millisecond)
		t := time.NewTimer(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-held.Done():
				return
			case <-t.C:
			}
			expires := l.ExpiresAt()
			rctx, rcancel := context.WithDeadline(held, expires)
			err := l.Refresh(rctx, ttl)
			rcancel()
			switch {
			case err == nil:
				t.Reset(interval)
			case errors.Is(err, ErrLockNotHeld) || !time.Now().Before(expires):
				l.c.log.Warn("lock lost", "lock", l.name, "err", err)
				return
			default:
				// A transient failure; the lock is still ours until it expires.
				t.Reset(max(min(interval/4, time.Until(expires)/2), time.Millisecond))
			}
		}
	}()
	return held
}
