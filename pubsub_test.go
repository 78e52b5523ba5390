package sluice_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestPublishSubscribe(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sub, err := c.SubscribeWith(ctx, &sluice.SubscribeOptions{Channels: []string{"camera_events"}, Patterns: []string{"risk_*"}})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		n, err := c.Publish(ctx, "camera_events", map[string]any{"type": "motion_detected", "camera_id": 1})
		if err != nil || n != 1 {
			t.Fatalf("publish: %d %v", n, err)
		}
		if _, err := c.Publish(ctx, "risk_alerts", "plain alert"); err != nil {
			t.Fatal(err)
		}
		m, err := sub.Next(ctx)
		if err != nil || m.Channel != "camera_events" || m.Pattern != "" {
			t.Fatalf("message 1: %+v %v", m, err)
		}
		var ev struct {
			Type   string `json:"type"`
			Camera int    `json:"camera_id"`
		}
		if err := m.Data.Decode(&ev); err != nil || ev.Type != "motion_detected" || ev.Camera != 1 {
			t.Fatalf("data: %+v %v", ev, err)
		}
		m, err = sub.Next(ctx)
		if err != nil || m.Channel != "risk_alerts" || m.Pattern != "risk_*" || m.Data.String() != "plain alert" || m.Data.IsJSON() {
			t.Fatalf("message 2: %+v %v", m, err)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if n, _ := c.Publish(ctx, "camera_events", 1); n != 0 {
			t.Fatalf("receivers after close: %d", n)
		}
	})
}
