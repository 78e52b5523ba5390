package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one row of a report.
type Result struct {
	Case       string `json:"case"`
	Goroutines int    `json:"goroutines"`
	// Ops counts calls; Items counts the items they moved (a batch add of
	// 100 is one op and 100 items).
	Ops         int64   `json:"ops"`
	Items       int64   `json:"items"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	ItemsPerSec float64 `json:"items_per_sec"`
	P50Micros   float64 `json:"p50_us"`
	P99Micros   float64 `json:"p99_us"`
	// Baseline names the raw-command case this one is compared with, and
	// Ratio is this case's rate over the baseline's (items per second, or calls
	// per second when no items move); 0 when there is no baseline.
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	// Limit names the raw-command case that bounds what this one could do
	// (one RPUSH of what concurrent callers had, LPOP of 100), when it is
	// not the baseline; LimitRatio is the rate over it.
	Limit      string  `json:"limit,omitempty"`
	LimitRatio float64 `json:"limit_ratio,omitempty"`
	Note       string  `json:"note,omitempty"`
}

// Machine describes where a report was measured.
type Machine struct {
	CPU          string `json:"cpu"`
	CPUs         int    `json:"cpus"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	OS           string `json:"os"`
	Go           string `json:"go"`
	RedisVersion string `json:"redis_version,omitempty"`
}

// Report is the outcome of one benchmark run.
type Report struct {
	Suite    string    `json:"suite"`
	Engine   string    `json:"engine"`
	Started  time.Time `json:"started"`
	Duration string    `json:"case_duration"`
	ItemSize int       `json:"item_size"`
	Machine  Machine   `json:"machine"`
	// KeyPrefix is the prefix of every Redis key the run wrote; the run
	// deleted them all before returning.
	KeyPrefix string   `json:"key_prefix,omitempty"`
	Results   []Result `json:"results"`
}

func newReport(suite string, o Options) *Report {
	return &Report{
		Suite: suite, Engine: o.Engine, Started: time.Now().UTC(),
		Duration: o.Duration.String(), ItemSize: o.ItemSize,
		Machine: Machine{
			CPU: cpuModel(), CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
			OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(),
		},
	}
}

// add appends the row of a measured case.
func (r *Report) add(name string, goroutines int, t tally, note string) *Result {
	secs := t.elapsed.Seconds()
	res := Result{
		Case: name, Goroutines: goroutines, Ops: t.ops, Items: t.items, Seconds: secs,
		P50Micros: micros(t.percentile(0.50)), P99Micros: micros(t.percentile(0.99)), Note: note,
	}
	if secs > 0 {
		res.OpsPerSec = float64(t.ops) / secs
		res.ItemsPerSec = float64(t.items) / secs
	}
	r.Results = append(r.Results, res)
	return &r.Results[len(r.Results)-1]
}

// compare sets the ratio of the row named name at goroutines to the
// baseline row at baseGoroutines.
func (r *Report) compare(name string, goroutines int, baseline string, baseGoroutines int) {
	r.ratio(name, goroutines, baseline, baseGoroutines, func(res *Result, label string, ratio float64) {
		res.Baseline, res.Ratio = label, ratio
	})
}

// compareLimit sets the row's ratio to its limit row.
func (r *Report) compareLimit(name string, goroutines int, limit string, limitGoroutines int) {
	r.ratio(name, goroutines, limit, limitGoroutines, func(res *Result, label string, ratio float64) {
		res.Limit, res.LimitRatio = label, ratio
	})
}

func (r *Report) ratio(name string, goroutines int, baseline string, baseGoroutines int, set func(res *Result, label string, ratio float64)) {
	var base *Result
	for i := range r.Results {
		if r.Results[i].Case == baseline && r.Results[i].Goroutines == baseGoroutines {
			base = &r.Results[i]
		}
	}
	if base == nil || base.rate() == 0 {
		return
	}
	for i := range r.Results {
		if res := &r.Results[i]; res.Case == name && res.Goroutines == goroutines {
			set(res, fmt.Sprintf("%s (%d)", baseline, baseGoroutines), res.rate()/base.rate())
		}
	}
}

// rate is what ratios compare: items per second, or calls per second for
// a case whose calls move no items (adds to a full queue under reject).
func (res *Result) rate() float64 {
	if res.Items == 0 {
		return res.OpsPerSec
	}
	return res.ItemsPerSec
}

// times prints a ratio, or nothing when there is none.
func times(r float64) string {
	if r <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx", r)
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// WriteTable prints the report as an aligned table.
func (r *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "sluice bench %s, engine %s, %s per case, %d-byte items\n", r.Suite, r.Engine, r.Duration, r.ItemSize)
	m := r.Machine
	fmt.Fprintf(bw, "machine: %s, %d CPUs (GOMAXPROCS %d), %s, %s", m.CPU, m.CPUs, m.GOMAXPROCS, m.OS, m.Go)
	if m.RedisVersion != "" {
		fmt.Fprintf(bw, ", Redis %s", m.RedisVersion)
	}
	fmt.Fprint(bw, "\n\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tgoroutines\tops/s\titems/s\tp50\tp99\tratio\tbaseline\tvs limit\tlimit\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", res.Case, res.Goroutines,
			count(res.OpsPerSec), count(res.ItemsPerSec), latency(res.P50Micros), latency(res.P99Micros),
			times(res.Ratio), res.Baseline, times(res.LimitRatio), res.Limit)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, res := range r.Results {
		if res.Note != "" && !seen[res.Case] {
			seen[res.Case] = true
			fmt.Fprintf(bw, "\n%s: %s", res.Case, res.Note)
		}
	}
	fmt.Fprintln(bw)
	return bw.Flush()
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// count formats a rate with thousands separators.
func count(v float64) string {
	n := int64(v + 0.5)
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func latency(us float64) string {
	switch {
	case us == 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.1fµs", us)
	}
	return fmt.Sprintf("%.2fms", us/1000)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
