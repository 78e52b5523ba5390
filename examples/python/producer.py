#!/usr/bin/env python3
"""Add items to a queue the way the original Python service did, straight
into Redis: RPUSH of json.dumps(item) to the list named after the queue
(docs/compat.md). Sluice consumers, the HTTP service and the CLI read
these items as their own. Standard library only: it speaks RESP, Redis's
protocol, over a socket.

  REDIS_URL=redis://[:password@]host:6379/0 QUEUE=detections_queue \\
      python3 producer.py '{"camera_id": 1, "label": "person"}' ...

With no arguments it reads one JSON value per line from stdin. It prints
the queue's length after each push. Like the original service's fast path
it neither compresses items (readers accept uncompressed ones of any size)
nor applies the queue's bound: add through the HTTP API for that. On Redis
Cluster push to "{QUEUE}" (docs/redis-cluster.md).
"""
import json
import os
import socket
import sys
import urllib.parse

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("QUEUE", "detections_queue")


class Redis:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        if u.scheme != "redis":
            raise SystemExit("producer: REDIS_URL: want redis://[:password@]host:port/db")
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=10)
        self.file = self.sock.makefile("rb")
        password = urllib.parse.unquote(u.password or "") or os.environ.get("REDIS_PASSWORD", "")
        if password:
            user = urllib.parse.unquote(u.username or "")
            self.command("AUTH", *([user] if user else []), password)
        db = (u.path or "/").lstrip("/")
        if db and db != "0":
            self.command("SELECT", db)

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode("utf-8")
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self.reply()

    def reply(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("Redis: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode("utf-8")
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("unexpected Redis reply")


def items():
    if len(sys.argv) > 1:
        yield from sys.argv[1:]
    else:
        for line in sys.stdin:
            if line.strip():
                yield line


def main():
    r = Redis(REDIS_URL)
    for n, text in enumerate(items(), 1):
        try:
            item = json.loads(text)
        except ValueError as e:
            raise SystemExit(f"producer: item {n} is not JSON: {e}")
        # json.dumps with its defaults is the stored format: ", " and ": "
        # separators, non-ASCII escaped; a str is stored as it is.
        stored = item if isinstance(item, str) else json.dumps(item)
        print(r.command("RPUSH", QUEUE, stored), flush=True)


if __name__ == "__main__":
    main()
