package server

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPI is the OpenAPI 3.1 description of every route; a test checks
// it against the routes registered and validates the tests' traffic
// against it, so it cannot drift from the handlers.
//
//go:embed openapi.json
var openAPI []byte

// handleOpenAPI is GET /openapi.json. It needs no API key: the document
// describes the routes and holds nothing of this deployment.
func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPI)))
	_, _ = w.Write(openAPI)
}
