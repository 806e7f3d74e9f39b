"""A hostile SMP peer against our host's security manager (Core v5.x Vol 3 Part H).

A Bumble host connects to the firmware (tests/peer/hostile.py's TARGET, the responder) and
sends raw SMP PDUs on CID 6: commands out of order, unknown and cut short; a Pairing Request
with a maximum key size below 7 or above 16; in LE Secure Connections a public key that is not
on the P-256 curve (the invalid-curve attack, CVE-2018-5383) and the all-zero key; in legacy
pairing a wrong confirm value; a flood of Pairing Requests. Then, as central, it starts
encryption with a made-up LTK, EDIV and Rand (HCI LE Enable Encryption) that the firmware
never handed out: the firmware's host must answer the LTK request negatively and the link
must stay unencrypted. Each case checks the Pairing Failed reason the spec gives, that the
script sees no _IRQ_ENCRYPTION_UPDATE with encrypted=1, and the firmware intact.

Run: UBT_FIRMWARE=build/unix/micropython .cache/venv/bin/python -m pytest -q \
         tests/peer/test_hostile_smp.py
"""

from __future__ import annotations

import asyncio
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bumble import hci  # noqa: E402

from fwproc import run_async  # noqa: E402
from hostile import SMP_CID, record, session  # noqa: E402

# Pairing Failed reasons (Vol 3 Part H 3.5.5).
CONFIRM_VALUE_FAILED = 0x04
PAIRING_NOT_SUPPORTED = 0x05
ENCRYPTION_KEY_SIZE = 0x06
COMMAND_NOT_SUPPORTED = 0x07
UNSPECIFIED = 0x08
INVALID_PARAMETERS = 0x0A
DHKEY_CHECK_FAILED = 0x0B

# P-256's prime; a point (x, y) is on the curve when y^2 = x^3 - 3x + b (mod p).
P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def pairing_request(authreq=0x00, max_key=16, io=0x03) -> bytes:
    return bytes([0x01, io, 0x00, authreq, max_key, 0x00, 0x00])


def failed(reason: int) -> bytes:
    return bytes([0x05, reason])


def off_curve_key() -> bytes:
    x, y = 1, 1
    assert (y * y - (x ** 3 - 3 * x + P256_B)) % P256_P != 0
    return x.to_bytes(32, 'little') + y.to_bytes(32, 'little')


async def smp_exchange(link, pdus, wait=0.6) -> list[bytes]:
    """Sends each PDU in turn, collecting what comes back on SMP until it goes quiet."""
    got = []
    for pdu in pdus:
        link.send(SMP_CID, pdu)
        answer = await link.recv(SMP_CID, wait)
        while answer is not None:
            got.append(answer)
            answer = await link.recv(SMP_CID, 0.1)
    return got


@run_async(120)
async def test_hostile_smp(tmp_path):
    async with session(tmp_path) as s:
        failures = []

        async def case(name, pdus, want, tolerate=(), sc=False):
            """`want`/`tolerate`: acceptable last SMP PDUs the firmware sent (None: nothing)."""
            assert await s.run(f'sc {int(sc)}') == 'OK sc'
            link = await s.connect()
            mark = len(s.fw.lines)
            got = await smp_exchange(link, pdus)
            last = got[-1] if got else None
            enc = [ln for ln in s.events_since(mark, 28)
                   if ln.split()[2] == str(link.fw_handle) and ln.split()[3] == '1']
            if enc:
                verdict = 'failed'
            elif last in want or (not link.alive and 'drop' in want):
                verdict = 'refused'
            elif last in tolerate:
                verdict = 'deviation'
            else:
                verdict = 'failed'
            record("smp", name, verdict)
            if verdict == 'failed':
                failures.append(f'{name}: got {[g.hex() for g in got]}, enc {enc}')
            await link.close()
            return got

        # --- out of order, unknown, malformed --------------------------------------------
        out_of_order = {
            'confirm_first': b'\x03' + bytes(16),
            'random_first': b'\x04' + bytes(16),
            'public_key_first': b'\x0c' + off_curve_key(),
            'dhkey_check_first': b'\x0d' + bytes(16),
            'encryption_info_first': b'\x06' + bytes(16),
            'pairing_response_to_responder': bytes([0x02, 3, 0, 0, 16, 0, 0]),
        }
        for name, pdu in out_of_order.items():
            # NimBLE ignores a command that comes out of order when no pairing is under way
            # (ble_sm_rx finds no procedure) for all but a few codes; the spec's answer is
            # Pairing Failed (Unspecified Reason). A deviation.
            await case(name, [pdu], want=(failed(UNSPECIFIED), failed(COMMAND_NOT_SUPPORTED)),
                       tolerate=(None,))
        # A reserved code: Command Not Supported, or ignored.
        await case('unknown_code', [b'\x3f\x00'], want=(failed(COMMAND_NOT_SUPPORTED), None))
        # Cut short: NimBLE drops it (pull-up fails); spec: Pairing Failed, Invalid Parameters.
        await case('pairing_request_truncated', [b'\x01\x03\x00'],
                   want=(failed(INVALID_PARAMETERS), failed(UNSPECIFIED)), tolerate=(None,))
        await case('pairing_request_empty', [b'\x01'],
                   want=(failed(INVALID_PARAMETERS), failed(UNSPECIFIED)), tolerate=(None,))
        await case('empty_pdu', [b''], want=(None,))

        # --- key size ----------------------------------------------------------------------
        for size in (0, 6):
            await case(f'max_key_size_{size}', [pairing_request(max_key=size)],
                       want=(failed(ENCRYPTION_KEY_SIZE),), tolerate=(failed(INVALID_PARAMETERS),))
        await case('max_key_size_17', [pairing_request(max_key=17)],
                   want=(failed(INVALID_PARAMETERS), failed(ENCRYPTION_KEY_SIZE)))

        # --- LE Secure Connections: bad public keys ---------------------------------------
        sc_req = pairing_request(authreq=0x08)
        for name, key in (('public_key_off_curve', off_curve_key()),
                          ('public_key_all_zero', bytes(64))):
            await case(name, [sc_req, b'\x0c' + key],
                       want=(failed(INVALID_PARAMETERS), failed(DHKEY_CHECK_FAILED),
                             failed(UNSPECIFIED)), sc=True)

        # --- legacy pairing: a wrong confirm value ------------------------------------------
        await case('wrong_confirm_value', [pairing_request(), b'\x03' + bytes(range(16)),
                                           b'\x04' + bytes(range(16, 32))],
                   want=(failed(CONFIRM_VALUE_FAILED),))

        # --- a flood of Pairing Requests on one link ----------------------------------------
        link = await s.connect()
        mark = len(s.fw.lines)
        for _ in range(50):
            link.send(SMP_CID, pairing_request())
        await asyncio.sleep(1.0)
        got = link.drain(SMP_CID)
        enc = [ln for ln in s.events_since(mark, 28) if ln.split()[3] == '1']
        ok = (s.fw.proc.returncode is None and not enc
              and all(g[0] in (0x02, 0x05) for g in got))
        record('smp', 'pairing_request_flood', 'refused' if ok else 'failed')
        if not ok:
            failures.append(f'flood: {[g.hex() for g in got]}, {enc}')
        await link.close()
        await s.check_intact()

        # --- encryption with a made-up LTK, EDIV and Rand ------------------------------------
        link = await s.connect()
        mark = len(s.fw.lines)
        result = asyncio.get_running_loop().create_future()
        conn = link.connection
        conn.on('connection_encryption_change',
                lambda *a: result.done() or result.set_result(('change', conn.is_encrypted)))
        conn.on('connection_encryption_failure',
                lambda err=None: result.done() or result.set_result(('failure', err)))
        await s.attacker.send_command(hci.HCI_LE_Enable_Encryption_Command(
            connection_handle=conn.handle, random_number=bytes.fromhex('0123456789abcdef'),
            encrypted_diversifier=0xBEEF, long_term_key=bytes(range(16))))
        try:
            kind, detail = await asyncio.wait_for(result, 5)
        except asyncio.TimeoutError:
            kind, detail = 'timeout', None
        enc = [ln for ln in s.events_since(mark, 28) if ln.split()[3] == '1']
        ok = kind == 'failure' and not conn.is_encrypted and not enc
        record('smp', 'ltk_request_unknown_ediv_rand', 'refused' if ok else 'failed')
        if not ok:
            failures.append(f'ltk request: {kind} {detail} enc={conn.is_encrypted} {enc}')
        await link.close()

        await s.check_intact()
        assert not failures, '\n'.join(failures)
