"""Virtual BLE controller for the multi-instance test harness.

`VController` is a `bumble.controller.Controller` (Bumble 0.0.236) with the behaviour a
legacy-command host such as NimBLE relies on:

* legacy advertising honours the advertising type given by LE Set Advertising Parameters
  (ADV_IND, ADV_DIRECT_IND, ADV_SCAN_IND, ADV_NONCONN_IND) and its interval (0.625 ms units);
* scan responses carry the LE Set Scan Response Data payload and reach only active scanners,
  and only for scannable advertising;
* a host that scans with the legacy commands gets legacy LE Advertising Reports
  (subevent 0x02); the extended-advertising feature bits are not advertised at all;
* ACL data going to the host is fragmented to the LE ACL buffer size the controller
  reports (first fragment PB=0b10, continuations PB=0b01);
* HCI Reset (and a host detaching from its transport) really resets: advertising, scanning,
  pending connection and links are dropped, peers see a supervision timeout;
* every command gets a response, even unknown or unimplemented ones;
* LE Create Connection Cancel completes the pending connection with status 0x02;
* a connection update is the central's alone (LE Connection Update from the peripheral is
  disallowed and the Connection Parameters Request feature bit is not claimed), so a
  peripheral's host falls back to the L2CAP Connection Parameter Update Request;
* each instance can have its own public address;
* LE ACL data from the host is counted against the controller's buffers until Number of
  Completed Packets reports it (with a profile, once the packet has gone out on the link); a packet
  beyond the buffers is dropped and logged as HOST BUG;
* a profile (`PROFILES`, e.g. acl27x3, no_ll_privacy, slow_reset) makes it answer and behave
  like another kind of part;
* privacy: the resolving list is kept, advertising with own address type 2/3 uses an RPA made
  from the local IRK, and while address resolution is on a peer's RPA that one of the listed
  IRKs resolves is reported (and connected to) as its identity address, type 2/3.

`VLocalLink` is the shared `bumble.link.LocalLink` with a fixed, order-preserving
link-layer latency on ACL data and LL control PDUs, and with the LE source address of ACL
data taken from the connection (Bumble always used the sender's random address).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Callable

from bumble import crypto, hci, ll
from bumble.controller import Connection, Controller, LegacyAdvertiser
from bumble.core import PhysicalTransport
from bumble.link import LocalLink

try:
    from . import airtime
except ImportError:  # run as a script, or imported with this directory on sys.path
    import airtime

logger = logging.getLogger(__name__)

AdvType = hci.HCI_LE_Set_Advertising_Parameters_Command.AdvertisingType
ReportType = hci.HCI_LE_Advertising_Report_Event.EventType
ExtReportType = hci.HCI_LE_Extended_Advertising_Report_Event.EventType
Err = hci.HCI_ErrorCode

CONNECTABLE_TYPES = (AdvType.ADV_IND, AdvType.ADV_DIRECT_IND, AdvType.ADV_DIRECT_IND_LOW_DUTY)
SCANNABLE_TYPES = (AdvType.ADV_IND, AdvType.ADV_SCAN_IND)
DIRECTED_TYPES = (AdvType.ADV_DIRECT_IND, AdvType.ADV_DIRECT_IND_LOW_DUTY)

# Legacy report event type for each advertising type (low duty cycle directed reports as 1).
LEGACY_REPORT_TYPE = {
    AdvType.ADV_IND: ReportType.ADV_IND,
    AdvType.ADV_DIRECT_IND: ReportType.ADV_DIRECT_IND,
    AdvType.ADV_SCAN_IND: ReportType.ADV_SCAN_IND,
    AdvType.ADV_NONCONN_IND: ReportType.ADV_NONCONN_IND,
    AdvType.ADV_DIRECT_IND_LOW_DUTY: ReportType.ADV_DIRECT_IND,
}

# Extended report event-type bits for legacy PDUs (Core 5.x Vol 4 Part E 7.7.65.13).
_LEGACY = ExtReportType.LEGACY_ADVERTISING_PDU_USED
_CONN = ExtReportType.CONNECTABLE_ADVERTISING
_SCAN = ExtReportType.SCANNABLE_ADVERTISING
_DIR = ExtReportType.DIRECTED_ADVERTISING
EXT_REPORT_TYPE = {
    AdvType.ADV_IND: _LEGACY | _CONN | _SCAN,
    AdvType.ADV_DIRECT_IND: _LEGACY | _CONN | _DIR,
    AdvType.ADV_SCAN_IND: _LEGACY | _SCAN,
    AdvType.ADV_NONCONN_IND: _LEGACY,
    AdvType.ADV_DIRECT_IND_LOW_DUTY: _LEGACY | _CONN | _DIR,
}

# Shortest advertising period we model, whatever the host asks for (keeps report floods sane).
MIN_ADV_PERIOD_S = 0.020
# High duty cycle directed advertising stops after this long (Core Vol 6 Part B 4.4.2.4.3).
HIGH_DUTY_DIRECTED_TIMEOUT_S = 1.28
DEFAULT_ACL_DELAY_S = 0.005

# LE features only usable with extended advertising/scanning, periodic advertising, PHY
# changes or isochronous channels, none of which the virtual controller offers to the host.
_DROPPED_LE_FEATURES = (
    hci.LeFeatureMask.LE_EXTENDED_ADVERTISING
    | hci.LeFeatureMask.LE_PERIODIC_ADVERTISING
    | hci.LeFeatureMask.PERIODIC_ADVERTISING_SYNC_TRANSFER_SENDER
    | hci.LeFeatureMask.PERIODIC_ADVERTISING_SYNC_TRANSFER_RECIPIENT
    | hci.LeFeatureMask.PERIODIC_ADVERTISING_ADI_SUPPORT
    | hci.LeFeatureMask.LE_2M_PHY
    | hci.LeFeatureMask.LE_CODED_PHY
    | hci.LeFeatureMask.CONNECTED_ISOCHRONOUS_STREAM_CENTRAL
    | hci.LeFeatureMask.CONNECTED_ISOCHRONOUS_STREAM_PERIPHERAL
    | hci.LeFeatureMask.ISOCHRONOUS_BROADCASTER
    | hci.LeFeatureMask.SYNCHRONIZED_RECEIVER
    # Bumble has no LL Connection Parameters Request procedure (LL_CONNECTION_PARAM_REQ):
    # its peripheral sent the central-only LL_CONNECTION_UPDATE_IND instead. Without the bit
    # a peripheral's host asks with the L2CAP Connection Parameter Update Request, as it
    # would with a Core 4.0 peer.
    | hci.LeFeatureMask.CONNECTION_PARAMETERS_REQUEST_PROCEDURE
)


# -----------------------------------------------------------------------------------------
# Controller profiles: named sets of settings that model real parts, for the controller matrix
# (tests/multitest.py --controller-profile). Each setting changes what the controller answers
# or does on HCI, not just a label.

# The resolving-list and address-resolution commands of LL privacy (Core 4.2, Vol 4 Part E
# 7.8.38-7.8.45 and 7.8.77); a part without LL privacy has none of them.
LL_PRIVACY_COMMANDS = frozenset(
    (
        hci.HCI_LE_ADD_DEVICE_TO_RESOLVING_LIST_COMMAND,
        hci.HCI_LE_REMOVE_DEVICE_FROM_RESOLVING_LIST_COMMAND,
        hci.HCI_LE_CLEAR_RESOLVING_LIST_COMMAND,
        hci.HCI_LE_READ_RESOLVING_LIST_SIZE_COMMAND,
        hci.HCI_LE_READ_PEER_RESOLVABLE_ADDRESS_COMMAND,
        hci.HCI_LE_READ_LOCAL_RESOLVABLE_ADDRESS_COMMAND,
        hci.HCI_LE_SET_ADDRESS_RESOLUTION_ENABLE_COMMAND,
        hci.HCI_LE_SET_RESOLVABLE_PRIVATE_ADDRESS_TIMEOUT_COMMAND,
        hci.HCI_LE_SET_PRIVACY_MODE_COMMAND,
    )
)
# The P-256 commands a controller offers for LE Secure Connections (7.8.36, 7.8.37, 7.8.137).
P256_COMMANDS = frozenset(
    (
        hci.HCI_LE_READ_LOCAL_P_256_PUBLIC_KEY_COMMAND,
        hci.HCI_LE_GENERATE_DHKEY_COMMAND,
        hci.HCI_LE_GENERATE_DHKEY_V2_COMMAND,
    )
)
HCI_HARDWARE_ERROR_EVENT = 0x10
# Hardware code of the Hardware Error event the `hw_error_before_reset` profile sends (the
# code is vendor-defined; this one is arbitrary).
HARDWARE_ERROR_CODE = 0x5A
# Payloads of the vendor-specific events (0xFF) of `vendor_events_at_startup`: a boot banner
# before the Reset's Command Complete, a status report after it.
VENDOR_EVENT_BEFORE_RESET = bytes.fromhex('0101') + b'boot'
VENDOR_EVENT_AFTER_RESET = bytes.fromhex('0202') + b'ready'
# Marks a host error the controller detected (ACL data beyond its buffers); tests/multitest.py
# fails a test whose link logged one.
HOST_BUG = 'HOST BUG'


@dataclasses.dataclass(frozen=True)
class Profile:
    """What one kind of controller answers and does; the defaults are the plain VController."""

    name: str = 'default'
    # LE Read Buffer Size (7.8.2): bytes per LE ACL packet and how many the controller holds.
    # 0/0 means "no LE buffers": the host uses the shared ones of Read Buffer Size (7.4.5).
    le_acl_data_packet_length: int = 27
    total_num_le_acl_data_packets: int = 64
    acl_data_packet_length: int = 27
    total_num_acl_data_packets: int = 64
    # HCI and LMP version of Read Local Version Information (0x09: Core 5.0, 0x07: Core 4.1).
    hci_version: int = hci.HCI_VERSION_BLUETOOTH_CORE_5_0
    # The LL privacy feature bit and its resolving-list commands.
    ll_privacy: bool = True
    # A Hardware Error event before the Command Complete of the first HCI Reset.
    hardware_error_before_reset: bool = False
    # Vendor-specific events around the Command Complete of the first HCI Reset.
    vendor_events_at_reset: bool = False
    # How long HCI Reset takes before its Command Complete.
    reset_delay_s: float = 0.0
    # Number of Completed Packets once a packet has gone out on the link (the link's delay),
    # as a real part reports it; False: at once, as Bumble does (the plain controller).
    nocp_after_link: bool = True
    # Commands the part does not have: left out of Supported Commands, answered with
    # Unknown HCI Command.
    missing_commands: frozenset[int] = frozenset()
    # The radio model (airtime.AirLink): ACL data leaves in connection events at this
    # interval (1.25 ms units; it overrides the interval the central's host asks for, and the
    # Connection Complete event says so), at most `air_max_exchanges` exchanges per event,
    # with 1M/2M bit times and the link's data length. 0: no model, data goes after the
    # link's fixed delay.
    air_interval: int = 0
    air_max_exchanges: int = 16
    # With the model: the LE 2M PHY and Data Packet Length Extension, claimed in the LE
    # features and carried out by LE Set PHY / LE Set Data Length.
    air_2m_phy: bool = True
    air_data_length: bool = True
    description: str = ''


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            nocp_after_link=False,
            description='the plain virtual controller: LE ACL 27 bytes x 64, packets '
            'reported completed at once',
        ),
        Profile(
            'acl27x3',
            le_acl_data_packet_length=27,
            total_num_le_acl_data_packets=3,
            description='a small part: LE ACL buffers 27 bytes x 3',
        ),
        Profile(
            'acl27x20',
            le_acl_data_packet_length=27,
            total_num_le_acl_data_packets=20,
            description="RootCanal's default: LE ACL buffers 27 bytes x 20",
        ),
        Profile(
            'acl251x8',
            le_acl_data_packet_length=251,
            total_num_le_acl_data_packets=8,
            description='a data-length-extension part: LE ACL buffers 251 bytes x 8',
        ),
        Profile(
            'le_bufsize_zero',
            le_acl_data_packet_length=0,
            total_num_le_acl_data_packets=0,
            acl_data_packet_length=1021,
            total_num_acl_data_packets=8,
            description='a dual-mode part with one shared ACL pool: LE Read Buffer Size 0/0, '
            'Read Buffer Size 1021 bytes x 8',
        ),
        Profile(
            'no_ll_privacy',
            ll_privacy=False,
            missing_commands=LL_PRIVACY_COMMANDS,
            description='no LL privacy: no feature bit, no resolving-list commands',
        ),
        Profile(
            'no_le_secure',
            hci_version=hci.HCI_VERSION_BLUETOOTH_CORE_4_1,
            missing_commands=P256_COMMANDS,
            description='a Core 4.1 part without LE Secure Connections: no P-256 commands',
        ),
        Profile(
            'hw_error_before_reset',
            hardware_error_before_reset=True,
            description='a Hardware Error event before the first HCI Reset is answered',
        ),
        Profile(
            'vendor_events_at_startup',
            vendor_events_at_reset=True,
            description='vendor-specific events (0xFF) just before and after the first '
            'HCI Reset is answered',
        ),
        Profile(
            'slow_reset',
            reset_delay_s=0.6,
            description='HCI Reset answered after 600 ms',
        ),
        *(
            Profile(
                f'air{"" if capable else "-basic"}-{label}',
                le_acl_data_packet_length=251,
                total_num_le_acl_data_packets=16,
                air_interval=units,
                air_2m_phy=capable,
                air_data_length=capable,
                description=f'the radio model at a {label} interval, '
                + (
                    'with data length extension and the 2M PHY'
                    if capable
                    else 'without data length extension or the 2M PHY'
                )
                + ', LE ACL buffers 251 bytes x 16, 16 exchanges per event at most',
            )
            for capable in (True, False)
            for label, units in (('7.5ms', 6), ('30ms', 24))
        ),
    )
}


def profile_named(name: str | Profile | None) -> Profile:
    if name is None:
        return PROFILES['default']
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f'unknown controller profile {name!r}; known: {", ".join(PROFILES)}') from None


def public_address_for(index: int) -> hci.Address:
    """Public address of instance `index`: F0:F1:F2:F3:F4:<index>."""
    if not 0 <= index <= 0xFF:
        raise ValueError(f'controller index {index} out of range 0..255')
    return hci.Address(f'F0:F1:F2:F3:F4:{index:02X}', hci.Address.PUBLIC_DEVICE_ADDRESS)


# -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class LegacyAdvPdu(ll.AdvertisingPdu):
    """One legacy advertising event as seen on the virtual air.

    The scan response payload travels with the advertisement (the SCAN_REQ/SCAN_RSP
    exchange is collapsed into it); the scanner decides whether it would have asked.
    """

    advertiser_address: hci.Address
    advertising_type: int
    data: bytes
    scan_response_data: bytes = b''
    target_address: hci.Address | None = None


@dataclasses.dataclass
class VLegacyAdvertiser(LegacyAdvertiser):
    """Legacy advertiser that emits the PDU type the host configured."""

    directed_timeout_handle: asyncio.TimerHandle | None = None
    # The resolvable private address of this advertising run (own address type 2/3 with a
    # local IRK in the resolving list), else None.
    rpa: hci.Address | None = None

    @property
    def address(self) -> hci.Address:
        if self.rpa is not None:
            return self.rpa
        if self.own_address_type == hci.OwnAddressType.RESOLVABLE_OR_PUBLIC:
            return self.controller.public_address
        return super().address

    @property
    def link_address(self) -> hci.Address:
        """The address this device's links use on the virtual air: its identity address when
        it advertises with an RPA (the host only ever sees the peer's side of that)."""
        if self.rpa is None:
            return self.address
        if self.own_address_type == hci.OwnAddressType.RESOLVABLE_OR_PUBLIC:
            return self.controller.public_address
        return self.controller.random_address

    @property
    def period_s(self) -> float:
        units = self.advertising_interval_min or 0x0800  # spec default 1.28 s
        return max(units * 0.000625, MIN_ADV_PERIOD_S)

    @property
    def is_connectable(self) -> bool:
        return self.advertising_type in CONNECTABLE_TYPES

    @property
    def target_address(self) -> hci.Address | None:
        if self.advertising_type not in DIRECTED_TYPES:
            return None
        return hci.Address(bytes(self.peer_address), hci.AddressType(self.peer_address_type & 1))

    def _on_timer_fired(self) -> None:
        if not self.enabled:
            return
        self.send_advertising_data()
        self.timer_handle = asyncio.get_running_loop().call_later(
            self.period_s, self._on_timer_fired
        )

    def start(self) -> None:
        self.rpa = None
        if self.own_address_type in (
            hci.OwnAddressType.RESOLVABLE_OR_PUBLIC,
            hci.OwnAddressType.RESOLVABLE_OR_RANDOM,
        ):
            self.rpa = self.controller.local_rpa_for(self.peer_address_type, self.peer_address)
        super().start()
        if self.advertising_type == AdvType.ADV_DIRECT_IND:
            self.directed_timeout_handle = asyncio.get_running_loop().call_later(
                HIGH_DUTY_DIRECTED_TIMEOUT_S, self._on_directed_timeout
            )

    def stop(self) -> None:
        super().stop()
        if self.directed_timeout_handle is not None:
            self.directed_timeout_handle.cancel()
            self.directed_timeout_handle = None

    def _on_directed_timeout(self) -> None:
        self.directed_timeout_handle = None
        if not self.enabled:
            return
        self.stop()
        self.controller.send_hci_packet(
            hci.HCI_LE_Connection_Complete_Event(
                status=Err.ADVERTISING_TIMEOUT_ERROR,
                connection_handle=0,
                role=hci.Role.PERIPHERAL,
                peer_address_type=0,
                peer_address=hci.Address.ANY,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
        )

    def send_advertising_data(self) -> None:
        if not self.enabled:
            return
        directed = self.advertising_type in DIRECTED_TYPES
        self.controller.send_advertising_pdu(
            LegacyAdvPdu(
                advertiser_address=self.address,
                advertising_type=self.advertising_type,
                data=b'' if directed else bytes(self.advertising_data),
                scan_response_data=(
                    bytes(self.scan_response_data)
                    if self.advertising_type in SCANNABLE_TYPES
                    else b''
                ),
                target_address=self.target_address,
            )
        )


# -----------------------------------------------------------------------------------------
class _DelayLine:
    """FIFO of callbacks, each run `delay` seconds after it was queued, in queue order."""

    def __init__(self, delay: float) -> None:
        self.delay = max(0.0, delay)
        self._queue: collections.deque[tuple[float, Callable[[], None]]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def post(self, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._queue.append((loop.time() + self.delay, callback))
        if self._timer is None:
            self._timer = loop.call_at(self._queue[0][0], self._drain)

    def _drain(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._queue and self._queue[0][0] <= now:
            _, callback = self._queue.popleft()
            try:
                callback()
            except Exception:  # one bad delivery must not stall the line
                logger.exception('link delivery failed')
        if self._queue:
            self._timer = loop.call_at(self._queue[0][0], self._drain)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()


class VLocalLink(LocalLink):
    """LocalLink with link-layer latency and connection-based LE source addresses."""

    def __init__(self, acl_delay: float = DEFAULT_ACL_DELAY_S) -> None:
        super().__init__()
        self._line = _DelayLine(acl_delay)

    @property
    def acl_delay(self) -> float:
        return self._line.delay

    def close(self) -> None:
        self._line.cancel()

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: PhysicalTransport,
        data: bytes,
    ) -> None:
        if transport == PhysicalTransport.LE:
            destination = self.find_le_controller(destination_address)
            connection = sender_controller.le_connections.get(destination_address)
            source_address = (
                connection.self_address if connection else sender_controller.random_address
            )
        elif transport == PhysicalTransport.BR_EDR:
            destination = self.find_classic_controller(destination_address)
            source_address = sender_controller.public_address
        else:
            raise ValueError('unsupported transport type')
        if destination is None:
            logger.debug('ACL data for unknown %s dropped', destination_address)
            return
        self._line.post(lambda: destination.on_link_acl_data(source_address, transport, data))

    def send_ll_control_pdu(
        self,
        sender_address: hci.Address,
        receiver_address: hci.Address,
        packet: ll.ControlPdu,
    ) -> None:
        receiver = self.find_le_controller(receiver_address)
        if receiver is None:
            logger.debug('LL control PDU for unknown %s dropped: %s', receiver_address, packet)
            return
        deliver = lambda: receiver.on_ll_control_pdu(sender_address, packet)  # noqa: E731
        air, from_central = self._air_between(sender_address, receiver_address)
        if air is not None and not isinstance(packet, ll.TerminateInd):
            # On the radio model, in connection events behind the data sent before it.
            air.send_control(from_central, deliver)
            return
        # Same line as the ACL data, so e.g. data sent before a disconnection arrives first.
        self._line.post(deliver)

    def _air_between(self, sender_address: hci.Address, receiver_address: hci.Address):
        """The radio model of the link from `sender_address` to `receiver_address`, if any, and
        whether the sender is its central."""
        for controller in self.controllers:
            connection = controller.le_connections.get(receiver_address)
            if connection is not None and connection.self_address == sender_address:
                air = getattr(connection, 'air', None)
                return air, connection.role == hci.Role.CENTRAL
        return None, False

    def find_legacy_advertiser(self, address: hci.Address) -> VController | None:
        for c in self.controllers:
            if isinstance(c, VController):
                adv = c.le_legacy_advertiser
                if adv.enabled and adv.address == address:
                    return c
        return None


# -----------------------------------------------------------------------------------------
class VController(Controller):
    le_features = Controller.le_features & ~_DROPPED_LE_FEATURES

    def __init__(
        self,
        name: str,
        link: LocalLink | None = None,
        public_address: bytes | str | hci.Address | None = None,
        index: int | None = None,
        host_sink=None,
        profile: str | Profile | None = None,
    ) -> None:
        if public_address is None and index is not None:
            public_address = public_address_for(index)
        super().__init__(name, host_sink=host_sink, link=link, public_address=public_address)
        self.profile = profile_named(profile)
        self._apply_profile(self.profile)
        # LE ACL packets from the host not yet reported in Number of Completed Packets, by
        # connection handle; a disconnection or reset frees them (Core Vol 4 Part E 4.1.1).
        self.acl_in_use: dict[int, int] = {}
        # Host errors seen (ACL data the buffers cannot take), also logged as HOST_BUG.
        self.host_bugs: list[str] = []
        # True until the first HCI Reset after a host attached: a freshly powered part.
        self._fresh = True
        self._reset_answer: asyncio.TimerHandle | None = None
        self.le_legacy_advertiser = VLegacyAdvertiser(self)
        self.le_scan_uses_extended = False
        self.le_ext_scan_active = False
        self._sent_packets = 0
        # (address, report type, data) already reported since scanning was enabled, for
        # duplicate filtering. New data from the same advertiser is reported again.
        self._reported: set[tuple[bytes, int, int, bytes]] = set()
        # Resolving list: (identity type & 1, identity bytes) -> (peer IRK, local IRK).
        self.resolving_list: dict[tuple[int, bytes], tuple[bytes, bytes]] = {}

    def _apply_profile(self, profile: Profile) -> None:
        self.le_acl_data_packet_length = profile.le_acl_data_packet_length
        self.total_num_le_acl_data_packets = profile.total_num_le_acl_data_packets
        self.acl_data_packet_length = profile.acl_data_packet_length
        self.total_num_acl_data_packets = profile.total_num_acl_data_packets
        self.hci_version = self.lmp_version = profile.hci_version
        features = type(self).le_features
        if not profile.ll_privacy:
            features &= ~hci.LeFeatureMask.LL_PRIVACY
        if profile.air_interval:
            if profile.air_2m_phy:
                features |= hci.LeFeatureMask.LE_2M_PHY
            if profile.air_data_length:
                self.supported_max_tx_octets = self.supported_max_rx_octets = airtime.MAX_PAYLOAD
                self.supported_max_tx_time = self.supported_max_rx_time = 2120
            else:
                features &= ~hci.LeFeatureMask.LE_DATA_PACKET_LENGTH_EXTENSION
        self.le_features = features
        # Supported Commands (7.4.2) is built from this set.
        self.supported_commands = set(type(self).supported_commands) - profile.missing_commands

    # ------------------------------------------------------------------ HCI plumbing
    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        self._sent_packets += 1
        super().send_hci_packet(packet)

    def on_hci_command_packet(self, command: hci.HCI_Command) -> None:
        if isinstance(command, hci.HCI_Reset_Command):
            self._reset(command)
            return
        handler = getattr(self, f'on_{command.name.lower()}', None)
        if command.op_code in self.profile.missing_commands:
            handler = None
        if handler is None:
            logger.warning('[%s] unsupported command %s', self.name, command.name)
            self._reply_error(command, Err.UNKNOWN_HCI_COMMAND_ERROR)
            return
        sent_before = self._sent_packets
        try:
            super().on_hci_command_packet(command)
        except Exception:
            logger.exception('[%s] command %s failed', self.name, command.name)
            if isinstance(command, hci.HCI_SyncCommand) or self._sent_packets == sent_before:
                self._reply_error(command, Err.UNSPECIFIED_ERROR_ERROR)
            return
        if self._sent_packets == sent_before:
            # The handler answered nothing (an async one bailing out early, a sync one
            # returning None): never leave the host waiting for its Command Complete/Status.
            self._reply_error(command, Err.UNKNOWN_HCI_COMMAND_ERROR)

    def _reply_error(self, command: hci.HCI_Command, status: int) -> None:
        self._reply_error_to(command.op_code, isinstance(command, hci.HCI_AsyncCommand), status)

    def _reply_error_to(self, op_code: int, is_async: bool, status: int) -> None:
        if is_async:
            self._send_hci_command_status(status, op_code)
        else:
            self.send_hci_packet(
                hci.HCI_Command_Complete_Event(
                    num_hci_command_packets=1,
                    command_opcode=op_code,
                    return_parameters=hci.HCI_StatusReturnParameters(status),
                )
            )

    def on_packet(self, packet: bytes) -> None:
        try:
            parsed = hci.HCI_Packet.from_bytes(packet)
        except Exception as error:
            logger.warning('[%s] unparsable packet %s: %s', self.name, packet.hex(), error)
            if len(packet) >= 3 and packet[0] == hci.HCI_COMMAND_PACKET:
                op_code = int.from_bytes(packet[1:3], 'little')
                cls = hci.HCI_Command.command_classes.get(op_code)
                is_async = cls is not None and issubclass(cls, hci.HCI_AsyncCommand)
                self._reply_error_to(op_code, is_async, Err.INVALID_COMMAND_PARAMETERS_ERROR)
            return
        self.on_hci_packet(parsed)

    # ------------------------------------------------------------------ reset
    def reset_state(self) -> None:
        """What HCI Reset clears: advertising, scanning, connecting, links."""
        self.le_legacy_advertiser.stop()
        self.le_legacy_advertiser = VLegacyAdvertiser(self)
        for adv_set in self.advertising_sets.values():
            adv_set.stop()
        self.advertising_sets.clear()
        self.pending_periodic_advertising_syncs.clear()
        self.established_periodic_advertising_syncs.clear()
        self.le_scan_enable = False
        self.le_scan_type = 0
        self.le_scan_interval = 0x10
        self.le_scan_window = 0x10
        self.le_scanning_filter_policy = 0
        self.le_scan_uses_extended = False
        self.le_ext_scan_active = False
        self.filter_duplicates = False
        self._reported.clear()
        self.pending_le_connection = None
        self.event_mask = 0
        self.event_mask_page_2 = 0
        self.le_event_mask = 0
        self.le_address_resolution = False
        self.resolving_list.clear()
        # The peers lose us the way they would lose a real device: supervision timeout.
        for connection in list(self.le_connections.values()):
            connection.send_ll_control_pdu(ll.TerminateInd(Err.CONNECTION_TIMEOUT_ERROR))
            air = getattr(connection, 'air', None)
            if air is not None:
                air.close()
        self.le_connections.clear()
        self.acl_in_use.clear()
        self.classic_connections.clear()
        self.sco_links.clear()
        self.central_cis_links.clear()
        self.peripheral_cis_links.clear()
        self.random_address = hci.Address('00:00:00:00:00:00')

    def on_host_detached(self) -> None:
        """The transport lost its host (pty closed): behave as after a reset, and greet the
        next host as a part that was just powered on."""
        self.reset_state()
        self._fresh = True
        if self._reset_answer is not None:
            self._reset_answer.cancel()
            self._reset_answer = None

    def _reset(self, command: hci.HCI_Reset_Command) -> None:
        """HCI Reset (7.3.2), with the start-up quirks of the profile on the first one."""
        first, self._fresh = self._fresh, False
        profile = self.profile
        if first and profile.hardware_error_before_reset:
            self.send_hci_packet(
                hci.HCI_Event.from_bytes(
                    bytes((hci.HCI_EVENT_PACKET, HCI_HARDWARE_ERROR_EVENT, 1, HARDWARE_ERROR_CODE))
                )
            )
        if first and profile.vendor_events_at_reset:
            self.send_hci_packet(hci.HCI_Vendor_Event(data=VENDOR_EVENT_BEFORE_RESET))
        self.reset_state()

        def answer() -> None:
            self._reset_answer = None
            self.send_hci_packet(
                hci.HCI_Command_Complete_Event(
                    num_hci_command_packets=1,
                    command_opcode=command.op_code,
                    return_parameters=hci.HCI_StatusReturnParameters(Err.SUCCESS),
                )
            )
            if first and profile.vendor_events_at_reset:
                self.send_hci_packet(hci.HCI_Vendor_Event(data=VENDOR_EVENT_AFTER_RESET))

        if profile.reset_delay_s > 0:
            self._reset_answer = asyncio.get_running_loop().call_later(
                profile.reset_delay_s, answer
            )
        else:
            answer()

    # ------------------------------------------------------------------ privacy
    # Bumble accepts the resolving-list commands but ignores them. These keep the list, make
    # RPAs for own address types 2/3 from the local IRK, and resolve peers' RPAs with their
    # IRKs while address resolution is enabled (Core Vol 6, Part B, 1.3.2 and 4.7).
    def on_hci_le_add_device_to_resolving_list_command(self, command):
        key = (command.peer_identity_address_type & 1, bytes(command.peer_identity_address))
        self.resolving_list[key] = (bytes(command.peer_irk), bytes(command.local_irk))
        return hci.HCI_StatusReturnParameters(Err.SUCCESS)

    def on_hci_le_remove_device_from_resolving_list_command(self, command):
        # Bumble has no class for this command, so its parameters arrive unparsed (the
        # identity address type, then the address least-significant byte first) and its
        # Command Complete is ours to send.
        params = bytes(command.parameters)
        key = (params[0] & 1, params[1:7]) if len(params) == 7 else None
        if key is None:
            status = Err.INVALID_COMMAND_PARAMETERS_ERROR
        elif self.resolving_list.pop(key, None) is None:
            status = Err.UNKNOWN_CONNECTION_IDENTIFIER_ERROR
        else:
            status = Err.SUCCESS
        self._reply_error_to(command.op_code, False, status)

    def on_hci_le_clear_resolving_list_command(self, command):
        self.resolving_list.clear()
        return hci.HCI_StatusReturnParameters(Err.SUCCESS)

    def local_rpa_for(self, peer_type: int, peer_address) -> hci.Address | None:
        """A fresh RPA from the local IRK of the resolving-list entry for this peer."""
        entry = self.resolving_list.get((peer_type & 1, bytes(peer_address)))
        if entry is None or not any(entry[1]):
            return None
        return hci.Address.generate_private_address(entry[1])

    def resolve(self, address: hci.Address) -> hci.Address | None:
        """The identity address (type 2/3) behind a peer's RPA, if a peer IRK resolves it."""
        raw = bytes(address)
        if not self.le_address_resolution or address.is_public or raw[5] >> 6 != 0b01:
            return None
        for (id_type, identity), (peer_irk, _) in self.resolving_list.items():
            if any(peer_irk) and crypto.ah(peer_irk, raw[3:6]) == raw[0:3]:
                return hci.Address(
                    identity,
                    hci.Address.PUBLIC_IDENTITY_ADDRESS
                    if id_type == 0
                    else hci.Address.RANDOM_IDENTITY_ADDRESS,
                )
        return None

    def _is_pending_peer(self, pending: hci.Address, advertiser: hci.Address) -> bool:
        if pending == advertiser:
            return True
        identity = self.resolve(advertiser)
        return (
            identity is not None
            and bytes(identity) == bytes(pending)
            and (identity.address_type & 1) == (pending.address_type & 1)
        )

    # ------------------------------------------------------------------ scanning
    def on_hci_le_set_scan_enable_command(self, command):
        self.le_scan_uses_extended = False
        if command.le_scan_enable and not self.le_scan_enable:
            self._reported.clear()
        return super().on_hci_le_set_scan_enable_command(command)

    def on_hci_le_set_extended_scan_parameters_command(self, command):
        self.le_ext_scan_active = any(t == 1 for t in command.scan_types)
        return super().on_hci_le_set_extended_scan_parameters_command(command)

    def on_hci_le_set_extended_scan_enable_command(self, command):
        self.le_scan_uses_extended = True
        if command.enable and not self.le_scan_enable:
            self._reported.clear()
        return super().on_hci_le_set_extended_scan_enable_command(command)

    def _is_for_me(self, address: hci.Address | None) -> bool:
        return address is not None and address in (self.public_address, self.random_address)

    def on_ll_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if isinstance(packet, LegacyAdvPdu):
            self.on_legacy_advertising_pdu(packet)
        elif isinstance(packet, ll.AdvInd):
            # From a plain Bumble controller: a connectable, scannable ADV_IND.
            self.on_legacy_advertising_pdu(
                LegacyAdvPdu(packet.advertiser_address, AdvType.ADV_IND, packet.data)
            )
        else:
            super().on_ll_advertising_pdu(packet)

    def on_legacy_advertising_pdu(self, pdu: LegacyAdvPdu) -> None:
        adv_type = pdu.advertising_type
        if adv_type in DIRECTED_TYPES and not self._is_for_me(pdu.target_address):
            return  # directed at somebody else
        if self.le_scan_enable:
            self._report(pdu, scan_response=False)
            active = self.le_ext_scan_active if self.le_scan_uses_extended else self.le_scan_type == 1
            if active and adv_type in SCANNABLE_TYPES:
                self._report(pdu, scan_response=True)
        pending = self.pending_le_connection
        if (
            adv_type in CONNECTABLE_TYPES
            and pending is not None
            and self._is_pending_peer(pending.peer_address, pdu.advertiser_address)
        ):
            self.create_le_connection(pdu.advertiser_address)

    def _report(self, pdu: LegacyAdvPdu, scan_response: bool) -> None:
        data = pdu.scan_response_data if scan_response else pdu.data
        # A bonded peer's RPA is reported as its identity address (type 2/3).
        address = self.resolve(pdu.advertiser_address) or pdu.advertiser_address
        if self.filter_duplicates:
            key = (bytes(address), int(address.is_public), int(scan_response), data)
            if key in self._reported:
                return
            self._reported.add(key)
        if self.le_scan_uses_extended:
            event_type = EXT_REPORT_TYPE[pdu.advertising_type]
            if scan_response:
                event_type |= ExtReportType.SCAN_RESPONSE
            target = pdu.target_address
            report = hci.HCI_LE_Extended_Advertising_Report_Event.Report(
                event_type=int(event_type),
                address_type=address.address_type,
                address=address,
                primary_phy=hci.Phy.LE_1M,
                secondary_phy=0,
                advertising_sid=0xFF,
                tx_power=0x7F,
                rssi=-50,
                periodic_advertising_interval=0,
                direct_address_type=target.address_type if target else 0,
                direct_address=target or hci.Address.ANY,
                data=data,
            )
            self.send_hci_packet(hci.HCI_LE_Extended_Advertising_Report_Event([report]))
        else:
            event_type = (
                ReportType.SCAN_RSP if scan_response else LEGACY_REPORT_TYPE[pdu.advertising_type]
            )
            report = hci.HCI_LE_Advertising_Report_Event.Report(
                event_type=int(event_type),
                address_type=address.address_type,
                address=address,
                data=data,
                rssi=-50,
            )
            self.send_hci_packet(hci.HCI_LE_Advertising_Report_Event([report]))

    # ------------------------------------------------------------------ connections
    def on_ll_control_pdu(self, sender_address: hci.Address, packet: ll.ControlPdu) -> None:
        if sender_address not in self.le_connections:
            # Crossed a disconnection or reset on the way: nothing to do with it.
            logger.debug('[%s] LL control PDU from unconnected %s: %s', self.name, sender_address, packet)
            return
        super().on_ll_control_pdu(sender_address, packet)

    def create_le_connection(self, peer_address: hci.Address) -> None:
        pending = self.pending_le_connection
        link = self.link
        advertiser = link.find_legacy_advertiser(peer_address) if isinstance(link, VLocalLink) else None
        if advertiser is None or pending is None:
            super().create_le_connection(peer_address)
            return
        # Both ends of a link address each other by link address (the identity behind an
        # RPA); the host is told the identity as type 2/3 when it resolved one.
        link_peer = advertiser.le_legacy_advertiser.link_address
        identity = self.resolve(peer_address)
        if self.le_connections.get(link_peer):
            logger.error('[%s] already connected to %s', self.name, peer_address)
            return
        self_address = (
            self.public_address
            if pending.own_address_type == hci.OwnAddressType.PUBLIC
            else self.random_address
        )
        if isinstance(pending, hci.HCI_LE_Extended_Create_Connection_Command):
            interval = pending.connection_interval_mins[0]
            latency = pending.max_latencies[0]
            timeout = pending.supervision_timeouts[0]
        else:
            interval = pending.connection_interval_min
            latency = pending.max_latency
            timeout = pending.supervision_timeout
        if self.profile.air_interval:
            interval = self.profile.air_interval
        # The advertiser takes the CONNECT_IND right away, so two initiators racing for the
        # same advertiser cannot both believe they won.
        if not advertiser.accept_legacy_connection(
            self_address, peer_address, interval, latency, timeout
        ):
            return
        connection = Connection(
            controller=self,
            handle=self.allocate_connection_handle(),
            role=hci.Role.CENTRAL,
            self_address=self_address,
            peer_address=link_peer,
            link=link,
            transport=PhysicalTransport.LE,
            link_type=hci.HCI_Connection_Complete_Event.LinkType.ACL,
        )
        self.le_connections[link_peer] = connection
        self.pending_le_connection = None
        peer_connection = advertiser.le_connections.get(self_address)
        if self.profile.air_interval and peer_connection is not None:
            self._start_air(connection, advertiser, peer_connection, interval)
        reported = identity or peer_address
        self.send_hci_packet(
            hci.HCI_LE_Connection_Complete_Event(
                status=Err.SUCCESS,
                connection_handle=connection.handle,
                role=hci.Role.CENTRAL,
                peer_address_type=reported.address_type,
                peer_address=reported,
                connection_interval=interval,
                peripheral_latency=latency,
                supervision_timeout=timeout,
                central_clock_accuracy=0,
            )
        )

    def accept_legacy_connection(
        self,
        initiator_address: hci.Address,
        advertiser_address: hci.Address,
        interval: int,
        latency: int,
        timeout: int,
    ) -> bool:
        adv = self.le_legacy_advertiser
        if not (adv.enabled and adv.is_connectable and adv.address == advertiser_address):
            return False
        if adv.advertising_type in DIRECTED_TYPES and adv.target_address != initiator_address:
            return False
        if initiator_address in self.le_connections:
            return False
        connection = Connection(
            controller=self,
            handle=self.allocate_connection_handle(),
            role=hci.Role.PERIPHERAL,
            self_address=adv.link_address,
            peer_address=initiator_address,
            link=self.link,
            transport=PhysicalTransport.LE,
            link_type=hci.HCI_Connection_Complete_Event.LinkType.ACL,
        )
        self.le_connections[initiator_address] = connection
        adv.stop()  # a legacy advertiser stops once it is connected
        self.send_hci_packet(
            hci.HCI_LE_Connection_Complete_Event(
                status=Err.SUCCESS,
                connection_handle=connection.handle,
                role=hci.Role.PERIPHERAL,
                peer_address_type=initiator_address.address_type,
                peer_address=initiator_address,
                connection_interval=interval,
                peripheral_latency=latency,
                supervision_timeout=timeout,
                central_clock_accuracy=0,
            )
        )
        return True

    def on_hci_le_create_connection_cancel_command(self, command):
        if self.pending_le_connection is None:
            return hci.HCI_StatusReturnParameters(Err.COMMAND_DISALLOWED_ERROR)
        pending = self.pending_le_connection
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=Err.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # After the Command Complete that the caller sends for us.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(Err.SUCCESS)

    def on_hci_disconnect_command(self, command: hci.HCI_Disconnect_Command) -> None:
        handle = command.connection_handle
        connection = self.find_le_connection_by_handle(handle)
        if connection is None:
            if (
                self.find_classic_connection_by_handle(handle)
                or self.find_classic_sco_link_by_handle(handle)
                or self.find_iso_link_by_handle(handle)
            ):
                return super().on_hci_disconnect_command(command)
            self._send_hci_command_status(Err.UNKNOWN_CONNECTION_IDENTIFIER_ERROR, command.op_code)
            return None
        self._send_hci_command_status(hci.HCI_COMMAND_STATUS_PENDING, command.op_code)
        # The peer learns the reason given; locally the link ends "by local host".
        connection.send_ll_control_pdu(ll.TerminateInd(command.reason))
        self.on_le_disconnected(connection, Err.CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)
        return None

    def on_hci_le_connection_update_command(self, command):
        # Only the central may send LL_CONNECTION_UPDATE_IND; a peripheral would need the
        # Connection Parameters Request procedure, which this controller lacks (Core 4.0:
        # the command is the central's only).
        connection = self.find_le_connection_by_handle(command.connection_handle)
        if connection is not None and connection.role != hci.Role.CENTRAL:
            self._send_hci_command_status(Err.COMMAND_DISALLOWED_ERROR, command.op_code)
            return None
        air = getattr(connection, 'air', None)
        if air is not None:
            # Bumble's update takes the longest interval allowed; so do the connection events.
            air.set_interval(command.connection_interval_max * 1250)
        return super().on_hci_le_connection_update_command(command)

    def on_le_disconnected(self, connection: Connection, reason: int) -> None:
        if self.le_connections.get(connection.peer_address) is not connection:
            return  # already gone (e.g. both sides disconnected at once)
        # The host counts this link's packets as completed on Disconnection Complete.
        self.acl_in_use.pop(connection.handle, None)
        air = getattr(connection, 'air', None)
        if air is not None:
            air.close()
        super().on_le_disconnected(connection, reason)

    def on_hci_le_set_data_length_command(self, command):
        connection = self.find_le_connection_by_handle(command.connection_handle)
        status = Err.SUCCESS if connection else Err.UNKNOWN_CONNECTION_IDENTIFIER_ERROR
        air = getattr(connection, 'air', None)
        if air is not None and self.profile.air_data_length:
            # The Data Length Update procedure (Vol 6 Part B 5.1.9): the peer takes up to 251
            # bytes, so ours to it become what our host asked for; both hosts hear of it.
            octets = max(airtime.MIN_PAYLOAD, min(command.tx_octets, airtime.MAX_PAYLOAD))
            side = air.side(connection.role == hci.Role.CENTRAL)
            if octets != side.max_tx_octets:
                side.max_tx_octets = octets
                self._after_ll_exchange(lambda: self._announce_data_length(air))
        # Otherwise payloads stay at the 27-octet default: nothing changes, no event follows.
        return hci.HCI_StatusAndConnectionHandleReturnParameters(
            status=status, connection_handle=command.connection_handle
        )

    def on_hci_le_set_phy_command(self, command):
        connection = self.find_le_connection_by_handle(command.connection_handle)
        air = getattr(connection, 'air', None)
        if air is None or not self.profile.air_2m_phy:
            self._reply_error(command, Err.UNKNOWN_HCI_COMMAND_ERROR)
            return None
        self._send_hci_command_status(hci.HCI_COMMAND_STATUS_PENDING, command.op_code)
        central = connection.role == hci.Role.CENTRAL
        # The PHY Update procedure (Vol 6 Part B 5.1.10): the peer prefers any PHY, so each
        # direction takes 2M when our host allows it there, else stays on 1M. A host that
        # has no preference (ALL_PHYS bits) leaves the choice to us: 2M.
        tx_2m = bool(command.all_phys & 1) or bool(command.tx_phys & 2)
        rx_2m = bool(command.all_phys & 2) or bool(command.rx_phys & 2)
        ours, theirs = air.side(central), air.side(not central)
        ours.phy = airtime.PHY_2M if tx_2m else airtime.PHY_1M
        theirs.phy = airtime.PHY_2M if rx_2m else airtime.PHY_1M
        self._after_ll_exchange(lambda: self._announce_phy(air))
        return None

    def on_hci_le_read_phy_command(self, command):
        connection = self.find_le_connection_by_handle(command.connection_handle)
        air = getattr(connection, 'air', None)
        if air is None:
            return super().on_hci_le_read_phy_command(command)
        central = connection.role == hci.Role.CENTRAL
        return hci.HCI_LE_Read_PHY_ReturnParameters(
            status=Err.SUCCESS,
            connection_handle=command.connection_handle,
            tx_phy=air.side(central).phy,
            rx_phy=air.side(not central).phy,
        )

    # ------------------------------------------------------------------ radio model
    def _start_air(self, connection, peripheral: 'VController', peer_connection, interval: int) -> None:
        """Both ends of a new link share one AirLink (the central makes it)."""

        def deliver_to(controller: 'VController', conn) -> Callable[[bytes, bool], None]:
            def deliver(payload: bytes, start: bool) -> None:
                if controller.le_connections.get(conn.peer_address) is not conn:
                    return
                pb = hci.HCI_ACL_PB_FIRST_FLUSHABLE if start else hci.HCI_ACL_PB_CONTINUATION
                controller.send_hci_packet(
                    hci.HCI_AclDataPacket(conn.handle, pb, 0, len(payload), payload)
                )

            return deliver

        air = airtime.AirLink(
            interval * 1250,
            self.profile.air_max_exchanges,
            airtime.Side(deliver_to(self, connection)),
            airtime.Side(deliver_to(peripheral, peer_connection)),
        )
        connection.air = air
        peer_connection.air = air
        air.handles = {True: (self, connection), False: (peripheral, peer_connection)}

    def _after_ll_exchange(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once an LL request and its response would have crossed the link."""
        delay = self.link.acl_delay if isinstance(self.link, VLocalLink) else 0.0
        asyncio.get_running_loop().call_later(2 * delay, callback)

    @staticmethod
    def _announce_data_length(air: airtime.AirLink) -> None:
        for central, (controller, conn) in air.handles.items():
            if controller.le_connections.get(conn.peer_address) is not conn:
                continue
            tx, rx = air.side(central), air.side(not central)
            controller.send_hci_packet(
                hci.HCI_LE_Data_Length_Change_Event(
                    connection_handle=conn.handle,
                    max_tx_octets=tx.max_tx_octets,
                    max_tx_time=(tx.max_tx_octets + 14) * 8,
                    max_rx_octets=rx.max_tx_octets,
                    max_rx_time=(rx.max_tx_octets + 14) * 8,
                )
            )

    @staticmethod
    def _announce_phy(air: airtime.AirLink) -> None:
        for central, (controller, conn) in air.handles.items():
            if controller.le_connections.get(conn.peer_address) is not conn:
                continue
            controller.send_hci_packet(
                hci.HCI_LE_PHY_Update_Complete_Event(
                    status=Err.SUCCESS,
                    connection_handle=conn.handle,
                    tx_phy=air.side(central).phy,
                    rx_phy=air.side(not central).phy,
                )
            )

    # ------------------------------------------------------------------ data
    @property
    def le_acl_buffers(self) -> tuple[int, int]:
        """(length, count) of the buffers LE ACL data from the host goes into: the LE ones,
        or the shared ones when LE Read Buffer Size says 0 (Core Vol 4 Part E 7.8.2)."""
        if self.le_acl_data_packet_length == 0:
            return self.acl_data_packet_length, self.total_num_acl_data_packets
        return self.le_acl_data_packet_length, self.total_num_le_acl_data_packets

    @property
    def acl_packets_in_use(self) -> int:
        return sum(self.acl_in_use.values())

    def _host_bug(self, message: str) -> None:
        self.host_bugs.append(message)
        logger.error('%s [%s] %s', HOST_BUG, self.name, message)

    def on_hci_acl_data_packet(self, packet: hci.HCI_AclDataPacket) -> None:
        """LE ACL data from the host into the controller's buffers (Core Vol 4 Part E 4.1.1).

        A packet longer than a buffer, or one sent while every buffer still holds a packet
        not yet reported in Number of Completed Packets, is a host error: it is logged as
        HOST_BUG and dropped, as a real part would lose it. A packet's buffer is freed, and
        reported completed, once it has gone out on the link (the link's delay; at once for
        the plain controller)."""
        connection = self.find_le_connection_by_handle(packet.connection_handle)
        if connection is None:
            super().on_hci_acl_data_packet(packet)
            return
        size, count = self.le_acl_buffers
        if packet.data_total_length > size:
            self._host_bug(
                f'ACL packet of {packet.data_total_length} bytes on handle '
                f'0x{packet.connection_handle:03X}: the controller\'s buffers hold {size} '
                f'(profile {self.profile.name})'
            )
            return
        if self.acl_packets_in_use >= count:
            self._host_bug(
                f'ACL packet on handle 0x{packet.connection_handle:03X} while all {count} '
                f'ACL buffers are in use (no Number of Completed Packets for them yet; '
                f'profile {self.profile.name})'
            )
            return
        self.acl_in_use[connection.handle] = self.acl_in_use.get(connection.handle, 0) + 1
        air = getattr(connection, 'air', None)
        if air is not None:
            air.send(
                connection.role == hci.Role.CENTRAL,
                bytes(packet.data),
                packet.pb_flag != hci.HCI_ACL_PB_CONTINUATION,
                lambda: self._acl_packet_sent(connection),
            )
            return
        connection.assembler.feed_packet(packet)
        if not self.profile.nocp_after_link:
            self._acl_packet_sent(connection)  # right away, as Bumble's controller does
            return
        delay = self.link.acl_delay if isinstance(self.link, VLocalLink) else 0.0
        asyncio.get_running_loop().call_later(delay, self._acl_packet_sent, connection)

    def _acl_packet_sent(self, connection: Connection) -> None:
        if self.le_connections.get(connection.peer_address) is not connection:
            return  # gone: the disconnection freed its buffers
        in_use = self.acl_in_use.get(connection.handle, 0)
        if in_use == 0:
            return
        self.acl_in_use[connection.handle] = in_use - 1
        self.send_hci_packet(
            hci.HCI_Number_Of_Completed_Packets_Event(
                connection_handles=[connection.handle], num_completed_packets=[1]
            )
        )

    def on_link_acl_data(
        self, sender_address: hci.Address, transport: PhysicalTransport, data: bytes
    ) -> None:
        if transport == PhysicalTransport.LE:
            connection = self.le_connections.get(sender_address)
            # Data reaches the host in link-layer PDUs, at most the controller's buffer size
            # and never over 251 bytes (the largest LE data payload).
            size = min(self.le_acl_buffers[0], 251)
        else:
            connection = self.classic_connections.get(sender_address)
            size = self.acl_data_packet_length
        if connection is None:
            logger.debug('[%s] ACL data from unconnected %s dropped', self.name, sender_address)
            return
        pb_flag = hci.HCI_ACL_PB_FIRST_FLUSHABLE
        for offset in range(0, max(len(data), 1), size):
            chunk = data[offset : offset + size]
            self.send_hci_packet(
                hci.HCI_AclDataPacket(connection.handle, pb_flag, 0, len(chunk), chunk)
            )
            pb_flag = hci.HCI_ACL_PB_CONTINUATION
