#!/usr/bin/env node
// A Sluice worker over HTTP, in Node.js (18 or later: built-in fetch, no
// packages).
//
// It long-polls POST /v1/queues/{QUEUE}/receive for one item at a time,
// keeps the item's lease alive while it works (a timer extends it every
// third of the lease), acks it when done, and nacks it when the work
// fails, with a delay that doubles with each attempt; the service moves an
// item to the failed dead-letter queue once it has used its deliveries. On
// SIGTERM or SIGINT it finishes the item in hand, hands back (releases)
// anything it received meanwhile, and exits 0: nothing is lost.
//
// Settings (environment): SLUICE_URL (default http://127.0.0.1:8000),
// SLUICE_API_KEY, QUEUE (default jobs), LEASE seconds (30), WAIT long-poll
// seconds (20, at most 60), MAX_DELIVERIES (default: the queue's),
// BACKOFF_BASE seconds (1), BACKOFF_MAX seconds (300).
//
// Replace handle() with the real work. For each item it prints one JSON
// line on stdout: {"id", "attempt", "item", "outcome"}; logs go to stderr.

const env = process.env;
const URL_ = (env.SLUICE_URL || "http://127.0.0.1:8000").replace(/\/+$/, "");
const API_KEY = env.SLUICE_API_KEY || "";
const QUEUE = env.QUEUE || "jobs";
const LEASE = Number(env.LEASE || 30);
const WAIT = Number(env.WAIT || 20);
const MAX_DELIVERIES = env.MAX_DELIVERIES || "";
const BACKOFF_BASE = Number(env.BACKOFF_BASE || 1);
const BACKOFF_MAX = Number(env.BACKOFF_MAX || 300);

let stopping = false;
const log = (...args) => console.error("worker:", ...args);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (s) => s.toFixed(3); // the service reads a bare number as seconds

class ServiceError extends Error {
  constructor(status, message) {
    super(`service answered ${status}: ${message}`);
    this.status = status;
  }
}

// call sends one request and returns the decoded JSON answer, or null.
async function call(method, route, query = {}, body, timeoutSec = 10) {
  const qs = new URLSearchParams(query).toString();
  const url = `${URL_}/v1/queues/${encodeURIComponent(QUEUE)}${route}${qs ? "?" + qs : ""}`;
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (API_KEY) headers.Authorization = `Bearer ${API_KEY}`;
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutSec * 1000),
  });
  const text = await res.text();
  if (!res.ok) {
    let message = res.statusText;
    try {
      message = JSON.parse(text).error || message;
    } catch {}
    throw new ServiceError(res.status, message);
  }
  return text ? JSON.parse(text) : null;
}

// keepLease extends a delivery's lease every third of it until stopped.
function keepLease(id) {
  const timer = setInterval(async () => {
    try {
      await call("POST", `/extend/${id}`, { lease: seconds(LEASE) });
    } catch (e) {
      if (e.status === 404) {
        log(`lease of ${id} lost (expired or settled)`);
        clearInterval(timer);
      } else {
        log(`extend ${id}: ${e.message}`); // try again at the next tick
      }
    }
  }, (LEASE * 1000) / 3);
  return () => clearInterval(timer);
}

// handle is the work. Throw to fail the item (it is nacked and retried).
async function handle(item) {
  if (item && typeof item === "object") {
    if (item.sleep) await sleep(Number(item.sleep) * 1000);
    if (item.fail) throw new Error("the item asked to fail");
  }
}

function report(d, outcome) {
  console.log(JSON.stringify({ id: d.id, attempt: d.attempt, item: d.item, outcome }));
}

async function processDelivery(d) {
  log(`working on ${d.id} (attempt ${d.attempt})`);
  const stop = keepLease(d.id);
  try {
    await handle(d.item);
  } catch (e) {
    stop();
    const delay = Math.min(BACKOFF_BASE * 2 ** (d.attempt - 1), BACKOFF_MAX);
    const query = { delay: seconds(delay), reason: String(e.message).slice(0, 1024) };
    if (MAX_DELIVERIES) query.max_deliveries = MAX_DELIVERIES;
    try {
      const res = await call("POST", `/nack/${d.id}`, query);
      report(d, (res && res.outcome) || "nacked");
    } catch (e2) {
      log(`nack ${d.id}: ${e2.message}`);
      report(d, "lease_lost");
    }
    return;
  }
  stop();
  try {
    await call("POST", `/ack/${d.id}`);
    report(d, "acked");
  } catch (e) {
    // The lease ran out before the ack: the item will be delivered again,
    // so the work must be safe to repeat.
    log(`ack ${d.id}: ${e.message}`);
    report(d, "lease_lost");
  }
}

async function release(d) {
  try {
    await call("POST", `/release/${d.id}`);
  } catch (e) {
    log(`release ${d.id}: ${e.message} (it comes back when its lease runs out)`);
  }
}

async function main() {
  process.on("SIGTERM", () => (stopping = true));
  process.on("SIGINT", () => (stopping = true));
  const query = { timeout: seconds(WAIT), lease: seconds(LEASE), count: "1" };
  if (MAX_DELIVERIES) query.max_deliveries = MAX_DELIVERIES;
  log(`receiving from ${QUEUE}`);
  let failures = 0;
  while (!stopping) {
    let res;
    try {
      res = await call("POST", "/receive", query, undefined, WAIT + 10);
      failures = 0;
    } catch (e) {
      failures++;
      log(`receive: ${e.message}`);
      await sleep(Math.min(2 ** failures, 30) * 1000);
      continue;
    }
    for (const d of (res && res.deliveries) || []) {
      if (stopping) await release(d); // not started: back, attempt not counted
      else await processDelivery(d);
    }
  }
  log("stopped");
}

main().catch((e) => {
  log(e.stack || e.message);
  process.exit(1);
});
