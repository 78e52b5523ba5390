package main

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/sluicehq/sluice"
)

// version and commit are stamped by the linker in release builds
// (scripts/build.sh, .goreleaser.yaml: -X main.version=... -X
// main.commit=...). Empty, they come from the build information the go
// command records, then from the module's own Version.
var (
	version string
	commit  string
)

// buildVersion returns the version and commit of this binary: the linker's
// values, else the module version of a `go install pkg@version` and the
// VCS revision of a build in a checkout ("-dirty" when it had changes),
// else sluice.Version and "unknown".
func buildVersion() (ver, rev string) {
	ver, rev = version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
		if rev == "" {
			dirty := false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" && dirty {
				rev += "-dirty"
			}
		}
	}
	if ver == "" {
		ver = sluice.Version
	}
	if rev == "" {
		rev = "unknown"
	}
	return strings.TrimPrefix(ver, "v"), rev
}

// versionLine is what `sluice version` prints.
func versionLine() string {
	ver, rev := buildVersion()
	return "sluice " + ver + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ", commit " + rev + ")\n"
}
