// Forced into every C file of the qemu build (-include), ahead of MicroPython's defaults:
// - atomic sections that mask interrupts, because the SysTick interrupt (ubt_qemu.c) queues the
//   bluetooth module's polls on MicroPython's scheduler;
// - the event hook, run in every wait loop, which lets the module see UART bytes and due timers
//   at once rather than at the next tick;
// - the end of a soft reset, which stops the stack and forgets the heap the reset swept away.
#include <stdint.h>

static inline uint32_t ubt_qemu_irq_save(void) {
    uint32_t primask;
    __asm volatile ("mrs %0, primask\n cpsid i" : "=r" (primask) :: "memory");
    return primask;
}

static inline void ubt_qemu_irq_restore(uint32_t primask) {
    __asm volatile ("msr primask, %0" :: "r" (primask) : "memory");
}

#define MICROPY_BEGIN_ATOMIC_SECTION() ubt_qemu_irq_save()
#define MICROPY_END_ATOMIC_SECTION(state) ubt_qemu_irq_restore(state)

#define MICROPY_INTERNAL_EVENT_HOOK do { \
        extern void ubt_qemu_event_hook(void); \
        ubt_qemu_event_hook(); \
} while (0)

// At the end of mp_deinit the GC heap has just been swept, but nothing has been allocated since,
// so the stack can still be stopped cleanly before its blocks are forgotten
// (micropython_glue/ubt_bare_metal.c).
#define MICROPY_PORT_DEINIT_FUNC do { \
        extern void ubt_port_soft_reset(void); \
        ubt_port_soft_reset(); \
} while (0)
