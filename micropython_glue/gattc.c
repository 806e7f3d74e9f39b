// The GATT client methods of BLE: argument parsing and exceptions only.
//
// The Rust core (src/host/gattc.rs) starts the NimBLE procedure and reports results later as IRQ
// events. Arguments are converted exactly as MicroPython's C module converts them (ints
// truncated to the C width, the same TypeError texts), so scripts see the same errors.

#include "py/runtime.h"

#include "modubluetooth.h"

#if UBT_GATT_CLIENT

// An optional UUID argument: NULL for None, else it must be a bluetooth.UUID.
static const ubt_uuid_t *ubt_gattc_uuid_arg(mp_obj_t obj) {
    if (obj == mp_const_none) {
        return NULL;
    }
    if (!mp_obj_is_type(obj, &ubt_uuid_type)) {
        mp_raise_TypeError(MP_ERROR_TEXT("UUID"));
    }
    const ubt_uuid_obj_t *uuid = MP_OBJ_TO_PTR(obj);
    return &uuid->uuid;
}

// gattc_discover_services(conn_handle, uuid=None, /)
static mp_obj_t ubt_meth_gattc_discover_services(size_t n_args, const mp_obj_t *args) {
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    const ubt_uuid_t *uuid = n_args > 2 ? ubt_gattc_uuid_arg(args[2]) : NULL;
    ubt_check(ubt_gattc_discover_services(conn_handle, uuid));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gattc_discover_services_obj, 2, 3, ubt_meth_gattc_discover_services);

// gattc_discover_characteristics(conn_handle, start_handle, end_handle, uuid=None, /)
static mp_obj_t ubt_meth_gattc_discover_characteristics(size_t n_args, const mp_obj_t *args) {
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    uint16_t start_handle = (uint16_t)mp_obj_get_int(args[2]);
    uint16_t end_handle = (uint16_t)mp_obj_get_int(args[3]);
    const ubt_uuid_t *uuid = n_args > 4 ? ubt_gattc_uuid_arg(args[4]) : NULL;
    ubt_check(ubt_gattc_discover_characteristics(conn_handle, start_handle, end_handle, uuid));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gattc_discover_characteristics_obj, 4, 5, ubt_meth_gattc_discover_characteristics);

// gattc_discover_descriptors(conn_handle, start_handle, end_handle, /)
static mp_obj_t ubt_meth_gattc_discover_descriptors(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    uint16_t start_handle = (uint16_t)mp_obj_get_int(args[2]);
    uint16_t end_handle = (uint16_t)mp_obj_get_int(args[3]);
    ubt_check(ubt_gattc_discover_descriptors(conn_handle, start_handle, end_handle));
    return mp_const_none;
}
// Declared variable-arity with a fixed count, as the C module does (same argument-count errors).
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gattc_discover_descriptors_obj, 4, 4, ubt_meth_gattc_discover_descriptors);

// gattc_read(conn_handle, value_handle, /)
static mp_obj_t ubt_meth_gattc_read(mp_obj_t self_in, mp_obj_t conn_handle_in, mp_obj_t value_handle_in) {
    (void)self_in;
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(conn_handle_in);
    uint16_t value_handle = (uint16_t)mp_obj_get_int(value_handle_in);
    ubt_check(ubt_gattc_read(conn_handle, value_handle));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_3(ubt_ble_gattc_read_obj, ubt_meth_gattc_read);

// gattc_write(conn_handle, value_handle, data, mode=0, /)
static mp_obj_t ubt_meth_gattc_write(size_t n_args, const mp_obj_t *args) {
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    uint16_t value_handle = (uint16_t)mp_obj_get_int(args[2]);
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[3], &bufinfo, MP_BUFFER_READ);
    // An unsigned int in the C module: negative modes become large and are refused.
    uint32_t mode = n_args > 4 ? (uint32_t)mp_obj_get_int(args[4]) : 0;
    ubt_check(ubt_gattc_write(conn_handle, value_handle, bufinfo.buf, bufinfo.len, mode));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gattc_write_obj, 4, 5, ubt_meth_gattc_write);

// gattc_exchange_mtu(conn_handle, /)
static mp_obj_t ubt_meth_gattc_exchange_mtu(mp_obj_t self_in, mp_obj_t conn_handle_in) {
    (void)self_in;
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(conn_handle_in);
    ubt_check(ubt_gattc_exchange_mtu(conn_handle));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_2(ubt_ble_gattc_exchange_mtu_obj, ubt_meth_gattc_exchange_mtu);

#endif // UBT_GATT_CLIENT
