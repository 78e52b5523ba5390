#!/usr/bin/env bash
# Runs a throwaway Redis Cluster on loopback for tests: 3 primaries and 3
# replicas on ports BASE..BASE+5 (default 7000-7005), no persistence, data in
# a temporary directory that "stop" removes.
#
#   scripts/cluster.sh start [base-port]   start (or confirm running), print the URL
#   scripts/cluster.sh stop  [base-port]   stop the nodes and remove their data
#   scripts/cluster.sh status [base-port]  exit 0 and print the URL when healthy
#
# Both start and stop are idempotent. A half-started cluster is torn down and
# rebuilt. Port 6379 is never used.
set -euo pipefail

readonly NODES=6
readonly NODE_TIMEOUT_MS=2000
readonly WAIT_SECONDS=${SLUICE_CLUSTER_WAIT_SECONDS:-60}

usage() {
	echo "usage: $0 start|stop|status [base-port]" >&2
	exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
cmd=$1
base=${2:-7000}
[[ $base =~ ^[0-9]+$ ]] && ((base >= 1024 && base + NODES - 1 <= 65535)) ||
	{ echo "base port must be a number from 1024 to $((65535 - NODES + 1))" >&2; exit 2; }
if ((base <= 6379 && 6379 <= base + NODES - 1)); then
	echo "ports $base-$((base + NODES - 1)) would include 6379, which is left alone" >&2
	exit 2
fi

state_dir="${TMPDIR:-/tmp}/sluice-redis-cluster-$base"

for tool in redis-server redis-cli; do
	command -v "$tool" >/dev/null || { echo "$tool not found; install redis-server and redis-tools" >&2; exit 1; }
done

# shellcheck source=redis-nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis-nodes.sh"

ports() { seq "$base" $((base + NODES - 1)); }

url() {
	echo "redis+cluster://127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
}

healthy() {
	local port info
	for port in $(ports); do
		pid_of "$port" >/dev/null || return 1
		info=$(cli "$port" cluster info 2>/dev/null) || return 1
		grep -q '^cluster_state:ok' <<<"$info" || return 1
		grep -q "^cluster_known_nodes:$NODES" <<<"$info" || return 1
		grep -q '^cluster_slots_ok:16384' <<<"$info" || return 1
	done
}

stop() { stop_nodes $(ports); }

all_ping() {
	local port
	for port in $(ports); do
		[[ $(cli "$port" ping 2>/dev/null) == PONG ]] || return 1
	done
}

start() {
	if healthy; then
		url
		return 0
	fi
	stop # whatever is left of an earlier run
	local port busy=()
	for port in $(ports); do
		if cli "$port" ping >/dev/null 2>&1; then busy+=("$port"); fi
	done
	if ((${#busy[@]} > 0)); then
		echo "ports ${busy[*]} are already served by something this script did not start" >&2
		exit 1
	fi
	mkdir -p "$state_dir"
	for port in $(ports); do
		mkdir -p "$state_dir/$port"
		redis-server --port "$port" --bind 127.0.0.1 \
			--daemonize yes --pidfile "$state_dir/$port/redis.pid" \
			--logfile "$state_dir/$port/redis.log" --dir "$state_dir/$port" \
			--cluster-enabled yes --cluster-config-file nodes.conf \
			--cluster-node-timeout "$NODE_TIMEOUT_MS" \
			--save "" --appendonly no
	done
	wait_for "nodes to answer PING" all_ping
	local addrs=()
	for port in $(ports); do addrs+=("127.0.0.1:$port"); done
	if ! cli "$base" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$state_dir/create.log" 2>&1; then
		cat "$state_dir/create.log" >&2
		stop
		exit 1
	fi
	if ! wait_for "cluster_state:ok on all nodes" healthy; then
		stop
		exit 1
	fi
	url
}

case $cmd in
start) start ;;
stop) stop ;;
status)
	if healthy; then url; else
		echo "cluster on $base-$((base + NODES - 1)) is not running or not healthy" >&2
		exit 1
	fi
	;;
*) usage ;;
esac
