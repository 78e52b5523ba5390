package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The original Python service read its settings (REDIS_URL, QUEUE_*) from
// a .env file in its working directory, so the CLI does too: settings
// come from a flag, else the environment, else the .env file, else the
// default. Values of the file may be passwords: no message ever shows
// one, only the file's name and a line number.

// defaultEnvFile is read from the working directory when present.
const defaultEnvFile = ".env"

// envFileArg takes --env-file PATH (or --env-file=PATH) out of args,
// wherever it is before a "--", since every command takes it. It returns
// the file to read and whether it was named explicitly.
func envFileArg(args []string) (rest []string, path string, explicit bool, err error) {
	path = defaultEnvFile
	rest = make([]string, 0, len(args))
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		if a == "--" {
			rest = append(append(rest, a), args...)
			break
		}
		name, value, hasValue := strings.Cut(a, "=")
		if name != "--env-file" && name != "-env-file" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if len(args) == 0 {
				return nil, "", false, usagef("--env-file needs a file name")
			}
			value, args = args[0], args[1:]
		}
		if value == "" {
			return nil, "", false, usagef("--env-file needs a file name")
		}
		path, explicit = value, true
	}
	return rest, path, explicit, nil
}

// loadEnvFile reads the variables of an env file. A missing default file
// is no error (most directories have none); a file named explicitly must
// exist.
func loadEnvFile(path string, explicit bool) (map[string]string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the user names the file to read
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return nil, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("--env-file %q: no such file", path)
		}
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("env file %q: %w", path, err)}
	}
	vars, err := parseEnvFile(string(b))
	if err != nil {
		return nil, usagef("env file %q: %v", path, err)
	}
	return vars, nil
}

// parseEnvFile reads NAME=VALUE lines, as docker compose and dotenv
// libraries do: blank lines and lines starting with # are skipped, an
// "export " before the name is allowed, a value may be 'single-quoted'
// (taken as it is), "double-quoted" (with \n, \t, \", \\ escapes), or bare
// (trimmed, a " #" starts a comment). No expansion of $VARIABLES: a
// password holding $ stays as written. Errors name the line, never its
// text.
func parseEnvFile(text string) (map[string]string, error) {
	vars := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !validEnvName(name) {
			return nil, fmt.Errorf("line %d: want NAME=VALUE, NAME letters, digits and _", n)
		}
		value = strings.TrimSpace(value)
		var rest string
		switch {
		case strings.HasPrefix(value, "'"):
			end := strings.IndexByte(value[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("line %d: the value of %s has no closing ' (values span one line)", n, name)
			}
			value, rest = value[1:1+end], value[2+end:]
		case strings.HasPrefix(value, `"`):
			var b strings.Builder
			j, closed := 1, false
			for ; j < len(value); j++ {
				c := value[j]
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && j+1 < len(value) {
					j++
					switch value[j] {
					case 'n':
						c = '\n'
					case 't':
						c = '\t'
					case 'r':
						c = '\r'
					default:
						c = value[j] // \" \\ \$ and any other: the character itself
					}
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf(`line %d: the value of %s has no closing " (values span one line)`, n, name)
			}
			value, rest = b.String(), value[j+1:]
		default:
			if k := strings.Index(value, " #"); k >= 0 {
				value = strings.TrimSpace(value[:k])
			}
		}
		if rest = strings.TrimSpace(rest); rest != "" && rest[0] != '#' {
			return nil, fmt.Errorf("line %d: unexpected text after the quoted value of %s", n, name)
		}
		vars[name] = value
	}
	return vars, nil
}

func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// withEnvFile returns a getenv in which the process environment wins and
// the file fills in what it does not set (an empty variable counts as
// unset, as everywhere in the CLI).
func withEnvFile(getenv func(string) string, file map[string]string) func(string) string {
	if len(file) == 0 {
		return getenv
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return file[k]
	}
}
