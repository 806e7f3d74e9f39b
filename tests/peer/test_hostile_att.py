"""A hostile ATT client against our GATT server (Core v5.x Vol 3 Part F).

A Bumble host connects to the firmware (tests/peer/hostile.py's TARGET) and sends raw ATT PDUs
on CID 4, bypassing Bumble's own ATT code: every request opcode with a truncated body, an empty
one and one longer than its format; handles 0, unknown and past the end of the database;
Exchange MTU below 23, at 0xFFFF, malformed and sent twice; Read Blob and Prepare Write with
offsets past the value; a prepare-write queue flood; writes to the read-only and the
encryption-only characteristics on an unencrypted link; requests sent while one is pending;
unknown opcodes with and without the command bit; responses, notifications and indications
nobody asked for. Each answer is checked against the spec (the Error Response's opcode, handle
and code, or silence for a command), and no GATTS_WRITE may reach the script for a refused
write. A witness keeps its own connection and checks the firmware intact after each group.

Where NimBLE answers other than the spec asks, the case tolerates NimBLE's answer, counts it
as a deviation in build/hostile-summary.json and says why in its note:

- A request shorter than its fixed part (an empty body included) gets no answer at all:
  ble_att_svr.c pulls up the fixed part, and when that fails with BLE_HS_EBADDATA the error
  code stays 0, which ble_att_svr_tx_rsp() takes as "send nothing". The spec's answer is an
  Error Response with Invalid PDU (0x04); a client waits for its 30 s transaction timeout.
- An ATT PDU longer than the bearer's ATT_MTU is dropped by ble_l2cap.c (l2cap_hdr.len >
  MTU) before ATT sees it; the spec has no answer for a PDU the client may not send, so this
  is counted as refused.

Run: UBT_FIRMWARE=build/unix/micropython .cache/venv/bin/python -m pytest -q \
         tests/peer/test_hostile_att.py
"""

from __future__ import annotations

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fwproc import run_async  # noqa: E402
from hostile import (ATT_CID, LONG_VALUE, NONE, RESULTS, RW_VALUE, Case,  # noqa: E402
                     Prefix, att_error, record, run_cases, session, value_hash)

# ATT error codes (Vol 3 Part F 3.4.1.1).
INVALID_HANDLE = 0x01
READ_NOT_PERMITTED = 0x02
WRITE_NOT_PERMITTED = 0x03
INVALID_PDU = 0x04
INSUFFICIENT_AUTHENTICATION = 0x05
REQUEST_NOT_SUPPORTED = 0x06
INVALID_OFFSET = 0x07
PREPARE_QUEUE_FULL = 0x09
ATTRIBUTE_NOT_FOUND = 0x0A
ATTRIBUTE_NOT_LONG = 0x0B
INVALID_ATTRIBUTE_VALUE_LENGTH = 0x0D
INSUFFICIENT_ENCRYPTION = 0x0F
UNSUPPORTED_GROUP_TYPE = 0x10
INSUFFICIENT_RESOURCES = 0x11

TRUNCATED_NOTE = ('NimBLE sends nothing for a request shorter than its fixed part '
                  '(ble_att_svr_pullup_req_base leaves the error 0); spec: Invalid PDU')

# Each request opcode and a well-formed body for it (handles filled in per run).
REQUESTS = {
    'exchange_mtu': (0x02, lambda h: struct.pack('<H', 23)),
    'find_information': (0x04, lambda h: struct.pack('<HH', 1, 0xFFFF)),
    'find_by_type_value': (0x06, lambda h: struct.pack('<HHH', 1, 0xFFFF, 0x2800) + b'\x00\x18'),
    'read_by_type': (0x08, lambda h: struct.pack('<HHH', 1, 0xFFFF, 0x2803)),
    'read': (0x0A, lambda h: struct.pack('<H', h['ro'])),
    'read_blob': (0x0C, lambda h: struct.pack('<HH', h['long'], 22)),
    'read_multiple': (0x0E, lambda h: struct.pack('<HH', h['ro'], h['rw'])),
    'read_by_group_type': (0x10, lambda h: struct.pack('<HHH', 1, 0xFFFF, 0x2800)),
    'write': (0x12, lambda h: struct.pack('<H', h['rw']) + RW_VALUE),
    'prepare_write': (0x16, lambda h: struct.pack('<HH', h['rw'], 0) + b'x'),
    'execute_write': (0x18, lambda h: b'\x00'),
}
# The fixed part of each request's body: shorter is truncated.
FIXED = {0x02: 2, 0x04: 4, 0x06: 6, 0x08: 6, 0x0A: 2, 0x0C: 4, 0x0E: 4, 0x10: 6, 0x12: 2,
         0x16: 4, 0x18: 1}
READ_MULTIPLE_NOTE = ('NimBLE answers a Read Multiple with fewer than two handles '
                      '(ble_att_svr_rx_read_mult reads the handles there are); spec: Invalid PDU')


def malformed_cases(h) -> list[Case]:
    cases = []
    for name, (op, body) in REQUESTS.items():
        full = body(h)
        fixed = FIXED[op]
        tolerate, note = (NONE,), TRUNCATED_NOTE
        if op == 0x0E:
            tolerate, note = (Prefix(b'\x0f'),), READ_MULTIPLE_NOTE
        cases.append(Case(f'{name}_empty', bytes([op]), want=(att_error(op, 0, INVALID_PDU),),
                          tolerate=tolerate, note=note))
        if fixed > 1:
            cases.append(Case(f'{name}_truncated', bytes([op]) + full[:fixed - 1],
                              want=(att_error(op, 0, INVALID_PDU),), tolerate=tolerate,
                              note=note))
        # Longer than ATT_MTU (23 before any exchange): dropped below ATT.
        cases.append(Case(f'{name}_over_mtu', bytes([op]) + full + bytes(40), want=(NONE,)))
    # Within ATT_MTU but longer than the format: the spec's Invalid PDU, or the trailing
    # bytes ignored (a normal answer).
    cases += [
        Case('read_trailing_bytes', b'\x0a' + struct.pack('<H', h['ro']) + b'\x00\x00',
             want=(att_error(0x0A, h['ro'], INVALID_PDU), Prefix(b'\x0b'))),
        Case('read_blob_trailing_bytes', b'\x0c' + struct.pack('<HH', h['long'], 0) + b'\x01',
             want=(att_error(0x0C, h['long'], INVALID_PDU), Prefix(b'\x0d'))),
        Case('exchange_mtu_trailing_bytes', b'\x02\x17\x00\x00',
             want=(att_error(0x02, 0, INVALID_PDU), Prefix(b'\x03'))),
        Case('execute_write_trailing_bytes', b'\x18\x00\x00',
             want=(att_error(0x18, 0, INVALID_PDU), b'\x19')),
        # A 128-bit UUID cut to 5 bytes: neither 2 nor 16.
        Case('read_by_type_odd_uuid', b'\x08' + struct.pack('<HH', 1, 0xFFFF) + bytes(5),
             want=(att_error(0x08, 1, INVALID_PDU), att_error(0x08, 0, INVALID_PDU)),
             tolerate=(NONE,), note='NimBLE drops a UUID neither 2 nor 16 bytes long'),
        Case('read_by_group_type_odd_uuid', b'\x10' + struct.pack('<HH', 1, 0xFFFF) + bytes(5),
             want=(att_error(0x10, 1, INVALID_PDU), att_error(0x10, 0, INVALID_PDU)),
             tolerate=(NONE,), note='NimBLE drops a UUID neither 2 nor 16 bytes long'),
        Case('read_multiple_one_handle', b'\x0e' + struct.pack('<H', h['ro']),
             want=(att_error(0x0E, 0, INVALID_PDU),), tolerate=(Prefix(b'\x0f'),),
             note=READ_MULTIPLE_NOTE),
        # Read Multiple Variable Length (an EATT-era request) is not built into our NimBLE:
        # Request Not Supported, whatever the body.
        Case('read_multiple_variable', b'\x20' + struct.pack('<HH', h['ro'], h['rw']),
             want=(att_error(0x20, 0, REQUEST_NOT_SUPPORTED),)),
        Case('read_multiple_variable_empty', b'\x20',
             want=(att_error(0x20, 0, REQUEST_NOT_SUPPORTED),
                   att_error(0x20, 0, INVALID_PDU))),
        Case('read_multiple_variable_handle_zero', b'\x20' + struct.pack('<HH', h['ro'], 0),
             want=(att_error(0x20, 0, REQUEST_NOT_SUPPORTED),
                   att_error(0x20, 0, INVALID_HANDLE))),
        Case('read_multiple_odd_length', b'\x0e' + struct.pack('<HH', h['ro'], h['rw']) + b'\x01',
             want=(att_error(0x0E, 0, INVALID_PDU), att_error(0x0E, h['ro'], INVALID_PDU),
                   Prefix(b'\x0f'))),
    ]
    return cases


def handle_cases(h) -> list[Case]:
    past_end = h['noti'] + 2   # after the last attribute (the notify value's CCCD)
    cases = []
    for label, handle in (('zero', 0), ('past_end', past_end), ('ffff', 0xFFFF)):
        code = INVALID_HANDLE
        cases += [
            Case(f'read_handle_{label}', b'\x0a' + struct.pack('<H', handle),
                 want=(att_error(0x0A, handle, code),)),
            Case(f'read_blob_handle_{label}', b'\x0c' + struct.pack('<HH', handle, 0),
                 want=(att_error(0x0C, handle, code),)),
            Case(f'write_handle_{label}', b'\x12' + struct.pack('<H', handle) + b'zz',
                 want=(att_error(0x12, handle, code),)),
            Case(f'prepare_write_handle_{label}', b'\x16' + struct.pack('<HH', handle, 0) + b'z',
                 want=(att_error(0x16, handle, code),)),
            Case(f'write_command_handle_{label}', b'\x52' + struct.pack('<H', handle) + b'zz',
                 want=(NONE,)),
            Case(f'read_multiple_handle_{label}', b'\x0e' + struct.pack('<HH', h['ro'], handle),
                 want=(att_error(0x0E, handle, code),)),
        ]
    cases += [
        # Ranges: a start handle of 0 or above the end handle is Invalid Handle (with the
        # start handle); a valid range with nothing in it is Attribute Not Found.
        Case('find_information_start_zero', b'\x04' + struct.pack('<HH', 0, 10),
             want=(att_error(0x04, 0, INVALID_HANDLE),)),
        Case('find_information_start_after_end', b'\x04' + struct.pack('<HH', 10, 5),
             want=(att_error(0x04, 10, INVALID_HANDLE),)),
        Case('find_information_past_end', b'\x04' + struct.pack('<HH', past_end, 0xFFFF),
             want=(att_error(0x04, past_end, ATTRIBUTE_NOT_FOUND),)),
        Case('read_by_type_start_zero', b'\x08' + struct.pack('<HHH', 0, 10, 0x2803),
             want=(att_error(0x08, 0, INVALID_HANDLE),)),
        Case('read_by_type_start_after_end', b'\x08' + struct.pack('<HHH', 10, 5, 0x2803),
             want=(att_error(0x08, 10, INVALID_HANDLE),)),
        Case('read_by_type_past_end', b'\x08' + struct.pack('<HHH', past_end, 0xFFFF, 0x2803),
             want=(att_error(0x08, past_end, ATTRIBUTE_NOT_FOUND),)),
        Case('read_by_group_type_start_zero', b'\x10' + struct.pack('<HHH', 0, 10, 0x2800),
             want=(att_error(0x10, 0, INVALID_HANDLE),)),
        Case('read_by_group_type_start_after_end', b'\x10' + struct.pack('<HHH', 10, 5, 0x2800),
             want=(att_error(0x10, 10, INVALID_HANDLE),)),
        Case('read_by_group_type_past_end',
             b'\x10' + struct.pack('<HHH', past_end, 0xFFFF, 0x2800),
             want=(att_error(0x10, past_end, ATTRIBUTE_NOT_FOUND),)),
        Case('read_by_group_type_not_a_group', b'\x10' + struct.pack('<HHH', 1, 0xFFFF, 0x2803),
             want=(att_error(0x10, 1, UNSUPPORTED_GROUP_TYPE),)),
        Case('find_by_type_value_start_zero',
             b'\x06' + struct.pack('<HHH', 0, 10, 0x2800) + b'\x00\x18',
             want=(att_error(0x06, 0, INVALID_HANDLE),)),
        Case('find_by_type_value_past_end',
             b'\x06' + struct.pack('<HHH', past_end, 0xFFFF, 0x2800) + b'\x00\x18',
             want=(att_error(0x06, past_end, ATTRIBUTE_NOT_FOUND),)),
    ]
    return cases


def permission_cases(h) -> list[Case]:
    # An unencrypted link to an unbonded peer: Insufficient Authentication (no LTK), or
    # Insufficient Encryption (an LTK exists); Vol 3 Part C 10.3.1.
    no_enc = (INSUFFICIENT_AUTHENTICATION, INSUFFICIENT_ENCRYPTION)
    cases = [
        Case('write_read_only', b'\x12' + struct.pack('<H', h['ro']) + b'no',
             want=(att_error(0x12, h['ro'], WRITE_NOT_PERMITTED),)),
        Case('prepare_write_read_only', b'\x16' + struct.pack('<HH', h['ro'], 0) + b'no',
             want=(att_error(0x16, h['ro'], WRITE_NOT_PERMITTED),)),
        Case('write_command_read_only', b'\x52' + struct.pack('<H', h['ro']) + b'no',
             want=(NONE,)),
        Case('signed_write_read_only', b'\xd2' + struct.pack('<H', h['ro']) + b'no' + bytes(12),
             want=(NONE,)),
        # No CSRK was ever exchanged: a signed write cannot be verified and must not land.
        Case('signed_write_rw_bogus_signature',
             b'\xd2' + struct.pack('<H', h['rw']) + b'forged' + bytes(12), want=(NONE,)),
        # The service declaration and a characteristic declaration are read-only.
        Case('write_service_declaration', b'\x12' + struct.pack('<H', h['long'] - 2) + b'\x00',
             want=(att_error(0x12, h['long'] - 2, WRITE_NOT_PERMITTED),)),
        Case('write_characteristic_declaration',
             b'\x12' + struct.pack('<H', h['long'] - 1) + b'\x00',
             want=(att_error(0x12, h['long'] - 1, WRITE_NOT_PERMITTED),)),
        Case('write_command_encrypted_only', b'\x52' + struct.pack('<H', h['enc']) + b'no',
             want=(NONE,)),
        Case('write_command_authenticated_only', b'\x52' + struct.pack('<H', h['auth']) + b'no',
             want=(NONE,)),
    ]
    for name in ('enc', 'auth'):
        handle = h[name]
        cases += [
            Case(f'read_{name}', b'\x0a' + struct.pack('<H', handle),
                 want=tuple(att_error(0x0A, handle, c) for c in no_enc)),
            Case(f'read_blob_{name}', b'\x0c' + struct.pack('<HH', handle, 0),
                 want=tuple(att_error(0x0C, handle, c) for c in no_enc)),
            Case(f'write_{name}', b'\x12' + struct.pack('<H', handle) + b'no',
                 want=tuple(att_error(0x12, handle, c) for c in no_enc)),
            Case(f'prepare_write_{name}', b'\x16' + struct.pack('<HH', handle, 0) + b'no',
                 want=tuple(att_error(0x16, handle, c) for c in no_enc)),
            Case(f'read_multiple_{name}', b'\x0e' + struct.pack('<HH', h['ro'], handle),
                 want=tuple(att_error(0x0E, handle, c) for c in no_enc)),
        ]
    return cases


def offset_cases(h) -> list[Case]:
    n = len(LONG_VALUE)
    return [
        Case('read_blob_offset_past_value', b'\x0c' + struct.pack('<HH', h['long'], n + 1),
             want=(att_error(0x0C, h['long'], INVALID_OFFSET),)),
        Case('read_blob_offset_ffff', b'\x0c' + struct.pack('<HH', h['long'], 0xFFFF),
             want=(att_error(0x0C, h['long'], INVALID_OFFSET),)),
        # At the end exactly: an empty part (Vol 3 Part F 3.4.4.5 allows only offsets
        # greater than the length to fail).
        Case('read_blob_offset_at_end', b'\x0c' + struct.pack('<HH', h['long'], n),
             want=(b'\x0d',)),
        # A value no longer than ATT_MTU - 1: Attribute Not Long is allowed, as is the value.
        Case('read_blob_short_value', b'\x0c' + struct.pack('<HH', h['ro'], 0),
             want=(att_error(0x0C, h['ro'], ATTRIBUTE_NOT_LONG), Prefix(b'\x0d'))),
        Case('read_blob_short_value_past_end', b'\x0c' + struct.pack('<HH', h['ro'], 100),
             want=(att_error(0x0C, h['ro'], ATTRIBUTE_NOT_LONG),
                   att_error(0x0C, h['ro'], INVALID_OFFSET))),
        # Prepare Write queues without checking; Execute Write reports the bad offset (or
        # the too-long result) and discards the whole queue.
        Case('prepare_write_offset_past_value',
             b'\x16' + struct.pack('<HH', h['rw'], 1000) + b'abc',
             want=(b'\x17' + struct.pack('<HH', h['rw'], 1000) + b'abc',
                   att_error(0x16, h['rw'], INVALID_OFFSET))),
        Case('execute_after_bad_offset', b'\x18\x01',
             want=(att_error(0x18, h['rw'], INVALID_OFFSET),
                   att_error(0x18, h['rw'], INVALID_ATTRIBUTE_VALUE_LENGTH), b'\x19')),
        Case('prepare_write_offset_ffff', b'\x16' + struct.pack('<HH', h['rw'], 0xFFFF) + b'a',
             want=(b'\x17' + struct.pack('<HH', h['rw'], 0xFFFF) + b'a',
                   att_error(0x16, h['rw'], INVALID_OFFSET))),
        Case('execute_after_offset_ffff', b'\x18\x01',
             want=(att_error(0x18, h['rw'], INVALID_OFFSET),
                   att_error(0x18, h['rw'], INVALID_ATTRIBUTE_VALUE_LENGTH), b'\x19')),
        # Nothing queued: executing or cancelling answers an empty Execute Write Response.
        Case('execute_with_empty_queue', b'\x18\x01', want=(b'\x19',)),
        Case('cancel_with_empty_queue', b'\x18\x00', want=(b'\x19',)),
        # Flags other than 0 and 1 are reserved.
        Case('execute_reserved_flags', b'\x18\x02',
             want=(att_error(0x18, 0, INVALID_PDU), b'\x19')),
    ]


def opcode_cases(h) -> list[Case]:
    cases = [
        # Requests nobody defined: Request Not Supported with handle 0 (Vol 3 Part F 3.4.9).
        Case('unknown_request_3f', b'\x3f\x01\x02',
             want=(att_error(0x3F, 0, REQUEST_NOT_SUPPORTED),)),
        Case('unknown_request_00', b'\x00',
             want=(att_error(0x00, 0, REQUEST_NOT_SUPPORTED),)),
        Case('unknown_request_signed_bit', b'\xbf\x01',
             want=(att_error(0xBF, 0, REQUEST_NOT_SUPPORTED),)),
        # Commands (bit 6 set) nobody defined are ignored.
        Case('unknown_command_7f', b'\x7f\x01\x02', want=(NONE,)),
        Case('unknown_command_signed_ff', b'\xff' + bytes(14), want=(NONE,)),
        Case('unknown_command_empty_40', b'\x40', want=(NONE,)),
        # Client-side PDUs the server did not ask for: ignored, no event.
        Case('unsolicited_read_response', b'\x0b' + b'surprise', want=(NONE,),
             forbid=(3, 15, 16, 28)),
        Case('unsolicited_error_response', att_error(0x0A, h['ro'], 0x01), want=(NONE,),
             forbid=(3, 15, 16, 28)),
        Case('unsolicited_confirmation', b'\x1e', want=(NONE,), forbid=(3, 20, 28)),
        Case('notification_truncated', b'\x1b\x01', want=(NONE,), forbid=(3, 18, 28)),
        Case('indication_truncated', b'\x1d', want=(NONE,), forbid=(3, 19, 28)),
        Case('write_response_unsolicited', b'\x13', want=(NONE,), forbid=(3, 17, 28)),
    ]
    return cases


async def pending_requests(s, link) -> list[str]:
    """Requests sent while one is pending (the client breaks Vol 3 Part F 3.3.2): each gets
    its own answer, in order, or the link drops."""
    h = s.handles
    failures = []
    for name, pdus, answers in (
        ('two_reads_back_to_back',
         [b'\x0a' + struct.pack('<H', h['ro']), b'\x0a' + struct.pack('<H', h['long'])],
         [b'\x0bread-only value', b'\x0b' + LONG_VALUE[:22]]),
        ('read_then_bad_write',
         [b'\x0a' + struct.pack('<H', h['ro']), b'\x12' + struct.pack('<H', h['ro']) + b'x'],
         [b'\x0bread-only value', att_error(0x12, h['ro'], WRITE_NOT_PERMITTED)]),
        ('ten_requests_at_once', [b'\x0a' + struct.pack('<H', h['ro'])] * 10,
         [b'\x0bread-only value'] * 10),
    ):
        link.drain(ATT_CID)
        for pdu in pdus:
            link.send(ATT_CID, pdu)
        got = []
        for _ in answers:
            answer = await link.recv(ATT_CID, 2.0)
            if answer is None:
                break
            got.append(answer)
        ok = got == answers or not link.alive
        record('att', f'pending_{name}', 'refused' if ok else 'failed')
        if not ok:
            failures.append(f'pending_{name}: got {[g.hex() for g in got]}')
        if not link.alive:
            link = await s.connect()
    return failures


async def prepare_flood(s, link) -> list[str]:
    """Prepare Write until the queue is full (Prepare Queue Full, 0x09), twice (cancelling
    in between must free every entry), then once more and let a disconnect free the queue."""
    h = s.handles
    failures = []
    counts = []
    for round_ in range(2):
        accepted = 0
        full = None
        for i in range(200):
            pdu = b'\x16' + struct.pack('<HH', h['rw'], i * 10) + b'0123456789'
            answer = await link.att(pdu)
            if answer == pdu[:1].replace(b'\x16', b'\x17') + pdu[1:]:
                accepted += 1
                continue
            full = answer
            break
        counts.append(accepted)
        # NimBLE keeps each prepared value in a block of the shared msys pool (12 blocks in
        # our build) and runs out of blocks before its 64 queue entries:
        # Insufficient Resources (0x11) instead of Prepare Queue Full (0x09).
        if full == att_error(0x16, h['rw'], PREPARE_QUEUE_FULL):
            verdict = 'refused'
        elif full == att_error(0x16, h['rw'], INSUFFICIENT_RESOURCES):
            verdict = 'deviation'
        else:
            verdict = 'failed'
        record('att', f'prepare_queue_flood_{round_}', verdict)
        if verdict == 'failed':
            failures.append(f'prepare flood {round_}: {accepted} accepted, then '
                            f'{full.hex() if full else full}')
        answer = await link.att(b'\x18\x00')
        if answer != b'\x19':
            failures.append(f'cancel after flood: {answer}')
    if counts[0] != counts[1]:
        failures.append(f'the queue shrank after a cancel: {counts}')
    # Fill it and drop the link with the queue full.
    for i in range(counts[0]):
        await link.att(b'\x16' + struct.pack('<HH', h['rw'], i) + b'q')
    await link.close()
    return failures


async def mtu_cases(s) -> list[str]:
    """Exchange MTU with a client MTU below 23 (ATT_MTU stays 23), 0xFFFF (ATT_MTU becomes our
    512), and a second exchange on the same link (answered or refused, ATT_MTU unchanged).
    ATT_MTU is measured by reading the 600-byte value: a Read Response carries ATT_MTU - 1
    bytes of it."""
    h = s.handles
    failures = []
    read_long = b'\x0a' + struct.pack('<H', h['long'])

    async def check(name, link, pdu, outcomes):
        """outcomes: (answer, ATT_MTU after it) pairs the spec allows."""
        answer = await link.att(pdu)
        value = await link.att(read_long)
        ok = any(answer == a and value == b'\x0b' + LONG_VALUE[:mtu - 1] for a, mtu in outcomes)
        record('att', name, 'refused' if ok else 'failed')
        if not ok:
            failures.append(f'{name}: answer {answer and answer.hex()}, read '
                            f'{value and len(value) - 1} bytes; want {outcomes}')

    for name, client_mtu in (('exchange_mtu_22', 22), ('exchange_mtu_0', 0)):
        link = await s.connect()
        await check(name, link, b'\x02' + struct.pack('<H', client_mtu),
                    [(b'\x03' + struct.pack('<H', 512), 23)])
        await link.close()
    link = await s.connect()
    await check('exchange_mtu_ffff', link, b'\x02\xff\xff',
                [(b'\x03' + struct.pack('<H', 512), 512)])
    # A second exchange (a client sends one per connection): refused with ATT_MTU kept, or
    # answered (NimBLE does) and ATT_MTU then the smaller of the two, on both sides alike.
    await check('exchange_mtu_twice', link, b'\x02\x40\x00',
                [(b'\x03' + struct.pack('<H', 512), 64),
                 (att_error(0x02, 0, REQUEST_NOT_SUPPORTED), 512)])
    await link.close()

    # An Exchange MTU Response nobody asked for (the firmware's client never sent a
    # request): ignored, or (NimBLE, ble_att_clt_rx_mtu) taken as the peer's MTU: the script
    # gets an _IRQ_MTU_EXCHANGED nobody started (with 23 on a fresh link; once the firmware
    # has answered an Exchange MTU Request, ATT_MTU really grows). A deviation.
    link = await s.connect()
    mark = len(s.fw.lines)
    answer = await link.att(b'\x03\x00\x02', 0.3)
    events = [ln for ln in s.events_since(mark, 21) if ln.split()[2] == str(link.fw_handle)]
    value = await link.att(read_long)
    if answer is None and not events and value == b'\x0b' + LONG_VALUE[:22]:
        verdict = 'refused'
    elif answer is None and value in (b'\x0b' + LONG_VALUE[:22], b'\x0b' + LONG_VALUE[:511]):
        verdict = 'deviation'
    else:
        verdict = 'failed'
        failures.append(f'unsolicited_mtu_response: {answer}, {events}, {value and len(value)}')
    record('att', 'unsolicited_mtu_response', verdict)
    await link.close()
    return failures


@run_async(150)
async def test_hostile_att(tmp_path):
    async with session(tmp_path) as s:
        h = s.handles
        failures = []
        link = None
        for group in (malformed_cases, handle_cases, permission_cases, offset_cases,
                      opcode_cases):
            link, f = await run_cases(s, 'att', ATT_CID, group(h), link)
            failures += [f'{group.__name__}: {x}' for x in f]
            await s.check_intact(conns=2 if link.alive else 1)
        failures += await pending_requests(s, link)
        failures += await prepare_flood(s, link)
        await s.check_intact()
        failures += await mtu_cases(s)
        await s.check_intact()
        # The writable value was never written by a refused or dropped write.
        assert s.expected['rw'] == value_hash(RW_VALUE)
        assert not failures, '\n'.join(failures)
        assert any(cat == 'att' for cat, _, _ in RESULTS)
