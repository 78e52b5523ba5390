package server

import (
	"net/http"
	"strings"
)

// Cross-origin requests (CORS). Browsers on the origins of
// Config.CORSOrigins may call the API; the service keeps no cookies, so it
// never answers Access-Control-Allow-Credentials: an API key travels in a
// header the page sets itself.
const (
	corsAllowMethods  = "GET, HEAD, POST, PUT, DELETE"
	corsAllowHeaders  = "Authorization, X-API-Key, Content-Type, Idempotency-Key"
	corsExposeHeaders = "Retry-After, Idempotency-Replayed, WWW-Authenticate"
	// corsMaxAge is how long (seconds) a browser may cache a preflight.
	corsMaxAge = "600"
)

// corsOrigin returns the value of Access-Control-Allow-Origin for the
// request's Origin: "*" when every origin is allowed, the origin itself
// when it is listed, "" when the request is not cross-origin or its
// origin is not allowed.
func (s *Server) corsOrigin(r *http.Request) string {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return ""
	}
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			return "*"
		}
		if strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}

// cors adds the CORS headers of an allowed origin to the reply and
// answers a preflight (an OPTIONS with Access-Control-Request-Method),
// reporting whether it did. A preflight from an origin that is not
// allowed, or for a route that does not exist, goes on to the router like
// any request (404 or 405, without CORS headers: the browser then refuses
// the call).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) (answered bool) {
	if len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	h := w.Header()
	// The answer depends on Origin whenever origins are configured, even
	// for a request that carries none: caches must keep them apart.
	h.Add("Vary", "Origin")
	allow := s.corsOrigin(r)
	if allow == "" {
		return false
	}
	h.Set("Access-Control-Allow-Origin", allow)
	method := r.Header.Get("Access-Control-Request-Method")
	if r.Method != http.MethodOptions || method == "" {
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		return false
	}
	// A preflight: answer it only for a route that takes the method.
	probe := r.Clone(r.Context())
	probe.Method = method
	if _, pattern := s.mux.Handler(probe); pattern == "" {
		h.Del("Access-Control-Allow-Origin")
		return false
	}
	h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// noStore lists the routes whose replies no cache may keep or replay: the
// ones that hand out or settle items.
var noStore = map[string]bool{
	"GET /detections/next":                true,
	"GET /v1/queues/{name}/next":          true,
	"POST /v1/queues/{name}/receive":      true,
	"POST /v1/queues/{name}/ack":          true,
	"POST /v1/queues/{name}/ack/{id}":     true,
	"POST /v1/queues/{name}/nack/{id}":    true,
	"POST /v1/queues/{name}/extend/{id}":  true,
	"POST /v1/queues/{name}/release/{id}": true,
	"GET /v1/queues/{name}/deliveries":    true,
}
