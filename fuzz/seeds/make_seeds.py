#!/usr/bin/env python3
"""Writes starting inputs for the `controller` fuzz target into fuzz/seeds/controller/.

Each input is a mode byte (1 advertise, 2 scan, 4 active scan, 8 connect, 0x10 controller
falls silent) and then chunks of controller bytes, each behind its length byte. The seeds are
well-formed conversations (a connection, ATT requests, advertising reports, a disconnection)
so the fuzzer starts from deep inside the host instead of having to find every header itself.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "controller")


def event(code: int, params: bytes) -> bytes:
    return bytes([0x04, code, len(params)]) + params


def le_meta(sub: int, params: bytes) -> bytes:
    return event(0x3E, bytes([sub]) + params)


def conn_complete(handle: int, role: int) -> bytes:
    # status, handle, role, peer addr type, peer addr, interval, latency, timeout, clock accuracy
    return le_meta(0x01, struct.pack("<BHBB6sHHHB", 0, handle, role, 0, bytes(range(1, 7)), 24, 0, 400, 0))


def acl(handle: int, l2cap_cid: int, payload: bytes) -> bytes:
    body = struct.pack("<HH", len(payload), l2cap_cid) + payload
    return bytes([0x02]) + struct.pack("<HH", handle | 0x2000, len(body)) + body


def adv_report(adv_type: int, data: bytes) -> bytes:
    return le_meta(0x02, bytes([1, adv_type, 0]) + bytes(range(1, 7)) + bytes([len(data)]) + data + bytes([0xC0]))


def disconn(handle: int) -> bytes:
    return event(0x05, struct.pack("<BHB", 0, handle, 0x13))


def chunks(*packets: bytes) -> bytes:
    out = b""
    for p in packets:
        while p:
            out += bytes([min(len(p), 255)]) + p[:255]
            p = p[255:]
    return out


ATT = 0x0004
SEEDS = {
    "scan_reports": bytes([0x06]) + chunks(adv_report(0, b"\x02\x01\x06\x03\x09ab"), adv_report(4, b"\x03\x09cd")),
    "peripheral_att": bytes([0x01])
    + chunks(
        conn_complete(1, 1),
        acl(1, ATT, b"\x02\x00\x02"),  # Exchange MTU 512
        acl(1, ATT, b"\x10\x01\x00\xff\xff\x00\x28"),  # Read By Group Type: primary services
        acl(1, ATT, b"\x08\x01\x00\xff\xff\x03\x28"),  # Read By Type: characteristics
        acl(1, ATT, b"\x0a\x03\x00"),  # Read
        acl(1, ATT, b"\x12\x03\x00hello"),  # Write
        acl(1, 0x0005, b"\x12\x01\x08\x00\x10\x00\x20\x00\x00\x00\x90\x01"),  # conn param update req
        disconn(1),
    ),
    "central_connect": bytes([0x08]) + chunks(conn_complete(2, 0), acl(2, ATT, b"\x1b\x03\x00hi"), disconn(2)),
    "silent_controller": bytes([0x31]) + chunks(conn_complete(1, 1), acl(1, ATT, b"\x02\x00\x02")),
    # A peer's Disconnection Request for the signalling, ATT and SMP channels: NimBLE deleted
    # the channel (and crashed for the signalling one) until src/hci/l2cap_guard.rs.
    "regression_fixed_channel_disconnect": bytes([0x01])
    + chunks(
        conn_complete(1, 1),
        acl(1, 0x0005, b"\x06\x01\x04\x00\x05\x00\x05\x00"),
        acl(1, 0x0005, b"\x06\x02\x04\x00\x04\x00\x04\x00"),
        acl(1, 0x0005, b"\x06\x03\x04\x00\x06\x00\x06\x00"),
        acl(1, ATT, b"\x0a\x03\x00"),  # Read
        disconn(1),
    ),
}


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
