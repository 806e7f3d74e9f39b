#!/usr/bin/env python3
"""Reads the Unix firmware's H4 trace (MICROPYBTTRACE=FILE, docs/testing.md).

Prints, per connection handle, the ACL packets the host wrote (tx), the ones it received (rx)
and the packets the controller reported completed (Number of Completed Packets); with
--tail N also the last N packets, with times relative to the trace's first line.

    tools/h4_trace.py build/traces/ble_max_connections-1.h4-8.log --tail 40
"""

import argparse
import collections
import struct


def packets(path):
    """(time, what, payload): what is tx/rx with a whole H4 packet, ready (or host, in older
    traces) with a byte count,
    or another trace line's word (open ..., tx-fail) with None."""
    pending = b""
    for line in open(path):
        parts = line.split()
        if len(parts) < 3:
            continue
        t, what = float(parts[0]), parts[1]
        if what == "tx":
            yield t, "tx", bytes.fromhex(parts[3])
        elif what == "rx":
            pending += bytes.fromhex(parts[3])
            while pending:
                kind = pending[0]
                if kind == 4 and len(pending) >= 3:
                    n = 3 + pending[2]
                elif kind == 2 and len(pending) >= 5:
                    n = 5 + struct.unpack("<H", pending[3:5])[0]
                else:
                    break
                if len(pending) < n:
                    break
                yield t, "rx", pending[:n]
                pending = pending[n:]
        elif what in ("host", "ready"):
            # ready: the watcher saw N bytes waiting; host: older traces, N buffered bytes taken.
            yield t, what, int(parts[2])
        else:
            yield t, " ".join(parts[1:2]), None


def describe(what, p):
    if what == "host":
        return f"host took {p} bytes"
    if what == "ready":
        return f"{p} bytes waiting, poll asked for"
    if p is None:
        return what
    if p[0] == 2:
        handle = struct.unpack("<H", p[1:3])[0] & 0xFFF
        return f"{what} ACL handle {handle}: {p[5:].hex()}"
    if p[0] == 4 and p[1] == 0x13:
        pairs = [struct.unpack("<HH", p[4 + 4 * i : 8 + 4 * i]) for i in range(p[3])]
        return f"{what} Number of Completed Packets " + " ".join(f"{h}:{k}" for h, k in pairs)
    if p[0] == 4:
        return f"{what} event {p[1]:#04x}: {p[3:].hex()}"
    if p[0] == 1:
        return f"{what} command {struct.unpack('<H', p[1:3])[0]:#06x}: {p[4:].hex()}"
    return f"{what} {p.hex()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--tail", type=int, default=0, help="print the last N packets")
    args = ap.parse_args()
    counts = collections.defaultdict(collections.Counter)
    rows = []
    t0 = None
    for t, what, p in packets(args.trace):
        t0 = t if t0 is None else t0
        rows.append((t - t0, what, p))
        if what in ("tx", "rx") and p[0] == 2:
            counts[struct.unpack("<H", p[1:3])[0] & 0xFFF][what] += 1
        elif what == "rx" and p[0] == 4 and p[1] == 0x13:
            for i in range(p[3]):
                h, k = struct.unpack("<HH", p[4 + 4 * i : 8 + 4 * i])
                counts[h]["completed"] += k
    for h in sorted(counts):
        c = counts[h]
        print(f"handle {h}: ACL tx {c['tx']}, completed {c['completed']}, rx {c['rx']}")
    if args.tail:
        for t, what, p in rows[-args.tail :]:
            print(f"{t:10.6f} {describe(what, p)}")


if __name__ == "__main__":
    main()
