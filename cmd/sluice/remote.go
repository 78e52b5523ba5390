package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/sluicehq/sluice/internal/remote"
)

// remoteFlags are the flags of the inspection commands that point them at a
// running service instead of an engine: --url, --api-key. An embedded
// engine is held open by the service that runs it, so its HTTP API is the
// only way to look inside it while it runs.
type remoteFlags struct {
	fs     *flag.FlagSet
	url    string
	apiKey string
}

func addRemoteFlags(fs *flag.FlagSet) *remoteFlags {
	r := &remoteFlags{fs: fs}
	fs.StringVar(&r.url, "url", "", "a running service to ask, http(s)://host:port, instead of opening the engine (env SLUICE_URL)")
	fs.StringVar(&r.apiKey, "api-key", "", "API key for --url (env SLUICE_API_KEY)")
	return r
}

// inspectFlags starts the flag set of a command that reads a queue either
// from the engine or from a running service (--url).
func (e *env) inspectFlags(name, synopsis string) (*flag.FlagSet, *connFlags, *remoteFlags) {
	fs, conn := e.commandFlags(name, synopsis)
	return fs, conn, addRemoteFlags(fs)
}

// service returns the client of the service the command was pointed at,
// or nil when it should open the engine. Flags beat the environment, as
// for the engines: --url with --redis or --data-dir is a contradiction,
// and so is SLUICE_URL with REDIS_URL or SLUICE_DATA_DIR when no flag
// decides.
func (e *env) service(conn *connFlags, r *remoteFlags) (*remote.Client, error) {
	c, _, err := e.serviceWith(conn, r, nil)
	return c, err
}

// serviceWith is service with the HTTP client to use (nil: a default
// one); it also returns the service's URL as it may be shown.
func (e *env) serviceWith(conn *connFlags, r *remoteFlags, hc *http.Client) (*remote.Client, string, error) {
	urlFlag := isSet(r.fs, "url")
	engineFlag := ""
	for _, name := range []string{"redis", "data-dir"} {
		if isSet(conn.fs, name) {
			engineFlag = "--" + name
		}
	}
	base, source := r.url, "--url"
	switch {
	case urlFlag && engineFlag != "":
		return nil, "", usagef("--url and %s select different places to read (a service, an engine); give one", engineFlag)
	case urlFlag:
	case engineFlag != "":
		base = ""
	default:
		base, source = e.getenv("SLUICE_URL"), "SLUICE_URL"
		if base != "" {
			for _, v := range []string{"REDIS_URL", "SLUICE_DATA_DIR"} {
				if e.getenv(v) != "" {
					return nil, "", usagef("SLUICE_URL and %s select different places to read (a service, an engine); unset one, or give --url or --redis", v)
				}
			}
		}
	}
	if base == "" {
		if isSet(r.fs, "api-key") {
			return nil, "", usagef("--api-key is for --url (a running service); no service was given")
		}
		return nil, "", nil
	}
	key := r.apiKey
	if !isSet(r.fs, "api-key") {
		key = e.getenv("SLUICE_API_KEY")
	}
	c, err := remote.New(base, key, hc)
	if err != nil {
		return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", source, err)}
	}
	return c, remote.Redact(base), nil
}

// serviceError makes a service's refusal of a request (4xx: a bad name or
// argument, a missing API key) a usage error, as the same mistake is when
// the engine refuses it; anything else (unreachable, 5xx) stays a
// runtime error.
func serviceError(err error) error {
	var se *remote.StatusError
	if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 {
		return &exitError{code: exitUsage, err: err}
	}
	return err
}

// notWithURL refuses flags that have no equivalent over HTTP.
func notWithURL(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if isSet(fs, n) {
			return usagef("--%s is not available with --url: the service applies its own settings", n)
		}
	}
	return nil
}

// isTerminal reports whether w is a terminal (a character device): tables
// are for people, JSON for the programs that read a pipe or a file.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// wantJSON decides a command's output form. --json (or --json=false)
// decides when given. Otherwise a command that has always printed JSON
// (jsonByDefault) keeps doing so unless stdout is a terminal, so that
// scripts reading it see no change; the others print a table.
func (e *env) wantJSON(fs *flag.FlagSet, asJSON bool, jsonByDefault bool) bool {
	if isSet(fs, "json") {
		return asJSON
	}
	return jsonByDefault && !e.tty
}
