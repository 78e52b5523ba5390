package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// uiFiles is the dashboard: plain ES modules, one stylesheet and one page,
// served as they are (no build step). Everything it shows comes from the
// /v1 API, called by the browser with the user's API key.
//
//go:embed ui
var uiFiles embed.FS

// uiSecurityHeaders are set on every dashboard response. The policy allows
// only the service's own scripts, styles and connections (WebSockets to the
// same origin included): no inline script or style, so that an item or a
// name holding markup can never run, even if a view forgot to escape it;
// no framing (clickjacking); no referrer leaking queue names elsewhere.
var uiSecurityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// uiAsset is one embedded file, with its gzip form computed once at start.
type uiAsset struct {
	name  string
	ctype string
	etag  string
	plain []byte
	gz    []byte // nil when compressing does not make it smaller
}

// uiAssets holds the dashboard's files by path under /ui/.
type uiAssets map[string]*uiAsset

// loadUI reads the embedded files and compresses them: a few tens of
// kilobytes, done once so that no request pays for it.
func loadUI() (uiAssets, error) {
	assets := uiAssets{}
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a := &uiAsset{name: p, plain: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
			ctype: mime.TypeByExtension(path.Ext(p))}
		if a.ctype == "" {
			a.ctype = "application/octet-stream"
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		if err := zw.Close(); err != nil {
			return err
		}
		if buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
		assets[strings.TrimPrefix(p, "ui/")] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("server: dashboard files: %w", err)
	}
	return assets, nil
}

// handleUIRoot is GET /: the dashboard's address.
func (s *Server) handleUIRoot(w http.ResponseWriter, r *http.Request) {
	setUIHeaders(w)
	// Relative, so that behind a proxy serving the service under a path
	// prefix the browser stays under it.
	w.Header().Set("Location", "ui/")
	w.WriteHeader(http.StatusFound)
}

// handleUI is GET /ui/ and /ui/{file}: the page for /ui/ (and for a name
// without an extension), the files by name.
func (s *Server) handleUI(w http.ResponseWriter, r *http.Request) {
	setUIHeaders(w)
	name := r.PathValue("file")
	if name == "" || path.Ext(name) == "" {
		name = "index.html"
	}
	a, ok := s.ui[name]
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	// Revalidated on every load (a 304 when unchanged), so that an upgraded
	// service never runs a cached older script against its newer API.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Add("Vary", "Accept-Encoding")
	body := a.plain
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func setUIHeaders(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range uiSecurityHeaders {
		h.Set(k, v)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for v := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		coding, q, _ := strings.Cut(strings.TrimSpace(v), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0"
		}
	}
	return false
}

// isUIPath reports whether a route pattern's path is the dashboard's:
// its files are public (they hold no data; the API calls they make carry
// the key).
func isUIPath(p string) bool { return p == "/{$}" || strings.HasPrefix(p, "/ui/") }
