package sluice

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// fileURLForms is what every refused file URL is answered with.
const fileURLForms = "accepted forms: file:///abs/dir or file:/abs/dir (absolute), " +
	"file:dir, file:./dir or file://./dir (relative to the working directory)"

// parseFileURL returns the directory a file URL names. Relative paths are
// relative to the working directory, and come back made absolute, so that
// a later change of directory cannot move the data:
//
//	file:///var/lib/sluice, file:/var/lib/sluice, file://localhost/var/lib/sluice -> /var/lib/sluice
//	file:data, file:./data, file://./data, file://../data           -> <cwd>/data, <cwd>/../data
//
// A host other than localhost (file://host/dir) is refused rather than
// taken as part of the path: "file://data" most likely means file:data,
// and "file://./data" would otherwise name /data. The path is
// percent-decoded (a literal % is written %25); a query or fragment is
// refused.
func parseFileURL(raw string) (string, error) {
	fail := func(why string) (string, error) {
		return "", &URLError{URL: raw, Reason: why + "; " + fileURLForms}
	}
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || !strings.EqualFold(scheme, "file") {
		return fail("not a file URL")
	}
	if strings.ContainsAny(rest, "?#") {
		return fail("a query or fragment is not supported (a literal ? or # is written %3F or %23)")
	}
	if auth, ok := strings.CutPrefix(rest, "//"); ok {
		host, path, _ := strings.Cut(auth, "/")
		if path == "" {
			return fail("no path")
		}
		switch strings.ToLower(host) {
		case "", "localhost":
			rest = "/" + path
		case ".", "..":
			// file://./data: the "host" is the first step of a relative
			// path.
			rest = host + "/" + path
		default:
			return fail(fmt.Sprintf("host %q: only local paths are supported", host))
		}
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return fail("malformed %-escape (a literal % is written %25)")
	}
	if path == "" {
		return fail("no path")
	}
	if strings.ContainsRune(path, 0) {
		return fail("the path holds a NUL byte")
	}
	abs, err := filepath.Abs(filepath.FromSlash(path))
	if err != nil {
		return fail(err.Error())
	}
	return abs, nil
}
