#!/usr/bin/env bash
# Builds the sluice command the way the container image (Dockerfile) and
# the deploy tests build it, and with the flags the release configuration
# (.goreleaser.yaml) gives: a static binary (no cgo), without the paths of
# the machine that built it (-trimpath), stripped, with the version and
# commit stamped in for `sluice version`.
#
# usage: scripts/build.sh OUTPUT
# env:   VERSION (default: git describe), COMMIT (default: git rev-parse HEAD),
#        GOOS and GOARCH as go build reads them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/build.sh OUTPUT}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export CGO_ENABLED=0
exec go build -trimpath -ldflags "-s -w -X main.version=${version} -X main.commit=${commit}" -o "$out" ./cmd/sluice
