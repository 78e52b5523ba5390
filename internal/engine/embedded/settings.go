package embedded

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// Declared settings live in the queue's state, beside its leases, under
// the queue's lock: an add reads them in the same critical section in
// which it pushes, so the declared bound holds against concurrent adders.
// They are logged as opSettings records (opSettingsDel when none are
// left) and written into every snapshot, so they survive restarts and
// compaction.

// Log operations of declared queues (see record.go for the others).
const (
	opSettings    byte = 15 // key, set, maxSize, policy, pressure (float64 bits), lease (ns), maxDeliveries, paused
	opSettingsDel byte = 16 // key
	opUnregister  byte = 17 // queue name
)

// settingsOf returns o's settings, or nil.
func settingsOf(o *object) *engine.QueueSettings {
	if o == nil || o.q == nil {
		return nil
	}
	return o.q.settings
}

// paused reports whether o's queue hands nothing out.
func paused(o *object) bool {
	s := settingsOf(o)
	return s != nil && s.Paused
}

// resolve applies o's declared settings to a call's bound and policy.
func resolve(o *object, maxSize int64, policy engine.Policy, maxExplicit, policyExplicit bool) (int64, engine.Policy, error) {
	s := settingsOf(o)
	if s == nil {
		return maxSize, policy.Normalize(), nil
	}
	return s.Resolve(maxSize, policy, maxExplicit, policyExplicit)
}

// setSettings stores s (nil: none) as o's queue settings.
func (t *tx) setSettings(o *object, s *engine.QueueSettings) {
	if s == nil {
		if o.q == nil || o.q.settings == nil {
			return
		}
		o.q.settings = nil
		if t.on {
			t.op(opSettingsDel, o.key)
		}
		return
	}
	c := *s
	o.queue().settings = &c
	if t.on {
		t.encodeSettings(o.key, &c)
	}
}

// encodeSettings writes an opSettings; snapshots use it too.
func (t *tx) encodeSettings(key string, s *engine.QueueSettings) {
	t.op(opSettings, key)
	t.uint(uint64(s.Set))
	t.int(s.MaxSize)
	t.str(string(s.Policy))
	t.uint(math.Float64bits(s.PressureThreshold))
	t.int(int64(s.Lease))
	t.uint(uint64(s.MaxDeliveries))
	t.bool(s.Paused)
}

func decodeSettings(d *decoder) engine.QueueSettings {
	var s engine.QueueSettings
	s.Set = engine.SettingsField(d.uint())
	s.MaxSize = d.int()
	s.Policy = engine.Policy(d.str())
	s.PressureThreshold = math.Float64frombits(d.uint())
	s.Lease = time.Duration(d.int())
	s.MaxDeliveries = int(d.uint())
	s.Paused = d.bool()
	return s
}

// unregister drops name from the registry, as QueueDelete does.
func (t *tx) unregister(o *object, name string) {
	if o.q != nil {
		o.q.registered = false
	}
	t.e.namesMu.Lock()
	_, had := t.e.names[name]
	delete(t.e.names, name)
	t.e.namesMu.Unlock()
	if had && t.on {
		t.op(opUnregister, name)
	}
}

// applySettingsOp replays one of the operations above; it reports whether
// code was one of them.
func (e *Engine) applySettingsOp(t *tx, d *decoder, code byte, key string) bool {
	switch code {
	case opUnregister:
		e.namesMu.Lock()
		delete(e.names, key)
		e.namesMu.Unlock()
	case opSettings:
		s := decodeSettings(d)
		if d.err == nil {
			t.setSettings(e.lookup(key, true), &s)
		}
	case opSettingsDel:
		t.setSettings(e.lookup(key, true), nil)
	default:
		return false
	}
	return true
}

// QueueDeclare stores the declared fields of s, keeping the paused flag.
func (e *Engine) QueueDeclare(ctx context.Context, queue string, s engine.QueueSettings) (_ engine.QueueSettings, err error) {
	const op = "queue declare"
	if err := e.checkOpen(op); err != nil {
		return engine.QueueSettings{}, err
	}
	if err := s.Validate(); err != nil {
		return engine.QueueSettings{}, fmt.Errorf("%s: %w", op, err)
	}
	t, err := e.begin(op)
	if err != nil {
		return engine.QueueSettings{}, err
	}
	defer t.end(&err)
	o := e.lock1(e.listKey(queue), true)
	defer o.mu.Unlock()
	if e.isStr(o) {
		return engine.QueueSettings{}, wrongType(op, o.key)
	}
	want := s.Declared()
	want.Paused = paused(o)
	t.register(o, queue)
	switch cur := settingsOf(o); {
	case want == engine.QueueSettings{}:
		// Nothing declared and not paused: nothing stored, as on Redis,
		// where the hash goes with its last field.
		t.setSettings(o, nil)
	case cur == nil || *cur != want:
		t.setSettings(o, &want)
	}
	if err := t.commit(); err != nil {
		return engine.QueueSettings{}, fmt.Errorf("%s: %w", op, err)
	}
	return want, nil
}

// QueueSettings returns the stored settings.
func (e *Engine) QueueSettings(ctx context.Context, queue string) (engine.QueueSettings, bool, error) {
	const op = "queue settings"
	if err := e.checkOpen(op); err != nil {
		return engine.QueueSettings{}, false, err
	}
	o := e.lock1(e.listKey(queue), false)
	if o == nil {
		return engine.QueueSettings{}, false, nil
	}
	defer o.mu.Unlock()
	if s := settingsOf(o); s != nil {
		return *s, true, nil
	}
	return engine.QueueSettings{}, false, nil
}

// QueuePause sets the paused flag. Receivers and pops blocked on the
// queue stay in line: nothing is handed to them until the resume.
func (e *Engine) QueuePause(ctx context.Context, queue string) error {
	return e.setPaused(ctx, "queue pause", queue, true)
}

// QueueResume clears the paused flag and serves the consumers in line:
// waiting items go to them first come first served, and receivers are
// woken for due leases.
func (e *Engine) QueueResume(ctx context.Context, queue string) error {
	return e.setPaused(ctx, "queue resume", queue, false)
}

func (e *Engine) setPaused(ctx context.Context, op, queue string, on bool) (err error) {
	if err := e.checkOpen(op); err != nil {
		return err
	}
	t, err := e.begin(op)
	if err != nil {
		return err
	}
	defer t.end(&err)
	o := e.lock1(e.listKey(queue), on)
	if o == nil {
		return nil // nothing stored: not paused
	}
	defer o.mu.Unlock()
	if e.isStr(o) {
		return wrongType(op, o.key)
	}
	cur := settingsOf(o)
	if (cur != nil && cur.Paused) == on {
		return nil
	}
	var next engine.QueueSettings
	if cur != nil {
		next = *cur
	}
	next.Paused = on
	if next.Set == 0 && !on {
		t.setSettings(o, nil)
	} else {
		t.setSettings(o, &next)
	}
	if on {
		t.register(o, queue)
	} else {
		e.serve(&t, o)
		e.kick(o)
	}
	if err := t.commit(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// QueueDelete removes the queue, its DLQs, its leases and its settings in
// one step. The delivery counter stays, so that no delivery id of the
// deleted queue is ever handed out again; consumers blocked on the queue
// stay in line for a queue that is now empty.
func (e *Engine) QueueDelete(ctx context.Context, queue string, force bool) (res engine.DeleteResult, err error) {
	const op = "queue delete"
	if err := e.checkOpen(op); err != nil {
		return res, err
	}
	k := e.keys.Queue(queue)
	t, err := e.begin(op)
	if err != nil {
		return res, err
	}
	defer t.end(&err)
	objs := e.lockN(k.List, k.OverflowDLQ, k.FailedDLQ)
	defer unlockN(objs)
	main, ovf, failed := objs[0], objs[1], objs[2]
	now := e.now()
	for _, o := range objs {
		if o.strAlive(now) {
			return res, wrongType(op, o.key)
		}
	}
	if main.q != nil {
		// Scheduled items count with the queue's items, not in flight.
		res.InFlight = int64(len(main.q.leases) - main.q.scheduled)
	}
	if res.InFlight > 0 && !force {
		return engine.DeleteResult{}, fmt.Errorf("%s: %w (%d; force deletes them too)", op, engine.ErrQueueInFlight, res.InFlight)
	}
	res.Items, res.OverflowDLQ, res.FailedDLQ = length(main), int64(ovf.list.Len()), int64(failed.list.Len())
	for _, o := range objs {
		if o.list.Len() > 0 {
			t.clearList(o)
		}
	}
	if q := main.q; q != nil {
		for _, l := range q.byTime.snapshot() {
			t.leaseDel(main, l)
		}
		if q.timer != nil {
			q.timer.Stop()
			q.timer, q.timerAt = nil, 0
		}
		res.Settings = q.settings != nil
		t.setSettings(main, nil)
	}
	t.resetStats(main)
	t.unregister(main, queue)
	if err := t.commit(); err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	return res, nil
}

// snapshot copies the heap's leases, so that removing them while walking
// the copy is safe.
func (h leaseHeap) snapshot() []*lease { return append([]*lease(nil), h...) }
