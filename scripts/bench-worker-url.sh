#!/bin/sh
# Times `sluice worker --url` (through a running service) draining a queue:
# starts `sluice serve` on the embedded engine in memory, adds N items, runs
# a worker with /bin/true per item (and per batch of 100) at each
# concurrency, and prints items per second. `sluice bench worker` measures
# the worker on an engine directly; this measures the HTTP worker protocol.
#
# usage: scripts/bench-worker-url.sh [N] [PORT]
#   N     items per case (default 5000)
#   PORT  where the service listens (default 19220)
set -eu

N=${1:-5000}
PORT=${2:-19220}
URL="http://127.0.0.1:$PORT"
BIN=$(mktemp -d)
SERVE=
trap 'if [ -n "$SERVE" ]; then kill "$SERVE" 2>/dev/null || true; fi; rm -rf "$BIN"' EXIT INT TERM

go build -o "$BIN/sluice" ./cmd/sluice
"$BIN/sluice" serve --addr "127.0.0.1:$PORT" --log-level error 2>/dev/null &
SERVE=$!
until curl -sf "$URL/health/live" >/dev/null; do sleep 0.1; done

# fill Q: N items, in batch adds of 1000.
fill() {
	body=$(awk 'BEGIN { printf "["; for (i = 0; i < 1000; i++) printf "%s{\"n\": %d}", (i ? "," : ""), i; printf "]" }')
	left=$N
	while [ "$left" -gt 0 ]; do
		curl -sf -XPOST "$URL/v1/queues/$1/batch?max_size=0" -H 'Content-Type: application/json' -d "$body" >/dev/null
		left=$((left - 1000))
	done
}

acked() {
	curl -sf "$URL/v1/queues/$1" | sed -n 's/.*"acked_total":\([0-9]*\).*/\1/p'
}

case_no=0
for batch in 0 100; do
	for conc in 1 8; do
		case_no=$((case_no + 1))
		q="url$case_no"
		fill "$q"
		total=$(( (N + 999) / 1000 * 1000 ))
		start=$(date +%s.%N)
		"$BIN/sluice" worker "$q" --url "$URL" --exec /bin/true --concurrency "$conc" --batch "$batch" --idle 10ms --progress 0 2>/dev/null &
		W=$!
		until [ "$(acked "$q")" -ge "$total" ]; do sleep 0.05; done
		end=$(date +%s.%N)
		kill -TERM $W
		wait $W
		echo "$total $start $end" | awk -v c="$conc" -v b="$batch" '{ printf "--url exec /bin/true  concurrency %d  batch %3d: %8.0f items/s (%d items)\n", c, b, $1 / ($3 - $2), $1 }'
	done
done
