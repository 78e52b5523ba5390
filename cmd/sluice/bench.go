package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/bench"
)

// benchSuites are the suites `sluice bench` runs, by name.
var benchSuites = map[string]func(context.Context, bench.Options) (*bench.Report, error){
	"queue":  bench.Queue,
	"cache":  bench.Cache,
	"lock":   bench.Lock,
	"pubsub": bench.PubSub,
	"worker": bench.Worker,
}

func (e *env) bench(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usageText)
		return usagef("bench: missing suite (queue, cache, lock, pubsub, http or worker)")
	}
	if isHelp(args[0]) {
		fmt.Fprint(e.stdout, groupUsage("bench", "suite"))
		return nil
	}
	suite, ok := benchSuites[args[0]]
	if !ok && args[0] != "http" {
		return usagef("bench: unknown suite %q (want queue, cache, lock, pubsub, http or worker)", args[0])
	}
	fs := newFlagSet("bench "+args[0], "bench "+args[0]+" [--redis URL] [--engine redis|memory|file] [--duration 5s] [--item-size 200] [--goroutines 1,50] [--data-dir DIR] [--json]", e.stderr)
	redisURL := fs.String("redis", "", "Redis to measure, on a loopback address (env REDIS_URL; default "+bench.DefaultRedisURL+")")
	engine := fs.String("engine", "redis", "engine to measure: redis, memory, or file (runs fsync everysec and always)")
	duration := durationFlag(fs, "duration", 5*time.Second, "bound of each case")
	itemSize := fs.Int("item-size", 200, "size of the JSON item in bytes")
	goroutines := fs.String("goroutines", "1,50", "comma-separated goroutine counts of the throughput cases (worker: concurrencies, default 1,8)")
	dataDir := fs.String("data-dir", "", "where the file engine writes (default a temporary directory); the run's files are removed")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var h bench.HTTPOptions
	if args[0] == "http" {
		fs.StringVar(&h.URL, "url", "", "a running service to measure (default: start one in process on --engine)")
		fs.StringVar(&h.APIKey, "api-key", "", "API key to send (env SLUICE_API_KEY)")
		fs.IntVar(&h.Clients, "clients", 64, "concurrent keep-alive HTTP clients")
		fs.IntVar(&h.FanoutClients, "fanout-clients", 1000, "WebSocket clients of the fan-out test (-1 skips it)")
		fs.IntVar(&h.FanoutRate, "fanout-rate", 1000, "messages per second of the fan-out test")
	}
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	switch *engine {
	case "redis", "memory", "file":
	default:
		return usagef("--engine %q: want redis, memory or file", *engine)
	}
	if *duration <= 0 || *duration > 10*time.Minute {
		return usagef("--duration %v: want more than 0 and at most 10m", *duration)
	}
	if *itemSize < 32 || *itemSize > 1<<20 {
		return usagef("--item-size %d: want 32 bytes to 1 MiB", *itemSize)
	}
	var counts []int
	if args[0] == "worker" && !isSet(fs, "goroutines") {
		*goroutines = ""
		counts = bench.WorkerConcurrency()
	}
	for _, f := range strings.Split(*goroutines, ",") {
		if *goroutines == "" {
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 10000 {
			return usagef("--goroutines %q: want a comma-separated list of counts from 1 to 10000", *goroutines)
		}
		counts = append(counts, n)
	}
	url := *redisURL
	if !isSet(fs, "redis") {
		url = e.getenv("REDIS_URL")
	}
	opts := bench.Options{
		RedisURL: url, Password: e.getenv("REDIS_PASSWORD"), Engine: *engine, DataDir: *dataDir,
		Duration: *duration, ItemSize: *itemSize, Goroutines: counts,
		Progress: func(format string, args ...any) {
			fmt.Fprintf(e.stderr, "running "+format+"\n", args...)
		},
	}
	if args[0] == "http" {
		if h.APIKey == "" {
			h.APIKey = e.getenv("SLUICE_API_KEY")
		}
		if h.Clients < 1 || h.FanoutRate < 1 || h.FanoutClients == 0 {
			return usagef("bench http: --clients and --fanout-rate must be >= 1, --fanout-clients >= 1 or -1")
		}
		rep, err := bench.HTTP(ctx, opts, h)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, rep)
		}
		_, err = fmt.Fprint(e.stdout, rep.String())
		return err
	}
	rep, err := suite(ctx, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		return rep.WriteJSON(e.stdout)
	}
	return rep.WriteTable(e.stdout)
}
