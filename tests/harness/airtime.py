"""Air time on an LE connection, after the Bluetooth Core specification (5.x, Vol 6 Part B).

Used twice: by the virtual controllers' radio model (`AirLink`, the `air-*` profiles in
vcontroller.py), which spaces data out as a radio would, and by `make bench`, which derives
each setting's throughput limit from the same rules (`stream_limit`). Both follow these rules:

* A packet on the 1M PHY is 1 byte of preamble, 4 of access address, 2 of header, the payload
  and 3 of CRC, at 8 us per byte (Part B 2.1, 2.4; Vol 6 Part A 3.2.1). On the 2M PHY the
  preamble is 2 bytes and a byte takes 4 us. An unencrypted link has no MIC.
* Within a connection event the central sends, the peripheral answers 150 us (T_IFS, Part B
  4.1.1) after the central's packet ends, the central sends again T_IFS after that, and so on
  (4.5.1). A packet with nothing to carry is an empty PDU (payload 0); each packet
  acknowledges the one before it. So each exchange, one packet each way, takes
  T(central) + T_IFS + T(peripheral) + T_IFS.
* Events start one connection interval apart (4.5.1). An event ends when neither side has
  more data, or when the next exchange would not end before the next event's anchor, or after
  the controller's bound on exchanges per event (a real part's scheduler limits its events).
* A payload is at most the link's effective maximum: 27 bytes until the Data Length Update
  procedure raises it (up to 251, 4.5.10). An L2CAP PDU longer than that goes out as several
  link-layer PDUs, the first marked "start", the rest "continuation".
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from typing import Callable, Iterable, Sequence

T_IFS_US = 150
PHY_1M = 1
PHY_2M = 2
# The LE payload bounds (Vol 6 Part B 4.5.10): the default and the largest.
MIN_PAYLOAD = 27
MAX_PAYLOAD = 251


def packet_time_us(payload: int, phy: int) -> int:
    """How long one link-layer packet with `payload` bytes is on the air."""
    if phy == PHY_2M:
        return (2 + 4 + 2 + payload + 3) * 4
    return (1 + 4 + 2 + payload + 3) * 8


def exchange_time_us(central_payload: int, central_phy: int, peripheral_payload: int, peripheral_phy: int) -> int:
    """One packet each way, each followed by the inter-frame space."""
    return (
        packet_time_us(central_payload, central_phy)
        + T_IFS_US
        + packet_time_us(peripheral_payload, peripheral_phy)
        + T_IFS_US
    )


def split(data: bytes, max_payload: int) -> list[bytes]:
    """`data` as link-layer payloads of at most `max_payload` bytes (one empty one for b'')."""
    if not data:
        return [b""]
    return [data[i : i + max_payload] for i in range(0, len(data), max_payload)]


def pack_event(
    interval_us: int,
    max_exchanges: int,
    central: Sequence[int],
    peripheral: Sequence[int],
    central_phy: int = PHY_1M,
    peripheral_phy: int = PHY_1M,
) -> tuple[int, int, int]:
    """One connection event with `central` and `peripheral` the payload sizes each side has
    queued, in order: returns (central packets sent, peripheral packets sent, microseconds
    used). Exchanges go on while either side has data, the next exchange ends within the
    interval, and the controller's bound allows."""
    sent_c = sent_p = 0
    used = 0
    exchanges = 0
    while exchanges < max_exchanges:
        c = central[sent_c] if sent_c < len(central) else None
        p = peripheral[sent_p] if sent_p < len(peripheral) else None
        if exchanges > 0 and c is None and p is None:
            break
        t = exchange_time_us(c or 0, central_phy, p or 0, peripheral_phy)
        if used + t > interval_us:
            break
        used += t
        exchanges += 1
        sent_c += c is not None
        sent_p += p is not None
    return sent_c, sent_p, used


def stream_limit(
    unit_payloads: Sequence[int],
    unit_bytes: int,
    interval_us: int,
    max_exchanges: int,
    phy: int = PHY_1M,
    ack_phy: int | None = None,
    from_central: bool = False,
) -> float:
    """The most application bytes per second one side can send when it always has data: each
    application unit of `unit_bytes` goes out as link-layer payloads of sizes `unit_payloads`
    (see `unit_packets`), the other side sends only empty packets. The steady state of
    `pack_event` over a whole number of units and events."""
    ack_phy = phy if ack_phy is None else ack_phy
    events = 64
    # More than the events can carry, so the stream never runs dry.
    queue = list(unit_payloads) * ((events * max_exchanges) // len(unit_payloads) + 2)
    done = 0
    for _ in range(events):
        rest = queue[done:]
        if from_central:
            n, _, _ = pack_event(interval_us, max_exchanges, rest, [], phy, ack_phy)
        else:
            _, n, _ = pack_event(interval_us, max_exchanges, [], rest, ack_phy, phy)
        done += n
    return done / len(unit_payloads) * unit_bytes / (events * interval_us / 1_000_000)


def unit_packets(l2cap_payloads: Iterable[int], max_payload: int) -> list[int]:
    """Link-layer payload sizes for a run of L2CAP PDUs (each `payload` bytes after the 4-byte
    basic header) on a link whose payloads hold `max_payload` bytes."""
    sizes: list[int] = []
    for payload in l2cap_payloads:
        total = 4 + payload
        while total > 0:
            sizes.append(min(total, max_payload))
            total -= max_payload
    return sizes


# ------------------------------------------------------------------------- the model


@dataclasses.dataclass
class LLPdu:
    payload: bytes
    start: bool  # LLID "start of an L2CAP message" (else a continuation)
    on_acked: Callable[[], None] | None  # the last fragment of a host ACL packet: its NOCP
    control: Callable[[], None] | None = None  # an LL control PDU: hands it to the peer


# The payload an LL control PDU takes on the air here: the largest common one (LL_ENC_REQ,
# opcode and 22 bytes of parameters); the exact size hardly matters next to the data.
LL_CONTROL_PAYLOAD = 23


@dataclasses.dataclass
class Side:
    """One end's transmitter: what it has queued, its PHY and its largest payload."""

    deliver: Callable[[bytes, bool], None]  # hands a received PDU to this end's host
    phy: int = PHY_1M
    max_tx_octets: int = MIN_PAYLOAD
    queue: collections.deque[LLPdu] = dataclasses.field(default_factory=collections.deque)


class AirLink:
    """The radio between one central and one peripheral: data queued at either end leaves in
    connection events, as `pack_event` packs them, and reaches the other end at the time the
    event's exchanges end. LL control PDUs go the same way, in order with the data (but a
    disconnection, whose sender forgets the link at once, stays on the controllers' line)."""

    def __init__(
        self,
        interval_us: int,
        max_exchanges: int,
        central: Side,
        peripheral: Side,
    ) -> None:
        self.interval_us = interval_us
        self.max_exchanges = max_exchanges
        self.central = central
        self.peripheral = peripheral
        self._loop = asyncio.get_running_loop()
        self._anchor0 = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        # Anchors count intervals from `_anchor0`; each is used by one event at most.
        self._last_anchor = -1
        self._next_anchor = 0
        self._closed = False
        # Counters for tests and the bench: events run and packets carried each way.
        self.events = 0
        self.packets = {True: 0, False: 0}
        # What each end's controller keeps about it (central: True), for the controllers.
        self.handles: dict[bool, tuple[object, object]] = {}

    def side(self, central: bool) -> Side:
        return self.central if central else self.peripheral

    def set_interval(self, interval_us: int) -> None:
        """A connection update: events from now on are `interval_us` apart."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.interval_us = interval_us
        self._anchor0 = self._loop.time()
        self._last_anchor = -1
        self._schedule_if_queued()

    def _schedule_if_queued(self) -> None:
        if self.central.queue or self.peripheral.queue:
            self._schedule()

    def send(self, from_central: bool, data: bytes, start: bool, on_acked: Callable[[], None] | None) -> None:
        """Queues one host ACL packet's bytes; `on_acked` runs once its last fragment is
        acknowledged."""
        if self._closed:
            return
        side = self.side(from_central)
        parts = split(data, side.max_tx_octets)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            side.queue.append(LLPdu(part, start and i == 0, on_acked if last else None))
        self._schedule()

    def send_control(self, from_central: bool, deliver: Callable[[], None]) -> None:
        """Queues an LL control PDU behind the data already queued that way, as a link layer
        sends it: so e.g. the peer learns that encryption started before it gets the data sent
        after it."""
        if self._closed:
            return
        self.side(from_central).queue.append(
            LLPdu(bytes(LL_CONTROL_PAYLOAD), False, None, control=deliver)
        )
        self._schedule()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.central.queue.clear()
        self.peripheral.queue.clear()

    def _schedule(self) -> None:
        """Arms the timer for the first anchor not yet past, if data waits and none is armed."""
        if self._timer is not None or self._closed:
            return
        interval = self.interval_us / 1_000_000
        k = -int(-(self._loop.time() - self._anchor0) // interval)
        self._arm(max(k, self._last_anchor + 1))

    def _arm(self, anchor: int) -> None:
        self._next_anchor = anchor
        when = self._anchor0 + anchor * self.interval_us / 1_000_000
        self._timer = self._loop.call_at(when, self._event)

    def _event(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._last_anchor = self._next_anchor
        self.events += 1
        c, p = self.central, self.peripheral
        n_c, n_p, used = pack_event(
            self.interval_us,
            self.max_exchanges,
            [len(pdu.payload) for pdu in c.queue],
            [len(pdu.payload) for pdu in p.queue],
            c.phy,
            p.phy,
        )
        from_c = [c.queue.popleft() for _ in range(n_c)]
        from_p = [p.queue.popleft() for _ in range(n_p)]
        self.packets[True] += n_c
        self.packets[False] += n_p
        if from_c or from_p:
            self._loop.call_later(used / 1_000_000, self._deliver, from_c, from_p)
        if c.queue or p.queue:
            # At the next anchor; a timer that fired late skips the anchors already past.
            interval = self.interval_us / 1_000_000
            late = int((self._loop.time() - self._anchor0) // interval)
            self._arm(max(self._last_anchor + 1, late + 1))

    def _deliver(self, from_c: list[LLPdu], from_p: list[LLPdu]) -> None:
        if self._closed:
            return
        # In the order they were on the air: central's, then peripheral's, exchange by
        # exchange; within one direction order is all that matters to either host.
        for pdu in from_c:
            if pdu.control is not None:
                pdu.control()
            else:
                self.peripheral.deliver(pdu.payload, pdu.start)
        for pdu in from_p:
            if pdu.control is not None:
                pdu.control()
            else:
                self.central.deliver(pdu.payload, pdu.start)
        for pdu in from_c + from_p:
            if pdu.on_acked is not None:
                pdu.on_acked()
