package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestQueueDeliveriesRoute(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		long := strings.Repeat("é", maxListedItemBytes) // 2 bytes each: cut
		b.expect(200, "POST", "/v1/queues/iq/batch", `[{"n": 1}, "`+long+`", 3]`)
		b.expect(200, "POST", "/v1/queues/iq/receive?count=2&lease=1m", nil)
		m := b.expect(200, "GET", "/v1/queues/iq/deliveries?limit=1", nil)
		ds := m["deliveries"].([]any)
		next, _ := m["next_cursor"].(string)
		if len(ds) != 1 || next == "" {
			t.Fatalf("first page = %v", m)
		}
		d := ds[0].(map[string]any)
		if d["state"] != "leased" || d["attempt"] != 1.0 || d["id"] == nil || d["item_truncated"] != nil ||
			d["item"].(map[string]any)["n"] != 1.0 || d["age_seconds"] == nil || d["item_bytes"] != 8.0 {
			t.Errorf("first delivery = %v", d)
		}
		if _, err := time.Parse(time.RFC3339Nano, d["deadline"].(string)); err != nil {
			t.Errorf("deadline %v: %v", d["deadline"], err)
		}
		m = b.expect(200, "GET", "/v1/queues/iq/deliveries?limit=1&cursor="+next, nil)
		ds = m["deliveries"].([]any)
		if len(ds) != 1 || m["next_cursor"] != nil {
			t.Fatalf("second page = %v", m)
		}
		d = ds[0].(map[string]any)
		item, _ := d["item"].(string)
		if d["item_truncated"] != true || !strings.HasPrefix(item, `"éé`) || len(item) > maxListedItemBytes || d["item_bytes"] != float64(2*maxListedItemBytes+2) {
			t.Errorf("second delivery = %.80v", d)
		}
		b.expectError(400, "GET", "/v1/queues/iq/deliveries?cursor=x", nil)
		b.expectError(400, "GET", "/v1/queues/iq/deliveries?limit=0", nil)
		b.expectError(400, "GET", "/v1/queues/iq/deliveries?cursor="+encodeCursor(cursorDeliveries, "nonsense"), nil)
		b.expectError(400, "GET", "/v1/queues/iq/deliveries?cursor="+encodeCursor(cursorName, "iq"), nil)
		b.expectError(400, "GET", "/v1/queues/a%23b/deliveries", nil)

		info := b.expect(200, "GET", "/v1/queues/iq", nil)
		stats := info["stats"].(map[string]any)
		if stats["added_total"] != 3.0 || stats["delivered_total"] != 2.0 || stats["in_flight"] != 2.0 {
			t.Errorf("stats = %v", stats)
		}
		_, body := b.do("GET", "/metrics", nil)
		for _, want := range []string{`sluice_queue_added_total{queue="iq"} 3`, `sluice_queue_delivered_total{queue="iq"} 2`,
			`sluice_queue_dlq_length{dlq="failed",queue="iq"} 0`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}

func TestListedItemIsCutAtARuneBoundary(t *testing.T) {
	c, err := sluice.Open(t.Context(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := c.Queue("cut")
	if _, err := q.Add(t.Context(), "a"+strings.Repeat("€", maxListedItemBytes), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Receive(t.Context(), 0, nil); err != nil {
		t.Fatal(err)
	}
	page, err := q.Deliveries(t.Context(), nil)
	if err != nil || len(page.Deliveries) != 1 {
		t.Fatalf("Deliveries = %v, %v", page, err)
	}
	d := listedDelivery(page.Deliveries[0])
	var s string
	if err := json.Unmarshal(d.Item, &s); err != nil || !d.ItemTruncated || strings.ContainsRune(s, '\uFFFD') || len(s) > maxListedItemBytes {
		t.Errorf("cut item %q (%v), truncated %v", s, err, d.ItemTruncated)
	}
}
