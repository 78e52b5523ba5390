package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
)

// LockAcquire takes lock name for token when nobody holds it (see
// scripts/lock_acquire.lua; the lock scripts check the token and change the
// key in one step). On success it
// returns the fencing token, which strictly increases for name across all
// holders: the counter beside the lock is incremented in the same script
// that sets the lock, and it never expires.
func (e *Engine) LockAcquire(ctx context.Context, name, token string, ttl time.Duration) (int64, bool, error) {
	if err := e.check("lock acquire"); err != nil {
		return 0, false, err
	}
	const op = "lock acquire"
	px, err := lockTTLMillis(op, ttl)
	if err != nil {
		return 0, false, err
	}
	if token == "" {
		return 0, false, fmt.Errorf("%s: token is empty; give each holder a unique token", op)
	}
	lock, fence := e.keys.Lock(name)
	res := e.scripts.lockAcquire.Exec(ctx, e.client, []string{lock, fence}, []string{token, px})
	n, err := res.AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, interpretError(op, err)
	}
	return n, true, nil
}

// LockRelease deletes lock name only if token holds it; otherwise it
// returns engine.ErrLockNotHeld and deletes nothing.
func (e *Engine) LockRelease(ctx context.Context, name, token string) error {
	if err := e.check("lock release"); err != nil {
		return err
	}
	const op = "lock release"
	lock, _ := e.keys.Lock(name)
	n, err := e.scripts.lockRelease.Exec(ctx, e.client, []string{lock}, []string{token}).AsInt64()
	if err != nil {
		return interpretError(op, err)
	}
	if n != 1 {
		return engine.ErrLockNotHeld
	}
	return nil
}

// LockRefresh gives lock name a new ttl only if token holds it; otherwise
// it returns engine.ErrLockNotHeld.
func (e *Engine) LockRefresh(ctx context.Context, name, token string, ttl time.Duration) error {
	if err := e.check("lock refresh"); err != nil {
		return err
	}
	const op = "lock refresh"
	px, err := lockTTLMillis(op, ttl)
	if err != nil {
		return err
	}
	lock, _ := e.keys.Lock(name)
	n, err := e.scripts.lockRefresh.Exec(ctx, e.client, []string{lock}, []string{token, px}).AsInt64()
	if err != nil {
		return interpretError(op, err)
	}
	if n != 1 {
		return engine.ErrLockNotHeld
	}
	return nil
}

// errLockTTL says why a lock without a positive TTL is refused: a holder
// that crashes would keep such a lock forever.
var errLockTTL = errors.New("lock ttl must be positive so that a crashed holder's lock expires")

// lockTTLMillis renders ttl as the millisecond argument of the scripts,
// rounding up so that a sub-millisecond ttl does not become 0 (which PX and
// PEXPIRE would refuse or treat as "expire now").
func lockTTLMillis(op string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("%s: %w (got %v)", op, errLockTTL, ttl)
	}
	return strconv.FormatInt(durationToPX(ttl), 10), nil
}

// durationToPX is d in whole milliseconds, rounded up, at least 1 for d > 0.
func durationToPX(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// LockTTL reports whether lock name is held and for how long (PTTL: the
// token is never read).
func (e *Engine) LockTTL(ctx context.Context, name string) (time.Duration, bool, error) {
	const op = "lock ttl"
	if err := e.check(op); err != nil {
		return 0, false, err
	}
	lock, _ := e.keys.Lock(name)
	ms, err := e.client.Do(ctx, e.client.B().Pttl().Key(lock).Build()).AsInt64()
	if err != nil {
		return 0, false, interpretError(op, err)
	}
	switch {
	case ms == -2:
		return 0, false, nil
	case ms < 0:
		return -1, true, nil
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}
