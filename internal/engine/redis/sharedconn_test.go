package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// TestForeignCancelDuringDial: rueidis makes a shared connection with the
// context of the first command that needs it, and the commands waiting
// for that connection get its result. An add (whose context never ends)
// waiting behind a read whose caller gives up during the handshake must
// still be applied, not fail with the reader's "context canceled".
func TestForeignCancelDuringDial(t *testing.T) {
	t.Parallel()
	p := redistest.NewProxy(t)
	opt, err := rueidis.ParseURL(p.URL())
	if err != nil {
		t.Fatal(err)
	}
	// One pipelined connection, so that every command shares its dial.
	opt.DisableCache, opt.PipelineMultiplex = true, 0
	// A dial armed by hold waits for its caller's context, as a dial to an
	// unreachable or slow host would.
	var hold atomic.Pointer[chan struct{}]
	opt.DialCtxFn = func(ctx context.Context, addr string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
		if ch := hold.Swap(nil); ch != nil {
			close(*ch)
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
		}
		return d.DialContext(ctx, "tcp", addr)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	f := setup(t)
	e := New(c, Options{Keys: keyspace.Space{Prefix: f.prefix}, OwnsClient: true})
	defer e.Close()
	held := make(chan struct{})
	hold.Store(&held)
	p.DropAll()
	// The reader sends until one of its commands is the one that dials
	// (and waits until the reader gives up).
	rctx, cancel := context.WithCancel(f.ctx)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for rctx.Err() == nil {
			_, _ = e.QueueLen(rctx, "q")
		}
	}()
	<-held
	added := make(chan error, 1)
	go func() {
		_, err := e.QueueAdd(f.ctx, engine.AddParams{Queue: "q", Items: []string{"x"}})
		added <- err
	}()
	// Give the add a chance to queue behind the dial before the reader
	// gives up; an add that arrives later makes its own connection, and
	// the test proves nothing but fails nothing either.
	for range 100 {
		runtime.Gosched()
	}
	cancel()
	<-readerDone
	err = <-added
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("add failed for the reader's cancellation: %v", err)
	}
	if err != nil {
		// The dropped connection itself may still fail the add (rueidis
		// can hand it the broken connection once more): that is the
		// engine's honest "unavailable", not the reader's cancellation.
		t.Logf("add: %v", err)
		return
	}
	if n, err := e.QueueLen(f.ctx, "q"); err != nil || n != 1 {
		t.Fatalf("queue holds %d (%v), want 1", n, err)
	}
}
