package redis

import (
	"errors"
	"testing"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// Error replies of a server that cannot serve now are ErrUnavailable; the
// caller's mistakes and Sluice's own replies are not. The replies come
// from a real server (a script's error_reply), as rueidis parses them.
func TestInterpretErrorUnavailable(t *testing.T) {
	t.Parallel()
	c := redistest.Client(t)
	ctx := t.Context()
	for reply, want := range map[string]bool{
		"LOADING Redis is loading the dataset in memory":                    true,
		"READONLY You can't write against a read only replica.":             true,
		"CLUSTERDOWN The cluster is down":                                   true,
		"MASTERDOWN Link with MASTER is down and replica-serve-stale-data":  true,
		"TRYAGAIN Multiple keys request during rehashing of slot":           true,
		"BUSY Redis is busy running a script.":                              true,
		"NOREPLICAS Not enough good replicas to write.":                     true,
		"MISCONF Redis is configured to save RDB snapshots":                 true,
		"OOM command not allowed when used memory > 'maxmemory'.":           true,
		"ERR wrong number of arguments":                                     false,
		"WRONGTYPE Operation against a key holding the wrong kind of value": false,
		"NOSCRIPT No matching script":                                       false,
		"LOADINGX not a code":                                               false,
		"BUSYGROUP Consumer Group name already exists":                      false,
	} {
		err := c.Do(ctx, c.B().Eval().Script("return redis.error_reply(ARGV[1])").Numkeys(0).Arg(reply).Build()).Error()
		if err == nil {
			t.Fatalf("script did not fail with %q", reply)
		}
		got := interpretError("op", err)
		if errors.Is(got, engine.ErrUnavailable) != want {
			t.Errorf("reply %q: ErrUnavailable = %v, want %v (%v)", reply, !want, want, got)
		}
		wantText := "op: " + err.Error()
		if want {
			// A sentinel outcome carries no op (the caller names it).
			wantText = "engine unavailable: " + err.Error()
		}
		if got.Error() != wantText && !errors.Is(got, engine.ErrWrongType) {
			t.Errorf("reply %q: message %q lost the reply's text", reply, got)
		}
	}
}

// A server that cannot be reached or goes away mid-call is ErrUnavailable.
func TestInterpretErrorConnection(t *testing.T) {
	t.Parallel()
	redistest.Client(t)
	proxy := redistest.NewProxy(t)
	opt, err := rueidis.ParseURL(proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	e := New(c, Options{Keys: keyspace.Space{Prefix: redistest.Prefix(t)}, OwnsClient: true})
	defer e.Close()
	ctx := t.Context()
	if _, err := e.QueueLen(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	proxy.Stop()
	_, err = e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: []string{"x"}, Policy: engine.PolicyReject, MaxSize: 10})
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("add after the server went away: %v, want ErrUnavailable", err)
	}
	_, err = e.Publish(ctx, "ch", "x")
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("publish after the server went away: %v, want ErrUnavailable", err)
	}
}
