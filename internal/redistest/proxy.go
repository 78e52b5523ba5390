package redistest

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to the test Redis until Stop, which closes
// its listener and every connection through it: to a client of the proxy's
// URL, Redis has gone away (connections drop, new ones are refused).
type Proxy struct {
	ln     net.Listener
	target string
	url    string
	// ctx ends with Stop, so that a dial to Redis in progress ends too.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
	wg      sync.WaitGroup // the accept loop and the copiers
}

// NewProxy starts a proxy to URL()'s host; it stops when t ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	u, err := url.Parse(URL())
	if err != nil {
		t.Fatalf("SLUICE_TEST_REDIS_URL: %v", err)
	}
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: u.Host, conns: make(map[net.Conn]struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	u.Host = ln.Addr().String()
	p.url = u.String()
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Stop)
	return p
}

// URL is URL() with the proxy's address.
func (p *Proxy) URL() string { return p.url }

// Addr is the proxy's address, which refuses connections after Stop.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stop closes the listener and every connection, and waits for the
// proxy's goroutines. It may be called more than once.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		p.cancel()
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// DropAll closes every connection through the proxy, which goes on
// accepting new ones: to its clients, Redis dropped their connections.
func (p *Proxy) DropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// track registers c, or closes it when the proxy has stopped.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed by Stop
		}
		if !p.track(c) {
			continue
		}
		up, err := new(net.Dialer).DialContext(p.ctx, "tcp", p.target)
		if err != nil || !p.track(up) {
			if up != nil {
				up.Close()
			}
			c.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies from src to dst; when either side ends, both are closed.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
