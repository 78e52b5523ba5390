package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServesOnly pins what the service's own code may use: it serves, and
// the load generator that measures it lives in internal/bench. A Redis
// client of its own (rueidis) or a WebSocket client (websocket.Dial) in a
// non-test file of this package means load-generation or engine code has
// crept back in. (The engine reaches Redis through the public package;
// tests may dial the server they test.)
func TestServesOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		wsName := "" // the name the websocket package is imported under
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case strings.HasPrefix(path, "github.com/redis/rueidis"):
				t.Errorf("%s imports %s: the service reaches Redis only through the public package", name, path)
			case path == "github.com/sluicehq/sluice/internal/bench":
				t.Errorf("%s imports %s: the load generator measures the service from outside", name, path)
			case path == "github.com/coder/websocket":
				wsName = "websocket"
				if imp.Name != nil {
					wsName = imp.Name.Name
				}
			}
		}
		if wsName == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == wsName && sel.Sel.Name == "Dial" {
				t.Errorf("%s: %s.Dial: the service accepts WebSockets, it does not dial them (load generation is internal/bench's)",
					fset.Position(sel.Pos()), wsName)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source files found: the test must run in the package directory")
	}
}
