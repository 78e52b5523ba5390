#!/usr/bin/env python3
"""Write what CPython's json module writes, as fixtures for the Go tests.

The Python service stores items and dead-letter entries with json.dumps
and its defaults (", " and ": " separators, ensure_ascii=True). The codec
and the dead-letter envelopes (Go and Lua) must write the same bytes: the
tests compare them with what this script records (internal/compattest
loads it), and a test reruns the script to check that the committed files
are current.

Usage: scripts/compat-fixtures.py [DIR]   (default: internal/compattest)

Compression ("Z:" + base64(zstd)) is not covered: zstd frames differ
between encoders, so bytes cannot be compared; the codec's tests check
the frame header Python's zstandard.decompress needs instead.
"""

import json
import os
import sys

GENERATED_BY = "scripts/compat-fixtures.py (CPython's json module); do not edit"

# Every control character, DEL, the characters json escapes by name, and
# the printable ASCII neighbours of DEL.
CONTROLS = "".join(chr(c) for c in range(0x20)) + "\x7f"

STRINGS = [
    ("empty", ""),
    ("ascii", "plain text"),
    ("controls", CONTROLS),
    ("del", "a\x7fb"),
    ("del-alone", "\x7f"),
    ("printable-edges", " ~\x7f\x80"),
    ("named-escapes", "\b\f\n\r\t"),
    ("quotes-backslashes", 'say "hi" \\ back\\slash \\" \\\\'),
    ("slash", "a/b</script>"),
    ("html", "<a&b>'"),
    ("separators", "x, y: z,:"),
    ("latin1", "caf\u00e9 \u00fc\u00df \u00ff"),
    ("bmp", "\u4e2d\u6587 \u20ac \u2028\u2029 \ufeff \ufffd \uffff"),
    ("astral", "\U0001f600 \U0001f44d\U0001f3fd \U0001f680 \U00010000 \U0010ffff"),
    ("mixed", "\u00e9\U0001f600\x7f\x1f\\"),
    ("json-looking", '{"a": 1}'),
    ("number-looking", "42"),
    ("compressed-looking", "Z:KLUv/QBYAQAAaGk="),
]

VALUES = [
    ("int", 42),
    ("negative", -7),
    ("zero", 0),
    ("big-int", 12345678901234567890),
    ("float", 12.5),
    ("float-whole", 1.0),
    ("float-negative-zero", -0.0),
    ("float-small", 1e-07),
    ("float-large", 1e16),
    ("float-huge", 1e300),
    ("float-pi", 3.141592653589793),
    ("float-tenth", 0.1),
    ("true", True),
    ("false", False),
    ("null", None),
    ("empty-object", {}),
    ("empty-array", []),
    ("array", [1, "a", None, True, 2.5]),
    ("object", {"data": "value", "n": 3}),
    ("nested", {"a": {"b": [1, 2, {"c": [[], {}]}]}, "d": [{"e": None}]}),
    ("detection", {"camera_id": 7, "image_path": "/data/cam1/0001.jpg", "score": 0.93,
                   "labels": ["person", "v\u00e9lo"], "meta": {"night": False}}),
    ("unicode-keys", {"\u00e9": 1, "\U0001f600": [2], "k\x7f": "\x00"}),
    ("every-string", {name: s for name, s in STRINGS}),
    ("strings-in-array", [s for _, s in STRINGS]),
] + [("string-" + name, s) for name, s in STRINGS]


def json_case(name, value):
    # The same value written three ways, each of which the codec must
    # rewrite to what json.dumps writes by default: compact UTF-8 (what
    # encoding/json writes), compact ASCII, and indented.
    return {
        "name": name,
        "inputs": [
            json.dumps(value, separators=(",", ":"), ensure_ascii=False),
            json.dumps(value, separators=(",", ":")),
            json.dumps(value, indent=2),
        ],
        "dumps": json.dumps(value),
        # Go writes a map's keys sorted; this is what Python writes for
        # the same dict with its keys in that order.
        "dumps_sort_keys": json.dumps(value, sort_keys=True),
    }


def is_container(stored):
    # internal/engine/envelope.go: original_job is the item itself when it
    # is a JSON object or array, else the stored string.
    if stored[:1] not in ("{", "["):
        return False
    try:
        json.loads(stored)
    except ValueError:
        return False
    return True


def overflow(queue, stored):
    return {
        "queue": queue,
        "stored": stored,
        "dumps": json.dumps({
            "original_queue": queue,
            "data": stored,
            "reason": "queue_overflow",
            "overflow_policy": "dlq",
        }),
    }


def failed(queue, stored, error, attempts, first_at, last_at):
    return {
        "queue": queue,
        "stored": stored,
        "error": error,
        "attempt_count": attempts,
        "first_failed_at": first_at,
        "last_failed_at": last_at,
        "dumps": json.dumps({
            "original_job": json.loads(stored) if is_container(stored) else stored,
            "error": error,
            "attempt_count": attempts,
            "first_failed_at": first_at,
            "last_failed_at": last_at,
            "queue_name": queue,
            # Not written by the Python service: the stored form, so that a
            # requeue puts back exactly what was accepted.
            "data": stored,
        }),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "internal", "compattest")

    # Stored items are what json.dumps wrote (the codec's output), or
    # plain strings stored as they are.
    stored = [s for _, s in STRINGS] + [json.dumps(v) for _, v in VALUES if isinstance(v, (dict, list))]
    stored += ["[1, 2", "{not json}", "null", '"a json string"']
    queues = ["q", "detections_queue", "cam:1", "{user}:jobs", 'orders-\u00fc "x"', "q\x7f\U0001f600\\"]
    overflows = [overflow("q", s) for s in stored]
    overflows += [overflow(q, "item") for q in queues[1:]]
    first, last = "2026-11-25T22:10:00.000000+00:00", "2026-11-25T22:11:00.000000+00:00"
    fails = [failed("jobs", s, "boom", 5, first, last) for s in stored]
    fails += [failed(q, '{"id": 7}', "err", 1, first, first) for q in queues]
    fails += [failed("jobs", "x", e, 3, "", last) for _, e in STRINGS]

    files = {
        "python_json.json": {"cases": [json_case(n, v) for n, v in VALUES]},
        "python_envelopes.json": {"overflow": overflows, "failed": fails},
    }
    for name, doc in files.items():
        with open(os.path.join(out, name), "w", encoding="ascii", newline="\n") as f:
            json.dump(dict(generated_by=GENERATED_BY, **doc), f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
