package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
)

// Declared queues over HTTP: PUT, GET and DELETE /v1/queues/{name}, and
// POST .../pause and .../resume. A settings conflict (an add's max_size
// or policy looser than, or other than, the declared ones) is 409, as is a
// delete refused for items in flight.

// maxLease bounds a declared lease, as the receive route bounds its own.
const maxLease = maxLockTTL

// declareBody is PUT /v1/queues/{name}'s body. An absent, null or zero
// field declares nothing.
type declareBody struct {
	MaxSize           *int64     `json:"max_size"`
	Policy            *string    `json:"policy"`
	PressureThreshold *float64   `json:"pressure_threshold"`
	Lease             msDuration `json:"lease"`
	MaxDeliveries     *int64     `json:"max_deliveries"`
}

// decodeDeclare parses a declare body into settings, with every mistake
// said in the client's terms (the field's JSON name).
func decodeDeclare(body []byte) (sluice.QueueSettings, error) {
	var s sluice.QueueSettings
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return s, badRequest("body: want a JSON object of settings, such as {\"max_size\": 1000, \"policy\": \"reject\"} ({} declares nothing)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b declareBody
	if err := dec.Decode(&b); err != nil {
		return s, badRequest("body: %v (fields: max_size, policy, pressure_threshold, lease, max_deliveries)", err)
	}
	if dec.More() {
		return s, badRequest("body: one JSON object expected")
	}
	if b.MaxSize != nil {
		if n := *b.MaxSize; n < -1 || n > 1<<40 {
			return s, badRequest(`"max_size": %d: want a positive size, -1 for no bound, or 0 to declare none`, n)
		}
		s.MaxSize = *b.MaxSize
	}
	if b.Policy != nil && *b.Policy != "" {
		p, err := sluice.ParsePolicy(*b.Policy)
		if err != nil {
			return s, badRequest(`"policy": %q: want reject, dlq or drop_oldest`, *b.Policy)
		}
		s.Policy = p
	}
	if b.PressureThreshold != nil {
		if t := *b.PressureThreshold; !(t >= 0 && t <= 1) {
			return s, badRequest(`"pressure_threshold": %v: want a fill ratio in (0, 1], or 0 to declare none`, t)
		}
		s.PressureThreshold = *b.PressureThreshold
	}
	lease, err := b.Lease.field("lease", false, maxLease)
	if err != nil {
		return s, err
	}
	if lease%time.Millisecond != 0 {
		return s, badRequest(`"lease": %s: want a whole number of milliseconds`, b.Lease.raw)
	}
	s.Lease = lease
	if b.MaxDeliveries != nil {
		if n := *b.MaxDeliveries; n < 0 || n > 1000 {
			return s, badRequest(`"max_deliveries": %d: want 1 to 1000, or 0 to declare none`, n)
		}
		s.MaxDeliveries = int(*b.MaxDeliveries)
	}
	return s, nil
}

// settingsJSON is QueueSettings as the routes show them: the lease as a Go
// duration string and in milliseconds, omitted fields not set.
type settingsJSON struct {
	MaxSize           int64   `json:"max_size,omitempty"`
	Policy            string  `json:"policy,omitempty"`
	PressureThreshold float64 `json:"pressure_threshold,omitempty"`
	Lease             string  `json:"lease,omitempty"`
	LeaseMS           int64   `json:"lease_ms,omitempty"`
	MaxDeliveries     int     `json:"max_deliveries,omitempty"`
}

func toSettingsJSON(s sluice.QueueSettings) settingsJSON {
	out := settingsJSON{
		MaxSize: s.MaxSize, Policy: string(s.Policy), PressureThreshold: s.PressureThreshold,
		MaxDeliveries: s.MaxDeliveries,
	}
	if s.Lease != 0 {
		out.Lease, out.LeaseMS = s.Lease.String(), s.Lease.Milliseconds()
	}
	return out
}

// queueSettingsInfo is the settings part of GET /v1/queues/{name}.
type queueSettingsInfo struct {
	// Settings are the effective settings, every field filled in.
	Settings settingsJSON `json:"settings"`
	// Declared holds the declared fields only ({} when none are).
	Declared settingsJSON `json:"declared"`
	// Sources says where each effective value comes from.
	Sources sluice.SettingSources `json:"sources"`
	Paused  bool                  `json:"paused"`
}

func toSettingsInfo(e sluice.EffectiveSettings) queueSettingsInfo {
	return queueSettingsInfo{
		Settings: toSettingsJSON(e.Settings), Declared: toSettingsJSON(e.Declared),
		Sources: e.Sources, Paused: e.Paused,
	}
}

// handleQueueDeclare is PUT /v1/queues/{name}: declare, or redeclare, the
// queue's settings. It answers as GET /v1/queues/{name} does; declaring the
// same settings again changes nothing. A declare that would create a queue
// past Limits.MaxQueues is refused (507), as an add is.
func (s *Server) handleQueueDeclare(w http.ResponseWriter, r *http.Request) error {
	q, err := s.queue(r)
	if err != nil {
		return err
	}
	settings, err := decodeBody(s, w, r, decodeDeclare)
	if err != nil {
		return err
	}
	fresh, err := s.queues.admit(r.Context(), s, q.Name())
	if err != nil {
		return err
	}
	err = s.write(r, func(ctx context.Context) error {
		return s.client.DeclareQueue(ctx, q.Name(), settings)
	})
	if err != nil {
		if fresh {
			s.queues.forget(q.Name())
		}
		return afterWrite(err)
	}
	info, err := s.queueInfo(r.Context(), q)
	if err != nil {
		return err
	}
	s.reply(w, r, http.StatusOK, info, "queue", q.Name())
	return nil
}

// handleQueueDelete is DELETE /v1/queues/{name}[?force=true]: remove the
// queue, its DLQs, its delivery state and its settings. Items in flight
// make it 409 unless force is set.
func (s *Server) handleQueueDelete(w http.ResponseWriter, r *http.Request) error {
	q, p, err := s.queueParams(r)
	if err != nil {
		return err
	}
	force := false
	switch v := p.str("force"); v {
	case "", "false", "0":
	case "true", "1":
		force = true
	default:
		p.fail("force", v, "true or false")
	}
	if p.err != nil {
		return p.err
	}
	var res sluice.DeleteQueueResult
	err = s.write(r, func(ctx context.Context) (err error) {
		res, err = s.client.DeleteQueue(ctx, q.Name(), &sluice.DeleteQueueOptions{Force: force})
		return err
	})
	if errors.Is(err, sluice.ErrQueueInFlight) {
		inflight, ierr := q.Pressure(r.Context())
		body := map[string]any{"error": clientText(err)}
		if ierr == nil {
			body["in_flight"] = inflight.InFlight
		}
		s.reply(w, r, http.StatusConflict, body, "queue", q.Name())
		return nil
	}
	if err != nil {
		return afterWrite(err)
	}
	s.queues.forget(q.Name())
	s.reply(w, r, http.StatusOK, map[string]any{"deleted": res}, "queue", q.Name(), "force", force)
	return nil
}

// handleQueuePause is POST /v1/queues/{name}/pause.
func (s *Server) handleQueuePause(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, true)
}

// handleQueueResume is POST /v1/queues/{name}/resume.
func (s *Server) handleQueueResume(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, false)
}

func (s *Server) setPaused(w http.ResponseWriter, r *http.Request, paused bool) error {
	q, err := s.queue(r)
	if err != nil {
		return err
	}
	err = s.write(r, func(ctx context.Context) error {
		if paused {
			return q.Pause(ctx)
		}
		return q.Resume(ctx)
	})
	if err != nil {
		return afterWrite(err)
	}
	s.reply(w, r, http.StatusOK, map[string]any{"queue": q.Name(), "paused": paused}, "queue", q.Name())
	return nil
}

// queueInfo is GET /v1/queues/{name}'s answer.
type queueInfo struct {
	sluice.Pressure
	DLQLength    int64 `json:"dlq_length"`
	FailedLength int64 `json:"failed_length"`
	queueSettingsInfo
}

func (s *Server) queueInfo(ctx context.Context, q *sluice.Queue) (queueInfo, error) {
	var info queueInfo
	es, err := q.Settings(ctx)
	if err != nil {
		return info, err
	}
	info.queueSettingsInfo = toSettingsInfo(es)
	if info.Pressure, err = q.Pressure(ctx); err != nil {
		return info, err
	}
	if info.DLQLength, err = q.DLQ(sluice.DLQOverflow).Len(ctx); err != nil {
		return info, err
	}
	info.FailedLength, err = q.DLQ(sluice.DLQFailed).Len(ctx)
	return info, err
}
