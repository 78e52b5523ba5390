package keyspace

import (
	"fmt"
	"strings"
)

// The rules for cache keys, lock names and channel names live here, beside
// ValidateQueueName, so that the library and the HTTP service apply the
// same limits: the library wraps these errors in its ErrInvalidName, the
// service answers them 400. UTF-8 is checked by each caller first, with
// the error its callers match (sluice.ErrInvalidUTF8).
const (
	// MaxKeyLen bounds cache keys and lock names, in bytes, as stored
	// (the HTTP service's namespace included: see MaxServiceCacheKeyLen).
	MaxKeyLen = 1024
	// MaxChannelLen bounds channel names, in bytes.
	MaxChannelLen = 512
)

// CheckKey checks a cache key or lock name as the library stores it:
// 1-MaxKeyLen bytes, not in Sluice's own namespace (Internal). what names
// the kind in the error ("cache key", "lock name").
func CheckKey(what, name string) error {
	if name == "" || len(name) > MaxKeyLen {
		return fmt.Errorf("%s must be 1-%d bytes, got %d", what, MaxKeyLen, len(name))
	}
	if strings.HasPrefix(name, Internal) {
		return fmt.Errorf("%s %q uses the reserved prefix %q", what, name, Internal)
	}
	return nil
}

// CheckChannel checks a channel name: 1-MaxChannelLen bytes without
// spaces or control characters (a channel list is written "a,b" in URLs
// and logs, and pattern subscriptions treat other bytes specially).
func CheckChannel(name string) error {
	if name == "" || len(name) > MaxChannelLen {
		return fmt.Errorf("channel name must be 1-%d bytes, got %d", MaxChannelLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] == 0x7f {
			return fmt.Errorf("channel name %q has a space or control character", name)
		}
	}
	return nil
}

// The longest cache key and lock name an HTTP client may give: the stored
// name, the service's namespace included (ServiceCacheKey,
// ServiceLockName), is at most MaxKeyLen.
const (
	MaxServiceCacheKeyLen = MaxKeyLen - len(serviceCache)
	MaxServiceLockNameLen = MaxKeyLen - len(serviceLock)
)

// CheckServiceCacheKey checks a cache key as an HTTP client gives it:
// exactly the keys whose stored form, ServiceCacheKey(key), passes
// CheckKey, so the service refuses nothing the library would store and
// passes on nothing the library would refuse. The error speaks of the key
// as the client gave it.
func CheckServiceCacheKey(key string) error {
	return checkService("cache key", serviceCache, key)
}

// CheckServiceLockName is CheckServiceCacheKey for a lock name
// (ServiceLockName).
func CheckServiceLockName(name string) error {
	return checkService("lock name", serviceLock, name)
}

func checkService(what, namespace, name string) error {
	if limit := MaxKeyLen - len(namespace); name == "" || len(name) > limit {
		return fmt.Errorf("%s must be 1-%d bytes, got %d", what, limit, len(name))
	}
	return CheckKey(what, namespace+name)
}
