package sluice

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFileURL(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string { return filepath.Join(cwd, p) }
	for raw, want := range map[string]string{
		"file:///var/lib/sluice":          "/var/lib/sluice",
		"file:///var/lib/sluice/":         "/var/lib/sluice",
		"file:/var/lib/sluice":            "/var/lib/sluice",
		"file://localhost/var/lib/sluice": "/var/lib/sluice",
		"FILE:///x":                       "/x",
		"file:///a%20b/100%25":            "/a b/100%",
		"file:///a b":                     "/a b",
		"file://./data":                   rel("data"),
		"file://../data":                  rel("../data"),
		"file:data":                       rel("data"),
		"file:./data":                     rel("data"),
		"file:../up/data":                 rel("../up/data"),
		"file:data/sub/":                  rel("data/sub"),
		"file:.":                          cwd,
	} {
		got, err := parseFileURL(raw)
		if err != nil || got != want {
			t.Errorf("parseFileURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for raw, why := range map[string]string{
		"file:":                "no path",
		"file://":              "no path",
		"file:///":             "no path",
		"file://data":          "no path",
		"file://host/data":     `host "host"`,
		"file://example.com/x": `host "example.com"`,
		"file:data?fsync=1":    "query",
		"file:///data#x":       "fragment",
		"file:///100%":         "%-escape",
		"file:///a%zzb":        "%-escape",
		"file:///a%00b":        "NUL",
		"redis://h":            "not a file URL",
	} {
		_, err := parseFileURL(raw)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), why) ||
			!strings.Contains(err.Error(), "file:///abs/dir") || !strings.Contains(err.Error(), "file:dir") {
			t.Errorf("parseFileURL(%q): error %v; want ErrInvalidArgument saying %q and showing the accepted forms", raw, err, why)
		}
	}
}

// FuzzParseFileURL: whatever the URL, the result is an absolute, clean
// path or an ErrInvalidArgument; a relative form never lands at the root.
func FuzzParseFileURL(f *testing.F) {
	for _, s := range []string{"file:data", "file://./data", "file:///abs", "file://host/x", "file:%2Fx", "file://localhost/", "file:a/../../b", "file:////x"} {
		f.Add(s)
	}
	cwd, err := os.Getwd()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		dir, err := parseFileURL(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("parseFileURL(%q): %v is not ErrInvalidArgument", raw, err)
			}
			return
		}
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			t.Fatalf("parseFileURL(%q) = %q: not an absolute clean path", raw, dir)
		}
		// Forms without an absolute path resolve against the working
		// directory: file:x and file://./x.
		rest := raw[len("file:"):]
		if !strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, "//.") {
			p := strings.TrimPrefix(rest, "//")
			if !strings.HasPrefix(p, "%2F") && !strings.HasPrefix(p, "%2f") && !strings.Contains(p, "..") && !strings.HasPrefix(dir, cwd) {
				t.Fatalf("parseFileURL(%q) = %q: a relative form outside %q", raw, dir, cwd)
			}
		}
	})
}

// Open with a relative file URL puts the data under the working directory.
func TestOpenRelativeFileURL(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, raw := range []string{"file://./data1", "file:data2", "file:./data3"} {
		c, err := Open(t.Context(), raw, nil)
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		name := raw[strings.LastIndex(raw, "data"):]
		entries, err := os.ReadDir(filepath.Join(dir, name))
		if err != nil || len(entries) == 0 {
			t.Errorf("Open(%q): %s under the working directory holds %d entries (%v); want the log there", raw, name, len(entries), err)
		}
	}
	_, err := Open(t.Context(), "file:data2x?x", nil)
	if err == nil || strings.Contains(err.Error(), "unsupported URL scheme") {
		t.Errorf("Open of a bad file URL: %v; want the file URL's own error", err)
	}
}
