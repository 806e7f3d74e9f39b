// The GATT server methods of bluetooth.BLE: argument parsing, result objects and exceptions.
//
// The server itself (value store, NimBLE registration, access callbacks) is Rust
// (src/host/gatts.rs). This file turns Python arguments into plain C values, calls one
// ubt_gatts_* function, and raises if it returned an error: after the Rust call, never inside
// it. The argument conversions and their order follow MicroPython's C module, so scripts see
// the same TypeError/ValueError for the same mistakes (spec §3.2, §8.1).

#include "py/runtime.h"
#include "py/objtuple.h"

#include "modubluetooth.h"

// ----------------------------------------------------------------------------------------------
// gatts_register_services

// The registration flattened: services, each followed by its characteristics, each followed
// by its descriptors. On the GC heap, reachable from the caller's stack while it is used.
typedef struct {
    ubt_gatts_entry_t *items;
    size_t len;
    size_t alloc;
} ubt_gatts_entries_t;

static size_t ubt_gatts_add(ubt_gatts_entries_t *list, uint8_t kind, uint16_t flags, mp_obj_t uuid) {
    if (list->len == list->alloc) {
        size_t grown = list->alloc ? list->alloc * 2 : 16;
        list->items = m_renew(ubt_gatts_entry_t, list->items, list->alloc, grown);
        list->alloc = grown;
    }
    ubt_gatts_entry_t *e = &list->items[list->len];
    e->kind = kind;
    e->flags = flags;
    e->uuid = ((ubt_uuid_obj_t *)MP_OBJ_TO_PTR(uuid))->uuid;
    return list->len++;
}

// One characteristic: (uuid, flags[, descriptors]), descriptors being (uuid, flags) pairs.
static void ubt_gatts_parse_characteristic(ubt_gatts_entries_t *list, mp_obj_t chr_in) {
    size_t len;
    mp_obj_t *items;
    mp_obj_get_array(chr_in, &len, &items);
    if (len < 2 || len > 3) {
        mp_raise_ValueError(MP_ERROR_TEXT("invalid characteristic tuple"));
    }
    if (!mp_obj_is_type(items[0], &ubt_uuid_type)) {
        mp_raise_ValueError(MP_ERROR_TEXT("invalid characteristic UUID"));
    }
    size_t chr_index = ubt_gatts_add(list, UBT_GATTS_CHARACTERISTIC, 0, items[0]);
    if (len == 3 && mp_obj_get_int(mp_obj_len(items[2])) != 0) {
        mp_obj_iter_buf_t iter_buf;
        mp_obj_t iter = mp_getiter(items[2], &iter_buf);
        mp_obj_t dsc_in;
        while ((dsc_in = mp_iternext(iter)) != MP_OBJ_STOP_ITERATION) {
            mp_obj_t *dsc;
            mp_obj_get_array_fixed_n(dsc_in, 2, &dsc);
            if (!mp_obj_is_type(dsc[0], &ubt_uuid_type)) {
                mp_raise_ValueError(MP_ERROR_TEXT("invalid descriptor UUID"));
            }
            uint16_t flags = (uint16_t)mp_obj_get_int(dsc[1]);
            ubt_gatts_add(list, UBT_GATTS_DESCRIPTOR, flags, dsc[0]);
        }
    }
    // The C module converts the characteristic's flags after its descriptors; a script with
    // two mistakes sees the same one first.
    list->items[chr_index].flags = (uint16_t)mp_obj_get_int(items[1]);
}

// One service: exactly (uuid, characteristics).
static void ubt_gatts_parse_service(ubt_gatts_entries_t *list, mp_obj_t svc_in) {
    mp_obj_t *items;
    mp_obj_get_array_fixed_n(svc_in, 2, &items);
    if (!mp_obj_is_type(items[0], &ubt_uuid_type)) {
        mp_raise_ValueError(MP_ERROR_TEXT("invalid service UUID"));
    }
    ubt_gatts_add(list, UBT_GATTS_SERVICE, 0, items[0]);
    // Characteristics must have a len(), as in the C module, even though only iterated.
    mp_obj_len(items[1]);
    mp_obj_iter_buf_t iter_buf;
    mp_obj_t iter = mp_getiter(items[1], &iter_buf);
    mp_obj_t chr_in;
    while ((chr_in = mp_iternext(iter)) != MP_OBJ_STOP_ITERATION) {
        ubt_gatts_parse_characteristic(list, chr_in);
    }
}

static mp_obj_t ubt_meth_gatts_register_services(mp_obj_t self_in, mp_obj_t services_in) {
    (void)self_in;
    mp_obj_len(services_in);
    // Inactive/busy errors come before any complaint about the structure, and a structure
    // error leaves the server empty: both as in the C module (spec §8.1).
    ubt_check(ubt_gatts_register_begin());

    ubt_gatts_entries_t list = { .items = NULL, .len = 0, .alloc = 0 };
    size_t n_services = 0;
    mp_obj_iter_buf_t iter_buf;
    mp_obj_t iter = mp_getiter(services_in, &iter_buf);
    mp_obj_t svc_in;
    // One service past the limit is still parsed, so its own errors win over E2BIG (which
    // Rust reports for it) and later services are never looked at, as in the C module.
    while (n_services <= UBT_GATTS_MAX_SERVICES
           && (svc_in = mp_iternext(iter)) != MP_OBJ_STOP_ITERATION) {
        ubt_gatts_parse_service(&list, svc_in);
        ++n_services;
    }

    size_t n_handles = list.len - n_services;
    uint16_t *handles = m_new(uint16_t, n_handles ? n_handles : 1);
    ubt_check(ubt_gatts_register(list.items, list.len, handles, n_handles));

    // A tuple per service of its characteristic and descriptor handles, in definition order.
    mp_obj_tuple_t *result = MP_OBJ_TO_PTR(mp_obj_new_tuple(n_services, NULL));
    size_t entry = 0;
    size_t handle = 0;
    for (size_t s = 0; s < n_services; ++s) {
        ++entry; // the service itself
        size_t count = 0;
        while (entry + count < list.len && list.items[entry + count].kind != UBT_GATTS_SERVICE) {
            ++count;
        }
        mp_obj_tuple_t *inner = MP_OBJ_TO_PTR(mp_obj_new_tuple(count, NULL));
        for (size_t i = 0; i < count; ++i) {
            inner->items[i] = MP_OBJ_NEW_SMALL_INT(handles[handle++]);
        }
        result->items[s] = MP_OBJ_FROM_PTR(inner);
        entry += count;
    }
    m_del(uint16_t, handles, n_handles ? n_handles : 1);
    m_del(ubt_gatts_entry_t, list.items, list.alloc);
    return MP_OBJ_FROM_PTR(result);
}
MP_DEFINE_CONST_FUN_OBJ_2(ubt_ble_gatts_register_services_obj, ubt_meth_gatts_register_services);

// ----------------------------------------------------------------------------------------------
// Values

// Never raises for the stack's state or the handle: unknown handles and an inactive stack
// give b'' (spec §5.5). In append mode the read empties the stored value.
static mp_obj_t ubt_meth_gatts_read(mp_obj_t self_in, mp_obj_t value_handle_in) {
    (void)self_in;
    uint16_t value_handle = (uint16_t)mp_obj_get_int(value_handle_in);
    const uint8_t *data = NULL;
    size_t len = 0;
    ubt_gatts_read(value_handle, &data, &len);
    if (len == 0) {
        return mp_const_empty_bytes;
    }
    // Copied at once: the bytes are only valid until the next ubt_gatts_* call.
    return mp_obj_new_bytes(data, len);
}
MP_DEFINE_CONST_FUN_OBJ_2(ubt_ble_gatts_read_obj, ubt_meth_gatts_read);

// Returns len(data), as the C module does.
static mp_obj_t ubt_meth_gatts_write(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[2], &bufinfo, MP_BUFFER_READ);
    bool send_update = n_args > 3 && mp_obj_is_true(args[3]);
    uint16_t value_handle = (uint16_t)mp_obj_get_int(args[1]);
    ubt_check(ubt_gatts_write(value_handle, bufinfo.buf, bufinfo.len, send_update));
    return MP_OBJ_NEW_SMALL_INT(bufinfo.len);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gatts_write_obj, 3, 4, ubt_meth_gatts_write);

static mp_obj_t ubt_meth_gatts_set_buffer(size_t n_args, const mp_obj_t *args) {
    uint16_t value_handle = (uint16_t)mp_obj_get_int(args[1]);
    // A negative length becomes a huge size, which fails with ENOMEM (spec §5.5).
    size_t len = (size_t)mp_obj_get_int(args[2]);
    bool append = n_args > 3 && mp_obj_is_true(args[3]);
    ubt_check(ubt_gatts_set_buffer(value_handle, len, append));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gatts_set_buffer_obj, 3, 4, ubt_meth_gatts_set_buffer);

// ----------------------------------------------------------------------------------------------
// Notify / indicate

// Without data (or with None) NimBLE reads the stored value, which raises
// _IRQ_GATTS_READ_REQUEST(65535, handle) from inside this call.
static mp_obj_t ubt_gatts_send(size_t n_args, const mp_obj_t *args, bool indicate) {
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    uint16_t value_handle = (uint16_t)mp_obj_get_int(args[2]);
    ubt_opt_buf_t data = ubt_opt_buf(n_args > 3 ? args[3] : mp_const_none);
    ubt_check(ubt_gatts_notify(conn_handle, value_handle, data, indicate));
    return mp_const_none;
}

static mp_obj_t ubt_meth_gatts_notify(size_t n_args, const mp_obj_t *args) {
    return ubt_gatts_send(n_args, args, false);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gatts_notify_obj, 3, 4, ubt_meth_gatts_notify);

static mp_obj_t ubt_meth_gatts_indicate(size_t n_args, const mp_obj_t *args) {
    return ubt_gatts_send(n_args, args, true);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_gatts_indicate_obj, 3, 4, ubt_meth_gatts_indicate);
