"""The stub's signatures and return types against the running module.

test_stubs.py checks names; this checks what a call looks like. A firmware script calls every
method of `BLE` (each overload) and the `UUID` constructor and operators on an active stack, over
a virtual controller, connected to a Bumble device that serves GATT, an L2CAP channel and
passkey pairing. The calls are written by hand (they need real handles, a connection and a
channel), but each is checked against stubs/bluetooth.pyi:

- its shape fits the stub: no more positional arguments than the stub allows, every required
  one given, keywords only where the stub names them;
- `type(result)` is one the stub's return annotation allows (so `gatts_write -> None` fails:
  the module returns `len(data)`);
- every overload of every method is called at least once, and once with the stub's largest
  number of positional arguments, and every parameter the stub lets a keyword name is named
  in some call: the module must accept all of these;
- one positional argument more than the stub allows raises the module's argument-count
  TypeError, and where the stub makes every parameter positional-only a keyword raises
  TypeError too (these probes are generated from the stub).

Run: .cache/venv/bin/python -m pytest tests/stubs -q    (needs build/unix/micropython)
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import sys
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'peer'))

from bumble import l2cap  # noqa: E402
from bumble.device import Device  # noqa: E402
from bumble.gatt import Characteristic, Service  # noqa: E402
from bumble.pairing import PairingConfig, PairingDelegate  # noqa: E402
from bumble.transport import open_transport  # noqa: E402

from vlink import VLink  # noqa: E402

import fwproc  # noqa: E402

STUB = os.path.join(ROOT, 'stubs', 'bluetooth.pyi')
PSM = 0x85
PASSKEY = 123456
# The module's own argument-count errors (py/argcheck.c, and config's), as opposed to a
# TypeError from converting one of the arguments.
ARITY_ERROR = re.compile(r'arguments|must query one param')
KEYWORD_ERROR = re.compile(r"doesn't take keyword arguments")
# Accepted and ignored, as MicroPython's C module does: `BLE(1)` is `BLE()`. The stub keeps
# the documented form.
LENIENT_ARITY = {'BLE.__init__'}
UUID_OPERATORS = {'__eq__': '==', '__lt__': '<', '__le__': '<=', '__gt__': '>', '__ge__': '>='}


# --- The stub ---------------------------------------------------------------------------------

@dataclass
class Signature:
    positional: list[str]  # positional-only and positional-or-keyword, in order
    keyword: set[str]  # names a keyword may use
    required_positional: int
    required_keyword: set[str]
    positional_only: bool  # no parameter can be given by keyword
    returns: ast.expr | None

    def fits(self, n_pos: int, keywords: list[str]) -> bool:
        if n_pos > len(self.positional):
            return False
        given = set(self.positional[:n_pos]) | set(keywords)
        if len(given) != n_pos + len(keywords) or not set(keywords) <= self.keyword:
            return False
        required = set(self.positional[:self.required_positional]) | self.required_keyword
        return required <= given


def signature(fn: ast.FunctionDef) -> Signature:
    a = fn.args
    pos = [p.arg for p in a.posonlyargs + a.args][1:]  # without self
    n_defaults = len(a.defaults)
    required_pos = len(pos) - n_defaults
    pos_kw = [p.arg for p in a.args if p.arg != 'self']
    kwonly = [p.arg for p in a.kwonlyargs]
    required_kw = {p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is None}
    assert a.vararg is None and a.kwarg is None, f'{fn.name}: *args/**kwargs are not checked'
    return Signature(pos, set(pos_kw + kwonly), required_pos, required_kw,
                     not pos_kw and not kwonly, fn.returns)


def stub_signatures() -> dict[str, list[Signature]]:
    """'BLE.method' / 'UUID.method' -> its overloads (one entry if not overloaded)."""
    with open(STUB) as f:
        tree = ast.parse(f.read())
    found: dict[str, list[Signature]] = {}
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name in ('BLE', 'UUID'):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef):
                    found.setdefault(f'{cls.name}.{fn.name}', []).append(signature(fn))
    return found


def allowed_types(node: ast.expr | None) -> set[str] | None:
    """Runtime type names (MicroPython's `type(x).__name__`) a return annotation allows; None
    for Any."""
    if node is None:
        raise AssertionError('a method in the stub has no return annotation')
    if isinstance(node, ast.Constant) and node.value is None:
        return {'NoneType'}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return allowed_types(ast.parse(node.value, mode='eval').body)
    if isinstance(node, ast.Name):
        simple = {'None': 'NoneType', 'bool': 'bool', 'int': 'int', 'bytes': 'bytes',
                  'tuple': 'tuple', 'Tuple': 'tuple', 'list': 'list', 'UUID': 'UUID',
                  'BLE': 'BLE', 'str': 'str'}
        if node.id == 'Any':
            return None
        assert node.id in simple, f'annotation {node.id} not known to this test'
        return {simple[node.id]}
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        outer = node.value.id
        if outer in ('Tuple', 'tuple'):
            return {'tuple'}
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer in ('Optional', 'Union'):
            types: set[str] = {'NoneType'} if outer == 'Optional' else set()
            for t in inner:
                sub = allowed_types(t)
                if sub is None:
                    return None
                types |= sub
            return types
    raise AssertionError(f'annotation {ast.unparse(node)} not known to this test')


# --- The firmware script ----------------------------------------------------------------------

# Every call goes through call()/new(); each prints one JSON line: what was called (method,
# number of positional arguments, keyword names) and the type of what came back.
SCRIPT_HEAD = r'''
import bluetooth
import json
import sys
import time
from bluetooth import BLE, UUID

PEER = bytes.fromhex(%(peer)r)
PSM = %(psm)d
PASSKEY = %(passkey)d
seen = []


# The key store for bonds (sec_type 1 and 2), which gap_unpair reads and deletes through.
bonds = {}


def irq(ev, data):
    seen.append((ev, tuple(bytes(x) if isinstance(x, memoryview) else x for x in data)))
    if ev == 29 and data[0] in (1, 2):  # _IRQ_GET_SECRET
        sec_type, index, key = data
        if key is None:
            found = [v for (t, _), v in sorted(bonds.items()) if t == sec_type]
            return found[index] if index < len(found) else None
        return bonds.get((sec_type, bytes(key)))
    if ev == 30 and data[0] in (1, 2):  # _IRQ_SET_SECRET
        sec_type, key, value = data
        if value is None:
            return bonds.pop((sec_type, bytes(key)), None) is not None
        bonds[(sec_type, bytes(key))] = bytes(value)
        return True


def wait_for(ev, start, timeout=10000):
    t0 = time.ticks_ms()
    while True:
        for i in range(start, len(seen)):
            if seen[i][0] == ev:
                return seen[i][1]
        if time.ticks_diff(time.ticks_ms(), t0) > timeout:
            print('TIMEOUT', ev, seen)
            sys.exit(1)
        time.sleep_ms(5)


def report(name, args, kw, result):
    print(json.dumps(['RET', name, len(args), sorted(kw), type(result).__name__]))
    return result


def call(name, *args, **kw):
    return report('BLE.' + name, args, kw, getattr(ble, name)(*args, **kw))


def new(cls, *args, **kw):
    return report(cls.__name__ + '.__init__', args, kw, cls(*args, **kw))


def probe(kind, name, f, *args, **kw):
    try:
        f(*args, **kw)
        print(json.dumps([kind, name, 'ok', '']))
    except Exception as e:
        print(json.dumps([kind, name, type(e).__name__, str(e)]))


u16 = new(UUID, 0x180F)
u128 = UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e')
report('UUID.__eq__', (u128,), (), u16 == u128)
report('UUID.__lt__', (u128,), (), u16 < u128)
report('UUID.__le__', (u128,), (), u16 <= u128)
report('UUID.__gt__', (u128,), (), u16 > u128)
report('UUID.__ge__', (u128,), (), u16 >= u128)
report('UUID.__hash__', (), (), hash(u16))

ble = new(BLE)
call('irq', irq)
call('active', True)
call('active')
call('config', 'gap_name')
call('config', gap_name=b'stub-signatures')
call('config', mtu=256, rxbuf=128, addr_mode=0, bond=False, le_secure=False)
call('config', 'le_data_length')
call('config', le_data_length=True, le_2m_phy=True)
# The peer asks for a passkey to be typed; we display it.
call('config', mitm=True, io=0)

FLAGS = bluetooth.FLAG_READ | bluetooth.FLAG_WRITE | bluetooth.FLAG_NOTIFY | bluetooth.FLAG_INDICATE
((h,),) = call('gatts_register_services', ((UUID(0x180F), ((UUID(0x2A19), FLAGS),)),))
call('gatts_set_buffer', h, 20)
call('gatts_set_buffer', h, 20, False)
call('gatts_write', h, b'12')
call('gatts_write', h, b'34', False)
call('gatts_read', h)

call('gap_advertise', interval_us=100000, adv_data=b'\x02\x01\x06', resp_data=b'',
     connectable=True)
call('gap_advertise', None)
call('gap_advertise', 100000, b'\x02\x01\x06')
call('gap_advertise', None)

call('gap_scan')
call('gap_scan', None)
m = len(seen)
call('gap_scan', 100, 1280000, 11250, False)
wait_for(6, m)

m = len(seen)
call('gap_connect', 0, PEER)
conn = wait_for(7, m)[0]

# The central's LL connection update; the controller reports the values in force.
m = len(seen)
call('gap_update_conn', conn, 30000, 30000)
assert wait_for(27, m)[1:] == (24, 0, 256, 0), seen[m:]
m = len(seen)
call('gap_update_conn', conn, 45000, 45000, 1, 3000)
assert wait_for(27, m)[1:] == (36, 1, 300, 0), seen[m:]

m = len(seen)
call('gattc_exchange_mtu', conn)
wait_for(21, m)
m = len(seen)
call('gattc_discover_services', conn)
wait_for(10, m)
m = len(seen)
call('gattc_discover_services', conn, UUID(0xFFE0))
wait_for(10, m)
m = len(seen)
call('gattc_discover_characteristics', conn, 1, 0xFFFF)
wait_for(12, m)
vh = [d[2] for ev, d in seen[m:] if ev == 11 and d[4] == UUID(0xFFE1)][0]
m = len(seen)
call('gattc_discover_characteristics', conn, 1, 0xFFFF, UUID(0xFFE1))
wait_for(12, m)
m = len(seen)
call('gattc_discover_descriptors', conn, 1, 0xFFFF)
wait_for(14, m)
m = len(seen)
call('gattc_read', conn, vh)
wait_for(16, m)
call('gattc_write', conn, vh, b'x')
m = len(seen)
call('gattc_write', conn, vh, b'y', 1)
wait_for(17, m)

call('gatts_notify', conn, h)
call('gatts_notify', conn, h, b'n')
# No _IRQ_GATTS_INDICATE_DONE to wait for: the peer never subscribed, and NimBLE reports a
# confirmation only from a subscribed client (ble_gattc_indicate_rx_rsp).
call('gatts_indicate', conn, h)
call('gatts_indicate', conn, h, b'i')

m = len(seen)
call('l2cap_connect', conn, PSM, 256)
cid = wait_for(23, m)[1]
call('l2cap_send', conn, cid, b'hello')
call('l2cap_recvinto', conn, cid, None)
call('l2cap_recvinto', conn, cid, bytearray(8))
m = len(seen)
call('l2cap_disconnect', conn, cid)
wait_for(24, m)
# The connector's channel is gone, so the one channel slot is free to listen.
call('l2cap_listen', PSM, 256)

m = len(seen)
call('gap_pair', conn)
action = wait_for(31, m)[1]
call('gap_passkey', conn, action, PASSKEY)
wait_for(28, m)

m = len(seen)
call('gap_disconnect', conn)
wait_for(8, m)
# The peer no longer advertises, so this connect stays pending until cancelled.
m = len(seen)
call('gap_connect', 0, PEER, 2000, None, None)
call('gap_connect', None)
wait_for(8, m)

# A bond for the peer as the store keeps it (key: address type, address least-significant
# byte first): unpairing it by address, then every bond (none left).
bonds[(1, bytes([0]) + bytes(reversed(PEER)))] = bytes(80)
call('gap_unpair', 0, PEER)
assert not bonds, bonds
call('gap_unpair')
'''

SCRIPT_TAIL = r'''
call('active', False)
print('END')
'''


def probes(sigs: dict[str, list[Signature]]) -> str:
    """Script lines: per method, one positional argument more than any overload allows; and a
    keyword where every overload is positional-only."""
    lines = []
    for name, overloads in sigs.items():
        cls, meth = name.split('.')
        if meth.startswith('__') and meth != '__init__':
            continue  # operators: called through their syntax above
        f = cls if meth == '__init__' else f'ble.{meth}'
        n = max(len(s.positional) for s in overloads) + 1
        lines.append(f'probe("ARITY", {name!r}, {f}, *([None] * {n}))')
        if all(s.positional_only for s in overloads):
            first = next((s.positional[0] for s in overloads if s.positional), 'x')
            lines.append(f'probe("KEYWORD", {name!r}, {f}, {first}=None)')
    return '\n'.join(lines) + '\n'


# --- The peer ---------------------------------------------------------------------------------

class FixedPasskey(PairingDelegate):
    """Types the passkey our firmware displays."""

    def __init__(self) -> None:
        super().__init__(PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY)

    async def get_number(self) -> int | None:
        return PASSKEY


async def start_peer(link: VLink):
    transport = await open_transport(f'serial:{link.paths[1]},1000000')
    device = Device.with_hci('peer', link.controllers[1].public_address,
                             transport.source, transport.sink)
    device.add_service(Service('FFE0', [Characteristic(
        'FFE1',
        Characteristic.Properties.READ | Characteristic.Properties.WRITE
        | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
        Characteristic.READABLE | Characteristic.WRITEABLE, b'value')]))
    device.pairing_config_factory = lambda _conn: PairingConfig(
        sc=False, mitm=True, bonding=False, delegate=FixedPasskey())
    await device.power_on()
    device.create_l2cap_server(
        spec=l2cap.LeCreditBasedChannelSpec(psm=PSM, mtu=256, mps=100, max_credits=8),
        handler=lambda channel: None)
    await device.start_advertising(auto_restart=False, own_address_type=0)
    return transport


async def run_script(tmp_path, sigs) -> list[list]:
    async with VLink(count=2) as link:
        transport = await start_peer(link)
        try:
            peer = str(link.controllers[1].public_address).split('/')[0].replace(':', '')
            script = (SCRIPT_HEAD % {'peer': peer, 'psm': PSM, 'passkey': PASSKEY}
                      + probes(sigs) + SCRIPT_TAIL)
            text = await fwproc.run_firmware(link.paths[0], script, tmp_path / 'sigs.py', 60)
        finally:
            await transport.close()
    return [json.loads(line) for line in text.splitlines() if line.startswith('[')]


def test_calls_match_the_stubs_signatures_and_return_types(tmp_path):
    assert os.path.exists(fwproc.FIRMWARE), 'build the firmware first (make unix)'
    sigs = stub_signatures()
    records = asyncio.run(run_script(tmp_path, sigs))
    problems = []

    called: dict[str, list[tuple[int, list[str]]]] = {}
    for kind, name, *rest in records:
        if kind != 'RET':
            continue
        n_pos, keywords, typename = rest
        called.setdefault(name, []).append((n_pos, keywords))
        fitting = [s for s in sigs.get(name, []) if s.fits(n_pos, keywords)]
        if not fitting:
            problems.append(f'{name} called with {n_pos} positional, keywords {keywords}: '
                            'no signature in the stub allows that')
            continue
        if name.endswith('.__init__'):
            ok = typename == name.split('.')[0]
        else:
            allowed = [allowed_types(s.returns) for s in fitting]
            ok = any(a is None or typename in a for a in allowed)
        if not ok:
            want = ' or '.join(ast.unparse(s.returns) for s in fitting)
            problems.append(f'{name} returned {typename}; the stub says {want}')

    for name, overloads in sigs.items():
        calls = called.get(name, [])
        for s in overloads:
            if not any(s.fits(n, kw) for n, kw in calls):
                problems.append(f'{name}: the script never calls the overload '
                                f'({", ".join(s.positional)}; {sorted(s.keyword)})')
        if name.split('.')[1] in UUID_OPERATORS or name == 'UUID.__hash__':
            continue  # called through their syntax
        # Every name the stub lets a keyword use, used as one, so the module must accept it.
        unused = set().union(*(s.keyword for s in overloads)) - {k for _, kw in calls for k in kw}
        if unused:
            problems.append(f'{name}: the stub allows keywords the script never uses: '
                            f'{sorted(unused)}')
        most = max(len(s.positional) for s in overloads)
        if calls and max(n for n, _ in calls) != most:
            problems.append(f'{name}: no call with the stub\'s {most} positional arguments')

    probed = {(r[0], r[1]): r[2:] for r in records if r[0] in ('ARITY', 'KEYWORD')}
    for name in sigs:
        if name.split('.')[1].startswith('__') and name.split('.')[1] != '__init__':
            continue
        outcome, message = probed.get(('ARITY', name), ('missing', ''))
        arity_error = outcome == 'TypeError' and ARITY_ERROR.search(message)
        if name in LENIENT_ARITY:
            if outcome != 'ok':
                problems.append(f'{name} with extra arguments: {outcome} {message} (the C '
                                'module ignores them; LENIENT_ARITY is out of date)')
        elif not arity_error:
            problems.append(f'{name} with one positional argument more than the stub allows: '
                            f'{outcome} {message!r}, not an argument-count TypeError')
        if all(s.positional_only for s in sigs[name]):
            outcome, message = probed.get(('KEYWORD', name), ('missing', ''))
            if name in LENIENT_ARITY:
                continue
            if not (outcome == 'TypeError' and KEYWORD_ERROR.search(message)):
                problems.append(f'{name} with a keyword (the stub allows none): '
                                f'{outcome} {message!r}')

    assert not problems, '\n'.join(problems)
