package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"mime"
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
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The OpenAPI document is checked three ways: it is a valid OpenAPI 3.1
// document; its operations are exactly the routes the server registers;
// and every request and reply of the tests that serve through serveBundle
// is validated against it (specChecked), so a handler whose answer drifts
// from the document fails the tests that exercise it.

// specCheck validates exchanges against openapi.json: kin-openapi finds
// the operation and checks parameters, statuses and headers; bodies are
// checked here with schemas compiled once and kept (kin-openapi compiles
// a body's schema anew for every validation, which tripled the cost of
// checking the tests' traffic).
type specCheck struct {
	router routers.Router
	doc    map[string]any // the document as plain JSON

	mu       sync.Mutex // guards compiler and schemas
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema // by JSON pointer
}

// loadSpec parses openapi.json once for all tests: building the router
// validates the whole document, which is too slow to repeat per server.
var loadSpec = sync.OnceValues(func() (*specCheck, error) {
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
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(openAPI))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(specURL, raw); err != nil {
		return nil, err
	}
	return &specCheck{router: router, doc: raw.(map[string]any), compiler: c, schemas: map[string]*jsonschema.Schema{}}, nil
})

const specURL = "file:///openapi.json"

func specChecker(t *testing.T) *specCheck {
	t.Helper()
	sc, err := loadSpec()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return sc
}

// node returns the document's value at ptr (a JSON pointer), following
// a $ref in the last step; ok is false when there is none.
func (sc *specCheck) node(ptr string) (v map[string]any, at string, ok bool) {
	var cur any = sc.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		m, isMap := cur.(map[string]any)
		if !isMap {
			return nil, "", false
		}
		cur, ok = m[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
		if !ok {
			return nil, "", false
		}
	}
	v, ok = cur.(map[string]any)
	if ref, isRef := v["$ref"].(string); ok && isRef {
		return sc.node(strings.TrimPrefix(ref, "#"))
	}
	return v, ptr, ok
}

// validate checks the JSON body against the schema at ptr.
func (sc *specCheck) validate(ptr string, body []byte) error {
	sc.mu.Lock()
	sch, ok := sc.schemas[ptr]
	if !ok {
		var err error
		frag := strings.NewReplacer("{", "%7B", "}", "%7D").Replace(ptr)
		if sch, err = sc.compiler.Compile(specURL + "#" + frag); err != nil {
			sc.mu.Unlock()
			return err
		}
		sc.schemas[ptr] = sch
	}
	sc.mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	return sch.Validate(v)
}

func pointerEscape(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

// checkRequestBody checks a request body against its operation's.
func (sc *specCheck) checkRequestBody(route *routers.Route, body []byte) error {
	ptr := "/paths/" + pointerEscape(route.Path) + "/" + strings.ToLower(route.Method) + "/requestBody"
	rb, at, ok := sc.node(ptr)
	if !ok {
		return nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if rb["required"] == true {
			return errors.New("the request body is required")
		}
		return nil
	}
	return sc.validate(at+"/content/application~1json/schema", body)
}

// checkResponseBody checks a reply's content type and JSON body against
// the operation's response for its status (or its default).
func (sc *specCheck) checkResponseBody(route *routers.Route, status int, h http.Header, body []byte) error {
	op := "/paths/" + pointerEscape(route.Path) + "/" + strings.ToLower(route.Method) + "/responses/"
	resp, at, ok := sc.node(op + strconv.Itoa(status))
	if status == http.StatusSwitchingProtocols {
		if !ok {
			return errors.New("a WebSocket upgrade where the document lists none")
		}
		return nil
	}
	if !ok {
		if resp, at, ok = sc.node(op + "default"); !ok {
			return nil // kin-openapi has refused the status
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			return errors.New("a body where the document has none")
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("Content-Type %q: %w", h.Get("Content-Type"), err)
	}
	if _, ok := content[mt]; !ok {
		return fmt.Errorf("Content-Type %q is not one of the document's", mt)
	}
	if mt != "application/json" {
		return nil
	}
	return sc.validate(at+"/content/application~1json/schema", body)
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	specChecker(t)
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
			out = append(out, routeOp(p))
			return true
		})
	}
	slices.Sort(out)
	return out
}

// routeOp is the document's operation of a route pattern: a pattern that
// matches its path exactly ("GET /ui/{$}") is the path itself ("GET /ui/").
func routeOp(pattern string) string { return strings.TrimSuffix(pattern, "{$}") }

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
		if _, pattern := srv.mux.Handler(req); routeOp(pattern) != op {
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
	sc := specChecker(t)
	// The checks run beside the tests, not in the requests' way: their
	// latency would add up in every test that makes requests one after
	// another. Registered before serveBundle's cleanup, this one runs
	// after it: the server has stopped, every check has begun.
	var checks sync.WaitGroup
	t.Cleanup(checks.Wait)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody *capture
		if r.Body != nil && r.Body != http.NoBody {
			reqBody = &capture{limit: maxCheckedBody}
			r.Body = &teeBody{ReadCloser: r.Body, c: reqBody}
		}
		rec := &specRecorder{ResponseWriter: w, body: capture{limit: maxCheckedBody}}
		report := func(req *http.Request) {
			if err := sc.checkExchange(req, reqBody, rec); err != nil {
				t.Errorf("%s %s: reply %d does not match openapi.json: %v\nreply body: %.300s",
					req.Method, req.URL.RequestURI(), rec.statusCode(), err, rec.body.buf.Bytes())
			}
		}
		// A WebSocket handler outlives its connection's tracking by the
		// test server (and may outlive the test): its handshake reply is
		// checked as it is written, before the hijack.
		rec.upgraded = func() { report(r.Clone(context.Background())) }
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusSwitchingProtocols {
			return
		}
		if rec.status == 0 && isClosed(r.Context().Done()) {
			return // the client left before a reply was written (the tests of departures)
		}
		req := r.Clone(context.Background())
		checks.Go(func() { report(req) })
	})
}

// checkExchange checks one exchange; r is a copy of the request, which
// it changes (the method of a HEAD, the Content-Type, the body).
func (sc *specCheck) checkExchange(r *http.Request, reqBody *capture, rec *specRecorder) error {
	status := rec.statusCode()
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return nil // a CORS preflight: answered before routing (cors.go)
	}
	head := r.Method == http.MethodHead
	probe := r
	if head {
		probe.Method = http.MethodGet // net/http serves HEAD on GET routes
	}
	probe.Header.Set("Content-Type", "application/json")
	body := []byte(nil)
	complete := true
	if reqBody != nil {
		body, complete = reqBody.buf.Bytes(), reqBody.eof && !reqBody.over
	}
	probe.Body = io.NopCloser(bytes.NewReader(body))
	route, pathParams, err := sc.router.FindRoute(probe)
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
		ExcludeRequestBody:    true, // checked below
		ExcludeResponseBody:   true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: pathParams, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr == nil && complete {
		reqErr = sc.checkRequestBody(route, body)
	}
	if reqErr != nil && (status < 400 || status >= 500) {
		return errors.New("the document says the request is invalid, yet it was answered " + strconv.Itoa(status) + ": " + reqErr.Error())
	}
	if head {
		return nil
	}
	h := rec.header
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 h,
		Options:                opts,
	}); err != nil {
		return err
	}
	if rec.body.over || h.Get("Content-Encoding") != "" {
		return nil
	}
	return sc.checkResponseBody(route, status, h, rec.body.buf.Bytes())
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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
	status   int
	header   http.Header
	body     capture
	upgraded func() // called on a 101 reply
}

func (r *specRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *specRecorder) WriteHeader(code int) {
	if r.status == 0 || r.status < 200 && code >= 200 {
		r.status = code
		r.header = r.ResponseWriter.Header().Clone()
		if code == http.StatusSwitchingProtocols && r.upgraded != nil {
			r.upgraded()
		}
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
	sc := specChecker(t)
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
		if err := sc.checkExchange(req, reqBody, rec); err == nil {
			t.Errorf("%s %s %s -> %d %s: no mismatch found", c.method, c.path, c.body, c.status, c.reply)
		}
	}
}
