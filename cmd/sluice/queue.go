package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
)

func (e *env) queue(ctx context.Context, args []string) error {
	return e.subcommand(ctx, "queue", args, e.queueVerbs())
}

// queueVerbs are the subcommands of `sluice queue`.
func (e *env) queueVerbs() map[string]func(context.Context, []string) error {
	return map[string]func(context.Context, []string) error{
		"add":      e.queueAdd,
		"get":      e.queueGet,
		"len":      e.queueLen,
		"pressure": e.queuePressure,
		"peek":     e.queuePeek,
		"clear":    e.queueClear,
		"declare":  e.queueDeclare,
		"info":     e.queueInfo,
		"list":     e.queueList,
		"pause":    e.queuePause,
		"resume":   e.queueResume,
		"delete":   e.queueDelete,
		"inflight": e.queueInflight, // inflight.go
		"stats":    e.queueStats,
	}
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// withClient opens the engine, runs f and closes the engine, reporting a
// close error only when f succeeded (a durable engine flushes on close).
func (e *env) withClient(ctx context.Context, c *connFlags, f func(*sluice.Client) error) error {
	if e.engine != nil {
		return f(e.engine)
	}
	client, err := e.open(ctx, c)
	if err != nil {
		return err
	}
	err = f(client)
	if cerr := client.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close engine: %w", cerr)
	}
	return err
}

// printResult opens the engine, runs f and prints what it returns as JSON.
func (e *env) printResult(ctx context.Context, c *connFlags, f func(*sluice.Client) (any, error)) error {
	return e.withClient(ctx, c, func(client *sluice.Client) error {
		v, err := f(client)
		if err != nil {
			return err
		}
		return printJSON(e.stdout, v)
	})
}

func (e *env) queueAdd(ctx context.Context, args []string) error {
	fs, conn := e.commandFlags("queue add", "queue add QUEUE JSON|- [--policy reject|dlq|drop_oldest] [--max-size N] [--delay D] [--string]")
	policy := fs.String("policy", "", "overflow policy for this add; on a declared queue only the declared one (default: the declared one, else QUEUE_OVERFLOW_POLICY or dlq)")
	size := fs.Int64("max-size", 0, "capacity for this add, <= 0 unbounded; on a declared queue at most the declared one (default: the declared one, else QUEUE_MAX_SIZE or 10000)")
	delay := fs.Duration("delay", 0, "schedule the item: it becomes visible after this long, and counts toward the bound meanwhile (0: at once)")
	asString := fs.Bool("string", false, "add the argument as a plain string instead of JSON")
	pos, err := parseArgsFor(fs, args, "QUEUE", "JSON")
	if err != nil {
		return err
	}
	var opts sluice.AddOptions
	if *policy != "" {
		p, err := sluice.ParsePolicy(*policy)
		if err != nil {
			return usagef("--policy %q: want reject, dlq or drop_oldest", *policy)
		}
		opts.Policy = p
	}
	if isSet(fs, "max-size") {
		opts.MaxSize = maxSize(*size)
	}
	if *delay < 0 {
		return usagef("--delay %v: want 0 or more", *delay)
	}
	opts.Delay = *delay
	payload := pos[1]
	if payload == "-" {
		b, err := io.ReadAll(e.stdin)
		if err != nil {
			return fmt.Errorf("read item from stdin: %w", err)
		}
		payload = strings.TrimRight(string(b), "\r\n")
	}
	var item any = payload
	if !*asString {
		if !json.Valid([]byte(payload)) {
			return usagef("queue add: the item is not valid JSON (use --string to add it as a plain string): %.80q", payload)
		}
		item = json.RawMessage(payload)
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		res, err := c.Queue(pos[0]).Add(ctx, item, &opts)
		if err != nil && !errors.Is(err, sluice.ErrQueueFull) {
			return err
		}
		if perr := printJSON(e.stdout, res); perr != nil {
			return perr
		}
		if !res.Success {
			return silent(exitRejected)
		}
		return nil
	})
}

func (e *env) queueGet(ctx context.Context, args []string) error {
	fs, conn := e.commandFlags("queue get", "queue get QUEUE [--timeout 5s]")
	timeout := durationFlag(fs, "timeout", 5*time.Second, "how long to wait for an item (0: do not wait)")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		q := c.Queue(pos[0])
		item, ok, err := q.Get(ctx, *timeout)
		if err != nil {
			return err
		}
		if !ok {
			return silent(exitEmpty)
		}
		if err := printJSON(e.stdout, item); err != nil {
			// The item is out of the queue and nobody saw it: put it back.
			if perr := q.PutBack(context.WithoutCancel(ctx), item); perr != nil {
				return fmt.Errorf("write item: %w; putting it back failed too: %v; the item was: %s", err, perr, item.Stored())
			}
			return fmt.Errorf("write item (put back at the head of %q): %w", pos[0], err)
		}
		return nil
	})
}

func (e *env) queueLen(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("queue len", "queue len QUEUE [--url URL]")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		info, err := svc.QueueInfo(ctx, pos[0])
		if err != nil {
			return serviceError(err)
		}
		_, err = fmt.Fprintln(e.stdout, info.CurrentLength)
		return writeErr(err)
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		n, err := c.Queue(pos[0]).Len(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(e.stdout, n)
		return err
	})
}

func (e *env) queuePressure(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("queue pressure", "queue pressure QUEUE [--max-size N] [--policy P] [--threshold R] [--url URL]")
	size := fs.Int64("max-size", 0, "capacity to judge the queue against, <= 0 unbounded (default: the declared one, else QUEUE_MAX_SIZE or 10000)")
	policy := fs.String("policy", "", "overflow policy to report (default: the declared one, else QUEUE_OVERFLOW_POLICY or dlq)")
	threshold := fs.Float64("threshold", 0, "fill ratio that counts as pressure (default: the declared one, else QUEUE_BACKPRESSURE_THRESHOLD or 0.8)")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	var qs sluice.QueueSettings // zero fields: the environment's settings
	if isSet(fs, "max-size") {
		qs.MaxSize = maxSize(*size)
	}
	if *policy != "" {
		p, err := sluice.ParsePolicy(*policy)
		if err != nil {
			return usagef("--policy %q: want reject, dlq or drop_oldest", *policy)
		}
		qs.Policy = p
	}
	if isSet(fs, "threshold") {
		if *threshold <= 0 || *threshold > 1 {
			return usagef("--threshold %v: want a fill ratio in (0, 1]", *threshold)
		}
		qs.PressureThreshold = *threshold
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		if err := notWithURL(fs, "max-size", "policy", "threshold"); err != nil {
			return err
		}
		info, err := svc.QueueInfo(ctx, pos[0])
		if err != nil {
			return serviceError(err)
		}
		return printJSON(e.stdout, info.Pressure)
	}
	return e.printResult(ctx, conn, func(c *sluice.Client) (any, error) {
		p, err := c.QueueWith(pos[0], qs).Pressure(ctx)
		return p, err
	})
}

func (e *env) queuePeek(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("queue peek", "queue peek QUEUE [--start 0] [--end 100] [--url URL]")
	start := fs.Int64("start", 0, "first index, inclusive (negative counts from the tail)")
	end := fs.Int64("end", 100, "last index, inclusive (negative counts from the tail); at most 1000 items are shown")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		items, err := svc.Peek(ctx, pos[0], *start, *end)
		if err != nil {
			return serviceError(err)
		}
		if items == nil {
			items = []json.RawMessage{}
		}
		return printJSON(e.stdout, items)
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		items, err := c.Queue(pos[0]).Peek(ctx, *start, *end)
		if err != nil {
			return err
		}
		if items == nil {
			items = []sluice.Item{}
		}
		return printJSON(e.stdout, items)
	})
}

func (e *env) queueClear(ctx context.Context, args []string) error {
	fs, conn := e.commandFlags("queue clear", "queue clear QUEUE")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	return e.printResult(ctx, conn, func(c *sluice.Client) (any, error) {
		cleared, err := c.Queue(pos[0]).Clear(ctx)
		return map[string]bool{"cleared": cleared}, err
	})
}
