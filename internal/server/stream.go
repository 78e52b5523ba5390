package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// seedChannels are the channels of the Python service's /ws/events.
var seedChannels = []string{"camera_events", "risk_alerts", "system_status"}

// handleWebSocket is GET /v1/ws?channels=a,b. The server sends
// {"channel", "data"} (and {"type": "gap", "channel"} when the engine
// subscription was interrupted); the client may send subscribe,
// unsubscribe and ping messages.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	channels, err := parseChannels(r.URL.Query().Get("channels"), s.cfg.Limits.MaxChannelsPerClient)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.serveWebSocket(w, r, channels, false)
}

// handleSeedWebSocket is the Python service's GET /ws/events: the channels
// camera_events, risk_alerts and system_status, and, as the Python service's
// WebSocket manager broadcasts it, each message's data alone.
func (s *Server) handleSeedWebSocket(w http.ResponseWriter, r *http.Request) {
	s.serveWebSocket(w, r, seedChannels, true)
}

// trackStream registers a long-lived connection unless shutdown began.
func (s *Server) trackStream() bool {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	select {
	case <-s.stopping:
		return false
	default:
	}
	s.streams.Add(1)
	return true
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, channels []string, seed bool) {
	if !checkUpgrade(w, r) {
		return
	}
	if !s.trackStream() {
		writeError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	defer s.streams.Done()
	release, ok := s.admitStream(w)
	if !ok {
		return
	}
	defer release()
	cw := &corkingWriter{ResponseWriter: w, timeout: s.cfg.WriteTimeout}
	pw := &plainErrorWriter{ResponseWriter: cw}
	conn, err := websocket.Accept(pw, r, &websocket.AcceptOptions{
		OriginPatterns: s.cfg.WebSocketOrigins,
		Subprotocols:   []string{wsProtocol},
		// Frames are written pre-encoded (see wsTextFrame): no extensions.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has answered the client (400, 403 or 405), as JSON.
		pw.finish()
		s.log.Debug("websocket upgrade refused", "err", err)
		return
	}
	if cw.conn == nil {
		s.log.Error("websocket setup failed", "err", errNotHijacked)
		_ = conn.CloseNow()
		return
	}
	s.conns.add(conn)
	defer s.conns.remove(conn)
	s.metrics.wsClients.Inc()
	defer s.metrics.wsClients.Dec()

	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	sb := newSubscriber(s.cfg.ClientBuffer, s.cfg.Limits.ClientBufferBytes)
	defer s.hub.unsubscribeAll(sb)
	if err := s.hub.subscribe(ctx, sb, channels); err != nil {
		if errors.Is(err, errStreamLimit) {
			_ = conn.Close(websocket.StatusTryAgainLater, "subscription limit reached")
			return
		}
		s.logs.log(ctx, s.log, slog.LevelWarn, "websocket subscribe", "websocket subscribe failed",
			slog.Any("channels", channels), slog.Any("err", err))
		_ = conn.Close(websocket.StatusInternalError, "subscribe failed")
		return
	}

	c := &wsClient{s: s, conn: conn, cc: cw.conn, sb: sb, seed: seed,
		activity: make(chan struct{}, 1), replies: make(chan []byte, 16)}
	readerDone := make(chan error, 1)
	go func() { readerDone <- c.read(ctx) }()
	pingerDone := make(chan struct{})
	go func() { defer close(pingerDone); c.ping(ctx) }()
	defer func() {
		// Cancelling unblocks a reader waiting to hand over a reply and
		// stops the pinger; CloseNow unblocks a read the close handshake
		// did not end.
		cancel()
		_ = conn.CloseNow()
		<-readerDone
		<-pingerDone
	}()

	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case batch := <-sb.out:
			sb.taken(batch)
			if err := c.writeBatch(batch); err != nil {
				return
			}
		case msg := <-c.replies:
			if _, err := c.cc.Write(msg); err != nil {
				return
			}
		case <-c.activity:
			resetTimer(idle, s.cfg.IdleTimeout)
		case <-idle.C:
			if sb.count() == 0 {
				_ = conn.Close(websocket.StatusNormalClosure, "idle: no subscriptions")
				return
			}
			idle.Reset(s.cfg.IdleTimeout)
		case <-sb.done:
			if !sb.abrupt {
				_ = conn.Close(sb.code, sb.reason)
			}
			return
		case <-s.stopping:
			_ = conn.Close(websocket.StatusGoingAway, "server shutting down")
			return
		case err := <-readerDone:
			readerDone <- err
			if websocket.CloseStatus(err) == -1 {
				_ = conn.Close(websocket.StatusPolicyViolation, "")
			}
			return
		}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}

// wsClient is one WebSocket connection's state shared by its goroutines.
// Only the writer goroutine (serveWebSocket's loop) writes data frames;
// the reader hands it replies through replies.
type wsClient struct {
	s        *Server
	conn     *websocket.Conn
	cc       *corkConn
	sb       *subscriber
	seed     bool
	activity chan struct{}
	replies  chan []byte
}

// writeBatch sends batch and whatever else is waiting, corked into as few
// network writes as possible.
func (c *wsClient) writeBatch(batch []frame) error {
	c.cc.cork()
	err := c.writeFrames(batch)
	for more := true; more && err == nil; {
		select {
		case batch = <-c.sb.out:
			c.sb.taken(batch)
			err = c.writeFrames(batch)
		default:
			more = false
		}
	}
	if uerr := c.cc.uncork(); err == nil {
		err = uerr
	}
	return err
}

func (c *wsClient) writeFrames(batch []frame) error {
	for _, f := range batch {
		msg := f.wsEnvelope
		if c.seed {
			msg = f.wsData
		}
		if msg == nil {
			continue
		}
		if _, err := c.cc.Write(msg); err != nil {
			return err
		}
	}
	return nil
}

// read handles client messages until the connection ends.
func (c *wsClient) read(ctx context.Context) error {
	for {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			return err
		}
		select {
		case c.activity <- struct{}{}:
		default:
		}
		if typ != websocket.MessageText {
			_ = c.reply(ctx, map[string]string{"type": "error", "error": "send JSON text messages"})
			continue
		}
		cmd, err := decodeWSCommand(data)
		if err != nil {
			_ = c.reply(ctx, map[string]string{"type": "error", "error": err.Error()})
			continue
		}
		switch cmd.Type {
		case "ping":
			err = c.reply(ctx, map[string]string{"type": "pong"})
		case "subscribe":
			if limit := c.s.cfg.Limits.MaxChannelsPerClient; c.sb.count()+len(cmd.Channels) > limit {
				c.s.metrics.limitRefused.WithLabelValues("channels_per_client").Inc()
				err = c.reply(ctx, map[string]string{"type": "error", "error": fmt.Sprintf("too many channels: at most %d per client", limit)})
				break
			}
			if serr := c.s.hub.subscribe(ctx, c.sb, cmd.Channels); serr != nil {
				err = c.reply(ctx, map[string]string{"type": "error", "error": publicMessage(serr)})
				break
			}
			err = c.reply(ctx, map[string]any{"type": "subscribed", "channels": cmd.Channels})
		case "unsubscribe":
			c.s.hub.unsubscribe(c.sb, cmd.Channels)
			err = c.reply(ctx, map[string]any{"type": "unsubscribed", "channels": cmd.Channels})
		}
		if err != nil {
			return err
		}
	}
}

func (c *wsClient) reply(ctx context.Context, v any) error {
	if c.seed {
		// The Python service's clients expect event data only; they get no replies.
		return nil
	}
	b, err := jsonLine(v)
	if err != nil {
		return err
	}
	select {
	case c.replies <- wsTextFrame(b):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ping pings every PingInterval; a client that does not answer within
// PingTimeout is disconnected.
func (c *wsClient) ping(ctx context.Context) {
	t := time.NewTicker(c.s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.s.cfg.PingTimeout)
		err := c.conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.sb.drop("ping timeout")
			}
			return
		}
	}
}

// handleSSE is GET /v1/events?channels=a,b: Server-Sent Events, one
// "data:" event per message with the same JSON as the WebSocket, and
// "event: gap" notices.
func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	channels, err := parseChannels(r.URL.Query().Get("channels"), s.cfg.Limits.MaxChannelsPerClient)
	if err == nil && len(channels) == 0 {
		err = badRequest("parameter channels is required (channels=a,b)")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !s.trackStream() {
		writeError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	defer s.streams.Done()
	release, ok := s.admitStream(w)
	if !ok {
		return
	}
	defer release()
	sb := newSubscriber(s.cfg.ClientBuffer, s.cfg.Limits.ClientBufferBytes)
	defer s.hub.unsubscribeAll(sb)
	if err := s.hub.subscribe(r.Context(), sb, channels); err != nil {
		if errors.Is(err, errStreamLimit) {
			w.Header().Set("Retry-After", limitRetryAfter)
		}
		s.fail(w, r, err)
		return
	}
	s.metrics.sseClients.Inc()
	defer s.metrics.sseClients.Dec()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte(": connected\n\n")) {
		return
	}
	keepAlive := time.NewTicker(s.cfg.PingInterval)
	defer keepAlive.Stop()
	for {
		select {
		case batch := <-sb.out:
			sb.taken(batch)
			var b bytes.Buffer
			for _, f := range batch {
				b.Write(sseEvent(f))
			}
			if !send(b.Bytes()) {
				return
			}
		case <-keepAlive.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		case <-sb.done:
			_ = send([]byte("event: close\ndata: " + sb.reason + "\n\n"))
			return
		case <-s.stopping:
			_ = send([]byte("event: close\ndata: server shutting down\n\n"))
			return
		case <-r.Context().Done():
			return
		}
	}
}

func sseEvent(f frame) []byte {
	var b bytes.Buffer
	if f.data == nil {
		b.WriteString("event: gap\n")
	}
	// The envelope is compact JSON: one line.
	b.WriteString("data: ")
	b.Write(f.envelope)
	b.WriteString("\n\n")
	return b.Bytes()
}

func jsonLine(v any) ([]byte, error) {
	b, err := jsonMarshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return b, nil
}

// markHijacked tells the outer handler not to record a status for a
// connection that left HTTP.
func markHijacked(w http.ResponseWriter) {
	for {
		switch x := w.(type) {
		case *statusRecorder:
			x.hijacked = true
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}
