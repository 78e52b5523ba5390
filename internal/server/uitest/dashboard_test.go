package uitest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/server"
)

// xss is an item that runs script wherever a page inserts it as markup.
const xss = `<img src=x onerror=alert(1)>`

// TestOverview: the overview lists the test's queues with their numbers,
// and a rate chart moves when items are added.
func TestOverview(t *testing.T) {
	engines(t, nil, func(t *testing.T, p *pageT) {
		ctx := ctx10(t)
		if err := p.client.DeclareQueue(ctx, "orders", sluice.QueueSettings{MaxSize: 5, Policy: sluice.PolicyDLQ}); err != nil {
			t.Fatal(err)
		}
		p.add("orders", 1, 2, 3, 4, 5, 6, 7) // 5 stay, 2 go to the overflow DLQ
		p.add("emails", "a", "b", "c")

		p.visit("/") // redirects to /ui/
		p.waitJS("the orders row", `document.querySelector('tr[data-queue="orders"] td[data-col="overflow-dlq"]')?.textContent === '2'`)
		row := `tr[data-queue="orders"] `
		if got := p.text(row + `td[data-col="length"]`); got != "5" {
			t.Errorf("orders length %q, want 5", got)
		}
		if got := p.text(`tr[data-queue="emails"] td[data-col="length"]`); got != "3" {
			t.Errorf("emails length %q, want 3", got)
		}
		if got := p.text(row + `td:nth-child(4)`); got != "5" {
			t.Errorf("orders capacity %q, want 5", got)
		}
		if fill, err := eval[float64](p, `document.querySelector('tr[data-queue="orders"] meter').value`); err != nil || fill != 1 {
			t.Errorf("orders fill bar %v (%v), want 1", fill, err)
		}

		// The chart needs two samples around the adds: wait for the first.
		p.waitJS("a first sample", `Number(document.querySelector('tr[data-queue="emails"] td[data-col="added"] svg')?.dataset.samples) >= 1`)
		p.add("emails", "d", "e", "f", "g")
		p.waitJS("the added rate to rise", `Number(document.querySelector('tr[data-queue="emails"] td[data-col="added"] svg')?.dataset.last) > 0`)
		p.waitJS("the new length", `document.querySelector('tr[data-queue="emails"] td[data-col="length"]')?.textContent === '7'`)

		// The oldest item's age, once a maintainer has sampled the heads.
		p.maintain()
		p.waitJS("the oldest item's age", `document.querySelector('tr[data-queue="orders"] td[data-col="oldest"]')?.textContent.startsWith('≥')`)

		// The filter narrows the list.
		p.run("filter", chromedp.SendKeys(chromedp.CSS("#filter"), "ema"))
		p.waitJS("the filtered list", `!document.querySelector('tr[data-queue="orders"]') && document.querySelector('tr[data-queue="emails"]')`)
		p.setValue("#filter", "")
		p.waitJS("the whole list", `document.querySelector('tr[data-queue="orders"]')`)
		p.waitJS("the engine in the header", `document.querySelector('#engine').textContent.includes('healthy')`)
		p.screenshot("overview")
		p.noScriptRan()
	})
}

// TestQueuePage: items are shown as text, never run; requeue and purge
// from the page change the engine as reported.
func TestQueuePage(t *testing.T) {
	engines(t, nil, func(t *testing.T, p *pageT) {
		ctx := ctx10(t)
		if err := p.client.DeclareQueue(ctx, "jobs", sluice.QueueSettings{MaxSize: 3, Policy: sluice.PolicyDLQ}); err != nil {
			t.Fatal(err)
		}
		p.add("jobs", 1, 2, 3, 4, 5, map[string]any{"html": xss}) // the last 3 stay, 3 overflow
		q := p.client.Queue("jobs")

		p.visit("/ui/#/queue/jobs")
		p.waitJS("the head items", `document.querySelector('#items')?.textContent.includes('onerror=alert(1)')`)
		if imgs, err := eval[int](p, `document.querySelectorAll('main img').length`); err != nil || imgs != 0 {
			t.Errorf("%d img elements in the page (%v): an item became markup", imgs, err)
		}
		if shown, err := eval[string](p, `document.querySelector('#items').innerText`); err != nil || !strings.Contains(shown, xss) {
			t.Errorf("item text %q (%v), want it to hold %s as text", shown, err, xss)
		}
		p.waitJS("the DLQ", `document.querySelectorAll('#dlq > li').length === 3`)
		p.screenshot("queue")

		// Room for one more item, then requeue 1 from the page.
		if err := p.client.DeclareQueue(ctx, "jobs", sluice.QueueSettings{MaxSize: 4, Policy: sluice.PolicyDLQ}); err != nil {
			t.Fatal(err)
		}
		p.setValue("#requeue-count", "1")
		p.click("#requeue-n")
		p.waitJS("the confirmation", `document.querySelector('#confirm-dialog').open`)
		p.screenshot("confirm")
		p.click("#confirm-ok")
		p.waitToast("Requeued 1; 2 remain")
		if n, err := q.Len(ctx); err != nil || n != 4 {
			t.Errorf("queue length %d (%v) after requeuing 1, want 4", n, err)
		}
		p.waitJS("the DLQ list to shrink", `document.querySelectorAll('#dlq > li').length === 2`)

		// Delete entry #1 of the two left from the page: the other stays.
		entries, _, err := q.DLQ(sluice.DLQOverflow).List(ctx, 0, 10)
		if err != nil || len(entries) != 2 {
			t.Fatalf("overflow DLQ: %v, %v", entries, err)
		}
		p.click(`button[data-delete="1"]`)
		p.waitJS("the confirmation", `document.querySelector('#confirm-dialog').open`)
		p.click("#confirm-ok")
		p.waitToast("Deleted entry #1")
		if left, _, err := q.DLQ(sluice.DLQOverflow).List(ctx, 0, 10); err != nil || len(left) != 1 || left[0].Digest != entries[0].Digest {
			t.Fatalf("after deleting entry 1: %v, %v; want only %v", left, err, entries[0])
		}
		p.waitJS("the DLQ list to shrink", `document.querySelectorAll('#dlq > li').length === 1`)
		p.add("jobs", 7) // full again: 7 pushes the head out to the DLQ
		p.click("#dlq-overflow")
		p.waitJS("the DLQ list to grow", `document.querySelectorAll('#dlq > li').length === 2`)

		// Cancelling changes nothing; confirming purges.
		p.click("#purge")
		p.waitJS("the confirmation", `document.querySelector('#confirm-dialog').open`)
		p.run("cancel", chromedp.KeyEvent("\x1b"))
		p.waitJS("the dialog to close", `!document.querySelector('#confirm-dialog').open`)
		if n, err := q.DLQ(sluice.DLQOverflow).Len(ctx); err != nil || n != 2 {
			t.Fatalf("overflow DLQ length %d (%v) after a cancelled purge, want 2", n, err)
		}
		p.click("#purge")
		p.waitJS("the confirmation", `document.querySelector('#confirm-dialog').open`)
		p.click("#confirm-ok")
		p.waitToast("Purged 2 entries")
		if n, err := q.DLQ(sluice.DLQOverflow).Len(ctx); err != nil || n != 0 {
			t.Errorf("overflow DLQ length %d (%v) after the purge, want 0", n, err)
		}
		p.waitJS("the empty DLQ", `document.querySelector('#dlq').children.length === 0`)

		// Settings: a bad value is refused in the page; a good one is saved.
		p.setValue("#s-max", "0")
		p.click("#save-settings")
		p.waitJS("the form's error", `document.querySelector('form.settings .error').textContent.includes('Max size')`)
		p.setValue("#s-max", "50")
		p.setValue("#s-policy", "reject")
		p.click("#save-settings")
		p.waitToast("saved")
		es, err := q.Settings(ctx)
		if err != nil || es.Declared.MaxSize != 50 || es.Declared.Policy != sluice.PolicyReject {
			t.Errorf("declared %+v (%v), want max size 50, reject", es.Declared, err)
		}

		// A delivery taken meanwhile appears in the in-flight list by
		// itself, with its attempt.
		if ds, err := q.ReceiveBatch(ctx, 1, 0, &sluice.ReceiveOptions{Lease: time.Minute}); err != nil || len(ds) != 1 {
			t.Fatalf("receive: %v, %v", ds, err)
		}
		p.waitJS("the delivery in flight", `document.querySelectorAll('#deliveries > li').length === 1 && document.querySelector('#deliveries').textContent.includes('attempt 1')`)
		p.noScriptRan()
	})
}

// TestEvents: published messages appear live, markup as text; the page
// publishes too.
func TestEvents(t *testing.T) {
	engines(t, nil, func(t *testing.T, p *pageT) {
		ch := "ui-events"
		p.visit("/ui/#/events?channels=" + ch)
		p.waitJS("the subscription", `document.querySelector('#ws-state').textContent.startsWith('watching')`)
		// A subscription takes effect in the engine shortly after the
		// server accepts it: publish until one is received.
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			if _, err := p.client.Publish(ctx10(t), ch, map[string]any{"n": i, "html": xss}); err != nil {
				t.Fatal(err)
			}
			if ok, err := eval[bool](p, `document.querySelectorAll('#messages > li').length > 0`); err == nil && ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no message appeared")
			}
			time.Sleep(200 * time.Millisecond)
		}
		p.waitJS("the message as text", `document.querySelector('#messages').textContent.includes('onerror=alert(1)') && !document.querySelector('#messages img')`)
		p.setValue("#pub-channel", ch)
		p.setValue("#pub-data", `{"from": "the page"}`)
		p.click("#publish")
		p.waitJS("the page's message", `document.querySelector('#messages').textContent.includes('the page')`)
		p.waitToast("receiver")

		// Paused, messages are kept but not shown until resumed.
		p.click("#pause-events")
		before, _ := eval[int](p, `document.querySelectorAll('#messages > li').length`)
		if _, err := p.client.Publish(ctx10(t), ch, "while paused"); err != nil {
			t.Fatal(err)
		}
		p.waitJS("the paused count", `document.querySelector('#event-count').textContent.includes('while paused')`)
		p.click("#pause-events")
		p.waitJS("the held message", fmt.Sprintf(`document.querySelectorAll('#messages > li').length > %d`, before))
		p.screenshot("events")
		p.noScriptRan()
	})
}

// TestAPIKey: with API keys, the page asks for one once, then works, the
// WebSocket included.
func TestAPIKey(t *testing.T) {
	engines(t, func(c *server.Config) { c.APIKeys = []string{"s3cret-key"} }, func(t *testing.T, p *pageT) {
		p.add("secured", 1)
		p.visit("/ui/")
		p.waitJS("the key dialog", `document.querySelector('#key-dialog').open`)
		p.screenshot("key")
		p.run("wrong key", chromedp.SendKeys(chromedp.CSS("#key-input"), "wrong\r"))
		p.waitJS("the dialog again, saying so", `document.querySelector('#key-dialog').open && document.querySelector('#key-error').textContent.includes('refused')`)
		p.run("right key", chromedp.SendKeys(chromedp.CSS("#key-input"), "s3cret-key\r"))
		p.waitJS("the queue row", `document.querySelector('tr[data-queue="secured"] td[data-col="length"]')?.textContent === '1'`)
		if url, err := eval[string](p, `location.href`); err != nil || strings.Contains(url, "s3cret") {
			t.Errorf("the key is in the address %q (%v)", url, err)
		}
		p.visit("/ui/#/events?channels=keyed")
		p.waitJS("the authenticated WebSocket", `document.querySelector('#ws-state').textContent.startsWith('watching')`)
		if open, err := eval[bool](p, `document.querySelector('#key-dialog').open`); err != nil || open {
			t.Errorf("the key was asked for again (%v)", err)
		}
		p.noScriptRan()
	})
}

// TestLookup: a cache entry and a lock looked up by name; the lock shows
// whether it is held, never its token.
func TestLookup(t *testing.T) {
	engines(t, nil, func(t *testing.T, p *pageT) {
		p.http("PUT", "/v1/cache/greeting?ttl=5m", `{"hello": "<b>world</b>"}`)
		acq := p.http("POST", "/v1/locks/deploy", `{"ttl_ms": 60000}`)
		p.visit("/ui/#/lookup")
		p.setValue("#cache-key", "greeting")
		p.click("#cache-form button")
		p.waitJS("the cache value", `document.querySelector('#cache-result').textContent.includes('<b>world</b>') && !document.querySelector('#cache-result b')`)
		p.setValue("#cache-key", "absent")
		p.click("#cache-form button")
		p.waitJS("no such key", `document.querySelector('#cache-result').textContent.includes('No such key')`)
		p.setValue("#lock-name", "deploy")
		p.click("#lock-form button")
		p.waitJS("the held lock", `document.querySelector('#lock-result').textContent.includes('Held')`)
		if token, _ := acq["token"].(string); token == "" || strings.Contains(p.text("main"), token) {
			t.Errorf("the page shows the lock's token (or none was issued: %v)", acq)
		}
		p.screenshot("lookup")
		p.setValue("#lock-name", "free")
		p.click("#lock-form button")
		p.waitJS("the free lock", `document.querySelector('#lock-result').textContent.includes('Not held')`)
		p.noScriptRan()
	})
}

// TestPhoneAndDark: the overview on a phone-sized screen, in the dark
// scheme: the table scrolls inside its box, the page does not.
func TestPhoneAndDark(t *testing.T) {
	p := open(t, "embedded", nil)
	p.add("a-queue-with-a-rather-long-name", 1, 2, 3)
	p.run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
			return err
		}))
	p.visit("/ui/")
	p.waitJS("the row", `document.querySelector('tr[data-queue="a-queue-with-a-rather-long-name"] td[data-col="in-flight"]')?.textContent === '0'`)
	if wide, err := eval[bool](p, `document.documentElement.scrollWidth > 391`); err != nil || wide {
		t.Errorf("the page is wider than the phone's screen (%v)", err)
	}
	if bg, err := eval[string](p, `getComputedStyle(document.body).backgroundColor`); err != nil || bg == "rgb(247, 248, 250)" {
		t.Errorf("body background %q (%v): the dark scheme did not apply", bg, err)
	}
	p.screenshot("phone-dark")
	p.visit("/ui/#/queue/a-queue-with-a-rather-long-name")
	p.waitJS("the queue page", `document.querySelector('[data-stat="length"]')?.textContent === '3'`)
	if wide, err := eval[bool](p, `document.documentElement.scrollWidth > 391`); err != nil || wide {
		t.Errorf("the queue page is wider than the phone's screen (%v)", err)
	}
	p.screenshot("phone-dark-queue")
	p.noScriptRan()
}

// TestPathPrefix: behind a proxy that serves the service under a path
// prefix, the dashboard finds the API and the WebSocket under it too.
func TestPathPrefix(t *testing.T) {
	withPrefix(t, "/sluice")
	p := open(t, "embedded", func(c *server.Config) { c.APIKeys = []string{"k"} })
	p.add("prefixed", 1, 2)
	p.visit("/") // the redirect is relative: /sluice/ui/
	p.waitJS("the key dialog", `document.querySelector('#key-dialog').open`)
	p.run("key", chromedp.SendKeys(chromedp.CSS("#key-input"), "k\r"))
	p.waitJS("the queue row", `document.querySelector('tr[data-queue="prefixed"] td[data-col="length"]')?.textContent === '2'`)
	if u, err := eval[string](p, `location.pathname`); err != nil || u != "/sluice/ui/" {
		t.Errorf("the page is at %q (%v), want /sluice/ui/", u, err)
	}
	p.waitJS("the engine in the header", `document.querySelector('#engine').textContent.includes('healthy')`)
	p.visit("/ui/#/events?channels=prefixed")
	p.waitJS("the WebSocket", `document.querySelector('#ws-state').textContent.startsWith('watching')`)
	p.noScriptRan()
}
