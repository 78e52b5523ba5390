package keyspace

import (
	"strings"
	"testing"
)

func TestIdempotencyKeyIsInternal(t *testing.T) {
	if got := (Space{Prefix: "app:"}).Idempotency("q", "req-1"); got != "app:sluice#idem:q:req-1" {
		t.Errorf("Idempotency = %q", got)
	}
}

func TestStandaloneLayoutIsCompat(t *testing.T) {
	q := Space{}.Queue("detections_queue")
	if q.List != "detections_queue" || q.OverflowDLQ != "dlq:overflow:detections_queue" || q.FailedDLQ != "dlq:detections_queue" {
		t.Fatalf("layout: %+v", q)
	}
	p := Space{Prefix: "app:"}.Queue("q")
	if p.List != "app:q" || p.FailedDLQ != "app:dlq:q" {
		t.Fatalf("prefixed: %+v", p)
	}
}

// slotTag returns the part of key Redis Cluster hashes.
func slotTag(key string) string {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key[open+1 : open+1+end]
		}
	}
	return key
}

func TestClusterKeysShareOneSlot(t *testing.T) {
	for _, name := range []string{"jobs", "{user}:jobs", "a{b", "a}b{", "x{}y"} {
		q := Space{Cluster: true, Prefix: "p:"}.Queue(name)
		keys := []string{q.List, q.OverflowDLQ, q.FailedDLQ, q.Leases, q.Jobs, q.Handoff, q.Seq, q.Settings, q.Wake, q.Scheduled, q.Stats}
		// An idempotency key is the client's: braces in it must not move
		// its record out of the queue's slot.
		for _, k := range []string{"k", "{other}", "}{x}", "{", "a}b{c}"} {
			keys = append(keys, Space{Cluster: true, Prefix: "p:"}.Idempotency(name, k))
		}
		tag := slotTag(keys[0])
		for _, k := range keys {
			if slotTag(k) != tag {
				t.Errorf("queue %q: key %q hashes %q, list hashes %q", name, k, slotTag(k), tag)
			}
		}
	}
	lock, fence := Space{Cluster: true}.Lock("camera:1")
	if slotTag(lock) != slotTag(fence) {
		t.Errorf("lock %q and fence %q in different slots", lock, fence)
	}
}

func TestValidateQueueName(t *testing.T) {
	for _, ok := range []string{"q", "detections_queue", "a.b:c-d{e}", strings.Repeat("x", 200)} {
		if err := ValidateQueueName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a#b", "é", strings.Repeat("x", 201), "a/b"} {
		if err := ValidateQueueName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A queue named like a DLQ would be that DLQ: its items would be another
// queue's dead letters, and requeueing them would feed them back in.
func TestReservedQueueNames(t *testing.T) {
	for _, tc := range []struct{ name, says string }{
		{"dlq:overflow:foo", `overflow DLQ of queue "foo"`},
		{"dlq:foo", `failed DLQ of queue "foo"`},
		{"dlq:overflow:{foo}", `overflow DLQ of queue "{foo}"`},
		{"overflow:foo", `overflow DLQ of queue "foo"`},
		{"sluice#queues", "Sluice's own keys"},
	} {
		err := ValidateQueueName(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ValidateQueueName(%q) = %v, want an error saying %s", tc.name, err, tc.says)
		}
	}
	for _, ok := range []string{"dlq", "dlqx:a", "my:dlq:a", "overflow", "a:overflow:b"} {
		if err := ValidateQueueName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// queueKeys lists every key of queue name.
func queueKeys(s Space, name string) []string {
	q := s.Queue(name)
	return []string{q.List, q.OverflowDLQ, q.FailedDLQ, q.Leases, q.Jobs, q.Handoff, q.Seq, q.Settings, q.Wake, q.Scheduled, q.Stats}
}

func TestCacheLockFence(t *testing.T) {
	std := Space{Prefix: "p:"}
	if got := std.CacheLockFence("camera:1"); got != "p:sluice#fence:camera:1" {
		t.Errorf("standalone fence = %q", got)
	}
	cl := Space{Cluster: true}
	// The lock "x" is the key {x}: only the cache key "{x}" shares it.
	if got := cl.CacheLockFence("x"); got != "" {
		t.Errorf("cluster cache key x: fence %q, want none (lock x is {x})", got)
	}
	if _, fence := cl.Lock("x"); cl.CacheLockFence("{x}") != fence {
		t.Errorf("cluster cache key {x}: fence %q, want lock x's %q", cl.CacheLockFence("{x}"), fence)
	}
}

func FuzzValidateQueueName(f *testing.F) {
	f.Add("q")
	f.Add("a#b")
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateQueueName(name) != nil {
			return
		}
		// A valid name can never produce one of Sluice's own keys.
		if strings.Contains(name, "#") {
			t.Fatalf("%q accepted", name)
		}
		for _, s := range []Space{{}, {Prefix: "p:"}, {Cluster: true}} {
			// Nor another queue's DLQ: no valid queue's DLQ key is this
			// queue's list.
			list := s.Queue(name).List
			if strings.HasPrefix(list, s.Prefix+"dlq:") {
				t.Fatalf("%q: list key %q is a DLQ key", name, list)
			}
			// Nor any key of the HTTP service's cache entries and locks,
			// whatever their names: those all start with one of these.
			for _, k := range queueKeys(s, name) {
				rest := strings.TrimPrefix(k, s.Prefix)
				for _, p := range []string{"cache#", "lock#", "{lock#", "sluice#fence:"} {
					if strings.HasPrefix(rest, p) {
						t.Fatalf("%q: queue key %q is in the HTTP namespace %q", name, k, p)
					}
				}
			}
		}
	})
}

func TestNameRules(t *testing.T) {
	long := func(n int) string { return strings.Repeat("n", n) }
	for _, c := range []struct {
		name  string
		err   error
		valid bool
	}{
		{"key 1", CheckKey("cache key", "k"), true},
		{"key max", CheckKey("cache key", long(MaxKeyLen)), true},
		{"key spaces", CheckKey("cache key", "a b"), true},
		{"key empty", CheckKey("cache key", ""), false},
		{"key over", CheckKey("cache key", long(MaxKeyLen+1)), false},
		{"key reserved", CheckKey("lock name", Internal+"x"), false},
		{"service cache max", CheckServiceCacheKey(long(MaxServiceCacheKeyLen)), true},
		{"service cache over", CheckServiceCacheKey(long(MaxServiceCacheKeyLen + 1)), false},
		{"service lock max", CheckServiceLockName(long(MaxServiceLockNameLen)), true},
		{"service lock over", CheckServiceLockName(long(MaxServiceLockNameLen + 1)), false},
		{"service lock empty", CheckServiceLockName(""), false},
		{"channel max", CheckChannel(long(MaxChannelLen)), true},
		{"channel over", CheckChannel(long(MaxChannelLen + 1)), false},
		{"channel space", CheckChannel("a b"), false},
		{"channel control", CheckChannel("a\x7f"), false},
	} {
		if (c.err == nil) != c.valid {
			t.Errorf("%s: %v, want valid %v", c.name, c.err, c.valid)
		}
	}
	if MaxKeyLen-MaxServiceCacheKeyLen != len(ServiceCacheKey("")) || MaxKeyLen-MaxServiceLockNameLen != len(ServiceLockName("")) {
		t.Fatal("the service's limits do not leave exactly its namespaces' room")
	}
}
