#!/usr/bin/env bash
# Runs a throwaway Redis Sentinel setup on loopback for tests: a primary on
# BASE (default 6380), a replica on BASE+1, and three sentinels on
# BASE+20000..BASE+20002 (26380-26382) watching master "sluice" with quorum 2,
# a 1 s down-after and a 3 s failover timeout. No persistence; data in a
# temporary directory that "stop" removes.
#
#   scripts/sentinel.sh start [base-port]   start (or confirm running), print the URL
#   scripts/sentinel.sh stop  [base-port]   stop everything and remove the data
#   scripts/sentinel.sh status [base-port]  exit 0 and print the URL when healthy
#
# Sentinels run as "redis-server --sentinel"; redis-sentinel is installed
# with apt-get only when that mode is unavailable. Both start and stop are
# idempotent. Port 6379 is never used.
set -euo pipefail

readonly MASTER=sluice
readonly QUORUM=2
readonly DOWN_AFTER_MS=1000
readonly FAILOVER_TIMEOUT_MS=3000
readonly WAIT_SECONDS=${SLUICE_SENTINEL_WAIT_SECONDS:-60}

usage() {
	echo "usage: $0 start|stop|status [base-port]" >&2
	exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
cmd=$1
base=${2:-6380}
[[ $base =~ ^[0-9]+$ ]] && ((base >= 1024 && base + 20002 <= 65535)) ||
	{ echo "base port must be a number from 1024 to 45533" >&2; exit 2; }
readonly data_ports=("$base" $((base + 1)))
readonly sentinel_ports=($((base + 20000)) $((base + 20001)) $((base + 20002)))
for p in "${data_ports[@]}" "${sentinel_ports[@]}"; do
	if ((p == 6379)); then
		echo "port 6379 is left alone; choose another base port" >&2
		exit 2
	fi
done

state_dir="${TMPDIR:-/tmp}/sluice-redis-sentinel-$base"

command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
	{ echo "redis-server and redis-cli are required; install redis-server and redis-tools" >&2; exit 1; }

# shellcheck source=redis-nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis-nodes.sh"

url() {
	local s=() p
	for p in "${sentinel_ports[@]}"; do s+=("127.0.0.1:$p"); done
	local IFS=,
	echo "redis+sentinel://${s[*]}/$MASTER/0"
}

# sentinel_cmd prints how to start a sentinel: redis-server's own sentinel
# mode when its help lists one, else redis-sentinel, installed if missing.
sentinel_cmd() {
	local help
	# Captured first: grep -q would stop reading early and, under pipefail,
	# the writer's SIGPIPE would count as "no sentinel mode".
	help=$(redis-server --help 2>&1 || true)
	if [[ $help == *--sentinel* ]]; then
		echo "redis-server --sentinel"
		return
	fi
	if ! command -v redis-sentinel >/dev/null; then
		echo "redis-server has no sentinel mode; installing redis-sentinel" >&2
		apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-sentinel >&2
	fi
	echo "redis-sentinel"
}

# healthy: all five processes up, every sentinel agrees on a primary that
# has an attached replica, and each sentinel sees the other two.
healthy() {
	local p addr others replicas first=""
	for p in "${data_ports[@]}" "${sentinel_ports[@]}"; do pid_of "$p" >/dev/null || return 1; done
	for p in "${sentinel_ports[@]}"; do
		addr=$(cli "$p" sentinel get-master-addr-by-name "$MASTER" 2>/dev/null | paste -sd:) || return 1
		[[ -n $addr ]] || return 1
		[[ -z $first || $addr == "$first" ]] || return 1
		first=$addr
		others=$(cli "$p" sentinel sentinels "$MASTER" 2>/dev/null) || return 1
		(($(grep -cx name <<<"$others") == 2)) || return 1
		replicas=$(cli "$p" sentinel replicas "$MASTER" 2>/dev/null) || return 1
		(($(grep -cx name <<<"$replicas") >= 1)) || return 1
	done
	local info
	info=$(cli "${first##*:}" info replication 2>/dev/null) || return 1
	[[ $info == *connected_slaves:[1-9]* ]]
}

stop() {
	# Sentinels first, so they do not start a failover while the data nodes go.
	stop_nodes "${sentinel_ports[@]}" "${data_ports[@]}"
}

start_data_node() { # start_data_node PORT [replicaof-port]
	local port=$1
	mkdir -p "$state_dir/$port"
	local args=(--port "$port" --bind 127.0.0.1 --daemonize yes
		--pidfile "$state_dir/$port/redis.pid" --logfile "$state_dir/$port/redis.log"
		--dir "$state_dir/$port" --save "" --appendonly no)
	if (($# > 1)); then args+=(--replicaof 127.0.0.1 "$2"); fi
	redis-server "${args[@]}"
}

start_sentinel() { # start_sentinel PORT LAUNCHER...
	local port=$1
	shift
	local dir="$state_dir/$port"
	mkdir -p "$dir"
	# Sentinel rewrites its configuration file as the topology changes, so
	# each one gets its own writable copy.
	cat >"$dir/sentinel.conf" <<-EOF
		port $port
		bind 127.0.0.1
		daemonize yes
		pidfile $dir/redis.pid
		logfile $dir/redis.log
		dir $dir
		sentinel monitor $MASTER 127.0.0.1 ${data_ports[0]} $QUORUM
		sentinel down-after-milliseconds $MASTER $DOWN_AFTER_MS
		sentinel failover-timeout $MASTER $FAILOVER_TIMEOUT_MS
		sentinel parallel-syncs $MASTER 1
	EOF
	if [[ $1 == redis-sentinel ]]; then
		redis-sentinel "$dir/sentinel.conf"
	else
		redis-server "$dir/sentinel.conf" --sentinel
	fi
}

replica_linked() {
	local info
	info=$(cli "${data_ports[1]}" info replication 2>/dev/null) || return 1
	[[ $info == *master_link_status:up* ]]
}

start() {
	if healthy; then
		url
		return 0
	fi
	stop
	local p busy=()
	for p in "${data_ports[@]}" "${sentinel_ports[@]}"; do
		if cli "$p" ping >/dev/null 2>&1; then busy+=("$p"); fi
	done
	if ((${#busy[@]} > 0)); then
		echo "ports ${busy[*]} are already served by something this script did not start" >&2
		exit 1
	fi
	local launcher
	launcher=$(sentinel_cmd)
	start_data_node "${data_ports[0]}"
	start_data_node "${data_ports[1]}" "${data_ports[0]}"
	if ! wait_for "the replica to sync" replica_linked; then
		stop
		exit 1
	fi
	for p in "${sentinel_ports[@]}"; do start_sentinel "$p" "$launcher"; done
	if ! wait_for "sentinels to agree on the primary and find each other" healthy; then
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
		echo "sentinel setup on $base is not running or not healthy" >&2
		exit 1
	fi
	;;
*) usage ;;
esac
