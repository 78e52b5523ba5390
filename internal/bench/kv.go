package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice"
)

// target is the engine a cache, lock or pub/sub run measures: Redis, with
// the raw commands beside it, or an embedded engine on its own.
type target struct {
	o      Options
	client *sluice.Client
	redis  *redisSuite // nil on the embedded engine
	rep    *Report
	// sample is the latency sampling rate (see measure).
	sample int
	close  func() error
}

// openTarget opens the engine o names for suite; extra (nil: none) holds
// the settings the suite needs besides those every run has (logger,
// fsync, prefix).
func openTarget(ctx context.Context, o Options, suite string, extra *sluice.Config) (*target, error) {
	var base sluice.Config
	if extra != nil {
		base = *extra
	}
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Engine == "redis" {
		s, err := openRedisSuite(ctx, o, suite, &base)
		if err != nil {
			return nil, err
		}
		return &target{o: o, client: s.client, redis: s, rep: s.rep, sample: 1, close: s.close}, nil
	}
	cfgs, cleanup, err := embeddedConfigs(o)
	if err != nil {
		return nil, err
	}
	// The file engine's fsync policy does not touch these reads and writes
	// of non-queue data in a way worth a second run: measure everysec.
	cfg := cfgs[0]
	base.Logger, base.Fsync = quietLogger(), cfg.fsync
	client, err := sluice.Open(ctx, cfg.url, &base)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: open %s engine: %w", cfg.label, err), cleanup())
	}
	rep := newReport(suite, o)
	return &target{o: o, client: client, rep: rep, sample: sampleEmbedded, close: func() error {
		err := client.Close()
		return errors.Join(err, cleanup())
	}}, nil
}

func (t *target) key(name string) string { return t.redis.prefix + name }

// clientSideCache is the configuration of a client that caches reads.
var clientSideCache = &sluice.Config{ClientSideCache: true}

// Cache measures cache reads and writes: Get, GetCached (served from the
// client-side cache on Redis) and Set, against raw GET and SET.
func Cache(ctx context.Context, o Options) (rep *Report, err error) {
	t, err := openTarget(ctx, o, "cache", clientSideCache)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	value := json.RawMessage(item(t.o.ItemSize))
	ca := t.client.Cache()
	if err := ca.Set(ctx, "hot", value, time.Hour); err != nil {
		return nil, fmt.Errorf("bench: seed the cache: %w", err)
	}
	cachedNote := "the embedded engine has no client-side cache: this is Get"
	if t.redis != nil {
		cachedNote = "served in process by rueidis client-side caching, invalidated by the server"
	}
	for _, n := range t.o.Goroutines {
		var cases []benchCase
		getBase, setBase := "", ""
		if t.redis != nil {
			raw, key, str := t.redis.raw, t.key("hot"), string(value)
			getBase, setBase = "raw GET", "raw SET"
			cases = append(cases,
				benchCase{label: "raw GET", note: "baseline", n: n, sample: 1,
					prepare: fixed(func(ctx context.Context, _ int) (int, error) {
						return 1, raw.Do(ctx, raw.B().Get().Key(key).Build()).Error()
					})},
				benchCase{label: "raw SET", note: "baseline; SET key value EX 3600", n: n, sample: 1,
					prepare: fixed(func(ctx context.Context, w int) (int, error) {
						return 1, raw.Do(ctx, raw.B().Set().Key(t.key("w"+strconv.Itoa(w))).Value(str).ExSeconds(3600).Build()).Error()
					})},
			)
		}
		cases = append(cases,
			benchCase{label: "cache get", n: n, sample: t.sample, baseline: getBase,
				prepare: fixed(func(ctx context.Context, _ int) (int, error) {
					_, ok, err := ca.Get(ctx, "hot")
					if err == nil && !ok {
						err = errors.New("cache get missed the seeded key")
					}
					return 1, err
				})},
			// Hits take about a microsecond: sample their latency sparsely.
			benchCase{label: "cache get (cached)", note: cachedNote, n: n, sample: sampleEmbedded, baseline: getBase,
				prepare: fixed(func(ctx context.Context, _ int) (int, error) {
					_, ok, err := ca.GetCached(ctx, "hot", time.Minute)
					if err == nil && !ok {
						err = errors.New("cached get missed the seeded key")
					}
					return 1, err
				})},
			benchCase{label: "cache set", note: "Set with a 1 h TTL", n: n, sample: t.sample, baseline: setBase,
				prepare: fixed(func(ctx context.Context, w int) (int, error) {
					return 1, ca.Set(ctx, "c"+strconv.Itoa(w), value, time.Hour)
				})},
		)
		if err := group(ctx, t.o, t.rep, cases); err != nil {
			return nil, err
		}
	}
	return t.rep, nil
}

// Lock measures uncontended acquire+release pairs (each goroutine has its
// own lock) against raw SET NX PX + DEL pairs. Sluice's acquire also bumps
// the lock's fencing counter and its release compares the token, each in
// one script.
func Lock(ctx context.Context, o Options) (rep *Report, err error) {
	t, err := openTarget(ctx, o, "lock", nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	const ttl = 10 * time.Second
	for _, n := range t.o.Goroutines {
		var cases []benchCase
		base := ""
		if t.redis != nil {
			raw := t.redis.raw
			base = "raw SET NX + DEL"
			cases = append(cases, benchCase{label: base, note: "baseline; one op is a SET NX PX and a DEL", n: n, sample: 1,
				prepare: fixed(func(ctx context.Context, w int) (int, error) {
					key := t.key("rawlock" + strconv.Itoa(w))
					ok, err := setNX(ctx, raw, key, ttl)
					if err != nil {
						return 0, err
					}
					if !ok {
						return 0, fmt.Errorf("raw lock %s was held", key)
					}
					return 1, raw.Do(ctx, raw.B().Del().Key(key).Build()).Error()
				})})
		}
		cases = append(cases, benchCase{label: "lock acquire+release", note: "one op is a TryAcquire and a Release", n: n, sample: t.sample, baseline: base,
			prepare: fixed(func(ctx context.Context, w int) (int, error) {
				l, ok, err := t.client.TryAcquire(ctx, "lock"+strconv.Itoa(w), ttl)
				if err != nil {
					return 0, err
				}
				if !ok {
					return 0, fmt.Errorf("lock%d was held", w)
				}
				return 1, l.Release(ctx)
			})})
		if err := group(ctx, t.o, t.rep, cases); err != nil {
			return nil, err
		}
	}
	return t.rep, nil
}

func setNX(ctx context.Context, raw rueidis.Client, key string, ttl time.Duration) (bool, error) {
	err := raw.Do(ctx, raw.B().Set().Key(key).Value("token").Nx().PxMilliseconds(ttl.Milliseconds()).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	return err == nil, err
}
