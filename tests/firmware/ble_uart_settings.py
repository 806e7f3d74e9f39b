# The Unix UART's settings (MICROPYBTUART, MICROPYBTBAUD, MICROPYBTFLOW) are read at each
# active(True). An invalid one prints a line naming the variable and its value and fails at
# once with OSError(EINVAL) (22); an endpoint that can't be opened (a missing tty, a refused
# TCP connection) prints the C module's "Unable to open port" line and times out with
# OSError(ETIMEDOUT) (110) as a missing tty always has.
# env: MICROPYBTUART=/nonexistent
import bluetooth
import os

ble = bluetooth.BLE()

SETTINGS = ('MICROPYBTUART', 'MICROPYBTBAUD', 'MICROPYBTFLOW')


def attempt(uart, baud=None, flow=None):
    print('--', uart, baud, flow)
    for name, value in zip(SETTINGS, (uart, baud, flow)):
        if value is None:
            os.unsetenv(name)
        else:
            os.putenv(name, value)
    try:
        print('returned', ble.active(True))
    except OSError as e:
        print('OSError', e.errno)
    print('active()', ble.active())


# Invalid settings: EINVAL, no start-up wait.
attempt('/nonexistent', baud='fast')
attempt('/nonexistent', baud='123456')
attempt('/nonexistent', baud='-1')
attempt('/nonexistent', flow='2')
attempt('/nonexistent', flow='yes')
attempt('foo:bar')
attempt('tcp:localhost:x')
attempt('tcp:localhost:0')
attempt('tcp:localhost:65536')
attempt('tcp:localhost')
attempt('tcp::6402')
attempt('tcp:::1:6402')
# Checked even where the endpoint (TCP) doesn't use it.
attempt('tcp:127.0.0.1:1', flow='2')
# Valid settings with nothing to open: the start-up timeout, as for a missing tty.
attempt('/nonexistent', baud='115200', flow='0')
attempt('tcp:127.0.0.1:1')
# A bad setting after a timeout, and the same setting fixed.
attempt('/nonexistent', baud='1000001')
attempt('/nonexistent', baud='1000000', flow='1')
print('done')
