# Shared by cluster.sh and sentinel.sh (sourced, not run): talking to,
# waiting for and stopping the loopback redis-server processes they start.
# The sourcing script sets state_dir (where each node keeps PORT/redis.pid)
# and WAIT_SECONDS.

cli() { # cli PORT ARGS...
	local port=$1
	shift
	redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# pid_of PORT prints the pid recorded for the node, if that process is alive
# and is a redis process for PORT (so a recycled pid is never killed).
pid_of() {
	local f="$state_dir/$1/redis.pid" pid
	[[ -r $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline =~ ^redis-s[a-z]+\ .*:$1([^0-9]|$) ]] || return 1
	echo "$pid"
}

# wait_for DESCRIPTION COMMAND...: retries COMMAND until it succeeds or
# WAIT_SECONDS pass.
wait_for() {
	local what=$1 deadline=$((SECONDS + WAIT_SECONDS))
	shift
	until "$@"; do
		if ((SECONDS >= deadline)); then
			echo "timed out after ${WAIT_SECONDS}s waiting for $what" >&2
			return 1
		fi
		sleep 0.2
	done
}

# running PID: the process has not exited. A daemonized node's parent is
# init, which may take its time to reap it: a zombie has exited.
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { kill -0 "$1" 2>/dev/null; return; }
	[[ ${stat##*) } != Z* ]]
}

# stop_nodes PORT...: SIGTERM each node we started, SIGKILL after 10 s, in
# the order given; then remove the state directory.
stop_nodes() {
	local port pid deadline
	for port in "$@"; do
		if pid=$(pid_of "$port"); then
			kill -TERM "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 10))
			while running "$pid"; do
				if ((SECONDS >= deadline)); then
					kill -KILL "$pid" 2>/dev/null || true
					break
				fi
				sleep 0.1
			done
		fi
	done
	rm -rf "$state_dir"
}
