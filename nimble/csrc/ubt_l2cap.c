/*
 * NimBLE's L2CAP core (ble_l2cap.c, compiled as it is) with one call redirected: freeing a
 * channel also makes the signalling procedures forget it (see ubt_l2cap_sig.c).
 */
#include "syscfg/syscfg.h"

#if MYNEWT_VAL(BLE_L2CAP_COC_MAX_NUM) != 0
#define ble_l2cap_coc_cleanup_chan ubt_l2cap_coc_cleanup_chan
#include "ble_l2cap.c"
#undef ble_l2cap_coc_cleanup_chan

void ubt_l2cap_sig_forget_chan(struct ble_l2cap_chan *chan);
void ble_l2cap_coc_cleanup_chan(struct ble_hs_conn *conn, struct ble_l2cap_chan *chan);

void ubt_l2cap_coc_cleanup_chan(struct ble_hs_conn *conn, struct ble_l2cap_chan *chan) {
    ubt_l2cap_sig_forget_chan(chan);
    ble_l2cap_coc_cleanup_chan(conn, chan);
}
#else
/* Without connection-oriented channels (the `l2cap` feature off) no signalling procedure
 * names a channel, and NimBLE's cleanup is an empty inline: nothing to redirect. */
#include "ble_l2cap.c"
#endif
