package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/internal/keyspace"
)

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

// invalidName is the 400 for a name the shared rule (internal/keyspace,
// which the library applies too) refuses.
func invalidName(err error) error {
	if err == nil {
		return nil
	}
	return badRequest("%v", err)
}

// The service keeps its cache entries and locks in namespaces of their own
// (keyspace.ServiceCacheKey, ServiceLockName), so that no key given over
// HTTP can address a queue, a DLQ, Sluice's own keys or an entry of the
// other kind: PUT /v1/cache/jobs never touches the queue jobs, and GET
// /v1/cache/L never reads lock L's token. Replies and logs name the key as
// the client gave it.

// cacheKey is the library cache key of the route's {key}.
func cacheKey(r *http.Request) (key, stored string, err error) {
	key = r.PathValue("key")
	return key, keyspace.ServiceCacheKey(key), invalidName(keyspace.CheckServiceCacheKey(key))
}

// handleCachePut is PUT /v1/cache/{key}?ttl=300 (seconds; absent or 0:
// no expiry).
func (s *Server) handleCachePut(w http.ResponseWriter, r *http.Request) error {
	key, stored, err := cacheKey(r)
	if err != nil {
		return err
	}
	p := queryParams(r)
	ttl := p.duration("ttl", 0, 0, maxCacheTTL)
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
