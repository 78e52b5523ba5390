// The HTTP load generator behind `sluice bench http`: keep-alive request
// phases, WebSocket fan-out and a bare net/http + Redis baseline. It lives
// here, outside internal/server, so that the service's code imports no
// Redis client and dials no WebSockets.

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/rueidis"
)

// httpLoadConfig drives runHTTPLoad. Zero fields take the defaults.
type httpLoadConfig struct {
	// URL of the running server, e.g. http://127.0.0.1:8000 (required).
	URL string
	// APIKey is sent as X-API-Key when set.
	APIKey string
	// Clients is the number of concurrent keep-alive HTTP clients (64).
	Clients int
	// Duration of each request phase (10 s).
	Duration time.Duration
	// Payload is the detection posted (a small JSON object by default).
	Payload []byte

	// FanoutClients WebSocket clients (1000) subscribe to one channel, to
	// which FanoutRate messages per second (1000) are published for
	// FanoutDuration (10 s). FanoutClients < 0 skips the fan-out test.
	FanoutClients  int
	FanoutRate     int
	FanoutDuration time.Duration

	// RedisURL, when set, adds the baseline: a bare net/http handler doing
	// one Redis call per request (an RPUSH, and a bounded-add script), run
	// in this process and driven exactly like the server.
	RedisURL string
	// KeyPrefix is prepended to the baseline's Redis key.
	KeyPrefix string
}

func (c httpLoadConfig) withDefaults() httpLoadConfig {
	if c.Clients <= 0 {
		c.Clients = 64
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if len(c.Payload) == 0 {
		c.Payload = []byte(`{"camera_id":1,"label":"person","confidence":0.93,"bbox":[12,40,118,230]}`)
	}
	if c.FanoutClients == 0 {
		c.FanoutClients = 1000
	}
	if c.FanoutRate <= 0 {
		c.FanoutRate = 1000
	}
	if c.FanoutDuration <= 0 {
		c.FanoutDuration = 10 * time.Second
	}
	c.URL = strings.TrimRight(c.URL, "/")
	return c
}

// LatencyStats summarises one request phase.
type LatencyStats struct {
	Requests  int64         `json:"requests"`   // answered 2xx: only these are measured
	Errors    int64         `json:"errors"`     // transport failures
	Non2xx    int64         `json:"non_2xx"`    // answered with another status
	PerSecond float64       `json:"per_second"` // 2xx answers / elapsed
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
	Max       time.Duration `json:"max"`
}

func (s LatencyStats) String() string {
	return fmt.Sprintf("%9.0f req/s  p50 %-9v p99 %-9v max %-9v (%d requests, %d errors, %d non-2xx)",
		s.PerSecond, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Max.Round(time.Microsecond),
		s.Requests, s.Errors, s.Non2xx)
}

// FanoutStats summarises the WebSocket fan-out test. Latency is from the
// publisher's send time, embedded in each message, to its arrival.
type FanoutStats struct {
	Clients   int           `json:"clients"`
	Rate      int           `json:"rate"`
	Published int64         `json:"published"`
	Expected  int64         `json:"expected"` // published * clients
	Received  int64         `json:"received"`
	Closed    int64         `json:"closed"` // clients disconnected by the server
	Setup     time.Duration `json:"setup"`  // connecting and subscribing every client
	// PublishRate is the rate achieved: below Rate when the machine could
	// not keep up, which makes the latencies meaningless.
	PublishRate float64       `json:"publish_rate"`
	P50         time.Duration `json:"p50"`
	P99         time.Duration `json:"p99"`
	Max         time.Duration `json:"max"`
}

func (s FanoutStats) String() string {
	return fmt.Sprintf("%d clients x %d msg/s (achieved %.0f/s): delivered %d/%d, p50 %v p99 %v max %v, %d clients closed by the server (setup %v)",
		s.Clients, s.Rate, s.PublishRate, s.Received, s.Expected, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond),
		s.Max.Round(time.Microsecond), s.Closed, s.Setup.Round(time.Millisecond))
}

// HTTPReport is what runHTTPLoad measured.
type HTTPReport struct {
	Engine  string       `json:"engine"`
	Clients int          `json:"clients"`
	Post    LatencyStats `json:"post_detections"`
	Next    LatencyStats `json:"get_detections_next"`
	// NextItems of the Next requests returned an item; the rest "empty".
	NextItems      int64         `json:"next_items"`
	BaselineRPush  *LatencyStats `json:"baseline_rpush,omitempty"`
	BaselineScript *LatencyStats `json:"baseline_script,omitempty"`
	// BaselineBare is the embedded engine's baseline: a bare net/http
	// handler appending to an in-memory slice under a mutex.
	BaselineBare *LatencyStats `json:"baseline_bare,omitempty"`
	Fanout       *FanoutStats  `json:"fanout,omitempty"`
}

func (r HTTPReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "engine %s, %d keep-alive clients\n", r.Engine, r.Clients)
	fmt.Fprintf(&b, "POST /detections         %v\n", r.Post)
	fmt.Fprintf(&b, "GET  /detections/next    %v (%d items)\n", r.Next, r.NextItems)
	if r.BaselineRPush != nil {
		fmt.Fprintf(&b, "baseline net/http RPUSH  %v\n", *r.BaselineRPush)
	}
	if r.BaselineScript != nil {
		fmt.Fprintf(&b, "baseline net/http EVAL   %v\n", *r.BaselineScript)
		if r.BaselineScript.PerSecond > 0 {
			fmt.Fprintf(&b, "service / script baseline: %.0f%%\n", 100*r.Post.PerSecond/r.BaselineScript.PerSecond)
		}
	}
	if r.BaselineBare != nil {
		fmt.Fprintf(&b, "baseline net/http slice  %v\n", *r.BaselineBare)
		if r.BaselineBare.PerSecond > 0 {
			fmt.Fprintf(&b, "service / slice baseline: %.0f%%\n", 100*r.Post.PerSecond/r.BaselineBare.PerSecond)
		}
	}
	if r.Fanout != nil {
		fmt.Fprintf(&b, "WebSocket fan-out        %v\n", *r.Fanout)
	}
	return b.String()
}

// runHTTPLoad measures a running server: POST /detections and GET
// /detections/next with cfg.Clients keep-alive clients, and WebSocket
// fan-out. It leaves the items it posted in detections_queue (and its DLQ)
// of the server. (measureInRounds measures a service this process runs,
// with its baselines.)
func runHTTPLoad(ctx context.Context, cfg httpLoadConfig) (HTTPReport, error) {
	cfg = cfg.withDefaults()
	if _, err := url.Parse(cfg.URL); err != nil || cfg.URL == "" {
		return HTTPReport{}, fmt.Errorf("bench: server URL %q: want http://host:port", cfg.URL)
	}
	hc := loadClient(cfg.Clients)
	defer hc.CloseIdleConnections()
	rep := HTTPReport{Clients: cfg.Clients}

	var h struct {
		Engine string `json:"engine"`
	}
	if err := getJSON(ctx, hc, cfg.URL+"/health", &h); err != nil {
		return rep, fmt.Errorf("bench: server health: %w", err)
	}
	rep.Engine = h.Engine

	header := http.Header{"Content-Type": {"application/json"}}
	if cfg.APIKey != "" {
		header.Set("X-API-Key", cfg.APIKey)
	}
	// A phase with failed requests still reports what it measured; the
	// error says the measurement is not clean.
	var postErr, nextErr error
	rep.Post, postErr = drive(ctx, hc, cfg, http.MethodPost, cfg.URL+"/detections", header, cfg.Payload, nil)
	var items atomic.Int64
	rep.Next, nextErr = drive(ctx, hc, cfg, http.MethodGet, cfg.URL+"/detections/next?timeout=0", header, nil, func(body []byte) {
		if !bytes.Contains(body, []byte(`"status":"empty"`)) {
			items.Add(1)
		}
	})
	rep.NextItems = items.Load()

	if cfg.FanoutClients > 0 {
		f, err := runFanout(ctx, cfg)
		if err != nil {
			return rep, errors.Join(postErr, nextErr, err)
		}
		rep.Fanout = &f
	}
	return rep, errors.Join(postErr, nextErr, ctx.Err())
}

func loadClient(n int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        n * 2,
		MaxIdleConnsPerHost: n * 2,
		MaxConnsPerHost:     n,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// drive runs cfg.Clients loops of one request for cfg.Duration. Only 2xx
// answers are measured (an error answered fast is no throughput); any
// other answer or transport failure is counted and makes the error, which
// names the first of them.
func drive(ctx context.Context, hc *http.Client, cfg httpLoadConfig, method, u string, header http.Header, body []byte, onBody func([]byte)) (LatencyStats, error) {
	var s samples
	err := s.drive(ctx, hc, cfg, method, u, header, body, onBody)
	return s.stats(), err
}

// samples are the latencies, time and failures of one or more phases of
// one kind, merged so that rounds of a case are summarized together.
type samples struct {
	lat            [][]time.Duration
	elapsed        time.Duration
	errors, non2xx int64
}

func (s *samples) stats() LatencyStats {
	st := summarize(s.lat, s.elapsed)
	st.Errors, st.Non2xx = s.errors, s.non2xx
	return st
}

// drive runs one phase (see the function drive) and adds it to s.
func (s *samples) drive(ctx context.Context, hc *http.Client, cfg httpLoadConfig, method, u string, header http.Header, body []byte, onBody func([]byte)) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	lat := make([][]time.Duration, cfg.Clients)
	var errs, non2xx atomic.Int64
	var firstMu sync.Mutex
	var first error
	fail := func(n *atomic.Int64, err error) {
		n.Add(1)
		firstMu.Lock()
		if first == nil {
			first = err
		}
		firstMu.Unlock()
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
				if err != nil {
					fail(&errs, err)
					return
				}
				req.Header = header
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						fail(&errs, err)
					}
					continue
				}
				buf, err = readAll(resp.Body, buf[:0])
				resp.Body.Close()
				if err != nil {
					if ctx.Err() == nil {
						fail(&errs, err)
					}
					continue
				}
				if resp.StatusCode/100 != 2 {
					fail(&non2xx, fmt.Errorf("%s: %.200s", resp.Status, bytes.TrimSpace(buf)))
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
				if onBody != nil {
					onBody(buf)
				}
			}
		}()
	}
	wg.Wait()
	s.lat = append(s.lat, lat...)
	s.elapsed += time.Since(start)
	s.errors += errs.Load()
	s.non2xx += non2xx.Load()
	if first != nil {
		var ok int
		for _, l := range lat {
			ok += len(l)
		}
		return fmt.Errorf("bench: %s %s: %d transport errors and %d non-2xx answers beside %d 2xx; the first: %w",
			method, u, errs.Load(), non2xx.Load(), ok, first)
	}
	return nil
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func summarize(per [][]time.Duration, elapsed time.Duration) LatencyStats {
	var all []time.Duration
	for _, l := range per {
		all = append(all, l...)
	}
	st := LatencyStats{Requests: int64(len(all))}
	if len(all) == 0 {
		return st
	}
	slices.Sort(all)
	st.PerSecond = float64(len(all)) / elapsed.Seconds()
	st.P50 = all[len(all)/2]
	st.P99 = all[min(len(all)*99/100, len(all)-1)]
	st.Max = all[len(all)-1]
	return st
}

// baselineScript is a bounded add in one round trip: the least any
// correct service must do per POST.
const baselineScript = `
local n = redis.call('LLEN', KEYS[1])
if n >= tonumber(ARGV[2]) then return -1 end
return redis.call('RPUSH', KEYS[1], ARGV[1])`

// httpRounds is how many times the service and its baselines take turns,
// each for Duration/httpRounds: a machine whose speed drifts slows both.
const httpRounds = 3

// measureInRounds measures a service this process runs: start starts it
// and returns its URL and a stop. In each round the service runs alone
// for POST /detections and GET /detections/next, is stopped, and then the
// baselines run alone (nothing measured shares the machine with what is
// not). The fan-out test runs last, on a service of its own.
func measureInRounds(ctx context.Context, cfg httpLoadConfig, engine string, start func(ctx context.Context) (string, func() error, error)) (HTTPReport, error) {
	cfg = cfg.withDefaults()
	phase := cfg
	phase.Duration = max(cfg.Duration/httpRounds, 100*time.Millisecond)
	rep := HTTPReport{Engine: engine, Clients: cfg.Clients}
	base, err := newBaselines(ctx, cfg)
	if err != nil {
		return rep, err
	}
	defer base.close(ctx)
	header := http.Header{"Content-Type": {"application/json"}}
	if cfg.APIKey != "" {
		header.Set("X-API-Key", cfg.APIKey)
	}
	var post, next samples
	var items atomic.Int64
	var measured error // phases with failed requests still report what they measured
	for range httpRounds {
		u, stop, err := start(ctx)
		if err != nil {
			return rep, err
		}
		hc := loadClient(cfg.Clients)
		measured = errors.Join(measured,
			post.drive(ctx, hc, phase, http.MethodPost, u+"/detections", header, cfg.Payload, nil),
			next.drive(ctx, hc, phase, http.MethodGet, u+"/detections/next?timeout=0", header, nil, func(body []byte) {
				if !bytes.Contains(body, []byte(`"status":"empty"`)) {
					items.Add(1)
				}
			}))
		hc.CloseIdleConnections()
		if err := stop(); err != nil {
			return rep, err
		}
		measured = errors.Join(measured, base.round(ctx, phase))
	}
	rep.Post, rep.Next, rep.NextItems = post.stats(), next.stats(), items.Load()
	base.report(&rep)
	if cfg.FanoutClients > 0 {
		u, stop, err := start(ctx)
		if err != nil {
			return rep, err
		}
		fcfg := cfg
		fcfg.URL = u
		f, ferr := runFanout(ctx, fcfg)
		if err := errors.Join(ferr, stop()); err != nil {
			return rep, errors.Join(measured, err)
		}
		rep.Fanout = &f
	}
	return rep, errors.Join(measured, ctx.Err())
}

// baselines are bare net/http handlers driven exactly like the service:
// on Redis, one RPUSH, and one bounded-add script, per request; on the
// embedded engine, an append to an in-memory slice under a mutex. Each
// checks that the body is JSON and answers as the service does.
type baselines struct {
	rc  rueidis.Client // nil: the embedded engine's baseline
	key string
	lua *rueidis.Lua

	rpush, script, bare samples
	mu                  sync.Mutex
	items               []string
}

func newBaselines(ctx context.Context, cfg httpLoadConfig) (*baselines, error) {
	b := &baselines{}
	if cfg.RedisURL == "" {
		return b, nil
	}
	opt, err := rueidis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("bench: redis URL: %w", err)
	}
	opt.DisableCache = true
	if b.rc, err = rueidis.NewClient(opt); err != nil {
		return nil, fmt.Errorf("bench: redis: %w", err)
	}
	b.key = cfg.KeyPrefix + "sluice-bench-baseline"
	b.lua = rueidis.NewLuaScript(baselineScript)
	return b, ctx.Err()
}

func (b *baselines) close(ctx context.Context) {
	if b.rc != nil {
		b.rc.Do(context.WithoutCancel(ctx), b.rc.B().Del().Key(b.key).Build())
		b.rc.Close()
	}
}

// handler is one baseline: push stores the body and returns the queue's
// length.
func (b *baselines) handler(push func(ctx context.Context, body string) (int64, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil || !json.Valid(body) {
			http.Error(w, `{"error":"invalid JSON"}`, http.StatusBadRequest)
			return
		}
		n, err := push(r.Context(), string(body))
		if err != nil {
			http.Error(w, `{"error":"engine"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"queue_length":%s,"status":"queued"}`+"\n", strconv.FormatInt(n, 10))
	}
}

// round runs each baseline alone for cfg.Duration.
func (b *baselines) round(ctx context.Context, cfg httpLoadConfig) error {
	type phase struct {
		s    *samples
		push func(ctx context.Context, body string) (int64, error)
	}
	var phases []phase
	if b.rc != nil {
		phases = []phase{
			{&b.rpush, func(ctx context.Context, body string) (int64, error) {
				return b.rc.Do(ctx, b.rc.B().Rpush().Key(b.key).Element(body).Build()).AsInt64()
			}},
			{&b.script, func(ctx context.Context, body string) (int64, error) {
				return b.lua.Exec(ctx, b.rc, []string{b.key}, []string{body, "1000000000"}).AsInt64()
			}},
		}
	} else {
		phases = []phase{{&b.bare, func(_ context.Context, body string) (int64, error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.items = append(b.items, body)
			return int64(len(b.items)), nil
		}}}
	}
	var measured error
	for _, p := range phases {
		ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("bench: baseline listener: %w", err)
		}
		srv := &http.Server{Handler: b.handler(p.push), ReadHeaderTimeout: 10 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.Serve(ln)
		}()
		hc := loadClient(cfg.Clients)
		measured = errors.Join(measured, p.s.drive(ctx, hc, cfg, http.MethodPost, "http://"+ln.Addr().String()+"/",
			http.Header{"Content-Type": {"application/json"}}, cfg.Payload, nil))
		hc.CloseIdleConnections()
		_ = srv.Close()
		<-served
		// What a baseline stored is dropped between phases, as the
		// service's queue is drained by its GET phase.
		if b.rc != nil {
			b.rc.Do(ctx, b.rc.B().Del().Key(b.key).Build())
		} else {
			b.mu.Lock()
			b.items = nil
			b.mu.Unlock()
		}
	}
	return measured
}

// report adds the baselines' rows to rep.
func (b *baselines) report(rep *HTTPReport) {
	if b.rc != nil {
		rpush, script := b.rpush.stats(), b.script.stats()
		rep.BaselineRPush, rep.BaselineScript = &rpush, &script
		return
	}
	bare := b.bare.stats()
	rep.BaselineBare = &bare
}

// runFanout connects cfg.FanoutClients WebSockets to one fresh channel,
// publishes cfg.FanoutRate messages per second carrying their send time,
// and measures each delivery's latency.
func runFanout(ctx context.Context, cfg httpLoadConfig) (FanoutStats, error) {
	st := FanoutStats{Clients: cfg.FanoutClients, Rate: cfg.FanoutRate}
	channel := fmt.Sprintf("sluice-bench-%d", time.Now().UnixNano())
	wsURL := "ws" + strings.TrimPrefix(cfg.URL, "http") + "/v1/ws?channels=" + channel
	header := http.Header{}
	if cfg.APIKey != "" {
		header.Set("X-API-Key", cfg.APIKey)
	}
	dialClient := loadClient(cfg.FanoutClients)
	defer dialClient.CloseIdleConnections()

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lat := make([][]time.Duration, cfg.FanoutClients)
	var closed, received atomic.Int64
	var readers sync.WaitGroup
	conns := make([]*websocket.Conn, 0, cfg.FanoutClients)
	defer func() {
		for _, c := range conns {
			_ = c.CloseNow()
		}
		readers.Wait()
	}()
	setup := time.Now()
	dialed := make([]*websocket.Conn, cfg.FanoutClients)
	dialErrs := make([]error, cfg.FanoutClients)
	next := make(chan int)
	var dialers sync.WaitGroup
	for range min(32, cfg.FanoutClients) {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for i := range next {
				dialed[i], dialErrs[i] = dialLive(cctx, wsURL, dialClient, header)
			}
		}()
	}
	for i := range cfg.FanoutClients {
		next <- i
	}
	close(next)
	dialers.Wait()
	for i, c := range dialed {
		if c != nil {
			conns = append(conns, c)
		}
		if dialErrs[i] != nil {
			return st, fmt.Errorf("bench: websocket client %d: %w", i, dialErrs[i])
		}
	}
	st.Setup = time.Since(setup)
	for i, c := range conns {
		readers.Add(1)
		go func() { //nolint:gosec // G118: the background context is deliberate (below)
			defer readers.Done()
			// Reads end when the connection is closed below; a background
			// context spares the library a timer per message.
			for {
				_, data, err := c.Read(context.Background())
				if err != nil {
					if s := websocket.CloseStatus(err); s != -1 {
						closed.Add(1)
					}
					return
				}
				if sent, ok := sentNs(data); ok {
					lat[i] = append(lat[i], time.Duration(time.Now().UnixNano()-sent))
					received.Add(1)
				}
			}
		}()
	}

	pubStart := time.Now()
	published, err := publishPaced(cctx, cfg, channel)
	st.Published = published
	st.PublishRate = float64(published) / time.Since(pubStart).Seconds()
	st.Expected = published * int64(cfg.FanoutClients)
	// Let deliveries in flight arrive, then stop the readers.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if received.Load() >= st.Expected {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	for _, c := range conns {
		_ = c.CloseNow()
	}
	readers.Wait()
	conns = nil
	all := summarize(lat, time.Second)
	st.Received, st.P50, st.P99, st.Max = all.Requests, all.P50, all.P99, all.Max
	st.Closed = closed.Load()
	return st, err
}

// dialLive connects one subscriber and waits until it is subscribed: the
// subscription from ?channels= is active before the server reads the
// first message, so a pong means the client is live.
func dialLive(ctx context.Context, u string, hc *http.Client, header http.Header) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: header}) //nolint:bodyclose // the library closes the handshake response's body
	if err != nil {
		return nil, err
	}
	if err = c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err == nil {
		_, _, err = c.Read(ctx)
	}
	if err != nil {
		_ = c.CloseNow()
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// sentNs finds the send time the publisher put in a message, without a
// full JSON decode: the readers of a thousand clients share two cores
// with the server they measure.
func sentNs(msg []byte) (int64, bool) {
	const key = `"sent_ns":`
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil && n > 0
}

// publishPaced publishes cfg.FanoutRate messages per second for
// cfg.FanoutDuration from a few keep-alive publishers.
func publishPaced(ctx context.Context, cfg httpLoadConfig, channel string) (int64, error) {
	const publishers = 64
	hc := loadClient(publishers)
	defer hc.CloseIdleConnections()
	u := cfg.URL + "/v1/channels/" + channel + "/messages"
	ticks := make(chan int64, cfg.FanoutRate)
	var sent atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range ticks {
				body := fmt.Appendf(nil, `{"seq":%d,"sent_ns":%d}`, seq, time.Now().UnixNano())
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				if cfg.APIKey != "" {
					req.Header.Set("X-API-Key", cfg.APIKey)
				}
				resp, err := hc.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					sent.Add(1)
				} else {
					firstErr.CompareAndSwap(nil, fmt.Errorf("publish: status %d", resp.StatusCode))
				}
			}
		}()
	}
	total := int64(cfg.FanoutRate) * int64(cfg.FanoutDuration/time.Millisecond) / 1000
	interval := time.Second / time.Duration(cfg.FanoutRate)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			break
		}
		ticks <- i
	}
	close(ticks)
	wg.Wait()
	var err error
	if e, ok := firstErr.Load().(error); ok {
		err = fmt.Errorf("bench: %w", e)
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return sent.Load(), err
}
