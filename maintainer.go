package sluice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/traced"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// DefaultSweepInterval is how often a maintainer sweeps unless
// MaintainerOptions.Interval says otherwise.
const DefaultSweepInterval = time.Second

// DefaultMaintainerLock is the lock the maintainers of one store share
// unless MaintainerOptions.LockName says otherwise. No queue, and no lock
// or cache entry given over HTTP, can have this name.
const DefaultMaintainerLock = "maintainer#sluice"

// MaintainerOptions configure RunMaintainer. A nil *MaintainerOptions,
// like the zero value, means the defaults.
type MaintainerOptions struct {
	// Interval is the time between sweeps (default DefaultSweepInterval).
	// In-flight counts are true within one interval.
	Interval time.Duration
	// LockName is the lock that lets one maintainer act at a time among
	// all clients of the store (default DefaultMaintainerLock).
	LockName string
	// LockTTL is how long the lock outlives a maintainer that died
	// without releasing it: another one takes over within LockTTL plus an
	// interval. Default: 3 intervals, at least 5 s.
	LockTTL time.Duration
	// OnSweep, when set, is called after every sweep of every queue this
	// maintainer makes, with what it did (for metrics and tests). It runs
	// on the maintainer's goroutine and must not block.
	OnSweep func(SweepResult)
}

// SweepResult is what one sweep did to one queue.
type SweepResult struct {
	Queue string
	// DeadLettered counts due items (expired leases, nacked items past
	// their delay) that had used their deliveries and moved to the
	// failed DLQ.
	DeadLettered int64
}

func (o *MaintainerOptions) withDefaults() (MaintainerOptions, error) {
	var m MaintainerOptions
	if o != nil {
		m = *o
	}
	if m.Interval < 0 || m.LockTTL < 0 {
		return m, fmt.Errorf("sluice: %w: maintainer interval %v and lock TTL %v must not be negative", ErrInvalidArgument, m.Interval, m.LockTTL)
	}
	if m.Interval == 0 {
		m.Interval = DefaultSweepInterval
	}
	if m.LockName == "" {
		m.LockName = DefaultMaintainerLock
	}
	if m.LockTTL == 0 {
		m.LockTTL = max(3*m.Interval, 5*time.Second)
	}
	if err := validateLock(m.LockName, m.LockTTL); err != nil {
		return m, err
	}
	return m, nil
}

// RunMaintainer keeps the store's queues true until ctx is done, and then
// returns nil (an error only for invalid options or a closed client). Every
// interval it sweeps every queue the store knows of: due scheduled items
// move to their queue, and expired leases and nacked items past their
// delay that used their deliveries move to the failed DLQ, with the max
// deliveries the queue declares, else the client's (Config.Queue). Other
// due items wait for the next receive, which hands them out first; they
// are no longer counted in flight.
//
// Any number of clients may run a maintainer on one store: they share a
// Sluice lock (MaintainerOptions.LockName), kept alive while held, and only
// its holder sweeps. One that loses the lock stops sweeping at once (the
// queue being swept is finished: its sweep is one step) and tries to take
// it again every interval, as the others do.
//
// It is safe to stop a maintainer at any moment, by ctx, by closing the
// client, or by killing the process: each queue's sweep is one atomic step
// of the engine (one Lua script on Redis, one locked and logged change in
// the embedded engine), so an item is either still where it was or wholly
// moved, never lost or duplicated, and the next sweep, by any maintainer,
// carries on from what is stored. The maintainer keeps no state of its own.
//
// RunMaintainer blocks; run it on a goroutine the caller owns and stop it
// with ctx. It releases the lock before it returns.
func (c *Client) RunMaintainer(ctx context.Context, opts *MaintainerOptions) error {
	m, err := opts.withDefaults()
	if err != nil {
		return err
	}
	// Sweeps are not traced (Config.TracerProvider): one span per queue
	// every interval would bury the traces of the work itself.
	ctx = traced.Suppress(ctx)
	tick := time.NewTicker(m.Interval)
	defer tick.Stop()
	for {
		if err := c.maintainWhileHeld(ctx, m, tick.C); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// maintainWhileHeld takes the lock if it is free and sweeps every interval
// while it holds it. It returns nil when the lock is held elsewhere, lost,
// or ctx is done; an error only when the client cannot go on (closed).
func (c *Client) maintainWhileHeld(ctx context.Context, m MaintainerOptions, tick <-chan time.Time) error {
	lock, ok, err := c.TryAcquire(ctx, m.LockName, m.LockTTL)
	switch {
	case errors.Is(err, ErrClosed):
		return err
	case err != nil:
		if ctx.Err() == nil {
			c.log.Warn("maintainer: cannot take its lock", "lock", m.LockName, "err", err)
		}
		return nil
	case !ok:
		return nil
	}
	held := lock.KeepAlive(ctx, m.LockTTL)
	defer func() {
		// Release stops the keep-alive goroutine and waits for it. ctx may
		// be done by now; the release still goes out, bounded.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.LockTTL)
		defer cancel()
		if err := lock.Release(rctx); err != nil && !errors.Is(err, ErrLockNotHeld) && !errors.Is(err, ErrClosed) {
			c.log.Warn("maintainer: releasing its lock failed; it expires by itself", "lock", m.LockName, "err", err)
		}
	}()
	for {
		if err := c.sweepAll(held, m); err != nil {
			return err
		}
		select {
		case <-held.Done():
			// ctx done, or the lock lost: another maintainer may act now.
			return nil
		case <-tick:
		}
	}
}

// sweepAll sweeps every queue once, stopping between queues when held is
// done. A queue that cannot be swept (a name that is no queue's any more,
// a key holding another kind of value) is logged and skipped.
func (c *Client) sweepAll(held context.Context, m MaintainerOptions) error {
	names, err := c.eng.QueueNames(held)
	if err != nil {
		return c.sweepError(held, "", err)
	}
	for _, name := range names {
		if held.Err() != nil {
			return nil //nolint:nilerr // the lock was lost or the run ends: the round stops, which is no failure
		}
		if keyspace.ValidateQueueName(name) != nil {
			continue
		}
		dead, err := c.sweepQueue(held, name)
		if err != nil {
			if err := c.sweepError(held, name, err); err != nil {
				return err
			}
			continue
		}
		if m.OnSweep != nil {
			m.OnSweep(SweepResult{Queue: name, DeadLettered: dead})
		}
	}
	return nil
}

// sweepQueue is one queue's sweep: one QueueReclaim, which is one atomic
// step of the engine (see RunMaintainer). The engine applies the queue's
// declared max deliveries over the client's.
func (c *Client) sweepQueue(ctx context.Context, name string) (int64, error) {
	return c.eng.QueueReclaim(ctx, name, c.cfg.Queue.MaxDeliveries)
}

// sweepError reports err unless the sweep was stopped (held done); it
// returns an error only when the client is closed.
func (c *Client) sweepError(held context.Context, queue string, err error) error {
	if errors.Is(err, engine.ErrClosed) {
		return fmt.Errorf("sluice: maintainer: %w", ErrClosed)
	}
	if held.Err() == nil {
		c.log.Warn("maintainer: sweep failed", "queue", queue, "err", publicError(err))
	}
	return nil
}
