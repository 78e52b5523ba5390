package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/sluicehq/sluice"
)

const usageText = `usage: sluice <command> [arguments]

commands:
  serve                                   run the HTTP service
  queue add QUEUE JSON [--policy P] [--max-size N] [--string]
  queue get QUEUE [--timeout 5s]          exit 4 when nothing arrived in time
  queue len QUEUE
  queue pressure QUEUE [--max-size N] [--policy P] [--threshold R]
  queue peek QUEUE [--start 0] [--end 100]
  queue clear QUEUE
  dlq stats QUEUE
  dlq list QUEUE [--kind overflow|failed] [--start 0] [--limit 100]
  dlq requeue QUEUE [--kind overflow|failed] [--count N]
  dlq purge QUEUE --kind overflow|failed
  bench queue|cache|lock|pubsub|http [flags]
  version

Every command takes --redis URL (env REDIS_URL; REDIS_PASSWORD is used when
the URL has none), --data-dir DIR (env SLUICE_DATA_DIR) and --key-prefix P.
Without either the embedded in-memory engine is used.
Run 'sluice <command> -h' for a command's flags.

exit status: 0 ok, 1 runtime error, 2 bad arguments or configuration,
3 add rejected (queue full), 4 get found the queue empty.
`

// run is the whole program: main only adds the process around it, so tests
// call run in-process with their own streams and environment.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	err := e.dispatch(ctx, args)
	code := exitCode(err)
	var ee *exitError
	if err != nil && !errors.Is(err, flag.ErrHelp) && !(errors.As(err, &ee) && ee.err == nil) {
		msg := err.Error()
		if !strings.HasPrefix(msg, "sluice: ") {
			msg = "sluice: " + msg
		}
		fmt.Fprintln(stderr, msg)
	}
	return code
}

func (e *env) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usageText)
		return silent(exitUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return e.serve(ctx, rest)
	case "queue":
		return e.queue(ctx, rest)
	case "dlq":
		return e.dlq(ctx, rest)
	case "bench":
		return e.bench(ctx, rest)
	case "version", "--version", "-version":
		fmt.Fprintf(e.stdout, "sluice %s (%s, %s/%s)\n", sluice.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprint(e.stdout, usageText)
		return nil
	}
	fmt.Fprint(e.stderr, usageText)
	return usagef("unknown command %q", cmd)
}

// subcommand picks the verb of a two-word command such as `queue add`.
func (e *env) subcommand(ctx context.Context, group string, args []string, verbs map[string]func(context.Context, []string) error) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usageText)
		return usagef("%s: missing subcommand", group)
	}
	f, ok := verbs[args[0]]
	if !ok {
		fmt.Fprint(e.stderr, usageText)
		return usagef("%s: unknown subcommand %q", group, args[0])
	}
	return f(ctx, args[1:])
}
