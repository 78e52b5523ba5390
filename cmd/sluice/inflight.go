package main

import (
	"context"
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
	ID          string      `json:"id,omitempty"`
	State       string      `json:"state"`
	Attempt     int         `json:"attempt"`
	Deadline    time.Time   `json:"deadline"`
	DeliveredAt *time.Time  `json:"delivered_at,omitempty"`
	AgeSeconds  *float64    `json:"age_seconds,omitempty"`
	Item        sluice.Item `json:"item"`
}

func (e *env) queueInflight(ctx context.Context, args []string) error {
	fs, conn := e.commandFlags("queue inflight", "queue inflight QUEUE [--limit 100] [--cursor C] [--json]")
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
	return e.withClient(ctx, conn, func(c *sluice.Client) error {
		page, err := c.Queue(pos[0]).Deliveries(ctx, &sluice.ListDeliveriesOptions{Limit: *limit, Cursor: *cursor})
		if err != nil {
			return err
		}
		out := inflightOutput{Deliveries: make([]inflightRow, len(page.Deliveries)), NextCursor: page.NextCursor}
		for i, d := range page.Deliveries {
			row := inflightRow{ID: d.ID, State: "leased", Attempt: d.Attempt, Deadline: d.Deadline.UTC(), Item: d.Item}
			if d.Waiting {
				row.State = "waiting"
			}
			if !d.DeliveredAt.IsZero() {
				at, age := d.DeliveredAt.UTC(), d.Age.Seconds()
				row.DeliveredAt, row.AgeSeconds = &at, &age
			}
			out.Deliveries[i] = row
		}
		if *asJSON {
			return printJSON(e.stdout, out)
		}
		return e.printInflight(out, time.Now())
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", id, r.State, r.Attempt, roundDuration(r.Deadline.Sub(now)), age, clipItem(string(r.Item.JSON())))
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
	fs, conn := e.commandFlags("queue stats", "queue stats QUEUE")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	return e.printResult(ctx, conn, func(c *sluice.Client) (any, error) {
		return c.Queue(pos[0]).Stats(ctx)
	})
}
