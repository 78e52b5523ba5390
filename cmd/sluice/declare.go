package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice"
)

// The commands of declared queues: queue declare, info, list, pause,
// resume and delete.

func (e *env) queueDeclare(ctx context.Context, args []string) error {
	fs, conn := e.commandFlags("queue declare",
		"queue declare QUEUE [--max-size N] [--policy P] [--threshold R] [--lease D] [--max-deliveries N] [--json]")
	size := fs.Int64("max-size", 0, "declared capacity; <= 0 declares no bound (not given: no capacity declared)")
	policy := fs.String("policy", "", "declared overflow policy: reject, dlq or drop_oldest")
	threshold := fs.Float64("threshold", 0, "declared fill ratio that counts as pressure, in (0, 1]")
	lease := durationFlag(fs, "lease", 0, "declared default lease of a receive, whole milliseconds (such as 30s)")
	deliveries := fs.Int("max-deliveries", 0, "declared deliveries before an item moves to the failed DLQ (>= 1)")
	asJSON := fs.Bool("json", false, "print the queue's settings as JSON")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	var s sluice.QueueSettings
	if isSet(fs, "max-size") {
		s.MaxSize = maxSize(*size)
	}
	if isSet(fs, "policy") {
		p, err := sluice.ParsePolicy(*policy)
		if err != nil {
			return usagef("--policy %q: want reject, dlq or drop_oldest", *policy)
		}
		s.Policy = p
	}
	if isSet(fs, "threshold") {
		if !(*threshold > 0 && *threshold <= 1) {
			return usagef("--threshold %v: want a fill ratio in (0, 1]", *threshold)
		}
		s.PressureThreshold = *threshold
	}
	if isSet(fs, "lease") {
		if *lease < time.Millisecond || *lease%time.Millisecond != 0 {
			return usagef("--lease %v: want a positive whole number of milliseconds, such as 30s", *lease)
		}
		s.Lease = *lease
	}
	if isSet(fs, "max-deliveries") {
		if *deliveries < 1 {
			return usagef("--max-deliveries %d: want at least 1", *deliveries)
		}
		s.MaxDeliveries = *deliveries
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		if err := c.DeclareQueue(ctx, pos[0], s); err != nil {
			return err
		}
		return e.printInfo(ctx, c.Queue(pos[0]), *asJSON)
	})
}

func (e *env) queueInfo(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("queue info", "queue info QUEUE [--json] [--url URL]")
	asJSON := fs.Bool("json", false, "print as JSON")
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
		settings := info.Settings.QueueSettings()
		out := queueInfoOutput{
			Pressure: info.Pressure, OverflowDLQ: info.DLQLength, FailedDLQ: info.FailedLength,
			Paused: info.Paused, Sources: info.Sources,
			Settings: toSettingsOutput(settings), Declared: toSettingsOutput(info.Declared.QueueSettings()),
		}
		return e.printInfoOutput(pos[0], out, settings, e.wantJSON(fs, *asJSON, false))
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		return e.printInfo(ctx, c.Queue(pos[0]), e.wantJSON(fs, *asJSON, false))
	})
}

// queueInfoOutput is `queue info --json`.
type queueInfoOutput struct {
	sluice.Pressure
	OverflowDLQ int64                 `json:"dlq_length"`
	FailedDLQ   int64                 `json:"failed_length"`
	Paused      bool                  `json:"paused"`
	Settings    settingsOutput        `json:"settings"`
	Declared    settingsOutput        `json:"declared"`
	Sources     sluice.SettingSources `json:"sources"`
}

// settingsOutput is QueueSettings with a readable lease; zero fields are
// left out (in Declared: not declared).
type settingsOutput struct {
	MaxSize           int64   `json:"max_size,omitempty"`
	Policy            string  `json:"policy,omitempty"`
	PressureThreshold float64 `json:"pressure_threshold,omitempty"`
	Lease             string  `json:"lease,omitempty"`
	MaxDeliveries     int     `json:"max_deliveries,omitempty"`
}

func toSettingsOutput(s sluice.QueueSettings) settingsOutput {
	out := settingsOutput{MaxSize: s.MaxSize, Policy: string(s.Policy), PressureThreshold: s.PressureThreshold, MaxDeliveries: s.MaxDeliveries}
	if s.Lease != 0 {
		out.Lease = s.Lease.String()
	}
	return out
}

func (e *env) printInfo(ctx context.Context, q *sluice.Queue, asJSON bool) error {
	es, err := q.Settings(ctx)
	if err != nil {
		return err
	}
	p, err := q.Pressure(ctx)
	if err != nil {
		return err
	}
	out := queueInfoOutput{
		Pressure: p, Paused: es.Paused, Sources: es.Sources,
		Settings: toSettingsOutput(es.Settings), Declared: toSettingsOutput(es.Declared),
	}
	if out.OverflowDLQ, err = q.DLQ(sluice.DLQOverflow).Len(ctx); err != nil {
		return err
	}
	if out.FailedDLQ, err = q.DLQ(sluice.DLQFailed).Len(ctx); err != nil {
		return err
	}
	return e.printInfoOutput(q.Name(), out, es.Settings, asJSON)
}

// printInfoOutput prints a queue's information, read from the engine or
// a service: JSON, or key/value lines and a table of settings.
func (e *env) printInfoOutput(name string, out queueInfoOutput, s sluice.QueueSettings, asJSON bool) error {
	if asJSON {
		return printJSON(e.stdout, out)
	}
	p := out.Pressure
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "queue\t%s\n", name)
	fmt.Fprintf(tw, "length\t%d of %s (fill %.0f%%%s)\n", p.CurrentLength, boundText(p.MaxSize), 100*p.FillRatio, fullText(p))
	fmt.Fprintf(tw, "in flight\t%d\n", p.InFlight)
	fmt.Fprintf(tw, "dead letters\toverflow %d, failed %d\n", out.OverflowDLQ, out.FailedDLQ)
	fmt.Fprintf(tw, "paused\t%s\n", yesNo(out.Paused))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
	src := out.Sources
	fmt.Fprintf(tw, "max size\t%s\t%s\n", boundText(s.MaxSize), src.MaxSize)
	fmt.Fprintf(tw, "policy\t%s\t%s\n", s.Policy, src.Policy)
	fmt.Fprintf(tw, "pressure threshold\t%g\t%s\n", s.PressureThreshold, src.PressureThreshold)
	fmt.Fprintf(tw, "lease\t%s\t%s\n", s.Lease, src.Lease)
	fmt.Fprintf(tw, "max deliveries\t%d\t%s\n", s.MaxDeliveries, src.MaxDeliveries)
	return flushTable(tw)
}

func boundText(n int64) string {
	if n <= 0 {
		return "unbounded"
	}
	return strconv.FormatInt(n, 10)
}

func fullText(p sluice.Pressure) string {
	switch {
	case p.IsFull:
		return ", full"
	case p.IsAtPressureThreshold:
		return ", at pressure"
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func flushTable(tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// queueListOutput is `queue list --json`.
type queueListOutput struct {
	Queues     []queueListRow `json:"queues"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

type queueListRow struct {
	sluice.Pressure
	Paused   bool `json:"paused"`
	Declared bool `json:"declared"`
}

func (e *env) queueList(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("queue list", "queue list [--limit 50] [--cursor NAME] [--json] [--url URL]")
	limit := fs.Int("limit", 50, "queues per page, 1 to 1000")
	cursor := fs.String("cursor", "", "list the queues after this name (the next page's cursor, printed at the end of a page)")
	asJSON := fs.Bool("json", false, "print as JSON")
	if _, err := parseArgsFor(fs, args); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("--limit %d: want 1 to 1000", *limit)
	}
	show := func(out queueListOutput) error {
		if e.wantJSON(fs, *asJSON, false) {
			return printJSON(e.stdout, out)
		}
		return e.printList(out)
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		page, err := svc.Queues(ctx, *cursor, *limit)
		if err != nil {
			return serviceError(err)
		}
		out := queueListOutput{Queues: []queueListRow{}}
		for _, r := range page.Queues {
			out.Queues = append(out.Queues, queueListRow{Pressure: r.Pressure, Paused: r.Paused, Declared: r.Declared})
		}
		if page.More && len(out.Queues) > 0 {
			out.NextCursor = out.Queues[len(out.Queues)-1].QueueName
		}
		return show(out)
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		names, err := c.Queues(ctx)
		if err != nil {
			return err
		}
		slices.Sort(names)
		start, _ := slices.BinarySearch(names, *cursor)
		if start < len(names) && names[start] == *cursor {
			start++
		}
		page := names[start:min(start+*limit, len(names))]
		out := queueListOutput{Queues: []queueListRow{}}
		if start+len(page) < len(names) && len(page) > 0 {
			out.NextCursor = page[len(page)-1]
		}
		for _, n := range page {
			q := c.Queue(n)
			es, err := q.Settings(ctx)
			if err != nil {
				return err
			}
			p, err := q.Pressure(ctx)
			if err != nil {
				return err
			}
			out.Queues = append(out.Queues, queueListRow{Pressure: p, Paused: es.Paused, Declared: es.IsDeclared()})
		}
		return show(out)
	})
}

func (e *env) printList(out queueListOutput) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tLENGTH\tMAX SIZE\tFILL\tIN FLIGHT\tPOLICY\tDECLARED\tPAUSED")
	for _, r := range out.Queues {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f%%\t%d\t%s\t%s\t%s\n", r.QueueName, r.CurrentLength, boundText(r.MaxSize),
			100*r.FillRatio, r.InFlight, r.OverflowPolicy, yesNo(r.Declared), yesNo(r.Paused))
	}
	if err := flushTable(tw); err != nil {
		return err
	}
	if out.NextCursor != "" {
		if _, err := fmt.Fprintf(e.stdout, "more: sluice queue list --cursor %s\n", strconv.Quote(out.NextCursor)); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

func (e *env) queuePause(ctx context.Context, args []string) error {
	return e.setPaused(ctx, "pause", args, true)
}

func (e *env) queueResume(ctx context.Context, args []string) error {
	return e.setPaused(ctx, "resume", args, false)
}

func (e *env) setPaused(ctx context.Context, verb string, args []string, paused bool) error {
	fs, conn := e.commandFlags("queue "+verb, "queue "+verb+" QUEUE")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	return e.printResult(ctx, conn, func(c *sluice.Client) (any, error) {
		q := c.Queue(pos[0])
		if paused {
			err = q.Pause(ctx)
		} else {
			err = q.Resume(ctx)
		}
		return map[string]any{"queue": q.Name(), "paused": paused}, err
	})
}

func (e *env) queueDelete(ctx context.Context, args []string) error {
	fs, conn := e.commandFlags("queue delete", "queue delete QUEUE [--force]")
	force := fs.Bool("force", false, "delete even while items are in flight (their acks then fail)")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	return e.printResult(ctx, conn, func(c *sluice.Client) (any, error) {
		res, err := c.DeleteQueue(ctx, pos[0], &sluice.DeleteQueueOptions{Force: *force})
		if err != nil {
			return nil, err
		}
		return map[string]any{"queue": pos[0], "deleted": res}, nil
	})
}
