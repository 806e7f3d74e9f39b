"""A hostile L2CAP peer against our host (Core v5.x Vol 3 Part A): raw PDUs on the LE
signalling channel (CID 5) and on credit-based channels to the firmware's listener (PSM
0x0080, tests/peer/hostile.py's TARGET).

Cases: data on CIDs nobody opened; signalling commands with a wrong length field, cut short,
unknown, or only a peripheral may send; Disconnection Requests and credits for channels that
do not exist; LE Credit Based Connection Requests on a PSM nobody listens on, with bad source
CIDs, with MTU or MPS below the minimum of 23, and until the channels run out; on an open
channel, credits that overflow 65535, an SDU length larger than our MTU, a K-frame longer than
our MPS, more K-frames than credits and an SDU that overruns its announced length. Each answer
is checked against the spec (Command Reject with its reason, the connection response's result,
or the firmware closing the channel with a Disconnection Request), and afterwards the firmware
must be intact (hostile.Session.check_intact: values, witness link, memory).

Where NimBLE differs from the spec (counted as deviations in build/hostile-summary.json):

- A Disconnection Request for a channel that does not exist gets no answer (spec: Command
  Reject, invalid CID).
- LE Credit Based Connection Requests with MTU or MPS below 23 (even 0) are accepted
  (ble_l2cap_sig_coc_req_rx checks neither; spec: refuse, result 0x000B/0x000C). The test
  then makes the firmware send on such a channel: l2cap_send fails cleanly (OSError 12 or 22)
  or segments to the tiny MPS.
- On an open channel, a K-frame longer than our MPS and an SDU overrunning its announced
  length are dropped (ble_l2cap_rx / ble_l2cap_coc_rx_fn) and K-frames beyond the credits
  are delivered; the spec has the receiver close the channel. The channel still closes
  cleanly afterwards. Credits overflowing 65535 and an SDU length over our MTU do close it.

A Disconnection Request naming a fixed channel made NimBLE (ble_l2cap_sig_disc_req_rx, which
matches any channel) delete that channel from the link, and naming the signalling channel (5)
crashed the firmware with SIGSEGV. This suite found it; src/hci/l2cap_guard.rs now keeps such
requests from NimBLE and the host answers them with the Command Reject the spec asks for
(test_disconnect_request_for_signalling_channel, test_disconnect_request_for_att_and_smp_channels).

Run: UBT_FIRMWARE=build/unix/micropython .cache/venv/bin/python -m pytest -q \
         tests/peer/test_hostile_l2cap.py
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fwproc import run_async  # noqa: E402
from hostile import (LE_SIG_CID, NONE, PSM, Case, Prefix, record,  # noqa: E402
                     run_cases, session)

# Command Reject reasons (Vol 3 Part A 4.1) and LE credit-based connection results (4.23).
NOT_UNDERSTOOD = 0x0000
INVALID_CID = 0x0002
PSM_NOT_SUPPORTED = 0x0002
NO_RESOURCES = 0x0004
INVALID_SOURCE_CID = 0x0009
SOURCE_CID_IN_USE = 0x000A
UNACCEPTABLE_PARAMETERS = 0x000B
INVALID_PARAMETERS = 0x000C
MAX_CHANNELS = 8  # UBT_L2CAP_MAX_CHANNELS on Unix


def sig(code: int, ident: int, data: bytes, length: int | None = None) -> bytes:
    return struct.pack('<BBH', code, ident, len(data) if length is None else length) + data


def reject(ident: int, reason: int, data: bytes = b'') -> bytes:
    return sig(0x01, ident, struct.pack('<H', reason) + data)


def conn_req(ident, psm=PSM, scid=0x0040, mtu=100, mps=100, credits=10) -> bytes:
    return sig(0x14, ident, struct.pack('<HHHHH', psm, scid, mtu, mps, credits))


def conn_result(ident: int, result: int) -> Prefix:
    """A refusal: DCID, MTU, MPS and credits are 0 and only the result counts; matched on the
    header and the result at the end (checked by `refused_with`)."""
    return Prefix(struct.pack('<BBH', 0x15, ident, 10))


def parse_conn_rsp(pdu: bytes):
    code, ident, length, dcid, mtu, mps, credits, result = struct.unpack('<BBHHHHHH', pdu)
    assert code == 0x15 and length == 10, pdu.hex()
    return ident, dcid, mtu, mps, credits, result


def signalling_cases() -> list[Case]:
    cases = []
    # Data on CIDs nobody opened: dropped; NimBLE answers with a Command Reject "invalid CID"
    # (ble_l2cap_sig_reject_invalid_cid_tx), which the spec allows.
    for cid in (0x0003, 0x0007, 0x0020, 0x0040, 0x007F, 0xFFFF):
        cases.append(Case(f'data_on_unknown_cid_{cid:04x}', b'hello', send_cid=cid,
                          want=(NONE, Prefix(b'\x01'))))
    cases += [
        Case('unknown_command_code', sig(0x7F, 0x11, b'\x00\x00'),
             want=(reject(0x11, NOT_UNDERSTOOD),)),
        Case('classic_only_command', sig(0x02, 0x12, struct.pack('<HH', 0x0001, 0x0040)),
             want=(reject(0x12, NOT_UNDERSTOOD),)),
        # Only a peripheral sends this; the firmware is the peripheral here.
        Case('connection_parameter_update_from_central',
             sig(0x12, 0x13, struct.pack('<HHHH', 6, 6, 0, 100)),
             want=(reject(0x13, NOT_UNDERSTOOD),)),
        Case('length_field_too_long', sig(0x14, 0x14, b'\x80\x00\x40\x00', length=10),
             want=(NONE, Prefix(b'\x01\x14'))),
        Case('length_field_too_short', sig(0x06, 0x15, struct.pack('<HH', 0x40, 0x40), length=2),
             want=(NONE, Prefix(b'\x01\x15'))),
        Case('header_cut_short', b'\x14\x16\x0a', want=(NONE,)),
        Case('empty_signalling_pdu', b'', want=(NONE,)),
        Case('conn_req_missing_fields', sig(0x14, 0x17, struct.pack('<HHH', PSM, 0x40, 100)),
             want=(NONE, reject(0x17, NOT_UNDERSTOOD), Prefix(b'\x15\x17'))),
        # Disconnection Request for a channel that does not exist: Command Reject "invalid
        # CID in request" with the two CIDs (Vol 3 Part A 4.6). NimBLE's
        # ble_l2cap_sig_disc_req_rx returns without answering.
        Case('disconnect_unknown_channel', sig(0x06, 0x18, struct.pack('<HH', 0x0055, 0x0066)),
             want=(reject(0x18, INVALID_CID, struct.pack('<HH', 0x0055, 0x0066)),
                   reject(0x18, INVALID_CID, struct.pack('<HH', 0x0066, 0x0055))),
             tolerate=(NONE,), note='NimBLE sends nothing'),
        # Credits for a channel that does not exist, a response nobody asked for, and a
        # Command Reject out of the blue: ignored.
        Case('credits_unknown_channel', sig(0x16, 0x1A, struct.pack('<HH', 0x0055, 5)),
             want=(NONE,)),
        Case('unsolicited_conn_rsp', sig(0x15, 0x1B, bytes(10)), want=(NONE,)),
        Case('unsolicited_command_reject', reject(0x1C, NOT_UNDERSTOOD), want=(NONE,)),
        Case('unsolicited_disconnect_rsp', sig(0x07, 0x1D, struct.pack('<HH', 0x40, 0x40)),
             want=(NONE,)),
    ]
    return cases


async def expect_result(link, name, pdu, results, deviation=(), note=''):
    """Sends an LE Credit Based Connection Request; records whether the result is one of
    `results` (refused) or `deviation`; returns (verdict, parsed response)."""
    answer = await link.request(LE_SIG_CID, pdu)
    parsed = parse_conn_rsp(answer) if answer and answer[0] == 0x15 else None
    result = parsed[5] if parsed else None
    if result in results:
        verdict = 'refused'
    elif result in deviation:
        verdict = 'deviation'
    else:
        verdict = 'failed'
    record('l2cap', name, verdict)
    return verdict, parsed, answer


async def close_channel(s, link, scid: int, dcid: int, ident: int) -> bool:
    """The attacker closes a channel it opened; True if the firmware answered."""
    answer = await link.request(LE_SIG_CID, sig(0x06, ident, struct.pack('<HH', dcid, scid)))
    return answer == sig(0x07, ident, struct.pack('<HH', dcid, scid))


async def expect_channel_closed(s, link, scid: int, dcid: int, mark: int) -> bool:
    """The firmware closes the channel: a Disconnection Request (DCID = our CID, SCID = its
    CID), answered here; its script sees _IRQ_L2CAP_DISCONNECT. A dropped link also counts."""
    answer = await link.recv(LE_SIG_CID, 2.0)
    if answer is None:
        return not link.alive
    code, ident, length = struct.unpack('<BBH', answer[:4])
    if code != 0x06 or answer[4:] != struct.pack('<HH', scid, dcid):
        return False
    link.send(LE_SIG_CID, sig(0x07, ident, answer[4:]))
    for _ in range(50):
        if [ln for ln in s.events_since(mark, 24) if ln.split()[3] == str(dcid)]:
            return True
        await asyncio.sleep(0.02)
    return False


async def open_channel(link, scid, ident, mtu=100, mps=100, credits=10):
    link.tap(scid)
    answer = await link.request(LE_SIG_CID, conn_req(ident, scid=scid, mtu=mtu, mps=mps,
                                                     credits=credits))
    _, dcid, fw_mtu, fw_mps, fw_credits, result = parse_conn_rsp(answer)
    assert result == 0, answer.hex()
    return dcid, fw_mtu, fw_mps, fw_credits


@run_async(120)
async def test_hostile_l2cap(tmp_path):
    async with session(tmp_path) as s:
        failures = []
        link, f = await run_cases(s, 'l2cap', LE_SIG_CID, signalling_cases())
        failures += f
        await s.check_intact(conns=2 if link.alive else 1)
        if not link.alive:
            link = await s.connect()

        # --- connection requests ---------------------------------------------------------
        for name, pdu, results, deviation, note in (
            ('conn_unserved_psm', conn_req(0x21, psm=0x00F1), (PSM_NOT_SUPPORTED,), (), ''),
            ('conn_psm_zero', conn_req(0x22, psm=0), (PSM_NOT_SUPPORTED,), (), ''),
            ('conn_scid_zero', conn_req(0x23, scid=0), (INVALID_SOURCE_CID,), (), ''),
            ('conn_scid_fixed', conn_req(0x24, scid=0x0004), (INVALID_SOURCE_CID,), (), ''),
            ('conn_scid_past_dynamic', conn_req(0x25, scid=0x0080), (INVALID_SOURCE_CID,), (),
             ''),
        ):
            verdict, parsed, answer = await expect_result(link, name, pdu, results, deviation)
            if verdict == 'failed':
                failures.append(f'{name}: {answer and answer.hex()}')

        # MTU or MPS below 23 (Vol 3 Part A 4.22: both 23 or more).
        ident = 0x30
        for name, mtu, mps in (('conn_mtu_22', 22, 100), ('conn_mps_22', 100, 22),
                               ('conn_mps_0', 100, 0), ('conn_mtu_0', 0, 0)):
            ident += 1
            mark = len(s.fw.lines)
            link.tap(0x0041)
            # NimBLE accepts these (result 0): a deviation, checked below for safety.
            verdict, parsed, answer = await expect_result(
                link, name, conn_req(ident, scid=0x0041, mtu=mtu, mps=mps),
                (UNACCEPTABLE_PARAMETERS, INVALID_PARAMETERS), (0,))
            if parsed and parsed[5] == 0:
                # NimBLE accepts (ble_l2cap_sig_coc_req_rx checks neither): make the
                # firmware send on the channel; l2cap_send must fail cleanly or segment to
                # the tiny MPS, never hang or crash. Then close it.
                dcid = parsed[1]
                assert s.events_since(mark, 23), s.fw.lines[mark:]
                answer = await s.run(f'l2send {link.fw_handle} {dcid} 50')
                if answer == 'OK l2send':
                    frames = await link.silence(0x0041, 0.3)
                    assert frames and all(len(f) <= max(mps, 2) for f in frames), frames
                else:
                    assert answer in ('ERR l2send 12', 'ERR l2send 22'), answer
                assert await close_channel(s, link, 0x0041, dcid, ident + 0x40)
            if verdict == 'failed':
                failures.append(f'{name}: {answer and answer.hex()}')
        await s.check_intact(conns=2)

        # Source CID already in use on this link.
        dcid, fw_mtu, fw_mps, fw_credits = await open_channel(link, 0x0042, 0x40)
        verdict, parsed, answer = await expect_result(
            link, 'conn_scid_in_use', conn_req(0x41, scid=0x0042), (SOURCE_CID_IN_USE,))
        if verdict == 'failed':
            failures.append(f'conn_scid_in_use: {answer and answer.hex()}')
        assert await close_channel(s, link, 0x0042, dcid, 0x42)

        # Until the channels run out: MAX_CHANNELS open, the next gets No Resources.
        opened = []
        result = None
        for i in range(MAX_CHANNELS + 2):
            scid = 0x0050 + i
            link.tap(scid)
            answer = await link.request(LE_SIG_CID, conn_req(0x50 + i, scid=scid))
            _, dcid, _, _, _, result = parse_conn_rsp(answer)
            if result != 0:
                break
            opened.append((scid, dcid))
        ok = len(opened) == MAX_CHANNELS and result == NO_RESOURCES
        record('l2cap', 'conn_exhaust_channels', 'refused' if ok else 'failed')
        if not ok:
            failures.append(f'exhaust: {len(opened)} opened, then result {result}')
        # The witness still works while every channel is taken.
        await s.check_intact(conns=2)
        for i, (scid, dcid) in enumerate(opened):
            assert await close_channel(s, link, scid, dcid, 0x60 + i)

        # --- misbehaving on an open channel ----------------------------------------------
        async def misbehave(name, act, ident, delivered=False):
            scid = 0x0070 + ident % 16
            dcid, fw_mtu, fw_mps, fw_credits = await open_channel(link, scid, ident)
            mark = len(s.fw.lines)
            act(scid, dcid, fw_mtu, fw_mps, fw_credits)
            if await expect_channel_closed(s, link, scid, dcid, mark):
                record('l2cap', name, 'refused')
                return
            # NimBLE keeps the channel (see the module docstring): a deviation as long as the
            # channel still closes cleanly and no data of the bad frame reached the script
            # beyond what `delivered` allows.
            recv = s.events_since(mark, 25)
            closed = await close_channel(s, link, scid, dcid, ident + 0x80)
            if closed and (delivered or not recv):
                record('l2cap', name, 'deviation')
            else:
                record('l2cap', name, 'failed')
                failures.append(f'{name}: kept open, RECV {recv}, closed {closed}')

        def credits_overflow(scid, dcid, *_):
            # 10 credits given at connect + 65535: over 65535 (Vol 3 Part A 10.1).
            link.send(LE_SIG_CID, sig(0x16, 0x71, struct.pack('<HH', scid, 0xFFFF)))

        def sdu_over_mtu(scid, dcid, fw_mtu, *_):
            link.send(dcid, struct.pack('<H', fw_mtu + 1) + b'x' * 20)

        def kframe_over_mps(scid, dcid, fw_mtu, fw_mps, *_):
            link.send(dcid, struct.pack('<H', fw_mtu) + b'y' * (fw_mps - 1))

        def too_many_kframes(scid, dcid, fw_mtu, fw_mps, fw_credits):
            for _ in range(fw_credits + 1):
                link.send(dcid, struct.pack('<H', 2) + b'zz')

        def sdu_overrun(scid, dcid, *_):
            link.send(dcid, struct.pack('<H', 4) + b'0123456789')

        await misbehave('credits_overflow', credits_overflow, 0x71)
        await misbehave('sdu_length_over_mtu', sdu_over_mtu, 0x72)
        await misbehave('kframe_over_mps', kframe_over_mps, 0x73)
        await misbehave('kframes_beyond_credits', too_many_kframes, 0x74, delivered=True)
        await misbehave('sdu_overrun', sdu_overrun, 0x75)

        await link.close()
        await s.check_intact()
        assert not failures, '\n'.join(failures)


@run_async(60)
async def test_disconnect_request_for_signalling_channel(tmp_path):
    """A Disconnection Request naming the LE signalling channel itself (DCID = SCID = 5):
    the spec's answer is a Command Reject, reason 0x0002 (invalid CID). NimBLE alone deleted
    the signalling channel while handling the packet and the firmware died (SIGSEGV);
    src/hci/l2cap_guard.rs keeps the request from it, and the link goes on working."""
    async with session(tmp_path, witness=False) as s:
        link = await s.connect()
        answer = await link.request(LE_SIG_CID, sig(0x06, 0x09, struct.pack('<HH', 5, 5)))
        await asyncio.sleep(0.5)
        crashed = s.fw.proc.returncode is not None
        record('l2cap', 'disconnect_signalling_channel', 'failed' if crashed else 'refused')
        assert not crashed, f'firmware died: exit {s.fw.proc.returncode}'
        assert answer == reject(0x09, INVALID_CID, struct.pack('<HH', 5, 5)), answer
        await link.close()
        await s.check_intact(conns=0)


@run_async(60)
async def test_disconnect_request_for_att_and_smp_channels(tmp_path):
    """A Disconnection Request naming the ATT (4) or SMP (6) fixed channel: the spec's answer
    is a Command Reject "invalid CID". NimBLE alone (ble_l2cap_sig_disc_req_rx) answered with
    a Disconnection Response and deleted that fixed channel from the link (ATT or SMP on it was
    gone); src/hci/l2cap_guard.rs keeps the request from it and the host sends the reject."""
    async with session(tmp_path) as s:
        for cid in (4, 6):
            link = await s.connect()
            answer = await link.request(LE_SIG_CID, sig(0x06, 0x0A, struct.pack('<HH', cid, cid)))
            assert s.fw.proc.returncode is None
            ok = answer == reject(0x0A, INVALID_CID, struct.pack('<HH', cid, cid))
            record('l2cap', f'disconnect_fixed_channel_{cid}', 'refused' if ok else 'failed')
            assert ok, answer
            # ATT on that link still works, whichever channel was named.
            read = await link.att(b'\x0a' + struct.pack('<H', s.handles['ro']))
            assert read == b'\x0bread-only value', read
            await link.close()
            await s.check_intact()
