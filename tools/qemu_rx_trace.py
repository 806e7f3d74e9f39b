#!/usr/bin/env python3
"""Where perf_gatt_char_write's bytes wait when the qemu board is instance 0.

    tests/multitest.py -j 1 --qemu-instance 0 --trace-dir DIR perf_gatt_char_write [...]
    tools/qemu_rx_trace.py DIR

For each run kept in DIR (T-K.out, T-K.vlink.log, T-K.qemu.log) prints: whether it passed; how
long the board took to take in the central's 40 Write Commands (6400 H4 bytes, from the first
byte of the first to the first byte of the Write Request that follows them, as QEMU handed them
to the guest); how long that Write Request waited between vlink writing it to the board's tty
and the guest receiving it; and when the guest sent its Write Response. Times come from vlink's
packet log (milliseconds) and QEMU's cmsdk_apb_uart trace (microseconds).
"""

from __future__ import annotations

import datetime
import re
import statistics
import sys
from pathlib import Path

# The ATT PDUs inside the first ACL fragment: L2CAP length 0x83 (MTU 131), CID 4, opcode.
WRITE_COMMAND = bytes([0x83, 0x00, 0x04, 0x00, 0x52])
WRITE_REQUEST = bytes([0x83, 0x00, 0x04, 0x00, 0x12])
WRITE_RESPONSE = bytes([0x01, 0x00, 0x04, 0x00, 0x13])


def qemu_bytes(path: Path) -> tuple[list[float], bytes, list[float], bytes]:
    """(times, bytes) received by the guest and sent by it, both UARTs (the console is
    quiet while a multitest runs, apart from the guest's prints)."""
    rx_t, rx, tx_t, tx = [], bytearray(), [], bytearray()
    pat = re.compile(r"\d+@(\d+\.\d+):cmsdk_apb_uart_(receive|tx) .*character (0x[0-9a-f]+)")
    for line in path.read_text(errors="replace").splitlines():
        m = pat.match(line)
        if m:
            t, b = float(m.group(1)), int(m.group(3), 16)
            if m.group(2) == "receive":
                rx_t.append(t)
                rx.append(b)
            else:
                tx_t.append(t)
                tx.append(b)
    return rx_t, bytes(rx), tx_t, bytes(tx)


def vlink_to_board(path: Path) -> list[tuple[float, str]]:
    """(time, ACL data hex) of first fragments the board's controller (hci0) sent it."""
    out = []
    pat = re.compile(
        r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*\[hci0\] CONTROLLER -> HOST: "
        r"ACL: .*pb=2.*data=([0-9a-f]*)"
    )
    for line in path.read_text(errors="replace").splitlines():
        m = pat.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((t, m.group(2)))
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    drains = []
    for out in sorted(Path(sys.argv[1]).glob("*.out")):
        base = out.with_suffix("")
        ok = "FAIL" not in out.read_text()
        rx_t, rx, tx_t, tx = qemu_bytes(base.with_suffix(".qemu.log"))
        requests = [t for t, d in vlink_to_board(base.with_suffix(".vlink.log"))
                    if d.startswith(WRITE_REQUEST.hex())]
        i0, i1, it = rx.find(WRITE_COMMAND), rx.find(WRITE_REQUEST), tx.find(WRITE_RESPONSE)
        if not requests or i0 < 0 or i1 < 0:
            print(f"{base.name}: {'pass' if ok else 'FAIL'}, no Write Request found")
            continue
        drain = rx_t[i1] - rx_t[i0]
        drains.append(drain)
        waited = rx_t[i1] - requests[0]
        answer = f"{tx_t[it] - requests[0]:.2f} s" if it >= 0 else "never"
        print(
            f"{base.name}: {'pass' if ok else 'FAIL'}; {i1 - i0} bytes taken in {drain:.2f} s; "
            f"the Write Request waited {waited:.2f} s; Write Response sent {answer} after it"
        )
    if drains:
        print(f"median {statistics.median(drains):.2f} s, {min(drains):.2f}-{max(drains):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
