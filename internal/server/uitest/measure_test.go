package uitest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestMeasureFirstRender times the overview with 1,000 queues, from the
// start of the navigation to the first frame with a queue row, and logs
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
				firstRow, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`new Promise((resolve) => {
					const f = () => document.querySelector('tbody tr[data-queue]') ? resolve(performance.now()) : requestAnimationFrame(f);
					f();
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
				t.Logf("%s, run %d: first queue row in the frame at %.0f ms after navigation start (%v seen from the test; %s); all %d listed after %v",
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
			req, _ := http.NewRequest("GET", base+"/ui/"+f.Name(), nil)
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
