// Package uitest drives the dashboard of package server in a real
// browser: Chromium, headless, through the DevTools protocol (chromedp),
// against the service on the embedded engine and on Redis.
//
// The tests skip when no Chromium is installed, except under CI=true,
// where they fail (.ci/run installs it). SLUICE_CHROMIUM names the
// browser's binary; SLUICE_UI_SCREENSHOTS a directory where each test
// saves PNG screenshots of the pages it visits (default: none are kept).
// SLUICE_UI_MEASURE=1 runs TestMeasureFirstRender, which times the
// overview's first row with 1,000 queues and only logs it;
// SLUICE_UI_DOCS=1 runs TestDocsScreenshot, which rewrites
// docs/dashboard.png.
package uitest
