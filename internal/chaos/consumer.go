package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
)

// Delivery is one leased job as a consumer sees it.
type Delivery struct {
	ID      string
	Job     int
	Attempt int
}

// Endpoint is how a consumer reaches the queue.
type Endpoint interface {
	// Receive leases the next job, waiting up to timeout; ok is false when
	// none came.
	Receive(ctx context.Context, timeout time.Duration) (d Delivery, ok bool, err error)
	// Ack settles a delivery; the error matches sluice.ErrLeaseNotFound
	// when the lease was gone.
	Ack(ctx context.Context, id string) error
	// Nack returns a delivery unsuccessfully, to be retried at once or
	// dead-lettered.
	Nack(ctx context.Context, id, reason string) error
}

// ConsumerOptions tune Consume.
type ConsumerOptions struct {
	// Poll is the longest single receive wait. Stopping takes up to this
	// long, since a receive in progress is never cancelled.
	Poll time.Duration
	// RetryPause separates a failed receive from the next attempt.
	RetryPause time.Duration
}

// Consume receives jobs until stop is set, printing the line protocol to
// out. A healthy job's handled line is written before its ack is sent, so
// a job whose ack may have landed is never missing from the transcript. A
// receive in progress is never cancelled: a consumer told to stop finishes
// its current job and holds no lease when it returns.
func Consume(ep Endpoint, out io.Writer, stop *atomic.Bool, opts ConsumerOptions) error {
	ctx := context.Background()
	for !stop.Load() {
		d, ok, err := ep.Receive(ctx, opts.Poll)
		if err != nil {
			if err := emit(out, "%s %v", evError, oneLine(err)); err != nil {
				return err
			}
			time.Sleep(opts.RetryPause)
			continue
		}
		if !ok {
			continue
		}
		if err := handle(ctx, ep, out, d); err != nil {
			return err
		}
	}
	return nil
}

// handle runs the handler for one delivery and settles it. Only a failed
// write to out is returned: the transcript is the record, and without it
// the run cannot be judged.
func handle(ctx context.Context, ep Endpoint, out io.Writer, d Delivery) error {
	if Poison(d.Job) {
		if err := ep.Nack(ctx, d.ID, fmt.Sprintf("job %d is poison", d.Job)); err != nil {
			return emit(out, "%s %d %v", evNackErr, d.Job, oneLine(err))
		}
		return emit(out, "%s %d %d", evNacked, d.Job, d.Attempt)
	}
	if err := emit(out, "%s %d %d", evHandled, d.Job, d.Attempt); err != nil {
		return err
	}
	err := ep.Ack(ctx, d.ID)
	switch {
	case err == nil:
		return emit(out, "%s %d", evAcked, d.Job)
	case errors.Is(err, sluice.ErrLeaseNotFound):
		return emit(out, "%s %d %v", evLost, d.Job, oneLine(err))
	default:
		return emit(out, "%s %d %v", evAckErr, d.Job, oneLine(err))
	}
}

// emit writes one line in a single write, so a kill never tears a line
// (pipe writes this short are atomic).
func emit(out io.Writer, format string, args ...any) error {
	if _, err := fmt.Fprintf(out, format+"\n", args...); err != nil {
		return fmt.Errorf("chaos: write transcript: %w", err)
	}
	return nil
}

func oneLine(err error) string {
	s := []rune(err.Error())
	for i, r := range s {
		if r == '\n' || r == '\r' {
			s[i] = ' '
		}
	}
	return string(s)
}

// ClientEndpoint consumes through a sluice.Client.
type ClientEndpoint struct {
	Queue *sluice.Queue
	Opts  sluice.ReceiveOptions
}

// Receive implements Endpoint.
func (e *ClientEndpoint) Receive(ctx context.Context, timeout time.Duration) (Delivery, bool, error) {
	d, ok, err := e.Queue.Receive(ctx, timeout, &e.Opts)
	if err != nil || !ok {
		return Delivery{}, false, err
	}
	job, err := sluice.As[Job](d.Item)
	if err != nil {
		// Not a chaos job: leave it to its lease rather than settle it.
		return Delivery{}, false, fmt.Errorf("chaos: delivery %s: %w", d.ID, err)
	}
	return Delivery{ID: d.ID, Job: job.ID, Attempt: d.Attempt}, true, nil
}

// Ack implements Endpoint.
func (e *ClientEndpoint) Ack(ctx context.Context, id string) error { return e.Queue.Ack(ctx, id) }

// Nack implements Endpoint.
func (e *ClientEndpoint) Nack(ctx context.Context, id, reason string) error {
	_, err := e.Queue.Nack(ctx, id, &sluice.NackOptions{Reason: reason, MaxDeliveries: e.Opts.MaxDeliveries})
	return err
}
