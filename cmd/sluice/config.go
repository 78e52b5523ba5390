package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice"
)

// connFlags are the flags every command has for choosing an engine. Their
// environment fallbacks are read after parsing rather than used as flag
// defaults, so `-h` never prints a REDIS_URL (and the password in it).
type connFlags struct {
	fs        *flag.FlagSet
	redis     string
	dataDir   string
	keyPrefix string
}

func addConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{fs: fs}
	fs.StringVar(&c.redis, "redis", "", "Redis URL, redis://[user:pass@]host:port/db (env REDIS_URL); without it the embedded engine is used")
	fs.StringVar(&c.dataDir, "data-dir", "", "directory of the durable embedded engine (env SLUICE_DATA_DIR)")
	fs.StringVar(&c.keyPrefix, "key-prefix", "", "prefix for every key and channel (env SLUICE_KEY_PREFIX; off by default)")
	return c
}

// isSet reports whether name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// target is the engine a command talks to.
type target struct {
	url     string // what sluice.Open gets
	display string // the URL with any password removed, for messages
	// source names the setting the URL came from, for error messages.
	source string
	// ephemeral: the in-memory embedded engine, gone when the process ends.
	ephemeral bool
	// dir is the durable embedded engine's directory, else "".
	dir string
}

// openError reports a failed sluice.Open. A URL the library refuses is a
// configuration mistake (exit 2) and names the setting it came from; any
// other invalid setting is a configuration mistake too, but not the
// URL's, so it is not blamed on the URL's flag. Anything else
// (unreachable, refused credentials) is a runtime error, whose text
// already names the host or directory (never a password).
func (t target) openError(err error) error {
	var urlErr *sluice.URLError
	if errors.As(err, &urlErr) {
		return &exitError{code: exitUsage, err: &settingError{setting: t.source, err: err}}
	}
	if errors.Is(err, sluice.ErrInvalidArgument) {
		return &exitError{code: exitUsage, err: err}
	}
	return err
}

// settingError names the flag or variable a library error came from. The
// library's "sluice: " prefix is dropped: run puts it before the whole
// message once.
type settingError struct {
	setting string
	err     error
}

func (e *settingError) Error() string {
	return e.setting + ": " + strings.TrimPrefix(e.err.Error(), "sluice: ")
}

func (e *settingError) Unwrap() error { return e.err }

// resolve picks the engine: a flag beats the environment; --redis and
// --data-dir at the same level contradict each other.
func (c *connFlags) resolve(getenv func(string) string) (target, error) {
	redisURL, dataDir := c.redis, c.dataDir
	redisFlag, dirFlag := isSet(c.fs, "redis"), isSet(c.fs, "data-dir")
	redisSource, dirSource := "--redis", "--data-dir"
	switch {
	case redisFlag && dirFlag:
		return target{}, usagef("--redis and --data-dir select different engines; give one")
	case redisFlag:
		dataDir = ""
	case dirFlag:
		redisURL = ""
	default:
		redisURL, dataDir = getenv("REDIS_URL"), getenv("SLUICE_DATA_DIR")
		redisSource, dirSource = "REDIS_URL", "SLUICE_DATA_DIR"
		if redisURL != "" && dataDir != "" {
			return target{}, usagef("REDIS_URL and SLUICE_DATA_DIR select different engines; unset one")
		}
	}
	switch {
	case redisURL != "":
		return target{url: redisURL, display: displayURL(redisURL), source: redisSource}, nil
	case dataDir != "":
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return target{}, usagef("%s %q: %v", dirSource, dataDir, err)
		}
		// Escaped, so that a directory holding % ? # or spaces survives.
		u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
		return target{url: u, display: u, source: dirSource, dir: abs}, nil
	}
	return target{url: "mem://", display: "mem://", source: "the embedded engine", ephemeral: true}, nil
}

// displayURL is a URL safe to print: passwords of Redis URLs are redacted;
// the embedded engine's URLs carry none.
func displayURL(u string) string { return sluice.RedactURL(u) }

// prefix returns the key prefix, flag first.
func (c *connFlags) prefix(getenv func(string) string) string {
	if isSet(c.fs, "key-prefix") {
		return c.keyPrefix
	}
	return getenv("SLUICE_KEY_PREFIX")
}

// settings are the queue and compression settings of the environment
// (QUEUE_* and REDIS_COMPRESSION_*), shared by the service and the queue commands
// so that `sluice queue pressure` judges a queue as the service does.
type settings struct {
	queue                sluice.QueueSettings
	compression          bool
	compressionThreshold int
	password             string
}

func loadSettings(getenv func(string) string) (settings, error) {
	s := settings{
		queue: sluice.QueueSettings{
			MaxSize: sluice.DefaultMaxSize, Policy: sluice.DefaultPolicy,
			PressureThreshold: sluice.DefaultPressureThreshold,
		},
		compression: true,
		password:    getenv("REDIS_PASSWORD"),
	}
	if v := getenv("QUEUE_MAX_SIZE"); v != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return s, usagef("QUEUE_MAX_SIZE=%q: want an integer (<= 0 means unbounded)", v)
		}
		s.queue.MaxSize = maxSize(n)
	}
	if v := getenv("QUEUE_OVERFLOW_POLICY"); v != "" {
		p, err := sluice.ParsePolicy(strings.TrimSpace(v))
		if err != nil {
			return s, usagef("QUEUE_OVERFLOW_POLICY=%q: want reject, dlq or drop_oldest", v)
		}
		s.queue.Policy = p
	}
	if v := getenv("QUEUE_BACKPRESSURE_THRESHOLD"); v != "" {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f <= 0 || f > 1 {
			return s, usagef("QUEUE_BACKPRESSURE_THRESHOLD=%q: want a fill ratio in (0, 1], such as 0.8", v)
		}
		s.queue.PressureThreshold = f
	}
	if v := getenv("REDIS_COMPRESSION_ENABLED"); v != "" {
		b, ok := parseBool(v)
		if !ok {
			return s, usagef("REDIS_COMPRESSION_ENABLED=%q: want true or false", v)
		}
		s.compression = b
	}
	if v := getenv("REDIS_COMPRESSION_THRESHOLD"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return s, usagef("REDIS_COMPRESSION_THRESHOLD=%q: want a positive number of bytes", v)
		}
		s.compressionThreshold = n
	}
	return s, nil
}

// maxSize maps the command-line convention (<= 0: unbounded) to the API's.
func maxSize(n int64) int64 {
	if n <= 0 {
		return sluice.Unbounded
	}
	return n
}

// parseBool accepts what environment files commonly use for booleans.
func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, true
	case "0", "f", "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// config is the client configuration of these settings.
func (s settings) config(prefix string, log *slog.Logger) *sluice.Config {
	return &sluice.Config{
		Queue:                s.queue,
		DisableCompression:   !s.compression,
		CompressionThreshold: s.compressionThreshold,
		Logger:               log,
		Password:             s.password,
		KeyPrefix:            prefix,
	}
}

// env is what a command reads from its surroundings.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// tty: stdout is a terminal, where commands that print JSON to a
	// pipe print a table instead.
	tty bool
	// engine, when not nil, is used by every command instead of opening
	// one (and is not closed): tests run the engine path and a service
	// over the same engine.
	engine *sluice.Client
}

// open connects a one-shot command to its engine. Queue commands on the
// in-memory engine are legal (they are how one tries the CLI out) but
// pointless for anything kept, so they say so.
func (e *env) open(ctx context.Context, c *connFlags) (*sluice.Client, error) {
	s, err := loadSettings(e.getenv)
	if err != nil {
		return nil, err
	}
	t, err := c.resolve(e.getenv)
	if err != nil {
		return nil, err
	}
	if t.ephemeral {
		fmt.Fprintln(e.stderr, "sluice: no --redis or --data-dir: using an in-memory engine; nothing outlives this command")
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := sluice.Open(ctx, t.url, s.config(c.prefix(e.getenv), log))
	if err != nil {
		return nil, t.openError(err)
	}
	return client, nil
}
