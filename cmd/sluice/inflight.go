package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice"
)

// inflightItemWidth bounds the item column of `queue inflight`'s table, so
// that a row fits a terminal line.
const inflightItemWidth = 60

// inflightOutput is what `queue inflight --json` prints: one page.
type inflightOutput struct {
	Deliveries []inflightRow `json:"deliveries"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

type inflightRow struct {
	ID          string     `json:"id,omitempty"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	Deadline    time.Time  `json:"deadline"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	AgeSeconds  *float64   `json:"age_seconds,omitempty"`
	// Item is the item's JSON. Through a service (--url) an item whose
	// JSON is longer than 1024 bytes comes as a string holding its start,
	// and ItemTruncated says so.
	Item          json.RawMessage `json:"item"`
	ItemTruncated bool            `json:"item_truncated,omitempty"`
}

func (e *env) queueInflight(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("queue inflight", "queue inflight QUEUE [--limit 100] [--cursor C] [--json] [--url URL]")
	limit := fs.Int("limit", sluice.DefaultDeliveriesLimit, "deliveries to show, at most 1000")
	cursor := fs.String("cursor", "", "continue after a page: the cursor the previous page printed")
	asJSON := fs.Bool("json", false, "print one line of JSON instead of a table")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > sluice.MaxDeliveriesLimit {
		return usagef("queue inflight: --limit must be 1 to %d", sluice.MaxDeliveriesLimit)
	}
	show := func(out inflightOutput) error {
		if e.wantJSON(fs, *asJSON, false) {
			return printJSON(e.stdout, out)
		}
		return e.printInflight(out, time.Now())
	}
	svc, err := e.service(conn, rf)
	if err != nil {
		return err
	}
	if svc != nil {
		page, err := svc.Deliveries(ctx, pos[0], *limit, *cursor)
		if err != nil {
			return serviceError(err)
		}
		out := inflightOutput{Deliveries: make([]inflightRow, len(page.Deliveries)), NextCursor: page.NextCursor}
		for i, d := range page.Deliveries {
			out.Deliveries[i] = inflightRow{
				ID: d.ID, State: d.State, Attempt: d.Attempt, Deadline: d.Deadline.UTC(),
				DeliveredAt: d.DeliveredAt, AgeSeconds: d.AgeSeconds, Item: d.Item, ItemTruncated: d.ItemTruncated,
			}
		}
		return show(out)
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		page, err := c.Queue(pos[0]).Deliveries(ctx, &sluice.ListDeliveriesOptions{Limit: *limit, Cursor: *cursor})
		if err != nil {
			return err
		}
		out := inflightOutput{Deliveries: make([]inflightRow, len(page.Deliveries)), NextCursor: page.NextCursor}
		for i, d := range page.Deliveries {
			row := inflightRow{ID: d.ID, State: "leased", Attempt: d.Attempt, Deadline: d.Deadline.UTC(), Item: d.Item.JSON()}
			if d.Waiting {
				row.State = "waiting"
			}
			if !d.DeliveredAt.IsZero() {
				at, age := d.DeliveredAt.UTC(), d.Age.Seconds()
				row.DeliveredAt, row.AgeSeconds = &at, &age
			}
			out.Deliveries[i] = row
		}
		return show(out)
	})
}

// printInflight writes the page as an aligned table: deadlines and ages
// relative to now, items cut to one short line.
func (e *env) printInflight(out inflightOutput, now time.Time) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPT\tDEADLINE IN\tAGE\tITEM")
	for _, r := range out.Deliveries {
		id, age := r.ID, "-"
		if id == "" {
			id = "-"
		}
		if r.AgeSeconds != nil {
			age = roundDuration(time.Duration(*r.AgeSeconds * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", id, r.State, r.Attempt, roundDuration(r.Deadline.Sub(now)), age, clipItem(itemText(r)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	switch {
	case len(out.Deliveries) == 0:
		_, err := fmt.Fprintln(e.stdout, "(nothing in flight)")
		return writeErr(err)
	case out.NextCursor != "":
		_, err := fmt.Fprintf(e.stdout, "more: --cursor %s\n", out.NextCursor)
		return writeErr(err)
	}
	return nil
}

func writeErr(err error) error {
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// roundDuration shows d to a tenth of a second under a minute, to the
// second above; negative (a deadline passed) with a minus sign.
func roundDuration(d time.Duration) string {
	if d > -time.Minute && d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// itemText is a row's item as one line of text: its JSON, or, for an
// item the service cut, the start of its JSON text (clipItem cuts it
// further and marks the cut).
func itemText(r inflightRow) string {
	var s string
	if r.ItemTruncated && json.Unmarshal(r.Item, &s) == nil {
		return s
	}
	// Compact, as the service sends it, so that both ways print the same.
	var b bytes.Buffer
	if json.Compact(&b, r.Item) != nil {
		return string(r.Item)
	}
	return b.String()
}

// clipItem makes an item's JSON one line of at most inflightItemWidth
// runes, ending in "..." when cut.
func clipItem(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= inflightItemWidth {
		return s
	}
	r := []rune(s)
	return string(r[:inflightItemWidth-3]) + "..."
}

func (e *env) queueStats(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("queue stats", "queue stats QUEUE [--json] [--url URL]")
	asJSON := fs.Bool("json", false, "print JSON (the default when stdout is not a terminal; --json=false prints the table there)")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	show := func(st sluice.QueueStats) error {
		if e.wantJSON(fs, *asJSON, true) {
			return printJSON(e.stdout, st)
		}
		return e.printStats(st)
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
		return show(info.Stats)
	}
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		st, err := c.Queue(pos[0]).Stats(ctx)
		if err != nil {
			return err
		}
		return show(st)
	})
}

// printStats writes a queue's counters as a key/value table, lengths
// first.
func (e *env) printStats(st sluice.QueueStats) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range []struct {
		k string
		v any
	}{
		{"queue", st.Queue}, {"length", st.Length}, {"in flight", st.InFlight},
		{"overflow dlq", st.OverflowDLQ}, {"failed dlq", st.FailedDLQ},
		{"added", st.Added}, {"rejected", st.Rejected}, {"moved to dlq", st.MovedToDLQ},
		{"dropped", st.Dropped}, {"delivered", st.Delivered}, {"acked", st.Acked},
		{"nacked", st.Nacked}, {"dead-lettered", st.DeadLettered}, {"redelivered", st.Redelivered},
	} {
		fmt.Fprintf(tw, "%s\t%v\n", kv.k, kv.v)
	}
	return flushTable(tw)
}
