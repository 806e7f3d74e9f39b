"""Editor and type-checker stubs for the `bluetooth` module of this firmware (ubluetooth on
Apache NimBLE), following MicroPython's API document. Only `BLE`, `UUID` and the `FLAG_*`
constants exist at run time; the `_IRQ_*`, `_FLAG_*`, `_PASSKEY_ACTION_*`, `_IO_CAPABILITY_*`
and `_GATTS_*` names below are the constants scripts copy into their own code (with
`micropython.const`) and are listed here for reference only.
"""

from typing import Any, Callable, Final, Optional, Tuple, Union, overload

_Buffer = Union[bytes, bytearray, memoryview]
_AnyBuffer = Union[bytes, bytearray, memoryview, str]
_Flags = int
_Descriptor = Tuple["UUID", _Flags]
_Characteristic = Union[Tuple["UUID", _Flags], Tuple["UUID", _Flags, Tuple[_Descriptor, ...]]]
_Service = Tuple["UUID", Tuple[_Characteristic, ...]]
_Handler = Callable[[int, Tuple[Any, ...]], Any]

FLAG_READ: Final[int]
FLAG_WRITE_NO_RESPONSE: Final[int]
FLAG_WRITE: Final[int]
FLAG_NOTIFY: Final[int]
FLAG_INDICATE: Final[int]

class UUID:
    """A 16-bit, 32-bit or 128-bit Bluetooth UUID."""

    def __init__(self, value: Union[int, str, _Buffer, "UUID"], /) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __lt__(self, other: "UUID") -> bool: ...
    def __le__(self, other: "UUID") -> bool: ...
    def __gt__(self, other: "UUID") -> bool: ...
    def __ge__(self, other: "UUID") -> bool: ...
    def __hash__(self) -> int: ...

class BLE:
    """The singleton BLE interface: `BLE()` always returns the same object."""

    def __init__(self) -> None: ...
    # Configuration
    # Omitted: query. Any value, None included, sets by truth value (None turns it off).
    def active(self, active: Any = ..., /) -> bool: ...
    @overload
    def config(self, param: str, /) -> Any: ...
    @overload
    def config(
        self,
        *,
        gap_name: _AnyBuffer = ...,
        mtu: int = ...,
        rxbuf: int = ...,
        addr_mode: int = ...,
        bond: bool = ...,
        mitm: bool = ...,
        io: int = ...,
        le_secure: bool = ...,
        le_data_length: bool = ...,
        le_2m_phy: bool = ...,
    ) -> None: ...
    # Event handling
    def irq(self, handler: Optional[_Handler], /) -> None: ...
    # Broadcaster (advertiser)
    def gap_advertise(
        self,
        interval_us: Optional[int] = 500000,
        adv_data: Optional[_AnyBuffer] = None,
        *,
        resp_data: Optional[_AnyBuffer] = None,
        connectable: bool = True,
    ) -> None: ...
    # Observer (scanner)
    def gap_scan(
        self,
        # Omitted or 0: scan until stopped. None: stop scanning.
        duration_ms: Optional[int] = ...,
        interval_us: int = 1280000,
        window_us: int = 11250,
        active: bool = False,
        /,
    ) -> None: ...
    # Central
    @overload
    def gap_connect(self, cancel: None, /) -> None: ...
    @overload
    def gap_connect(
        self,
        addr_type: int,
        addr: _Buffer,
        scan_duration_ms: int = 2000,
        min_conn_interval_us: Optional[int] = None,
        max_conn_interval_us: Optional[int] = None,
        /,
    ) -> None: ...
    # Central and peripheral
    def gap_disconnect(self, conn_handle: int, /) -> bool: ...
    # Beyond MicroPython: new parameters for a live connection, reported by
    # _IRQ_CONNECTION_UPDATE on both sides.
    def gap_update_conn(
        self,
        conn_handle: int,
        min_conn_interval_us: int,
        max_conn_interval_us: int,
        conn_latency: int = 0,
        supervision_timeout_ms: int = 2560,
        /,
    ) -> None: ...
    # Pairing and bonding
    def gap_pair(self, conn_handle: int, /) -> None: ...
    def gap_passkey(self, conn_handle: int, action: int, passkey: int, /) -> None: ...
    # Beyond MicroPython: removes every bond, or one peer's (identity address type 0 or 1).
    @overload
    def gap_unpair(self, /) -> None: ...
    @overload
    def gap_unpair(self, addr_type: int, addr: _Buffer, /) -> None: ...
    # GATT server
    def gatts_register_services(
        self, services_definition: Union[Tuple[_Service, ...], list], /
    ) -> Tuple[Tuple[int, ...], ...]: ...
    def gatts_read(self, value_handle: int, /) -> bytes: ...
    # Returns len(data), as the C module does.
    def gatts_write(self, value_handle: int, data: _AnyBuffer, send_update: bool = False, /) -> int: ...
    def gatts_notify(self, conn_handle: int, value_handle: int, data: Optional[_AnyBuffer] = None, /) -> None: ...
    def gatts_indicate(self, conn_handle: int, value_handle: int, data: Optional[_AnyBuffer] = None, /) -> None: ...
    def gatts_set_buffer(self, value_handle: int, len: int, append: bool = False, /) -> None: ...
    # GATT client
    def gattc_discover_services(self, conn_handle: int, uuid: Optional[UUID] = None, /) -> None: ...
    def gattc_discover_characteristics(
        self, conn_handle: int, start_handle: int, end_handle: int, uuid: Optional[UUID] = None, /
    ) -> None: ...
    def gattc_discover_descriptors(self, conn_handle: int, start_handle: int, end_handle: int, /) -> None: ...
    def gattc_read(self, conn_handle: int, value_handle: int, /) -> None: ...
    def gattc_write(self, conn_handle: int, value_handle: int, data: _AnyBuffer, mode: int = 0, /) -> None: ...
    def gattc_exchange_mtu(self, conn_handle: int, /) -> None: ...
    # L2CAP connection-oriented channels
    def l2cap_listen(self, psm: int, mtu: int, /) -> None: ...
    def l2cap_connect(self, conn_handle: int, psm: int, mtu: int, /) -> None: ...
    def l2cap_disconnect(self, conn_handle: int, cid: int, /) -> None: ...
    def l2cap_send(self, conn_handle: int, cid: int, buf: _AnyBuffer, /) -> bool: ...
    def l2cap_recvinto(self, conn_handle: int, cid: int, buf: Optional[Union[bytearray, memoryview]], /) -> int: ...

# --- Constants scripts copy (not in the module) -------------------------------------------
_IRQ_CENTRAL_CONNECT: Final = 1
_IRQ_CENTRAL_DISCONNECT: Final = 2
_IRQ_GATTS_WRITE: Final = 3
_IRQ_GATTS_READ_REQUEST: Final = 4
_IRQ_SCAN_RESULT: Final = 5
_IRQ_SCAN_DONE: Final = 6
_IRQ_PERIPHERAL_CONNECT: Final = 7
_IRQ_PERIPHERAL_DISCONNECT: Final = 8
_IRQ_GATTC_SERVICE_RESULT: Final = 9
_IRQ_GATTC_SERVICE_DONE: Final = 10
_IRQ_GATTC_CHARACTERISTIC_RESULT: Final = 11
_IRQ_GATTC_CHARACTERISTIC_DONE: Final = 12
_IRQ_GATTC_DESCRIPTOR_RESULT: Final = 13
_IRQ_GATTC_DESCRIPTOR_DONE: Final = 14
_IRQ_GATTC_READ_RESULT: Final = 15
_IRQ_GATTC_READ_DONE: Final = 16
_IRQ_GATTC_WRITE_DONE: Final = 17
_IRQ_GATTC_NOTIFY: Final = 18
_IRQ_GATTC_INDICATE: Final = 19
_IRQ_GATTS_INDICATE_DONE: Final = 20
_IRQ_MTU_EXCHANGED: Final = 21
_IRQ_L2CAP_ACCEPT: Final = 22
_IRQ_L2CAP_CONNECT: Final = 23
_IRQ_L2CAP_DISCONNECT: Final = 24
_IRQ_L2CAP_RECV: Final = 25
_IRQ_L2CAP_SEND_READY: Final = 26
_IRQ_CONNECTION_UPDATE: Final = 27
_IRQ_ENCRYPTION_UPDATE: Final = 28
_IRQ_GET_SECRET: Final = 29
_IRQ_SET_SECRET: Final = 30
_IRQ_PASSKEY_ACTION: Final = 31

_FLAG_BROADCAST: Final = 0x0001
_FLAG_READ: Final = 0x0002
_FLAG_WRITE_NO_RESPONSE: Final = 0x0004
_FLAG_WRITE: Final = 0x0008
_FLAG_NOTIFY: Final = 0x0010
_FLAG_INDICATE: Final = 0x0020
_FLAG_AUTHENTICATED_SIGNED_WRITE: Final = 0x0040
_FLAG_AUX_WRITE: Final = 0x0100
_FLAG_READ_ENCRYPTED: Final = 0x0200
_FLAG_READ_AUTHENTICATED: Final = 0x0400
_FLAG_READ_AUTHORIZED: Final = 0x0800
_FLAG_WRITE_ENCRYPTED: Final = 0x1000
_FLAG_WRITE_AUTHENTICATED: Final = 0x2000
_FLAG_WRITE_AUTHORIZED: Final = 0x4000

_GATTS_NO_ERROR: Final = 0x00
_GATTS_ERROR_READ_NOT_PERMITTED: Final = 0x02
_GATTS_ERROR_WRITE_NOT_PERMITTED: Final = 0x03
_GATTS_ERROR_INSUFFICIENT_AUTHENTICATION: Final = 0x05
_GATTS_ERROR_INSUFFICIENT_AUTHORIZATION: Final = 0x08
_GATTS_ERROR_INSUFFICIENT_ENCRYPTION: Final = 0x0F

_PASSKEY_ACTION_NONE: Final = 0
_PASSKEY_ACTION_INPUT: Final = 2
_PASSKEY_ACTION_DISPLAY: Final = 3
_PASSKEY_ACTION_NUMERIC_COMPARISON: Final = 4

_IO_CAPABILITY_DISPLAY_ONLY: Final = 0
_IO_CAPABILITY_DISPLAY_YESNO: Final = 1
_IO_CAPABILITY_KEYBOARD_ONLY: Final = 2
_IO_CAPABILITY_NO_INPUT_OUTPUT: Final = 3
_IO_CAPABILITY_KEYBOARD_DISPLAY: Final = 4
