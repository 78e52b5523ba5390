#!/usr/bin/env python3
"""A Sluice worker over HTTP, in Python with the standard library only.

It long-polls POST /v1/queues/{QUEUE}/receive for one item at a time,
keeps the item's lease alive while it works (a thread extends it every
third of the lease), acks it when done, and nacks it when the work fails,
with a delay that doubles with each attempt; the service moves an item to
the failed dead-letter queue once it has used its deliveries. On SIGTERM
or SIGINT it finishes the item in hand, hands back (releases) anything it
received meanwhile, and exits 0: nothing is lost.

Settings (environment):
  SLUICE_URL       the service, default http://127.0.0.1:8000
  SLUICE_API_KEY   its API key, if it has any
  QUEUE            the queue, default jobs
  LEASE            lease in seconds, default 30
  WAIT             long-poll wait in seconds (at most 60), default 20
  MAX_DELIVERIES   deliveries before the failed DLQ (default: the queue's)
  BACKOFF_BASE     first retry delay in seconds, default 1
  BACKOFF_MAX      longest retry delay in seconds, default 300

Replace handle() with the real work. For each item it prints one JSON
line on stdout: {"id", "attempt", "item", "outcome"}; logs go to stderr.
"""
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

URL = os.environ.get("SLUICE_URL", "http://127.0.0.1:8000").rstrip("/")
API_KEY = os.environ.get("SLUICE_API_KEY", "")
QUEUE = os.environ.get("QUEUE", "jobs")
LEASE = float(os.environ.get("LEASE", "30"))
WAIT = float(os.environ.get("WAIT", "20"))
MAX_DELIVERIES = os.environ.get("MAX_DELIVERIES", "")
BACKOFF_BASE = float(os.environ.get("BACKOFF_BASE", "1"))
BACKOFF_MAX = float(os.environ.get("BACKOFF_MAX", "300"))

stopping = threading.Event()


def log(*args):
    print("worker:", *args, file=sys.stderr, flush=True)


class ServiceError(Exception):
    def __init__(self, status, message):
        super().__init__(f"service answered {status}: {message}")
        self.status = status


def call(method, route, query=None, body=None, timeout=10.0):
    """One request to the service; returns the decoded JSON answer or None."""
    url = f"{URL}/v1/queues/{urllib.parse.quote(QUEUE, safe='')}{route}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if API_KEY:
        req.add_header("Authorization", "Bearer " + API_KEY)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error", "")
        except Exception:
            message = e.reason
        raise ServiceError(e.code, message) from None


def seconds(s):
    return f"{s:.3f}"  # the service reads a bare number as seconds


class LeaseKeeper(threading.Thread):
    """Extends a delivery's lease every third of it until stopped."""

    def __init__(self, delivery_id):
        super().__init__(daemon=True)
        self.id = delivery_id
        self.done = threading.Event()
        self.lost = False

    def run(self):
        while not self.done.wait(LEASE / 3):
            try:
                call("POST", f"/extend/{self.id}", {"lease": seconds(LEASE)})
            except ServiceError as e:
                if e.status == 404:
                    log(f"lease of {self.id} lost (expired or settled)")
                    self.lost = True
                    return
                log(f"extend {self.id}: {e}")
            except OSError as e:
                log(f"extend {self.id}: {e}")  # try again at the next tick

    def stop(self):
        self.done.set()
        self.join()


def handle(item):
    """The work. Raise to fail the item (it is nacked and retried)."""
    if isinstance(item, dict):
        if item.get("sleep"):
            time.sleep(float(item["sleep"]))
        if item.get("fail"):
            raise RuntimeError("the item asked to fail")


def report(d, outcome):
    print(json.dumps({"id": d["id"], "attempt": d["attempt"], "item": d["item"], "outcome": outcome}), flush=True)


def process(d):
    log(f"working on {d['id']} (attempt {d['attempt']})")
    keeper = LeaseKeeper(d["id"])
    keeper.start()
    try:
        handle(d["item"])
    except Exception as e:  # the work failed: retry later, or dead-letter
        keeper.stop()
        delay = min(BACKOFF_BASE * 2 ** (d["attempt"] - 1), BACKOFF_MAX)
        query = {"delay": seconds(delay), "reason": str(e)[:1024]}
        if MAX_DELIVERIES:
            query["max_deliveries"] = MAX_DELIVERIES
        try:
            res = call("POST", f"/nack/{d['id']}", query) or {}
            report(d, res.get("outcome", "nacked"))
        except (ServiceError, OSError) as e2:
            log(f"nack {d['id']}: {e2}")
            report(d, "lease_lost")
        return
    keeper.stop()
    try:
        call("POST", f"/ack/{d['id']}")
        report(d, "acked")
    except (ServiceError, OSError) as e:
        # The lease ran out before the ack: the item will be delivered
        # again, so the work must be safe to repeat.
        log(f"ack {d['id']}: {e}")
        report(d, "lease_lost")


def release(d):
    try:
        call("POST", f"/release/{d['id']}")
    except (ServiceError, OSError) as e:
        log(f"release {d['id']}: {e} (it comes back when its lease runs out)")


def main():
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    query = {"timeout": seconds(WAIT), "lease": seconds(LEASE), "count": "1"}
    if MAX_DELIVERIES:
        query["max_deliveries"] = MAX_DELIVERIES
    log(f"receiving from {QUEUE}")
    failures = 0
    while not stopping.is_set():
        try:
            res = call("POST", "/receive", query, timeout=WAIT + 10)
            failures = 0
        except (ServiceError, OSError) as e:
            failures += 1
            log(f"receive: {e}")
            stopping.wait(min(2 ** failures, 30))
            continue
        for d in (res or {}).get("deliveries", []):
            if stopping.is_set():
                release(d)  # not started: back to the queue, attempt not counted
            else:
                process(d)
    log("stopped")


if __name__ == "__main__":
    main()
