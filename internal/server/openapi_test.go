package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The OpenAPI document is checked three ways: it is a valid OpenAPI 3.1
// document; its operations are exactly the routes the server registers;
// and every request and reply of the tests that serve through serveBundle
// is validated against it (specChecked), so a handler whose answer drifts
// from the document fails the tests that exercise it.

// loadSpec parses openapi.json once for all tests: building the router
// validates the whole document, which is too slow to repeat per server.
var loadSpec = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		return nil, err
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, errors.New("openapi.json is not OpenAPI 3.1")
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	// The document's server is the default address; the tests' servers
	// listen elsewhere, so the routes are matched on paths alone.
	doc.Servers = nil
	return legacy.NewRouter(doc)
})

func specRouter(t *testing.T) routers.Router {
	t.Helper()
	r, err := loadSpec()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return r
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	specRouter(t)
	// Served as it is embedded, and without an API key.
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.APIKeys = []string{"secret"} })
	code, body := b.do("GET", "/openapi.json", nil)
	if code != http.StatusOK || !bytes.Equal(body, openAPI) {
		t.Fatalf("GET /openapi.json: %d, %d bytes (want %d)", code, len(body), len(openAPI))
	}
	b.expectError(http.StatusUnauthorized, "GET", "/v1/queues", nil)
}

// registeredRoutes returns the patterns the package's non-test files
// register on the mux ("METHOD /path"), read from the source so that a
// route added anywhere in the package is seen.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route registered with a pattern that is not a literal", fset.Position(call.Pos()))
				return true
			}
			p, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
			return true
		})
	}
	slices.Sort(out)
	return out
}

// TestOpenAPICoversRoutes keeps the document and the routes in step: every
// registered route is an operation of the document, and every operation
// a registered route that the server dispatches to.
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, item := range doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(ops)
	routes := registeredRoutes(t)
	if len(routes) < 30 {
		t.Fatalf("found only %d routes in the source: %q", len(routes), routes)
	}
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %q is not in openapi.json", r)
		}
	}
	for _, op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("openapi.json has %q, which the server does not register", op)
		}
	}
	// And the mux routes a request of each operation to its pattern.
	srv, err := New(openClient(t, "embedded"), testConfig(), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		concrete := strings.NewReplacer("{name}", "n", "{id}", "1.1.0000000000000000", "{key}", "k", "{channel}", "c").Replace(path)
		req, err := http.NewRequest(method, concrete, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, pattern := srv.mux.Handler(req); pattern != op {
			t.Errorf("%s %s is routed to %q, want %q", method, concrete, pattern, op)
		}
	}
}

// maxCheckedBody bounds the bodies validated: the large ones of the limit
// and slow-client tests only repeat shapes the small ones check, and
// decoding them would multiply those tests' time.
const maxCheckedBody = 64 << 10

// specChecked wraps h so that each exchange is validated against the
// document once the handler returns:
//
//   - a reply must match the operation's response for its status (the
//     default response, the error shape, for statuses it does not list);
//   - a request the document says is invalid must be answered 4xx: the
//     document may be looser than the handlers, never stricter;
//   - a request to no operation must be answered with an error.
//
// Bodies are read as JSON whatever their Content-Type, as the handlers
// read them. A failure fails the test that sent the request.
func specChecked(t *testing.T, h http.Handler) http.Handler {
	router := specRouter(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody *capture
		if r.Body != nil && r.Body != http.NoBody {
			reqBody = &capture{limit: maxCheckedBody}
			r.Body = &teeBody{ReadCloser: r.Body, c: reqBody}
		}
		rec := &specRecorder{ResponseWriter: w, body: capture{limit: maxCheckedBody}}
		h.ServeHTTP(rec, r)
		if err := checkExchange(router, r, reqBody, rec); err != nil {
			t.Errorf("%s %s: reply %d does not match openapi.json: %v\nreply body: %.300s",
				r.Method, r.URL.RequestURI(), rec.statusCode(), err, rec.body.buf.Bytes())
		}
	})
}

func checkExchange(router routers.Router, r *http.Request, reqBody *capture, rec *specRecorder) error {
	status := rec.statusCode()
	if rec.status == 0 && r.Context().Err() != nil {
		return nil // the client left before a reply was written (the tests of departures)
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return nil // a CORS preflight: answered before routing (cors.go)
	}
	probe := r.Clone(context.Background())
	if probe.Method == http.MethodHead {
		probe.Method = http.MethodGet // net/http serves HEAD on GET routes
	}
	probe.Header.Set("Content-Type", "application/json")
	body := []byte(nil)
	complete := true
	if reqBody != nil {
		body, complete = reqBody.buf.Bytes(), reqBody.eof && !reqBody.over
	}
	probe.Body = io.NopCloser(bytes.NewReader(body))
	route, pathParams, err := router.FindRoute(probe)
	if err != nil {
		if status < 300 {
			return errors.New("the document has no such operation, yet the reply is a success")
		}
		if status >= 400 {
			return checkErrorShape(rec)
		}
		return nil
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		ExcludeRequestBody:    !complete,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: pathParams, Route: route, Options: opts}
	if reqErr := openapi3filter.ValidateRequest(context.Background(), in); reqErr != nil && (status < 400 || status >= 500) {
		return errors.New("the document says the request is invalid, yet it was answered " + strconv.Itoa(status) + ": " + reqErr.Error())
	}
	if r.Method == http.MethodHead {
		return nil
	}
	h := rec.header
	respOpts := *opts
	respOpts.ExcludeResponseBody = rec.body.over || h.Get("Content-Encoding") != "" ||
		strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") || status == http.StatusSwitchingProtocols
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 h,
		Body:                   io.NopCloser(bytes.NewReader(rec.body.buf.Bytes())),
		Options:                &respOpts,
	})
}

// checkErrorShape checks a reply to a request no operation takes: JSON
// {"error": string} and nothing else.
func checkErrorShape(rec *specRecorder) error {
	var e map[string]any
	if err := json.Unmarshal(rec.body.buf.Bytes(), &e); err != nil {
		return errors.New("the error reply is not JSON")
	}
	if msg, ok := e["error"].(string); !ok || msg == "" || len(e) != 1 {
		return errors.New(`the error reply is not {"error": "..."}`)
	}
	return nil
}

// capture keeps up to limit bytes of a body.
type capture struct {
	buf   bytes.Buffer
	limit int
	over  bool // more than limit bytes went by
	eof   bool // the whole body was read
}

func (c *capture) add(b []byte) {
	if c.buf.Len()+len(b) > c.limit {
		c.over = true
		return
	}
	c.buf.Write(b)
}

// teeBody records what the handler reads of the request body.
type teeBody struct {
	io.ReadCloser
	c *capture
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.add(p[:n])
	if errors.Is(err, io.EOF) {
		b.c.eof = true
	}
	return n, err
}

// specRecorder records the status, headers and body of a reply while
// passing it on. Unwrap lets http.ResponseController reach the
// connection (deadlines, flushes, the WebSocket hijack).
type specRecorder struct {
	http.ResponseWriter
	status int
	header http.Header
	body   capture
}

func (r *specRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *specRecorder) WriteHeader(code int) {
	if r.status == 0 || r.status < 200 && code >= 200 {
		r.status = code
		r.header = r.ResponseWriter.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *specRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.body.add(b)
	return r.ResponseWriter.Write(b)
}

func (r *specRecorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// TestSpecCheckCatchesDrift makes sure the validation can fail: a reply
// that breaks the document, and a success for a request it refuses.
func TestSpecCheckCatchesDrift(t *testing.T) {
	t.Parallel()
	router := specRouter(t)
	for _, c := range []struct {
		method, path, body string
		status             int
		reply              string
	}{
		{"GET", "/health/live", "", 200, `{"status":"dead"}`},
		{"POST", "/v1/queues/q/nack/1.1", "", 200, `{"id":"1.1","outcome":"lost"}`},
		{"POST", "/v1/queues/q/ack", `{"ids":[]}`, 200, `{"acked":0,"results":[]}`},
		{"POST", "/v1/queues/q/receive?count=0", "", 204, ``},
		{"GET", "/v1/queues/q", "", 404, `not json`},
		{"GET", "/nowhere", "", 200, `{}`},
		{"GET", "/nowhere", "", 404, `{"error":"x","more":1}`},
	} {
		req, err := http.NewRequest(c.method, c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var reqBody *capture
		if c.body != "" {
			reqBody = &capture{limit: 1 << 20, eof: true}
			reqBody.buf.WriteString(c.body)
		}
		rec := &specRecorder{status: c.status, header: http.Header{"Content-Type": {"application/json"}}, body: capture{limit: 1 << 20}}
		rec.body.buf.WriteString(c.reply)
		if err := checkExchange(router, req, reqBody, rec); err == nil {
			t.Errorf("%s %s %s -> %d %s: no mismatch found", c.method, c.path, c.body, c.status, c.reply)
		}
	}
}
