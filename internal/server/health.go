package server

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/sluicehq/sluice"
)

// health is docs/compat.md's health shape plus the engine kind and its
// topology.
type health struct {
	sluice.Health
	Engine   string `json:"engine"`
	Topology string `json:"topology"`
}

// check reports the engine's health. The cause of a failure is logged,
// not shown: it names the engine's address.
func (s *Server) check(ctx context.Context) health {
	h := health{Health: s.client.Health(ctx), Engine: string(s.client.EngineKind()), Topology: string(s.client.Topology())}
	if h.Error != "" {
		s.logs.log(ctx, s.log, slog.LevelWarn, "health", "health check failed", slog.String("err", h.Error))
		h.Error = "engine unavailable"
	}
	return h
}

// handleHealth is GET /health: 200 healthy, 503 unhealthy.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := s.check(r.Context())
	status := http.StatusOK
	if h.Status != "healthy" {
		status = http.StatusServiceUnavailable
	}
	_ = writeJSON(w, status, h)
}

// handleLive is GET /health/live: the process is up.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	_ = writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// handleReady is GET /health/ready: 200 while the engine answers and the
// server is not shutting down, so a load balancer stops sending traffic
// as soon as a shutdown begins.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.stopping:
		_ = writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting_down"})
		return
	default:
	}
	h := s.check(r.Context())
	if h.Status != "healthy" {
		_ = writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "error": h.Error})
		return
	}
	_ = writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
