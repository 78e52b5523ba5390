package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/sluicehq/sluice"
)

func (e *env) dlq(ctx context.Context, args []string) error {
	return e.subcommand(ctx, "dlq", args, e.dlqVerbs())
}

// dlqVerbs are the subcommands of `sluice dlq`.
func (e *env) dlqVerbs() map[string]func(context.Context, []string) error {
	return map[string]func(context.Context, []string) error{
		"stats":   e.dlqStats,
		"list":    e.dlqList,
		"requeue": e.dlqRequeue,
		"purge":   e.dlqPurge,
	}
}

// kindFlag registers --kind. def "" makes the flag mandatory.
func kindFlag(fs *flag.FlagSet, def string) *string {
	usage := "which dead-letter queue: overflow (dlq:overflow:QUEUE) or failed (dlq:QUEUE)"
	if def == "" {
		usage += "; required"
	}
	return fs.String("kind", def, usage)
}

func parseKind(s string) (sluice.DLQKind, error) {
	if s == "" {
		return "", usagef("--kind is required: overflow or failed")
	}
	k, err := sluice.ParseDLQKind(s)
	if err != nil {
		return "", usagef("--kind %q: want overflow or failed", s)
	}
	return k, nil
}

// dlqStatsOutput is what `dlq stats` prints.
type dlqStatsOutput struct {
	Queue    string `json:"queue"`
	Overflow int64  `json:"overflow"`
	Failed   int64  `json:"failed"`
}

func (e *env) dlqStats(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("dlq stats", "dlq stats QUEUE [--json] [--url URL]")
	asJSON := fs.Bool("json", false, "print JSON (the default when stdout is not a terminal; --json=false prints the table there)")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	show := func(out dlqStatsOutput) error {
		if e.wantJSON(fs, *asJSON, true) {
			return printJSON(e.stdout, out)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE\tOVERFLOW\tFAILED")
		fmt.Fprintf(tw, "%s\t%d\t%d\n", out.Queue, out.Overflow, out.Failed)
		return flushTable(tw)
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
		return show(dlqStatsOutput{Queue: pos[0], Overflow: info.DLQLength, Failed: info.FailedLength})
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		q := c.Queue(pos[0])
		out := dlqStatsOutput{Queue: pos[0]}
		if out.Overflow, err = q.DLQ(sluice.DLQOverflow).Len(ctx); err != nil {
			return err
		}
		if out.Failed, err = q.DLQ(sluice.DLQFailed).Len(ctx); err != nil {
			return err
		}
		return show(out)
	})
}

// dlqListOutput is what `dlq list` prints: one page and the DLQ's length.
// Entries are sluice.DLQEntry values, or the same JSON from a service.
type dlqListOutput struct {
	Items any   `json:"items"`
	Total int64 `json:"total"`
}

func (e *env) dlqList(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("dlq list", "dlq list QUEUE [--kind overflow|failed] [--start 0] [--limit 100] [--url URL]")
	kind := kindFlag(fs, string(sluice.DLQOverflow))
	start := fs.Int64("start", 0, "index of the first entry, oldest first")
	limit := fs.Int64("limit", 100, "entries to show, at most 1000")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	k, err := parseKind(*kind)
	if err != nil {
		return err
	}
	if *start < 0 || *limit < 1 {
		return usagef("dlq list: --start must be >= 0 and --limit >= 1")
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		items, total, err := svc.DLQList(ctx, pos[0], k, *start, min(*limit, sluice.MaxPeek))
		if err != nil {
			return serviceError(err)
		}
		if items == nil {
			items = []json.RawMessage{}
		}
		return printJSON(e.stdout, dlqListOutput{Items: items, Total: total})
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		items, total, err := c.Queue(pos[0]).DLQ(k).List(ctx, *start, *limit)
		if err != nil {
			return err
		}
		if items == nil {
			items = []sluice.DLQEntry{}
		}
		return printJSON(e.stdout, dlqListOutput{Items: items, Total: total})
	})
}

func (e *env) dlqRequeue(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("dlq requeue", "dlq requeue QUEUE [--kind overflow|failed] [--count N] [--policy P] [--max-size N] [--url URL]")
	kind := kindFlag(fs, string(sluice.DLQOverflow))
	count := fs.Int64("count", 0, "entries to move back, oldest first (default 0: all)")
	policy := fs.String("policy", "", "the queue's overflow policy while requeueing (default: the declared one, else QUEUE_OVERFLOW_POLICY or dlq)")
	size := fs.Int64("max-size", 0, "the queue's capacity while requeueing, <= 0 unbounded; on a declared queue at most the declared one (default: the declared one, else QUEUE_MAX_SIZE or 10000)")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	k, err := parseKind(*kind)
	if err != nil {
		return err
	}
	if *count < 0 {
		return usagef("dlq requeue: --count must be >= 0 (0 means all)")
	}
	var qs sluice.QueueSettings // zero fields: the environment's settings
	if *policy != "" {
		p, err := sluice.ParsePolicy(*policy)
		if err != nil {
			return usagef("--policy %q: want reject, dlq or drop_oldest", *policy)
		}
		qs.Policy = p
	}
	if isSet(fs, "max-size") {
		qs.MaxSize = maxSize(*size)
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		if err := notWithURL(fs, "policy", "max-size"); err != nil {
			return err
		}
		res, err := svc.DLQRequeue(ctx, pos[0], k, *count)
		if err != nil {
			return serviceError(err)
		}
		return printJSON(e.stdout, res)
	}
	return e.printResult(ctx, conn, func(c *sluice.Client) (any, error) {
		res, err := c.QueueWith(pos[0], qs).DLQ(k).Requeue(ctx, *count)
		return res, err
	})
}

func (e *env) dlqPurge(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("dlq purge", "dlq purge QUEUE --kind overflow|failed [--url URL]")
	kind := kindFlag(fs, "")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	k, err := parseKind(*kind)
	if err != nil {
		return err
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		n, err := svc.DLQPurge(ctx, pos[0], k)
		if err != nil {
			return serviceError(err)
		}
		return printJSON(e.stdout, map[string]int64{"purged": n})
	}
	return e.printResult(ctx, conn, func(c *sluice.Client) (any, error) {
		n, err := c.Queue(pos[0]).DLQ(k).Purge(ctx)
		return map[string]int64{"purged": n}, err
	})
}
