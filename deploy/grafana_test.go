package deploy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// dashboard is the part of Grafana's dashboard model the test checks.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestGrafanaDashboard checks deploy/grafana/sluice.json: valid JSON of a
// current schema, every query on the ${DS_PROMETHEUS} data source
// variable, panels laid out without overlap, and every metric the queries
// use exposed by the service.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("grafana/sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana/sluice.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current one (36 or later)", d.SchemaVersion)
	}
	hasDS := false
	var exprs []string
	for _, v := range d.Templating.List {
		if v.Name == "DS_PROMETHEUS" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
		if v.Type == "query" {
			checkDS(t, "variable "+v.Name, v.Datasource)
			exprs = append(exprs, string(v.Query))
		}
	}
	if !hasDS {
		t.Error(`no templating variable DS_PROMETHEUS of type datasource (query "prometheus")`)
	}

	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panel %q: id %d already taken by %q", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			}
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
			}
			for x := g.X; x < g.X+g.W; x++ {
				for y := g.Y; y < g.Y+g.H; y++ {
					if prev, ok := taken[cell{x, y}]; ok {
						t.Errorf("panel %q overlaps %q at column %d, row %d", p.Title, prev, x, y)
						return
					}
					taken[cell{x, y}] = p.Title
				}
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			checkDS(t, "panel "+p.Title, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				checkDS(t, "panel "+p.Title+" query "+q.RefID, q.Datasource)
				if q.Expr == "" {
					t.Errorf("panel %q query %s: no expr", p.Title, q.RefID)
				}
				exprs = append(exprs, q.Expr)
			}
		}
	}
	walk(d.Panels)
	checkExposed(t, "grafana/sluice.json", referenced(strings.Join(exprs, "\n")))
}

func checkDS(t *testing.T, what string, ds *datasource) {
	t.Helper()
	if ds == nil || ds.Type != "prometheus" || ds.UID != "${DS_PROMETHEUS}" {
		t.Errorf("%s: datasource %+v, want the ${DS_PROMETHEUS} variable", what, ds)
	}
}
