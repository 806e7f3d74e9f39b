/*
 * NimBLE's LE signalling (ble_l2cap_sig.c, compiled as it is), plus one function of ours that
 * needs its private procedure list.
 *
 * A pending Connect or Disconnect procedure keeps a pointer to its channel. In this NimBLE
 * tree nothing clears it when the channel is freed first, so a peer can make the host use a
 * freed channel: two LE Flow Control Credit packets that each overflow the credits (or two
 * K-frames announcing an SDU over our MTU) start two disconnections of one channel; the
 * peer's first Disconnection Response frees the channel and the second one frees it again
 * (SIGSEGV). Upstream fixed the double disconnection later (NimBLE commit 089f0d8); the
 * over-the-air fuzzer found it here. ubt_l2cap.c calls ubt_l2cap_sig_forget_chan whenever
 * a channel is freed, and every procedure already treats a NULL channel as gone.
 */
#include "ble_l2cap_sig.c"

void ubt_l2cap_sig_forget_chan(struct ble_l2cap_chan *chan);

void ubt_l2cap_sig_forget_chan(struct ble_l2cap_chan *chan) {
    struct ble_l2cap_sig_proc *proc;
    int i;

    STAILQ_FOREACH(proc, &ble_l2cap_sig_procs, next) {
        switch (proc->op) {
            case BLE_L2CAP_SIG_PROC_OP_DISCONNECT:
                if (proc->disconnect.chan == chan) {
                    proc->disconnect.chan = NULL;
                }
                break;
            case BLE_L2CAP_SIG_PROC_OP_CONNECT:
                for (i = 0; i < proc->connect.chan_cnt && i < BLE_L2CAP_MAX_COC_CONN_REQ; i++) {
                    if (proc->connect.chan[i] == chan) {
                        proc->connect.chan[i] = NULL;
                    }
                }
                break;
            default:
                break;
        }
    }
}
