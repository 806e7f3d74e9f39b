"""The module on an emulated Cortex-M4F: `make qemu`'s firmware (MicroPython's qemu port, board
ports/qemu/boards/MPS2_AN386) in qemu-system-arm, its HCI UART (the second -serial) on a virtual
controller, and a Bumble device beside it on the same link.

The firmware starts the stack, scans and finds the Bumble device, connects to it, discovers its
services and disconnects, all driven through MicroPython's raw REPL on the first -serial.

Run: make qemu && .cache/venv/bin/python -m pytest tests/qemu
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'harness'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'peer'))

from bumble import hci  # noqa: E402
from bumble.device import AdvertisingData  # noqa: E402

from vlink import VLink  # noqa: E402

from fwproc import bumble_device, run_async  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, 'tests'))
from multitest import qemu_command  # noqa: E402

FIRMWARE = os.path.join(ROOT, 'build', 'qemu', 'firmware.elf')
# The same firmware with a way to make the core panic (make qemu-panic-test).
PANIC_FIRMWARE = os.path.join(ROOT, 'build', 'qemu-panic-test', 'firmware.elf')
STEP_S = 30.0

# Busy-waits (the board has no `time` module) until `cond()` or `n` rounds; the host keeps
# running meanwhile because SysTick queues its polls.
PRELUDE = '''
import bluetooth
ble = bluetooth.BLE()
events = []
def irq(event, data):
    if event == 5:
        events.append((event, data[0], bytes(data[1]), bytes(data[4])))
    elif event == 7:
        events.append((event, data[0]))
    elif event == 9:
        events.append((event, data[3]))
    else:
        events.append((event,))
ble.irq(irq)
def wait_for(event, n=3000000):
    while n:
        for e in events:
            if e[0] == event:
                return e
        n -= 1
    return None
'''


class RawRepl:
    """MicroPython's raw REPL over a qemu process's stdio serial."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.buf = b''

    async def read_until(self, marker: bytes) -> bytes:
        assert self.proc.stdout is not None
        while marker not in self.buf:
            chunk = await asyncio.wait_for(self.proc.stdout.read(4096), STEP_S)
            if not chunk:
                raise AssertionError(f'qemu ended; output so far: {self.buf!r}')
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    async def enter(self) -> None:
        self.send(b'\r\x03\x01')
        await self.read_until(b'raw REPL; CTRL-B to exit\r\n>')

    async def soft_reset(self) -> None:
        """Ctrl-D in the raw REPL: a soft reset, back in the raw REPL."""
        self.send(b'\x04')
        await self.read_until(b'soft reboot\r\n')
        await self.read_until(b'raw REPL; CTRL-B to exit\r\n>')

    async def run(self, code: str) -> str:
        """Runs `code`; its output, or an AssertionError with the traceback."""
        self.start(code)
        return await self.result()

    def start(self, code: str) -> None:
        """Sends `code` to run; `result()` waits for its output."""
        self.send(code.encode() + b'\x04')

    async def result(self) -> str:
        """The output of the code `start()` sent, or an AssertionError with the traceback."""
        await self.read_until(b'OK')
        out = await self.read_until(b'\x04')
        err = await self.read_until(b'\x04')
        await self.read_until(b'>')
        if err:
            raise AssertionError(err.decode(errors='replace'))
        return out.decode(errors='replace').replace('\r\n', '\n')


async def start_qemu(link: VLink, firmware: str = FIRMWARE) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *qemu_command(firmware, 'stdio', link.paths[0]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)


@run_async(120)
async def test_soft_reset_while_connected_then_a_clean_session():
    """Ctrl-D while a Bumble central is connected: the reset stops the stack (the peer sees
    the host end the link, 0x13), the heap it swept is forgotten, and the next session starts,
    registers a service, advertises and is connected to again."""
    assert os.path.exists(FIRMWARE), f'{FIRMWARE} is missing: run make qemu'
    async with VLink(count=2) as link:
        async with bumble_device(link, name='central') as dev:
            proc = await start_qemu(link)
            try:
                repl = RawRepl(proc)
                await repl.enter()
                fw_addr = link.controllers[0].public_address
                session = PRELUDE + (
                    'print(ble.active(True))\n'
                    'ble.gatts_register_services(((bluetooth.UUID(0x181A), '
                    '((bluetooth.UUID(0x2A6E), bluetooth.FLAG_READ),)),))\n'
                    'ble.gap_advertise(20000, b"\\x02\\x01\\x06")\n')
                for round_ in range(2):
                    assert await repl.run(session) == 'True\n', round_
                    conn = await dev.connect(fw_addr, own_address_type=0, timeout=STEP_S)
                    assert await repl.run('print(wait_for(1) is not None)') == 'True\n'
                    ended = asyncio.get_running_loop().create_future()
                    conn.on('disconnection', lambda reason, f=ended: f.done() or f.set_result(reason))
                    await repl.soft_reset()
                    assert await asyncio.wait_for(ended, STEP_S) == 0x13
                    # A new VM: no BLE object yet, and the stack is off.
                    assert await repl.run(
                        'import bluetooth\nprint(bluetooth.BLE().active())') == 'False\n'
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()


@run_async(120)
async def test_cortex_m4f_firmware_scans_connects_and_discovers():
    assert shutil.which('qemu-system-arm'), 'qemu-system-arm is missing: run tools/deps.sh'
    assert os.path.exists(FIRMWARE), f'{FIRMWARE} is missing: run make qemu'
    async with VLink(count=2) as link:
        async with bumble_device(link, name='cortex-peer') as dev:
            dev.advertising_data = bytes(AdvertisingData([
                (AdvertisingData.FLAGS, bytes([0x06])),
                (AdvertisingData.COMPLETE_LOCAL_NAME, b'cortex-peer')]))
            await dev.start_advertising(auto_restart=False)
            peer_addr = bytes(reversed(bytes(link.controllers[1].public_address)))
            proc = await start_qemu(link)
            try:
                repl = RawRepl(proc)
                await repl.enter()
                assert await repl.run(PRELUDE) == ''
                assert await repl.run('print(ble.active(True))') == 'True\n'
                own = bytes(reversed(bytes(link.controllers[0].public_address)))
                assert await repl.run('print(ble.config("mac"))') == f'(0, {own!r})\n'

                out = await repl.run(
                    'ble.gap_scan(1000, 30000, 30000)\n'
                    'print(wait_for(6) is not None)\n'
                    'found = [e for e in events if e[0] == 5 and b"cortex-peer" in e[3]]\n'
                    'print(len(found) > 0, found[0][2] if found else None)\n')
                assert out == f'True\nTrue {peer_addr!r}\n', out

                out = await repl.run(
                    'events.clear()\n'
                    'ble.gap_connect(found[0][1], found[0][2])\n'
                    'connected = wait_for(7)\n'
                    'print(connected is not None)\n'
                    'conn = connected[1]\n')
                assert out == 'True\n', out
                out = await repl.run(
                    'ble.gattc_discover_services(conn)\n'
                    'print(wait_for(10) is not None)\n'
                    'print(sorted(str(e[1]) for e in events if e[0] == 9))\n'
                    'print(ble.gap_disconnect(conn), wait_for(8) is not None)\n'
                    'print(ble.active(False))\n')
                lines = out.splitlines()
                assert lines[0] == 'True', out
                assert 'UUID(0x1800)' in lines[1] and 'UUID(0x1801)' in lines[1], out
                assert lines[2:] == ['True True', 'False'], out
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()


# How long the controller sits on LE Set Advertising Enable before answering: long enough for a
# Ctrl-C sent once the command arrives to reach the board while its host waits, and under
# NimBLE's 2 s command timeout.
SLOW_ANSWER_S = 1.0


def slow_to_enable_advertising(controller, asked: asyncio.Event) -> None:
    """Makes `controller` answer LE Set Advertising Enable (on) only SLOW_ANSWER_S after it
    arrives; `asked` is set when it does."""
    on_command = controller.on_hci_command_packet
    loop = asyncio.get_running_loop()

    def delayed(command: hci.HCI_Command) -> None:
        if isinstance(command, hci.HCI_LE_Set_Advertising_Enable_Command) \
                and command.advertising_enable:
            asked.set()
            loop.call_later(SLOW_ANSWER_S, on_command, command)
        else:
            on_command(command)

    controller.on_hci_command_packet = delayed


# Ctrl-C lands while gap_advertise waits for the controller's answer. After the call returns
# (step 1), the loop's first branch is where the VM raises a pending KeyboardInterrupt.
ADVERTISE_THEN_LOOP = '''
step = 0
n = None
try:
    ble.gap_advertise(20000, b"\\x02\\x01\\x06")
    step = 1
    n = 0
    while n < 200000:
        n += 1
    print("no KeyboardInterrupt", step)
except KeyboardInterrupt:
    print("KeyboardInterrupt at step", step, "n", n)
'''


@run_async(120)
async def test_ctrl_c_during_an_hci_command_wait_is_raised_after_the_call():
    """A Ctrl-C typed while the host waits for a slow controller's answer is not raised inside
    the wait (Rust and NimBLE frames are below it): the call completes, the VM raises
    KeyboardInterrupt right after it returns, and the stack works on: the advertising the
    call started is connected to, and the stack stops cleanly."""
    assert os.path.exists(FIRMWARE), f'{FIRMWARE} is missing: run make qemu'
    async with VLink(count=2) as link:
        async with bumble_device(link, name='central') as dev:
            proc = await start_qemu(link)
            try:
                repl = RawRepl(proc)
                await repl.enter()
                assert await repl.run(PRELUDE + 'print(ble.active(True))') == 'True\n'
                asked = asyncio.Event()
                slow_to_enable_advertising(link.controllers[0], asked)
                repl.start(ADVERTISE_THEN_LOOP)
                await asyncio.wait_for(asked.wait(), STEP_S)
                repl.send(b'\x03')
                assert await repl.result() == 'KeyboardInterrupt at step 1 n 0\n'

                fw_addr = link.controllers[0].public_address
                await dev.connect(fw_addr, own_address_type=0, timeout=STEP_S)
                assert await repl.run('print(wait_for(1) is not None)') == 'True\n'
                assert await repl.run('print(ble.active(False))') == 'False\n'
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()


@run_async(120)
async def test_a_panic_in_the_core_prints_its_message_and_resets_the_board():
    """The panic test's firmware makes the core panic on request: the panic message comes out
    on the console, then the board resets and boots to MicroPython's REPL again. The normal
    firmware has no such hook."""
    assert os.path.exists(PANIC_FIRMWARE), f'{PANIC_FIRMWARE} is missing: run make qemu-panic-test'
    symbols = subprocess.run(['arm-none-eabi-nm', FIRMWARE], check=True, capture_output=True,
                             text=True).stdout
    assert 'ubt_test_panic' not in symbols and 'ubt_port_fatal' in symbols
    async with VLink(count=1) as link:
        proc = await start_qemu(link, PANIC_FIRMWARE)
        try:
            repl = RawRepl(proc)
            await repl.enter()
            assert await repl.run('import _ubt_panic_test\nprint("ready")') == 'ready\n'
            repl.start('_ubt_panic_test.panic(1234)')
            await repl.read_until(b'OK')
            await repl.read_until(b'FATAL ERROR:\r\n')
            message = await repl.read_until(b'test panic 1234\r\n')
            assert message.startswith(b'ubluetooth panicked at src/port/panic.rs:'), message
            # The reset: a fresh boot's banner and prompt, and a working REPL.
            await repl.read_until(b'MicroPython ')
            await repl.read_until(b'Type "help()" for more information.\r\n>>> ')
            await repl.enter()
            assert await repl.run('import bluetooth\nprint(bluetooth.BLE().active())') == 'False\n'
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


@run_async(120)
async def test_an_irq_handler_exception_that_fails_to_print_stays_in_the_glue():
    """The handler raises an exception whose __repr__ raises too: printing it runs Python
    with Rust frames below, so the glue catches that second exception as well. The stack
    carries on (before, it escaped through the Rust frames and start-up failed)."""
    assert os.path.exists(FIRMWARE), f'{FIRMWARE} is missing: run make qemu'
    async with VLink(count=1) as link:
        proc = await start_qemu(link)
        try:
            repl = RawRepl(proc)
            await repl.enter()
            out = await repl.run(
                'import bluetooth\n'
                'ble = bluetooth.BLE()\n'
                'class Unprintable(Exception):\n'
                '    def __repr__(self):\n'
                '        raise ValueError("no repr")\n'
                'def irq(event, data):\n'
                '    raise Unprintable()\n'
                'ble.irq(irq)\n'
                'print(ble.active(True))\n'  # start-up asks the handler for secrets
                'print(ble.active(False))\n')
            assert '(exception while printing the exception)\n' in out, out
            assert out.endswith('True\nFalse\n'), out
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
