#!/usr/bin/env bash
# A Sluice worker over HTTP, in bash with curl and jq.
#
# It long-polls POST /v1/queues/$QUEUE/receive for one item at a time,
# keeps the item's lease alive while it works (a background loop extends
# it every third of the lease), acks it when done, and nacks it when the
# work fails, with a delay that doubles with each attempt; the service
# moves an item to the failed dead-letter queue once it has used its
# deliveries. On SIGTERM or SIGINT it finishes the item in hand, hands back
# (releases) anything it received meanwhile, and exits 0: nothing is lost.
#
# Settings (environment): SLUICE_URL (default http://127.0.0.1:8000),
# SLUICE_API_KEY, QUEUE (default jobs), LEASE seconds (30), WAIT long-poll
# seconds (20, at most 60), MAX_DELIVERIES (default: the queue's),
# BACKOFF_BASE seconds (1), BACKOFF_MAX seconds (300).
#
# Replace handle with the real work: it gets the item's JSON on stdin and
# fails the item by exiting non-zero. For each item the worker prints one
# JSON line on stdout: {"id", "attempt", "item", "outcome"}; logs go to
# stderr.
set -uo pipefail

SLUICE_URL=${SLUICE_URL:-http://127.0.0.1:8000}
SLUICE_URL=${SLUICE_URL%/}
QUEUE=${QUEUE:-jobs}
LEASE=${LEASE:-30}
WAIT=${WAIT:-20}
MAX_DELIVERIES=${MAX_DELIVERIES:-}
BACKOFF_BASE=${BACKOFF_BASE:-1}
BACKOFF_MAX=${BACKOFF_MAX:-300}

stopping=false
trap 'stopping=true' TERM INT

log() { echo "worker: $*" >&2; }

# call METHOD ROUTE [QUERY] [curl args...]: one request; sets $status (000
# when the service could not be reached) and $body, and fails unless the
# status is 2xx. The API key goes to curl in a header read from stdin, so
# it never shows in the process list.
call() {
  local method=$1 route=$2 query=${3:-}
  shift 3 || shift $#
  local url out
  url="$SLUICE_URL/v1/queues/$(jq -rn --arg q "$QUEUE" '$q|@uri')$route${query:+?$query}"
  status=000 body=
  out=$(if [[ -n ${SLUICE_API_KEY:-} ]]; then printf 'Authorization: Bearer %s\n' "$SLUICE_API_KEY"; fi |
    curl -sS -X "$method" -H @- -H 'Accept: application/json' --max-time "${CALL_TIMEOUT:-10}" \
      -w '\n%{http_code}' "$@" "$url") || return 1
  status=${out##*$'\n'}
  body=${out%$'\n'*}
  [[ $status == 2* ]]
}

# handle is the work: the item's JSON on stdin; exit non-zero to fail it.
handle() {
  local item
  item=$(cat)
  local secs
  secs=$(jq -r 'if type == "object" then .sleep // 0 else 0 end' <<<"$item")
  [[ $secs != 0 ]] && sleep "$secs"
  [[ $(jq -r 'if type == "object" then .fail // false else false end' <<<"$item") != true ]]
}

report() { # report DELIVERY OUTCOME
  jq -c --arg o "$2" '{id, attempt, item, outcome: $o}' <<<"$1"
}

# keep_lease ID: extends the lease every third of it, in the background,
# until killed.
keep_lease() {
  local id=$1 every
  every=$(awk -v l="$LEASE" 'BEGIN { printf "%.3f", l / 3 }')
  trap - TERM INT
  while sleep "$every"; do
    call POST "/extend/$id" "lease=$LEASE" ||
      { [[ $status == 404 ]] && { log "lease of $id lost (expired or settled)"; return; }; log "extend $id: status $status"; }
  done
}

process() { # process DELIVERY
  local d=$1 id attempt keeper ok=true
  id=$(jq -r .id <<<"$d")
  attempt=$(jq -r .attempt <<<"$d")
  log "working on $id (attempt $attempt)"
  keep_lease "$id" >/dev/null &
  keeper=$!
  jq -c .item <<<"$d" | handle || ok=false
  kill "$keeper" 2>/dev/null
  wait "$keeper" 2>/dev/null
  if $ok; then
    if call POST "/ack/$id"; then report "$d" acked; else log "ack $id: status $status"; report "$d" lease_lost; fi
    return
  fi
  local delay query
  delay=$(awk -v b="$BACKOFF_BASE" -v a="$attempt" -v m="$BACKOFF_MAX" 'BEGIN { d = b * 2 ^ (a - 1); if (d > m) d = m; printf "%.3f", d }')
  query="delay=$delay&reason=the+item+asked+to+fail${MAX_DELIVERIES:+&max_deliveries=$MAX_DELIVERIES}"
  if call POST "/nack/$id" "$query"; then
    report "$d" "$(jq -r '.outcome // "nacked"' <<<"${body:-{\}}")"
  else
    log "nack $id: status $status"
    report "$d" lease_lost
  fi
}

log "receiving from $QUEUE"
query="timeout=$WAIT&lease=$LEASE&count=1${MAX_DELIVERIES:+&max_deliveries=$MAX_DELIVERIES}"
failures=0
while ! $stopping; do
  if ! CALL_TIMEOUT=$((${WAIT%.*} + 10)) call POST /receive "$query"; then
    failures=$((failures + 1))
    log "receive: status $status"
    sleep $((failures < 5 ? 2 ** failures : 30)) & wait $!
    continue
  fi
  [[ $status == 204 || -z $body ]] && continue
  deliveries=$body # process and release overwrite $body
  while IFS= read -r d; do
    if $stopping; then
      # Not started: back to the queue, the attempt not counted.
      call POST "/release/$(jq -r .id <<<"$d")" || log "release: status $status"
    else
      process "$d"
    fi
  done < <(jq -c '.deliveries[]' <<<"$deliveries")
done
log "stopped"
