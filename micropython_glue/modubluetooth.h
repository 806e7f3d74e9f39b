// What the shim's C files share: the Rust core's header, the BLE and UUID objects, and the
// status-to-exception helpers. Methods of BLE live in modubluetooth.c (core, GAP), gatts.c
// (GATT server) and gattc.c (GATT client); modubluetooth.c's locals table lists them all.
#ifndef UBT_MODUBLUETOOTH_H
#define UBT_MODUBLUETOOTH_H

#include "py/obj.h"
#include "py/objarray.h"
#include "py/objtuple.h"
#include "ubluetooth.h"

// The parts a firmware may leave out (docs/building.md, "Feature profiles"), 1 or 0 each:
// micropython.mk sets them from UBT_FEATURES, the same list it gives cargo as features, so the
// methods here and the Rust functions they call come and go together. A part left out takes
// its methods off BLE (AttributeError) and its config keys (ValueError), as MicroPython's own
// build options do.
#ifndef UBT_CENTRAL
#define UBT_CENTRAL (1)
#endif
#ifndef UBT_PERIPHERAL
#define UBT_PERIPHERAL (1)
#endif
#ifndef UBT_GATT_CLIENT
#define UBT_GATT_CLIENT (1)
#endif
#ifndef UBT_L2CAP
#define UBT_L2CAP (1)
#endif
#ifndef UBT_SECURITY
#define UBT_SECURITY (1)
#endif

// How many items an event's data tuple has at most, and how many memoryviews one event can
// carry (a scan result's address and data, a secret's key and value); the BLE object keeps a
// tuple and that many views to reuse.
#define UBT_IRQ_MAX_ARGS (6)
#define UBT_REUSED_VIEWS (2)

typedef struct _ubt_ble_obj_t {
    mp_obj_base_t base;
    mp_obj_t irq_handler;
    // The data tuple and memoryview objects handed to the handler, one set reused by every
    // event that isn't raised from inside another handler; reachable from the singleton, so
    // never swept.
    mp_obj_tuple_t *irq_data;
    mp_obj_array_t *views[UBT_REUSED_VIEWS];
} ubt_ble_obj_t;

typedef struct _ubt_uuid_obj_t {
    mp_obj_base_t base;
    ubt_uuid_t uuid;
} ubt_uuid_obj_t;

extern const mp_obj_type_t ubt_uuid_type;

// A new UUID object holding a copy of `value`.
mp_obj_t ubt_uuid_new(const ubt_uuid_t *value);

// Raises the exception a non-zero status stands for (OSError(st) or a ValueError).
NORETURN void ubt_raise(ubt_status_t st);

// An optional buffer argument: None, or any object with the buffer protocol (else TypeError).
ubt_opt_buf_t ubt_opt_buf(mp_obj_t obj);

static inline void ubt_check(ubt_status_t st) {
    if (st != 0) {
        ubt_raise(st);
    }
}

#if UBT_GATT_CLIENT
// --- GATT client (gattc.c): method objects for modubluetooth.c's locals table ---------------
extern const mp_obj_fun_builtin_var_t ubt_ble_gattc_discover_services_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_gattc_discover_characteristics_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_gattc_discover_descriptors_obj;
extern const mp_obj_fun_builtin_fixed_t ubt_ble_gattc_read_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_gattc_write_obj;
extern const mp_obj_fun_builtin_fixed_t ubt_ble_gattc_exchange_mtu_obj;
// --- end GATT client ---------------------------------------------------------------------------
#endif

// --- GATT server (gatts.c): method objects for modubluetooth.c's locals table ---------------
extern const mp_obj_fun_builtin_fixed_t ubt_ble_gatts_register_services_obj;
extern const mp_obj_fun_builtin_fixed_t ubt_ble_gatts_read_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_gatts_write_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_gatts_notify_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_gatts_indicate_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_gatts_set_buffer_obj;
// --- end GATT server ---------------------------------------------------------------------------

#if UBT_L2CAP
// --- L2CAP channels (l2cap.c): method objects for modubluetooth.c's locals table ------------
extern const mp_obj_fun_builtin_fixed_t ubt_ble_l2cap_listen_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_l2cap_connect_obj;
extern const mp_obj_fun_builtin_fixed_t ubt_ble_l2cap_disconnect_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_l2cap_send_obj;
extern const mp_obj_fun_builtin_var_t ubt_ble_l2cap_recvinto_obj;
#endif
// --- end L2CAP channels ------------------------------------------------------------------------

#endif // UBT_MODUBLUETOOTH_H
