package uitest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice"
)

// TestMeasureFirstRender times the overview with 1,000 queues, from the
// start of the navigation to the first queue row in the page, and logs
// the bytes the dashboard ships. A measurement, not a check: it runs only
// with SLUICE_UI_MEASURE=1 (go test -run TestMeasureFirstRender -v).
func TestMeasureFirstRender(t *testing.T) {
	if os.Getenv("SLUICE_UI_MEASURE") != "1" {
		t.Skip("a measurement: set SLUICE_UI_MEASURE=1 to run it")
	}
	for _, eng := range []string{"embedded", "redis"} {
		t.Run(eng, func(t *testing.T) {
			p := open(t, eng, nil)
			const queues = 1000
			for i := range queues {
				p.add(fmt.Sprintf("queue-%04d", i), i)
			}
			for run := range 3 {
				p.run("blank", chromedp.Navigate("about:blank"))
				start := time.Now()
				p.run("navigate", chromedp.Navigate(p.base+"/ui/"))
				ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
				// When the first row enters the document (a MutationObserver
				// sees it at once; a frame-based wait would add the
				// browser's frame scheduling, which headless throttles).
				firstRow, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`new Promise((resolve) => {
					const row = () => document.querySelector('tbody tr[data-queue]');
					if (row()) { resolve(performance.now()); return; }
					const mo = new MutationObserver(() => { if (row()) { mo.disconnect(); resolve(performance.now()); } });
					mo.observe(document, {childList: true, subtree: true});
				})`, chromedp.EvalAwaitPromise))
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				wall := time.Since(start)
				// Where the time went: the page and its modules, then the
				// first page of the queue listing.
				timing, _ := eval[string](p, `(() => {
					const n = performance.getEntriesByType('navigation')[0];
					const list = performance.getEntriesByType('resource').find((r) => r.name.includes('/v1/queues?limit='));
					return 'modules loaded at ' + Math.round(n.domContentLoadedEventEnd) + ' ms, first listing page ' +
						(list ? Math.round(list.startTime) + '-' + Math.round(list.responseEnd) + ' ms' : 'not seen');
				})()`)
				p.waitJS("every queue listed", `document.querySelector('main p.muted')?.textContent.startsWith('1,000 of 1,000')`)
				all := time.Since(start)
				t.Logf("%s, run %d: first queue row in the page at %.0f ms after navigation start (%v seen from the test; %s); all %d listed after %v",
					eng, run+1, firstRow, wall.Round(time.Millisecond), timing, queues, all.Round(time.Millisecond))
			}
			if eng == "embedded" {
				logBytes(t, p.base)
			}
		})
	}
}

// logBytes logs the dashboard's files' sizes as served, plain and gzipped.
func logBytes(t *testing.T, base string) {
	files, err := os.ReadDir("../ui")
	if err != nil {
		t.Fatal(err)
	}
	var plain, gz int64
	for _, f := range files {
		for _, enc := range []string{"identity", "gzip"} {
			req, _ := http.NewRequest(http.MethodGet, base+"/ui/"+f.Name(), nil)
			req.Header.Set("Accept-Encoding", enc)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if enc == "gzip" {
				gz += resp.ContentLength
			} else {
				plain += resp.ContentLength
			}
		}
	}
	t.Logf("dashboard: %d files, %d bytes, %d bytes gzipped as served", len(files), plain, gz)
}

// TestDocsScreenshot writes docs/dashboard.png, the README's picture: a
// few queues under steady traffic, watched for long enough to draw rate
// charts. It runs only with SLUICE_UI_DOCS=1.
func TestDocsScreenshot(t *testing.T) {
	if os.Getenv("SLUICE_UI_DOCS") != "1" {
		t.Skip("writes docs/dashboard.png: set SLUICE_UI_DOCS=1 to run it")
	}
	p := open(t, "embedded", nil)
	ctx := ctx10(t)
	if err := p.client.DeclareQueue(ctx, "thumbnails", sluice.QueueSettings{MaxSize: 500, Policy: sluice.PolicyReject}); err != nil {
		t.Fatal(err)
	}
	if err := p.client.DeclareQueue(ctx, "webhooks", sluice.QueueSettings{MaxSize: 200, Policy: sluice.PolicyDLQ}); err != nil {
		t.Fatal(err)
	}
	for i := range 260 {
		p.add("webhooks", map[string]any{"event": "order.paid", "id": i})
	}
	p.add("emails", map[string]any{"to": "ada@example.com"}, map[string]any{"to": "grace@example.com"})

	// Traffic for the charts: adds and acks on three queues, and a few
	// dead letters, until the screenshot is taken.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for _, q := range []string{"thumbnails", "emails", "orders"} {
				n := 1 + (i/(5+len(q))+len(q))%4
				items := make([]any, n)
				for j := range items {
					items[j] = map[string]any{"n": i, "q": q}
				}
				_, _ = p.client.Queue(q).AddBatch(bg, items, nil)
				if ds, err := p.client.Queue(q).ReceiveBatch(bg, n-i%2, 0, &sluice.ReceiveOptions{Lease: time.Minute, MaxDeliveries: 1}); err == nil {
					for k, d := range ds {
						if i%10 == 0 && k == 0 {
							_, _ = d.Nack(bg, &sluice.NackOptions{Reason: "upstream timeout"})
						} else {
							_ = d.Ack(bg)
						}
					}
				}
			}
			cancel()
		}
	}()
	defer func() { close(stop); <-done }()
	p.maintain()
	p.visit("/ui/")
	p.waitJS("12 samples", `Number(document.querySelector('tr[data-queue="thumbnails"] td[data-col="added"] svg')?.dataset.samples) >= 12`)
	ctxShot, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctxShot, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("../../../docs/dashboard.png", png, 0o644); err != nil {
		t.Fatal(err)
	}
}
