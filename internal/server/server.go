// Package server is Sluice's HTTP service: the Python service's routes, a JSON API
// over queues, dead-letter queues, pub/sub, cache and locks, live events
// over WebSocket and Server-Sent Events, health and Prometheus metrics.
//
// It is built only on the public API of package sluice, so it behaves the
// same on every engine. Two rules shape every handler:
//
//   - An engine write runs detached from the request's cancellation, under
//     its own timeout: a client that hangs up mid-request can never leave
//     an item stored while the service reports a failure, or the reverse.
//     Outcomes whose reply cannot be delivered are logged and counted.
//   - A blocking get never cancels an engine call that may be popping an
//     item; it waits in short steps, and an item popped for a client that
//     has gone is put back at the head of its queue.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluicehq/sluice"
	"go.opentelemetry.io/otel/trace"
)

// DetectionsQueue is the queue of the Python service's /detections routes.
const DetectionsQueue = "detections_queue"

// Server serves one sluice.Client over HTTP. Create it with New, serve it
// with Run (or mount Handler yourself and call Shutdown).
type Server struct {
	client  *sluice.Client
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	hub     *hub
	mux     *http.ServeMux
	handler http.Handler
	keys    [][sha256.Size]byte
	hooks   hooks
	logs    *logLimiter    // rate-limits repeated failure lines
	tracer  *requestTracer // nil: no tracing

	// stopping is closed when shutdown begins: blocking gets answer
	// "empty", WebSocket and SSE clients are closed.
	stopping chan struct{}
	stopOnce sync.Once
	// streams tracks WebSocket connections, which http.Server.Shutdown
	// does not wait for once hijacked.
	streams  sync.WaitGroup
	streamMu sync.Mutex
	// conns are the hijacked WebSocket connections, closed by a shutdown
	// that runs out of time; streamClients counts WebSocket and SSE
	// clients against Limits.MaxStreamClients.
	conns         streamRegistry
	streamClients atomic.Int64
	queues        queueGuard
	// ui is the dashboard's files (nil when Config.UI is off); csrf
	// refuses state-changing requests a browser sends from another site.
	ui   uiAssets
	csrf *http.CrossOriginProtection
}

// New builds a server for client. It validates cfg; client stays the
// caller's to close, after Run returns.
func New(client *sluice.Client, cfg Config, logger *slog.Logger) (*Server, error) {
	if client == nil {
		return nil, errors.New("server: nil client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		client:   client,
		cfg:      cfg,
		log:      logger,
		mux:      http.NewServeMux(),
		stopping: make(chan struct{}),
		logs:     newLogLimiter(defaultLogInterval),
		tracer:   newRequestTracer(cfg.Tracer),
	}
	for _, k := range cfg.APIKeys {
		s.keys = append(s.keys, sha256.Sum256([]byte(k)))
	}
	s.metrics = newMetrics(client, cfg, logger)
	s.hub = newHub(client, s.metrics, logger, cfg.FanoutLinger)
	s.hub.maxSubs = cfg.Limits.MaxSubscriptions
	s.queues.max = cfg.Limits.MaxQueues
	s.csrf = http.NewCrossOriginProtection()
	for _, o := range cfg.CORSOrigins {
		if o == "*" {
			// Every page may call the API, by the operator's choice.
			s.csrf = nil
			break
		}
		if err := s.csrf.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("server: CORS origin %q: %w", o, err)
		}
	}
	if cfg.UI {
		ui, err := loadUI()
		if err != nil {
			return nil, err
		}
		s.ui = ui
	}
	s.routes()
	s.handler = http.HandlerFunc(s.serve)
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("POST /detections", s.handle(s.handleDetectionAdd))
	m.HandleFunc("GET /detections/next", s.handle(s.handleDetectionNext))

	m.HandleFunc("GET /health", s.handleHealth)
	m.HandleFunc("GET /health/live", s.handleLive)
	m.HandleFunc("GET /health/ready", s.handleReady)
	m.HandleFunc("GET /openapi.json", s.handleOpenAPI)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: slogErrorLog{s.log}}))

	m.HandleFunc("GET /v1/queues", s.handle(s.handleQueueList))
	m.HandleFunc("GET /v1/queues/{name}", s.handle(s.handleQueueInfo))
	m.HandleFunc("PUT /v1/queues/{name}", s.handle(s.handleQueueDeclare))
	m.HandleFunc("DELETE /v1/queues/{name}", s.handle(s.handleQueueDelete))
	m.HandleFunc("POST /v1/queues/{name}/pause", s.handle(s.handleQueuePause))
	m.HandleFunc("POST /v1/queues/{name}/resume", s.handle(s.handleQueueResume))
	m.HandleFunc("POST /v1/queues/{name}/items", s.handle(s.handleQueueAdd))
	m.HandleFunc("GET /v1/queues/{name}/items", s.handle(s.handleQueuePeek))
	m.HandleFunc("DELETE /v1/queues/{name}/items", s.handle(s.handleQueueClear))
	m.HandleFunc("POST /v1/queues/{name}/batch", s.handle(s.handleQueueBatch))
	m.HandleFunc("GET /v1/queues/{name}/next", s.handle(s.handleQueueNext))
	m.HandleFunc("POST /v1/queues/{name}/receive", s.handle(s.handleQueueReceive))
	m.HandleFunc("POST /v1/queues/{name}/ack/{id}", s.handle(s.handleQueueAck))
	m.HandleFunc("POST /v1/queues/{name}/ack", s.handle(s.handleQueueAckBatch))
	m.HandleFunc("POST /v1/queues/{name}/nack/{id}", s.handle(s.handleQueueNack))
	m.HandleFunc("POST /v1/queues/{name}/extend/{id}", s.handle(s.handleQueueExtend))
	m.HandleFunc("POST /v1/queues/{name}/release/{id}", s.handle(s.handleQueueRelease))
	m.HandleFunc("GET /v1/queues/{name}/deliveries", s.handle(s.handleQueueDeliveries))
	m.HandleFunc("GET /v1/queues/{name}/dlq", s.handle(s.handleDLQList))
	m.HandleFunc("DELETE /v1/queues/{name}/dlq", s.handle(s.handleDLQPurge))
	m.HandleFunc("POST /v1/queues/{name}/dlq/requeue", s.handle(s.handleDLQRequeue))
	m.HandleFunc("DELETE /v1/queues/{name}/dlq/{index}", s.handle(s.handleDLQRemove))

	m.HandleFunc("POST /v1/channels/{channel}/messages", s.handle(s.handlePublish))
	m.HandleFunc("GET /v1/ws", s.handleWebSocket)
	m.HandleFunc("GET /ws/events", s.handleSeedWebSocket)
	m.HandleFunc("GET /v1/events", s.handleSSE)

	m.HandleFunc("PUT /v1/cache/{key}", s.handle(s.handleCachePut))
	m.HandleFunc("GET /v1/cache/{key}", s.handle(s.handleCacheGet))
	m.HandleFunc("DELETE /v1/cache/{key}", s.handle(s.handleCacheDelete))

	m.HandleFunc("GET /v1/locks/{name}", s.handle(s.handleLockLookup))
	m.HandleFunc("POST /v1/locks/{name}", s.handle(s.handleLockAcquire))
	m.HandleFunc("POST /v1/locks/{name}/refresh", s.handle(s.handleLockRefresh))
	m.HandleFunc("DELETE /v1/locks/{name}", s.handle(s.handleLockRelease))

	if s.ui != nil {
		m.HandleFunc("GET /{$}", s.handleUIRoot)
		m.HandleFunc("GET /ui/{$}", s.handleUI)
		m.HandleFunc("GET /ui/{file}", s.handleUI)
	}
}

// serve is the outermost handler: panic recovery, route lookup (so that
// the mux's plain-text 404 and 405 become JSON), authentication, metrics.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	route := pattern
	if route == "" {
		route = "unmatched"
	}
	if s.tracer != nil {
		// Started first and ended last, so that the span covers the
		// panic recovery's reply too.
		var span trace.Span
		r, span = s.tracer.start(r, pattern)
		defer func() { s.tracer.end(span, rec.statusCode(), rec.hijacked) }()
	}
	defer func() {
		if p := recover(); p != nil {
			//nolint:errorlint // a recovered value, compared by identity as net/http itself does
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.metrics.panics.Inc()
			s.log.Error("handler panic", "route", route, "method", r.Method, "panic", p, "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				writeError(rec, http.StatusInternalServerError, "internal server error")
			}
		}
		if !rec.hijacked {
			s.metrics.httpDuration.WithLabelValues(route, r.Method, strconv.Itoa(rec.statusCode())).Observe(time.Since(start).Seconds())
		}
	}()

	if s.cors(rec, r) {
		return
	}
	if noStore[pattern] {
		// These replies hand out or settle items: a cache that kept or
		// replayed one would lose or duplicate work.
		w.Header().Set("Cache-Control", "no-store")
	}
	if pattern == "" {
		// The mux answers 404, 405 (with Allow) or a redirect to the clean
		// path; errors are rewritten as JSON.
		s.mux.ServeHTTP(&jsonErrorWriter{statusRecorder: rec}, r)
		return
	}
	if r.Method == http.MethodHead && strings.HasSuffix(pattern, "/next") {
		// The mux lets HEAD reach GET routes; a HEAD must never pop an item.
		w.Header().Set("Allow", "GET")
		writeError(rec, http.StatusMethodNotAllowed, "method not allowed; allowed: GET")
		return
	}
	if err := s.csrfCheck(r); err != nil {
		// A page on another site can make a browser send simple POSTs
		// (and, with CORS, more) to this service: without API keys
		// nothing else would tell them from the user's own. Browsers say
		// where a request comes from (Sec-Fetch-Site, Origin); clients
		// that are not browsers send neither and are not affected.
		writeError(rec, http.StatusForbidden, "cross-origin request refused: a browser sent it from another site (Sec-Fetch-Site or Origin)")
		return
	}
	if !s.authorized(r, pattern) {
		s.metrics.authFailure.Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		writeError(rec, http.StatusUnauthorized, "missing or invalid API key (send X-API-Key or Authorization: Bearer)")
		return
	}
	if err := checkRequestText(r); err != nil {
		s.fail(rec, r, err)
		return
	}
	if r.ContentLength != 0 {
		// Bound reading the body (readBody narrows it and lifts it once the
		// body is in). A handler that never reads its body leaves it in
		// force for the server's drain of the body after the reply, so a
		// trickled body cannot hold the connection that way either.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	}
	s.mux.ServeHTTP(rec, r)
}

// csrfCheck refuses a browser's state-changing request from an origin
// that is neither the service's own nor one of Config.CORSOrigins.
func (s *Server) csrfCheck(r *http.Request) error {
	if s.csrf == nil {
		return nil
	}
	return s.csrf.Check(r)
}

// authorized checks the API key unless none are configured or the route is
// public: health, metrics, the API's description and the dashboard's
// files, which hold nothing secret. Keys are compared as SHA-256 digests in constant time, so
// neither a key's content nor its length leaks through timing.
func (s *Server) authorized(r *http.Request, pattern string) bool {
	if len(s.keys) == 0 {
		return true
	}
	path := pattern[strings.IndexByte(pattern, ' ')+1:]
	if path == "/metrics" || path == "/openapi.json" || path == "/health" || strings.HasPrefix(path, "/health/") || isUIPath(path) {
		return true
	}
	key := r.Header.Get("X-API-Key")
	if key == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			key = strings.TrimSpace(a[7:])
		}
	}
	if key == "" && (path == "/v1/ws" || path == "/ws/events") {
		// Browsers cannot set headers on a WebSocket handshake, except
		// the subprotocols it offers: one may carry the key, which keeps
		// it out of URLs (and so out of access logs and history).
		key = subprotocolKey(r)
	}
	if key == "" && (path == "/v1/ws" || path == "/ws/events" || path == "/v1/events") {
		// Nor on EventSource requests.
		key = r.URL.Query().Get("api_key")
	}
	if key == "" {
		return false
	}
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for i := range s.keys {
		ok |= subtle.ConstantTimeCompare(sum[:], s.keys[i][:])
	}
	return ok == 1
}

// Run serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting, ends blocking gets with "empty", closes WebSocket clients
// with 1001 and SSE streams, and waits (up to ShutdownTimeout) for the
// requests in progress. It returns nil after a clean shutdown. The caller
// closes the client (flushing a durable engine) afterwards.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	defer s.logs.flush(s.log)
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(earlyErrorListener{ln}) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "engine", s.client.EngineKind())

	select {
	case err := <-serveErr:
		s.beginShutdown()
		s.streams.Wait()
		s.hub.close()
		return fmt.Errorf("server: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(sctx) }()
	s.beginShutdown()
	err := <-shutdownErr
	if err != nil {
		// Out of time: whatever clients still hold (a trickled body, a
		// stalled reply) is cut off. The shutdown itself succeeded: the
		// process stops serving, and the engine is closed cleanly after.
		_ = srv.Close()
		s.log.Warn("graceful shutdown ran out of time; closed the remaining connections",
			"timeout", s.cfg.ShutdownTimeout, "websockets", s.conns.closeAll())
	}
	s.waitStreams(sctx)
	s.hub.close()
	<-serveErr
	s.log.Info("stopped")
	return nil
}

// waitStreams waits for the WebSocket handlers, closing their connections
// when ctx ends first.
func (s *Server) waitStreams(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.streams.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	if n := s.conns.closeAll(); n > 0 {
		s.log.Warn("closed WebSocket connections that did not close in time", "count", n)
	}
	<-done
}

// Shutdown begins a graceful shutdown for servers mounted with Handler
// rather than Run: blocking gets end, streams close. It waits for the
// WebSocket connections to finish closing, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.logs.flush(s.log)
	s.beginShutdown()
	done := make(chan struct{})
	go func() {
		s.streams.Wait()
		s.hub.close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// Cut off the connections that did not close in time; their
		// handlers end on their own.
		s.conns.closeAll()
		return fmt.Errorf("server: shutdown: %w", ctx.Err())
	}
}

func (s *Server) beginShutdown() {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	s.stopOnce.Do(func() { close(s.stopping) })
}

// hooks let tests stop a request at the moments where a client's
// departure matters; all are nil outside tests.
type hooks struct {
	waiting func(r *http.Request) // a blocking get is about to wait in the engine
	popped  func(r *http.Request) // a blocking get popped an item, not yet handed over
	wrote   func(r *http.Request) // an engine write finished, its reply not yet sent
}

// statusRecorder remembers the status code for metrics and panics.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	hijacked    bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// jsonErrorWriter turns the mux's own error replies into JSON.
type jsonErrorWriter struct {
	*statusRecorder
	replaced bool
}

func (w *jsonErrorWriter) WriteHeader(code int) {
	if code < 400 {
		w.statusRecorder.WriteHeader(code)
		return
	}
	w.replaced = true
	msg := "not found"
	if code == http.StatusMethodNotAllowed {
		msg = "method not allowed"
		if allow := w.Header().Get("Allow"); allow != "" {
			msg += "; allowed: " + allow
		}
	}
	w.Header().Del("X-Content-Type-Options")
	writeError(w.statusRecorder, code, msg)
}

func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.statusRecorder.Write(b)
}

// slogErrorLog routes net/http's and promhttp's error logs to slog.
type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) { l.log.Warn(strings.TrimSpace(fmt.Sprintln(v...))) }
