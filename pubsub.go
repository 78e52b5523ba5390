package sluice

import (
	"context"
	"fmt"
	"iter"

	"github.com/sluicehq/sluice/internal/codec"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// Pub/sub is at-most-once: a message reaches the subscribers connected
// when it is published, and nobody else. A subscriber that is disconnected
// (Redis restart, network) is reconnected and re-subscribed automatically,
// and told with a Message whose Gap is true that messages may have been
// missed meanwhile. Use queues for anything that must not be lost.

// Message is one pub/sub event.
type Message struct {
	Channel string `json:"channel"`
	// Pattern is the matching pattern of a pattern subscription, else "".
	Pattern string `json:"pattern,omitempty"`
	// Data is the payload: JSON, or the plain string that was published.
	Data Item `json:"data"`
	// Gap marks a notice, not a message: the subscription was interrupted
	// and re-established; messages published meanwhile were missed.
	Gap bool `json:"gap,omitempty"`
}

// Publish sends v to channel (a string as is, anything else as JSON) and
// returns how many subscribers received it.
func (c *Client) Publish(ctx context.Context, channel string, v any) (int64, error) {
	if err := validateChannel(channel); err != nil {
		return 0, err
	}
	payload, err := codec.Serialize(v)
	if err != nil {
		return 0, fmt.Errorf("sluice: publish to channel %q (nothing sent): %w", channel, encodeErr(err))
	}
	n, err := c.eng.Publish(ctx, channel, payload)
	if err != nil {
		return 0, fmt.Errorf("sluice: publish to channel %q: %w", channel, err)
	}
	return n, nil
}

// SubscribeOptions select what to subscribe to. SubscribeWith needs at
// least one channel or pattern, so a nil *SubscribeOptions is refused
// like an empty one.
type SubscribeOptions struct {
	Channels []string
	// Patterns are Redis glob patterns: * ? [abc] [^a] and \ escapes.
	Patterns []string
	// Buffer bounds the messages held for a slow reader (default 1024).
	// When it is full, new messages are dropped and counted in Dropped.
	Buffer int
}

// Subscription receives messages until Close.
type Subscription struct {
	c   *Client
	sub engine.Subscription
	err error // what ended All
}

// Subscribe subscribes to channels; it returns once the subscription is
// active, so a message published afterwards is received.
func (c *Client) Subscribe(ctx context.Context, channels ...string) (*Subscription, error) {
	return c.SubscribeWith(ctx, &SubscribeOptions{Channels: channels})
}

// SubscribeWith subscribes to channels and patterns.
func (c *Client) SubscribeWith(ctx context.Context, opts *SubscribeOptions) (*Subscription, error) {
	var o SubscribeOptions
	if opts != nil {
		o = *opts
	}
	if len(o.Channels)+len(o.Patterns) == 0 {
		return nil, fmt.Errorf("sluice: %w: subscribe needs at least one channel or pattern", ErrInvalidArgument)
	}
	for _, ch := range append(append([]string(nil), o.Channels...), o.Patterns...) {
		if err := validateChannel(ch); err != nil {
			return nil, err
		}
	}
	sub, err := c.eng.Subscribe(ctx, engine.SubscribeParams{Channels: o.Channels, Patterns: o.Patterns, Buffer: o.Buffer})
	if err != nil {
		return nil, fmt.Errorf("sluice: subscribe: %w", err)
	}
	return &Subscription{c: c, sub: sub}, nil
}

// Next waits for the next message. It returns ErrClosed after Close, and
// ctx's error when ctx is done.
func (s *Subscription) Next(ctx context.Context) (Message, error) {
	select {
	case m, ok := <-s.sub.Messages():
		if !ok {
			return Message{}, ErrClosed
		}
		return s.convert(m), nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// All iterates over messages until ctx is done or the subscription closes;
// Err then says which.
func (s *Subscription) All(ctx context.Context) iter.Seq[Message] {
	return func(yield func(Message) bool) {
		for {
			m, err := s.Next(ctx)
			if err != nil {
				s.err = err
				return
			}
			if !yield(m) {
				return
			}
		}
	}
}

// Err returns the error that ended an All loop: ErrClosed or ctx's error.
func (s *Subscription) Err() error { return s.err }

func (s *Subscription) convert(m engine.Message) Message {
	if m.Kind == engine.MessageGap {
		return Message{Gap: true}
	}
	return Message{Channel: m.Channel, Pattern: m.Pattern, Data: s.c.decode(m.Payload)}
}

// Dropped counts messages discarded because the reader fell behind.
func (s *Subscription) Dropped() uint64 { return s.sub.Dropped() }

// Close ends the subscription.
func (s *Subscription) Close() error { return s.sub.Close() }

func validateChannel(ch string) error {
	if err := checkText(ErrInvalidName, "channel name", ch); err != nil {
		return err
	}
	if err := keyspace.CheckChannel(ch); err != nil {
		return fmt.Errorf("sluice: %w: %w", ErrInvalidName, err)
	}
	return nil
}
