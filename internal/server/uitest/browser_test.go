package uitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
	"github.com/sluicehq/sluice/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// chromium returns the browser's binary, or skips t (fails it under
// CI=true) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is required under CI=true (apt-get install chromium, or set SLUICE_CHROMIUM)")
	}
	t.Skip("Chromium not installed (apt-get install chromium, or set SLUICE_CHROMIUM)")
	return ""
}

// browser starts a headless Chromium with a fresh profile for t and
// returns a context for its first tab. Everything stops at cleanup.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// page is a browser tab on a server under test.
type pageT struct {
	t      *testing.T
	ctx    context.Context
	base   string
	client *sluice.Client
	srv    *server.Server
	// dialogs counts JavaScript dialogs (alert, confirm, prompt) opened:
	// an item that ran script would open one.
	dialogs atomic.Int64
	// errors are exceptions thrown in the page.
	errs    atomic.Int64
	lastErr atomic.Value
}

// engines runs f on a server on the embedded engine and on Redis.
func engines(t *testing.T, mutate func(*server.Config), f func(t *testing.T, p *pageT)) {
	t.Helper()
	for _, eng := range []string{"embedded", "redis"} {
		t.Run(eng, func(t *testing.T) {
			f(t, open(t, eng, mutate))
		})
	}
}

// prefixes holds the path prefix a test serves the service under
// (withPrefix), by test name.
var prefixes sync.Map

// withPrefix makes open serve the service under prefix ("/sluice"), as a
// proxy would.
func withPrefix(t *testing.T, prefix string) { prefixes.Store(t.Name(), prefix) }

func cfgPrefix(t *testing.T) string {
	v, _ := prefixes.Load(t.Name())
	s, _ := v.(string)
	return s
}

// open starts a server on the engine and a browser tab for it.
func open(t *testing.T, eng string, mutate func(*server.Config)) *pageT {
	t.Helper()
	c := openClient(t, eng)
	cfg := server.DefaultConfig()
	cfg.PollInterval = 50 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := server.New(c, cfg, quietLogger())
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	h := srv.Handler()
	if prefix := cfgPrefix(t); prefix != "" {
		// A proxy serving the service under a path prefix.
		h = http.StripPrefix(prefix, h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	p := &pageT{t: t, base: ts.URL + cfgPrefix(t), client: c, srv: srv}
	p.ctx = browser(t, 1280, 900)
	err = chromedp.Listen(p.ctx, func(ev any) {
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			p.dialogs.Add(1)
			// The listener may not send commands: dismiss it from
			// elsewhere, or the page would stay blocked.
			go func() {
				_, _ = chromedp.Call(p.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
			}()
		case *runtime.EventExceptionThrown:
			p.errs.Add(1)
			p.lastErr.Store((&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
		}
	})
	if err != nil {
		t.Fatalf("listening to the page: %v", err)
	}
	return p
}

func openClient(t *testing.T, eng string) *sluice.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		c   *sluice.Client
		err error
	)
	switch eng {
	case "embedded":
		c, err = sluice.Open(ctx, "", &sluice.Config{Logger: quietLogger()})
	case "redis":
		rc := redistest.Client(t)
		prefix := redistest.Prefix(t)
		redistest.Cleanup(t, rc, prefix)
		c, err = sluice.Open(ctx, redistest.URL(), &sluice.Config{KeyPrefix: prefix, Logger: quietLogger()})
	}
	if err != nil {
		t.Fatalf("open %s engine: %v", eng, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return c
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run runs browser actions, failing the test on error.
func (p *pageT) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// visit loads a dashboard address (a path and hash under the server).
func (p *pageT) visit(path string) {
	p.t.Helper()
	p.run("navigate to "+path, chromedp.Navigate(p.base+path))
	// Keep every report the page shows (waitToast).
	const watch = `(() => { if (!window.__toasts) { window.__toasts = []; const el = document.querySelector('#toast');
		new MutationObserver(() => window.__toasts.push(el.textContent)).observe(el, {childList: true, characterData: true, subtree: true}); } return true; })()`
	if _, err := eval[bool](p, watch); err != nil {
		p.t.Fatalf("watching reports: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *pageT, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// waitJS polls a JavaScript boolean expression until it is true; the
// deadline only bounds a failure.
func (p *pageT) waitJS(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for {
		ok, err := eval[bool](p, "Boolean("+expr+")")
		if lastErr = err; err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := eval[string](p, `(window.__toasts || []).join('\n') + '\n---\n' + (document.querySelector('main') ? document.querySelector('main').innerText.slice(0, 2000) : '')`)
			p.screenshot("failure")
			p.t.Fatalf("timed out waiting for %s (%s): last error %v; last exception in the page: %v; page text:\n%s", what, expr, lastErr, p.lastErr.Load(), body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitToast waits for the page to report something holding want. Every
// report since the page loaded counts: a later one may have replaced it.
func (p *pageT) waitToast(want string) {
	p.t.Helper()
	p.waitJS("the report "+jsString(want), fmt.Sprintf(`window.__toasts.some((t) => t.includes(%s)) || document.querySelector('#toast').textContent.includes(%[1]s)`, jsString(want)))
}

// text returns the text of the first element matching a CSS selector.
func (p *pageT) text(sel string) string {
	p.t.Helper()
	s, err := eval[string](p, fmt.Sprintf(`(document.querySelector(%s) || {}).textContent || ''`, jsString(sel)))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// click clicks the element matching a CSS selector.
func (p *pageT) click(sel string) {
	p.t.Helper()
	p.run("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// setValue sets a form field's value as typing would (an input event).
func (p *pageT) setValue(sel, v string) {
	p.t.Helper()
	expr := fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.value = %s; el.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, jsString(sel), jsString(v))
	if _, err := eval[bool](p, expr); err != nil {
		p.t.Fatalf("set %s: %v", sel, err)
	}
}

// screenshot saves the page as PNG in SLUICE_UI_SCREENSHOTS, when set.
func (p *pageT) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("SLUICE_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	file := filepath.Join(dir, strings.ReplaceAll(p.t.Name(), "/", "_")+"_"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// noScriptRan checks that no dialog opened and no exception was thrown.
func (p *pageT) noScriptRan() {
	p.t.Helper()
	if n := p.dialogs.Load(); n != 0 {
		p.t.Errorf("%d JavaScript dialogs opened: an item ran script", n)
	}
	if n := p.errs.Load(); n != 0 {
		p.t.Errorf("%d exceptions in the page; last: %v", n, p.lastErr.Load())
	}
}

// http sends a request to the server under test and decodes its JSON
// reply, failing the test on a status of 300 or more.
func (p *pageT) http(method, path, body string) map[string]any {
	p.t.Helper()
	req, err := http.NewRequestWithContext(ctx10(p.t), method, p.base+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		p.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return m
}

// maintain runs a maintainer beside the server until the test ends, as
// sluice serve does: it samples each queue's oldest item.
func (p *pageT) maintain() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.client.RunMaintainer(ctx, &sluice.MaintainerOptions{Interval: 100 * time.Millisecond})
	}()
	p.t.Cleanup(func() { cancel(); <-done })
}

// add adds items to a queue through the library.
func (p *pageT) add(name string, items ...any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.client.Queue(name).AddBatch(ctx, items, nil); err != nil {
		p.t.Fatalf("add to %s: %v", name, err)
	}
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
