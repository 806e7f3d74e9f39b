/*
 * NimBLE build configuration for ubluetooth.
 *
 * NimBLE reads every setting as MYNEWT_VAL(NAME). The values mirror the build profile of
 * MicroPython v1.25.0's NimBLE ports (spec section 12) so that handle numbering, MTU, pool
 * sizes and pairing defaults behave the same. A setting not listed here evaluates to 0 in
 * preprocessor tests, which is what we want for features we leave out (controller, ISO,
 * periodic advertising, extended advertising).
 */
#ifndef UBT_NIMBLE_SYSCFG_H
#define UBT_NIMBLE_SYSCFG_H

#include <stddef.h>

/* NimBLE's few heap allocations (GATT server tables) go through the embedding firmware, which
 * puts them where its memory rules say (MicroPython: the GC heap, tracked from a root). */
void *ubt_nimble_malloc(size_t size);
void ubt_nimble_free(void *ptr);
void *ubt_nimble_realloc(void *ptr, size_t size);
#define malloc(size) ubt_nimble_malloc(size)
#define free(ptr) ubt_nimble_free(ptr)
#define realloc(ptr, size) ubt_nimble_realloc(ptr, size)

#define MYNEWT_VAL(name) MYNEWT_VAL_##name

/* --- Build settings ----------------------------------------------------------------------
 * Limits a firmware may choose at build time: nimble-sys's build.rs turns the environment
 * variables of the same names into -D flags for the C compiler and a forced-include header for
 * bindgen, so Rust sees the same values NimBLE was compiled with (docs/building.md, "Build
 * settings"). */
#ifndef UBT_MAX_CONNECTIONS
/* Cortex-M parts keep the C module's 4 links (RAM); a Unix host can afford 8. Both NimBLE's C
 * compiler and bindgen (clang --target=thumbv7em-...) define the ACLE profile macro, so they
 * agree on the value. */
#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
#define UBT_MAX_CONNECTIONS 4
#else
#define UBT_MAX_CONNECTIONS 8
#endif
#endif
#ifndef UBT_L2CAP_RX_CREDITS
/* Credits the peer holds on each L2CAP channel we receive on, when more than the one SDU's
 * worth NimBLE grants: with more, the peer keeps sending while the script reads the last SDU,
 * instead of waiting a credit round trip (two connection events on a radio) per SDU. Each
 * credit is one K-frame of up to BLE_L2CAP_COC_MPS bytes the channel's receive pool must be
 * able to hold (docs/api.md, "Several L2CAP channels"). 0, the default, keeps NimBLE's (and
 * the C module's) one SDU: with 24, three busy channels between two of our firmwares failed
 * (docs/api.md says how). */
#define UBT_L2CAP_RX_CREDITS 0
#endif
#ifndef UBT_L2CAP_MAX_CHANNELS
/* Each open channel takes about 5 KiB of heap for its buffers (docs/api.md, "Several L2CAP
 * channels"), only while open: fewer on a microcontroller. Both the C compiler and bindgen see
 * __arm__ for thumbv7em. */
#if defined(__arm__)
#define UBT_L2CAP_MAX_CHANNELS 4
#else
#define UBT_L2CAP_MAX_CHANNELS 8
#endif
#endif

/* Logging is compiled out entirely. */
#define MYNEWT_VAL_LOG_LEVEL (255)
#define MYNEWT_VAL_NEWT_FEATURE_LOGCFG (1)

/* --- OS porting layer: memory pools ------------------------------------------------- */
#define MYNEWT_VAL_MSYS_1_BLOCK_COUNT (12)
#define MYNEWT_VAL_MSYS_1_BLOCK_SIZE (292)
#define MYNEWT_VAL_MSYS_2_BLOCK_COUNT (0)
#define MYNEWT_VAL_MSYS_2_BLOCK_SIZE (0)
#define MYNEWT_VAL_OS_CPUTIME_FREQ (1000000)
#define MYNEWT_VAL_OS_CPUTIME_TIMER_NUM (0)
#define MYNEWT_VAL_OS_MEMPOOL_CHECK (0)
#define MYNEWT_VAL_OS_MEMPOOL_POISON (0)
#define MYNEWT_VAL_FLOAT_USER (0)

/* --- Feature profiles ------------------------------------------------------------------
 * The parts a firmware may leave out, one Cargo feature each (nimble-sys's build.rs defines
 * these as 0 or 1 from them; docs/building.md, "Feature profiles"). Unset means on. */
#ifndef UBT_CENTRAL
#define UBT_CENTRAL 1
#endif
#ifndef UBT_PERIPHERAL
#define UBT_PERIPHERAL 1
#endif
#ifndef UBT_GATT_CLIENT
#define UBT_GATT_CLIENT 1
#endif
#ifndef UBT_L2CAP
#define UBT_L2CAP 1
#endif
#ifndef UBT_SECURITY
#define UBT_SECURITY 1
#endif

/* --- Roles ---------------------------------------------------------------------------- */
/* Advertising stays built without the peripheral feature: this NimBLE's GAP timer calls its
 * advertising code whenever extended advertising is off. */
#define MYNEWT_VAL_BLE_ROLE_BROADCASTER (1)
#define MYNEWT_VAL_BLE_ROLE_OBSERVER (UBT_CENTRAL)
#define MYNEWT_VAL_BLE_ROLE_CENTRAL (UBT_CENTRAL)
#define MYNEWT_VAL_BLE_ROLE_PERIPHERAL (UBT_PERIPHERAL)
#define MYNEWT_VAL_BLE_WHITELIST (1)
/* Legacy advertising PDUs only: 31-byte payloads, legacy scan reports. */
#define MYNEWT_VAL_BLE_EXT_ADV (0)
#define MYNEWT_VAL_BLE_EXT_ADV_MAX_SIZE (31)
#define MYNEWT_VAL_BLE_MULTI_ADV_INSTANCES (0)
#define MYNEWT_VAL_BLE_MAX_CONNECTIONS (UBT_MAX_CONNECTIONS)

/* --- Host ----------------------------------------------------------------------------- */
#define MYNEWT_VAL_BLE_HOST (1)
#define MYNEWT_VAL_BLE_HS_AUTO_START (1)
#define MYNEWT_VAL_BLE_HS_DEBUG (0)
#define MYNEWT_VAL_BLE_HS_PHONY_HCI_ACKS (0)
#define MYNEWT_VAL_BLE_HS_REQUIRE_OS (1)
#define MYNEWT_VAL_BLE_HS_FLOW_CTRL (0)
#define MYNEWT_VAL_BLE_HS_FLOW_CTRL_ITVL (1000)
#define MYNEWT_VAL_BLE_HS_FLOW_CTRL_THRESH (2)
#define MYNEWT_VAL_BLE_HS_FLOW_CTRL_TX_ON_DISCONNECT (0)
#define MYNEWT_VAL_BLE_HS_STOP_ON_SHUTDOWN_TIMEOUT (2000)
#define MYNEWT_VAL_BLE_RPA_TIMEOUT (300)
#define MYNEWT_VAL_BLE_GAP_MAX_PENDING_CONN_PARAM_UPDATE (1)

/* --- ATT server ------------------------------------------------------------------------ */
#define MYNEWT_VAL_BLE_ATT_PREFERRED_MTU (256)
#define MYNEWT_VAL_BLE_ATT_SVR_FIND_INFO (1)
#define MYNEWT_VAL_BLE_ATT_SVR_FIND_TYPE (1)
#define MYNEWT_VAL_BLE_ATT_SVR_INDICATE (1)
#define MYNEWT_VAL_BLE_ATT_SVR_NOTIFY (1)
#define MYNEWT_VAL_BLE_ATT_SVR_QUEUED_WRITE (1)
#define MYNEWT_VAL_BLE_ATT_SVR_MAX_PREP_ENTRIES (64)
#define MYNEWT_VAL_BLE_ATT_SVR_QUEUED_WRITE_TMO (30000)
#define MYNEWT_VAL_BLE_ATT_SVR_READ (1)
#define MYNEWT_VAL_BLE_ATT_SVR_READ_BLOB (1)
#define MYNEWT_VAL_BLE_ATT_SVR_READ_GROUP_TYPE (1)
#define MYNEWT_VAL_BLE_ATT_SVR_READ_MULT (1)
#define MYNEWT_VAL_BLE_ATT_SVR_READ_TYPE (1)
#define MYNEWT_VAL_BLE_ATT_SVR_SIGNED_WRITE (1)
#define MYNEWT_VAL_BLE_ATT_SVR_WRITE (1)
#define MYNEWT_VAL_BLE_ATT_SVR_WRITE_NO_RSP (1)

/* --- GATT client procedures (all on, since the central role is on) --------------------- */
#define MYNEWT_VAL_BLE_GATT_MAX_PROCS (4)
#define MYNEWT_VAL_BLE_GATT_RESUME_RATE (1000)
#define MYNEWT_VAL_BLE_GATT_NOTIFY (1)
#define MYNEWT_VAL_BLE_GATT_INDICATE (1)
#define MYNEWT_VAL_BLE_GATT_DISC_ALL_SVCS (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_DISC_SVC_UUID (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_FIND_INC_SVCS (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_DISC_ALL_CHRS (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_DISC_CHR_UUID (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_DISC_ALL_DSCS (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_READ (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_READ_UUID (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_READ_LONG (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_READ_MULT (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_READ_MAX_ATTRS (8)
#define MYNEWT_VAL_BLE_GATT_WRITE (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_WRITE_NO_RSP (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_WRITE_LONG (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_WRITE_RELIABLE (UBT_GATT_CLIENT)
#define MYNEWT_VAL_BLE_GATT_WRITE_MAX_ATTRS (4)
#define MYNEWT_VAL_BLE_GATT_SIGNED_WRITE (UBT_GATT_CLIENT)

/* --- L2CAP ----------------------------------------------------------------------------- */
/* The three fixed channels (ATT, signalling, SM) of each link; NimBLE's channel pool adds
 * BLE_L2CAP_COC_MAX_NUM for connection-oriented channels on top. */
#define MYNEWT_VAL_BLE_L2CAP_MAX_CHANS (3 * MYNEWT_VAL_BLE_MAX_CONNECTIONS)
/* Signalling procedures in flight: a connect or disconnect per channel, a parameter update per
 * link, so a script can open or close several channels without waiting for each. */
#define MYNEWT_VAL_BLE_L2CAP_SIG_MAX_PROCS (UBT_L2CAP * UBT_L2CAP_MAX_CHANNELS + UBT_MAX_CONNECTIONS)
#define MYNEWT_VAL_BLE_L2CAP_JOIN_RX_FRAGS (1)
#define MYNEWT_VAL_BLE_L2CAP_RX_FRAG_TIMEOUT (30000)
#define MYNEWT_VAL_BLE_L2CAP_COC_MAX_NUM (UBT_L2CAP * UBT_L2CAP_MAX_CHANNELS)
/* One MSYS block holds an SDU segment plus its 8-byte L2CAP overhead. */
#define MYNEWT_VAL_BLE_L2CAP_COC_MPS (MYNEWT_VAL_MSYS_1_BLOCK_SIZE - 8)
#define MYNEWT_VAL_BLE_L2CAP_ENHANCED_COC (0)

/* --- Security manager (bond/mitm/io/le_secure are changed at run time by config()) ----- */
#define MYNEWT_VAL_BLE_SM_LEGACY (UBT_SECURITY)
#define MYNEWT_VAL_BLE_SM_SC (UBT_SECURITY)
#define MYNEWT_VAL_BLE_SM_MITM (0)
#define MYNEWT_VAL_BLE_SM_BONDING (0)
#define MYNEWT_VAL_BLE_SM_IO_CAP (BLE_HS_IO_NO_INPUT_OUTPUT)
#define MYNEWT_VAL_BLE_SM_KEYPRESS (0)
#define MYNEWT_VAL_BLE_SM_OOB_DATA_FLAG (0)
#define MYNEWT_VAL_BLE_SM_MAX_PROCS (1)
#define MYNEWT_VAL_BLE_SM_OUR_KEY_DIST (7)
#define MYNEWT_VAL_BLE_SM_THEIR_KEY_DIST (7)
/* The key store is the Python script (secret IRQs); NimBLE's RAM store is not built. */
#define MYNEWT_VAL_BLE_STORE_MAX_BONDS (3)
#define MYNEWT_VAL_BLE_STORE_MAX_CCCDS (8)

/* --- Monitor (unused; values only satisfy headers) ------------------------------------- */
#define MYNEWT_VAL_BLE_MONITOR_RTT (0)
#define MYNEWT_VAL_BLE_MONITOR_UART (0)
#define MYNEWT_VAL_BLE_MONITOR_RTT_BUFFERED (1)
#define MYNEWT_VAL_BLE_MONITOR_RTT_BUFFER_NAME ("monitor")
#define MYNEWT_VAL_BLE_MONITOR_RTT_BUFFER_SIZE (256)
#define MYNEWT_VAL_BLE_MONITOR_CONSOLE_BUFFER_SIZE (128)
#define MYNEWT_VAL_BLE_MONITOR_UART_BAUDRATE (1000000)
#define MYNEWT_VAL_BLE_MONITOR_UART_BUFFER_SIZE (64)
#define MYNEWT_VAL_BLE_MONITOR_UART_DEV ("uart0")

/* --- GAP service ----------------------------------------------------------------------- */
#ifdef UBT_DEFAULT_GAP_NAME
#define MYNEWT_VAL_BLE_SVC_GAP_DEVICE_NAME (UBT_DEFAULT_GAP_NAME)
#else
#define MYNEWT_VAL_BLE_SVC_GAP_DEVICE_NAME ("MPY NIMBLE")
#endif
#define MYNEWT_VAL_BLE_SVC_GAP_DEVICE_NAME_MAX_LENGTH (31)
#define MYNEWT_VAL_BLE_SVC_GAP_DEVICE_NAME_WRITE_PERM (-1)
#define MYNEWT_VAL_BLE_SVC_GAP_APPEARANCE (0)
#define MYNEWT_VAL_BLE_SVC_GAP_APPEARANCE_WRITE_PERM (-1)
#define MYNEWT_VAL_BLE_SVC_GAP_CENTRAL_ADDRESS_RESOLUTION (-1)
#define MYNEWT_VAL_BLE_SVC_GAP_PPCP_MIN_CONN_INTERVAL (0)
#define MYNEWT_VAL_BLE_SVC_GAP_PPCP_MAX_CONN_INTERVAL (0)
#define MYNEWT_VAL_BLE_SVC_GAP_PPCP_SLAVE_LATENCY (0)
#define MYNEWT_VAL_BLE_SVC_GAP_PPCP_SUPERVISION_TMO (0)

/* --- HCI transport: H4 over a UART, framed by ubluetooth's Rust transport -------------- */
#define MYNEWT_VAL_BLE_HCI_TRANSPORT_NIMBLE_BUILTIN (0)
#define MYNEWT_VAL_BLE_HCI_TRANSPORT_RAM (0)
#define MYNEWT_VAL_BLE_HCI_TRANSPORT_SOCKET (0)
#define MYNEWT_VAL_BLE_HCI_TRANSPORT_UART (1)
#define MYNEWT_VAL_BLE_ACL_BUF_COUNT (12)
#define MYNEWT_VAL_BLE_ACL_BUF_SIZE (255)
#define MYNEWT_VAL_BLE_HCI_ACL_OUT_COUNT (12)
#define MYNEWT_VAL_BLE_HCI_EVT_BUF_SIZE (257)
#define MYNEWT_VAL_BLE_HCI_EVT_HI_BUF_COUNT (8)
#define MYNEWT_VAL_BLE_HCI_EVT_LO_BUF_COUNT (8)

#endif /* UBT_NIMBLE_SYSCFG_H */
