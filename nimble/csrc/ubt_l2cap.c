/*
 * NimBLE's L2CAP core (ble_l2cap.c, compiled as it is) with one call redirected: freeing a
 * channel also makes the signalling procedures forget it (see ubt_l2cap_sig.c).
 */
#define ble_l2cap_coc_cleanup_chan ubt_l2cap_coc_cleanup_chan
#include "ble_l2cap.c"
#undef ble_l2cap_coc_cleanup_chan

void ubt_l2cap_sig_forget_chan(struct ble_l2cap_chan *chan);

#if MYNEWT_VAL(BLE_L2CAP_COC_MAX_NUM) != 0
void ble_l2cap_coc_cleanup_chan(struct ble_hs_conn *conn, struct ble_l2cap_chan *chan);
#endif

void ubt_l2cap_coc_cleanup_chan(struct ble_hs_conn *conn, struct ble_l2cap_chan *chan) {
    ubt_l2cap_sig_forget_chan(chan);
#if MYNEWT_VAL(BLE_L2CAP_COC_MAX_NUM) != 0
    ble_l2cap_coc_cleanup_chan(conn, chan);
#else
    (void)conn;
#endif
}
