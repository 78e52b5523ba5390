package bench

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// rounds is how many slices a group's duration is cut into. The cases of
// a group take turns slice by slice, so a change in the machine's load
// during a run falls on a case and its baseline alike, and their ratio
// stays meaningful on a shared machine.
const rounds = 5

// benchCase is one row of a group.
type benchCase struct {
	label, note string
	n           int // goroutines
	sample      int // latency sampling rate, see measure
	// baseline, when set, is the label of the case (at the same n) this
	// one's ratio is taken against.
	baseline string
	// prepare runs before each slice and returns the operation to measure
	// (a drain case fills its queue here); cleanup runs after each slice.
	prepare func(ctx context.Context) (op, error)
	cleanup func(ctx context.Context) error
}

// group measures cases in interleaved slices of d/rounds each and adds
// their rows to rep, in order.
func group(ctx context.Context, o Options, rep *Report, cases []benchCase) error {
	slice := max(o.Duration/rounds, time.Millisecond)
	totals := make([]tally, len(cases))
	for round := range rounds {
		for i, c := range cases {
			if round == 0 {
				o.Progress("%s, %d goroutines", c.label, c.n)
			}
			f, err := c.prepare(ctx)
			if err != nil {
				return fmt.Errorf("bench: %s (%d goroutines): %w", c.label, c.n, err)
			}
			t, err := measure(ctx, slice, c.n, c.sample, f)
			if err == nil && c.cleanup != nil {
				err = c.cleanup(ctx)
			}
			if err != nil {
				return fmt.Errorf("bench: %s (%d goroutines): %w", c.label, c.n, err)
			}
			totals[i].merge(t)
		}
	}
	for i, c := range cases {
		slices.Sort(totals[i].samples)
		rep.add(c.label, c.n, totals[i], c.note)
	}
	for _, c := range cases {
		if c.baseline != "" {
			rep.compare(c.label, c.n, c.baseline, c.n)
		}
	}
	return nil
}

func (t *tally) merge(u tally) {
	t.ops += u.ops
	t.items += u.items
	t.elapsed += u.elapsed
	t.samples = append(t.samples, u.samples...)
}

// fixed is a prepare function for an operation that needs no setup.
func fixed(f op) func(context.Context) (op, error) {
	return func(context.Context) (op, error) { return f, nil }
}
