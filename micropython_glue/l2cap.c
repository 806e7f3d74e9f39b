// The L2CAP channel methods of BLE: argument parsing and exceptions only.
//
// The Rust core (src/host/l2cap.rs) owns the channel and raises events 22-26. Arguments are
// converted as MicroPython's C module converts them: ints truncated to u16, the MTU clamped to
// 32..65535 before that, the same TypeError texts and argument counts.

#include "py/runtime.h"

#include "modubluetooth.h"

#if UBT_L2CAP

// l2cap_listen(psm, mtu, /)
static mp_obj_t ubt_meth_l2cap_listen(mp_obj_t self_in, mp_obj_t psm_in, mp_obj_t mtu_in) {
    (void)self_in;
    uint16_t psm = (uint16_t)mp_obj_get_int(psm_in);
    uint16_t mtu = ubt_l2cap_clamp_mtu(mp_obj_get_int(mtu_in));
    ubt_check(ubt_l2cap_listen(psm, mtu));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_3(ubt_ble_l2cap_listen_obj, ubt_meth_l2cap_listen);

// l2cap_connect(conn_handle, psm, mtu, /)
static mp_obj_t ubt_meth_l2cap_connect(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    uint16_t psm = (uint16_t)mp_obj_get_int(args[2]);
    uint16_t mtu = ubt_l2cap_clamp_mtu(mp_obj_get_int(args[3]));
    ubt_check(ubt_l2cap_connect(conn_handle, psm, mtu));
    return mp_const_none;
}
// Variable-arity with a fixed count, as the C module declares it (same argument-count errors).
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_l2cap_connect_obj, 4, 4, ubt_meth_l2cap_connect);

// l2cap_disconnect(conn_handle, cid, /)
static mp_obj_t ubt_meth_l2cap_disconnect(mp_obj_t self_in, mp_obj_t conn_handle_in, mp_obj_t cid_in) {
    (void)self_in;
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(conn_handle_in);
    uint16_t cid = (uint16_t)mp_obj_get_int(cid_in);
    ubt_check(ubt_l2cap_disconnect(conn_handle, cid));
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_3(ubt_ble_l2cap_disconnect_obj, ubt_meth_l2cap_disconnect);

// l2cap_send(conn_handle, cid, buf, /) -> bool: False when stalled.
static mp_obj_t ubt_meth_l2cap_send(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    uint16_t cid = (uint16_t)mp_obj_get_int(args[2]);
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[3], &bufinfo, MP_BUFFER_READ);
    bool more = true;
    ubt_check(ubt_l2cap_send(conn_handle, cid, bufinfo.buf, bufinfo.len, &more));
    return mp_obj_new_bool(more);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_l2cap_send_obj, 4, 4, ubt_meth_l2cap_send);

// l2cap_recvinto(conn_handle, cid, buf, /) -> int; buf=None gives the number of bytes pending.
static mp_obj_t ubt_meth_l2cap_recvinto(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    uint16_t conn_handle = (uint16_t)mp_obj_get_int(args[1]);
    uint16_t cid = (uint16_t)mp_obj_get_int(args[2]);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (args[3] != mp_const_none) {
        mp_buffer_info_t bufinfo;
        mp_get_buffer_raise(args[3], &bufinfo, MP_BUFFER_WRITE);
        buf = bufinfo.buf;
        len = bufinfo.len;
        if (buf == NULL) {
            // An empty buffer may have no storage: still "a buffer", not a query.
            static uint8_t empty;
            buf = &empty;
            len = 0;
        }
    }
    ubt_check(ubt_l2cap_recvinto(conn_handle, cid, buf, &len));
    return MP_OBJ_NEW_SMALL_INT(len);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ubt_ble_l2cap_recvinto_obj, 4, 4, ubt_meth_l2cap_recvinto);

#endif // UBT_L2CAP
