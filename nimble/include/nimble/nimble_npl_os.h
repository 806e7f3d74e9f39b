/*
 * NimBLE porting layer (NPL) types for ubluetooth.
 *
 * NimBLE's nimble_npl.h includes this file for the OS types it is built against; the
 * functions it declares (ble_npl_*) are implemented in Rust (src/rt/npl.rs). The host runs on a
 * single thread (MicroPython's), so queues, callouts, mutexes and semaphores are plain data:
 * nothing here blocks another thread.
 */
#ifndef UBT_NIMBLE_NPL_OS_H
#define UBT_NIMBLE_NPL_OS_H

#include <stdbool.h>
#include <stdint.h>

/* Memory pools hand out blocks that hold pointers and 64-bit fields, so on 64-bit hosts the
 * blocks must be 8-byte aligned (UBSan reports a misaligned struct os_memblock otherwise). */
#if __SIZEOF_POINTER__ == 8
#define BLE_NPL_OS_ALIGNMENT 8
#else
#define BLE_NPL_OS_ALIGNMENT 4
#endif

/* os_mempool.h picks os_membuf_t (the pool storage unit) from these at compile time. */
#define OS_CFG_ALIGN_4 (4)
#define OS_CFG_ALIGN_8 (8)
#define OS_CFG_ALIGNMENT (BLE_NPL_OS_ALIGNMENT)

#define BLE_NPL_TIME_FOREVER (0xffffffffU) /* a literal, so bindgen sees it on every target */

/* One tick is one millisecond of MicroPython's ticks_ms(). */
typedef uint32_t ble_npl_time_t;
typedef int32_t ble_npl_stime_t;

struct ble_npl_event {
    ble_npl_event_fn *fn;
    void *arg;
    /* Next event in the queue this event is on; meaningful only while queued. */
    struct ble_npl_event *next;
    bool queued;
};

struct ble_npl_eventq {
    struct ble_npl_event *head;
    struct ble_npl_event *tail;
    /* Every initialised queue is on one global list so a poll can run them all. */
    struct ble_npl_eventq *next_queue;
};

struct ble_npl_callout {
    struct ble_npl_event ev;
    struct ble_npl_eventq *evq;
    ble_npl_time_t deadline;
    bool active;
    /* Every initialised callout is on one global list scanned at each poll. */
    struct ble_npl_callout *next_callout;
};

struct ble_npl_mutex {
    uint32_t depth;
};

struct ble_npl_sem {
    uint16_t count;
};

#endif /* UBT_NIMBLE_NPL_OS_H */
