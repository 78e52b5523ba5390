package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

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
  queue declare QUEUE [--max-size N] [--policy P] [--threshold R] [--lease D] [--max-deliveries N]
  queue info QUEUE [--json]               settings, with where each comes from
  queue list [--limit 50] [--cursor NAME] [--json]
  queue pause QUEUE                       consumers get nothing until resume
  queue resume QUEUE
  queue delete QUEUE [--force]            refused while items are in flight
  queue stats QUEUE                       the engine's counters and lengths
  queue inflight QUEUE [--limit 100] [--cursor C] [--json]
  dlq stats QUEUE
  dlq list QUEUE [--kind overflow|failed] [--start 0] [--limit 100]
  dlq requeue QUEUE [--kind overflow|failed] [--count N]   under the declared bound
  dlq purge QUEUE --kind overflow|failed
  worker QUEUE --exec 'PROGRAM ARGS' | --webhook URL [--concurrency N] [--batch N]
                                          run a program (or call a webhook) per item
  bench queue|cache|lock|pubsub|http|worker [flags]
  completion bash|zsh|fish                a shell completion script
  health [--url URL]                      exit 0 when serve answers /health/live
  version                                 (also --version, -v)

Every command takes --redis URL (env REDIS_URL; REDIS_PASSWORD is used when
the URL has none), --data-dir DIR (env SLUICE_DATA_DIR) and --key-prefix P.
Without either the embedded in-memory engine is used.
The commands that read (queue len|peek|pressure|info|list|stats|inflight,
dlq ...) take --url http://host:port (env SLUICE_URL) and --api-key K (env
SLUICE_API_KEY) to ask a running service instead of opening the engine.
Settings come from a flag, else the environment, else the file .env in the
working directory (--env-file PATH names another), else the default.
Tables on a terminal; --json for JSON (stats commands print JSON to a pipe).
Run 'sluice <command> -h' for a command's flags.

exit status: 0 ok, 1 runtime error, 2 bad arguments or configuration,
3 add rejected (queue full), 4 get found the queue empty.
`

// run is the whole program: main only adds the process around it, so tests
// call run in-process with their own streams and environment.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, tty: isTerminal(stdout)}
	return e.run(ctx, args)
}

// run runs one command line in e and reports its error on stderr.
func (e *env) run(ctx context.Context, args []string) int {
	stderr := e.stderr
	args, err := e.readEnvFile(args)
	if err == nil {
		err = e.dispatch(ctx, args)
	}
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

// readEnvFile takes --env-file out of args and lets the env file (by
// default .env in the working directory) fill in the environment.
func (e *env) readEnvFile(args []string) ([]string, error) {
	rest, path, explicit, err := envFileArg(args)
	if err != nil {
		return nil, err
	}
	if !explicit && len(rest) > 0 {
		switch rest[0] {
		case "version", "--version", "-version", "-v", "help", "-h", "--help", "-help", "completion":
			return rest, nil // need no settings: a broken .env does not stop them
		}
	}
	vars, err := loadEnvFile(path, explicit)
	if err != nil {
		return nil, err
	}
	e.getenv = withEnvFile(e.getenv, vars)
	return rest, nil
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
	case "worker":
		return e.worker(ctx, rest)
	case "completion":
		return e.completion(ctx, rest)
	case "health":
		return e.health(ctx, rest)
	case "version", "--version", "-version", "-v":
		fmt.Fprint(e.stdout, versionLine())
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
	if isHelp(args[0]) {
		fmt.Fprint(e.stdout, groupUsage(group, "verb"))
		return nil
	}
	f, ok := verbs[args[0]]
	if !ok {
		fmt.Fprint(e.stderr, usageText)
		return usagef("%s: unknown subcommand %q", group, args[0])
	}
	return f(ctx, args[1:])
}

// isHelp reports whether arg asks for help in place of a subcommand.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "--help", "-help", "help":
		return true
	}
	return false
}

// groupUsage is the help of a command group (queue, dlq, bench): its lines
// of usageText and the flags every command of the group takes.
func groupUsage(group, what string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: sluice %s <%s> [arguments]\n\n%ss:\n", group, what, what)
	for _, line := range strings.Split(usageText, "\n") {
		if strings.HasPrefix(line, "  "+group+" ") {
			b.WriteString(line + "\n")
		}
	}
	if group != "bench" {
		b.WriteString("\nEvery command takes --redis URL (env REDIS_URL; REDIS_PASSWORD is used when\n" +
			"the URL has none), --data-dir DIR (env SLUICE_DATA_DIR) and --key-prefix P.\n" +
			"Without either the embedded in-memory engine is used.\n")
	} else {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Run 'sluice %s <%s> -h' for its flags.\n", group, what)
	return b.String()
}

// Exit codes. Scripts rely on them, so they never change meaning.
const (
	exitOK       = 0
	exitFailure  = 1 // a runtime error: connection, engine, I/O
	exitUsage    = 2 // bad arguments or configuration
	exitRejected = 3 // queue add: the queue was full under the reject policy
	exitEmpty    = 4 // queue get: nothing arrived before the timeout
)

// exitError carries an exit code other than exitFailure up to run. A nil
// err means the command already said everything it had to say.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usagef reports bad arguments (exit 2).
func usagef(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// silent exits with code without printing anything more.
func silent(code int) error { return &exitError{code: code} }

// exitCode maps a command's error to the process exit code. Argument errors
// the library detects (a bad queue name, a negative timeout, a bound looser
// than the queue's declared one) are usage errors too: retrying will not help, fixing the command line will.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, sluice.ErrInvalidName), errors.Is(err, sluice.ErrInvalidArgument),
		errors.Is(err, sluice.ErrSettingsConflict):
		return exitUsage
	}
	return exitFailure
}

// newFlagSet returns a FlagSet that reports errors instead of exiting, with
// a usage text of its own.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sluice %s\n\nflags:\n", synopsis)
		printFlags(stderr, fs)
	}
	return fs
}

// printFlags is flag.PrintDefaults with the spelling the documentation
// uses: --name, then the type of its value (none for a boolean switch).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if _, ok := f.Value.(durationValue); ok {
			typ = "duration"
		}
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		switch {
		case f.DefValue == "" || f.DefValue == "0" || f.DefValue == "false" || f.DefValue == "0s":
		case typ == "string":
			line += fmt.Sprintf(" (default %q)", f.DefValue)
		default:
			line += fmt.Sprintf(" (default %v)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
}

// parseArgs parses fs's flags wherever they appear among args, so that
// `queue add q '{}' --policy reject` works as well as the flags-first
// order the flag package expects. Everything after "--" is positional,
// which is how a JSON argument that starts with '-' (a negative number)
// is passed.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			// The flag package has printed the problem and the usage.
			return nil, silent(exitUsage)
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, got []string, names ...string) error {
	if len(got) == len(names) {
		return nil
	}
	fs.Usage()
	if len(got) < len(names) {
		return usagef("%s: missing %s", fs.Name(), strings.Join(names[len(got):], " "))
	}
	return usagef("%s: unexpected argument %q", fs.Name(), got[len(names)])
}

// durationValue is a flag.Value for durations that also accepts a bare
// number of seconds ("5"), as the original service's timeouts were given.
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want 5s, 250ms or a number of seconds)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

func durationFlag(fs *flag.FlagSet, name string, def time.Duration, usage string) *time.Duration {
	d := def
	fs.Var(durationValue{&d}, name, usage)
	return &d
}

// commandFlags starts the flag set of a command that reaches an engine:
// its own flags come after, the engine flags (--redis, --data-dir,
// --key-prefix) are already there.
func (e *env) commandFlags(name, synopsis string) (*flag.FlagSet, *connFlags) {
	fs := newFlagSet(name, synopsis, e.stderr)
	return fs, addConnFlags(fs)
}

// parseArgsFor parses args and checks that exactly the named positional
// arguments were given.
func parseArgsFor(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(fs, pos, names...); err != nil {
		return nil, err
	}
	return pos, nil
}
