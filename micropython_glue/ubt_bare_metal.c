// What bare-metal ports (the qemu board, STM32) share: heap memory, soft reset, and the one C
// library function NimBLE needs that those ports don't link.
//
// Heap: the Rust core's allocator and NimBLE's malloc take blocks from MicroPython's GC heap, each kept on a list that starts at a root pointer,
// so the GC never frees what they still hold (design rule 3). On Unix both use the C heap and this
// file is empty.
//
// A soft reset sweeps the whole GC heap. The port calls ubt_port_soft_reset first thing (while the
// UART still works): it stops a running stack as Unix process exit does, then forgets every block,
// and the core forgets its references into them (ubt_port_heap_lost). Frees of blocks from before
// the reset are ignored, as the C module's NimBLE heap does.

#if !(defined(__unix__) || defined(__APPLE__))

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "py/gc.h"
#include "py/mpprint.h"
#include "py/runtime.h"

#include "ubluetooth.h"

// Ahead of every block: the list links and the size asked for (realloc copies that much). 16
// bytes, so the payload keeps the GC's 16-byte block alignment.
typedef struct _ubt_block_t {
    struct _ubt_block_t *next;
    struct _ubt_block_t *prev;
    size_t size;
    uint32_t pad;
} ubt_block_t;

MP_REGISTER_ROOT_POINTER(void *ubt_port_blocks);

void *ubt_port_alloc(size_t size, size_t align) {
    if (align > sizeof(ubt_block_t) || size > SIZE_MAX - sizeof(ubt_block_t)) {
        return NULL;
    }
    // gc_alloc returns NULL rather than raising, so no exception can unwind through Rust.
    ubt_block_t *b = gc_alloc(sizeof(ubt_block_t) + size, 0);
    if (b == NULL) {
        return NULL;
    }
    b->size = size;
    b->prev = NULL;
    b->next = MP_STATE_VM(ubt_port_blocks);
    if (b->next != NULL) {
        b->next->prev = b;
    }
    MP_STATE_VM(ubt_port_blocks) = b;
    return b + 1;
}

// Whether `b` is on the list: a pointer from before a soft reset is not, and is ignored.
static bool ubt_block_is_listed(ubt_block_t *b) {
    for (ubt_block_t *it = MP_STATE_VM(ubt_port_blocks); it != NULL; it = it->next) {
        if (it == b) {
            return true;
        }
    }
    return false;
}

void ubt_port_free(void *ptr) {
    if (ptr == NULL) {
        return;
    }
    ubt_block_t *b = (ubt_block_t *)ptr - 1;
    if (!ubt_block_is_listed(b)) {
        return;
    }
    if (b->prev != NULL) {
        b->prev->next = b->next;
    } else {
        MP_STATE_VM(ubt_port_blocks) = b->next;
    }
    if (b->next != NULL) {
        b->next->prev = b->prev;
    }
    gc_free(b);
}

// NimBLE's heap (its syscfg maps malloc/free/realloc here).
void *ubt_nimble_malloc(size_t size) {
    return ubt_port_alloc(size, 8);
}

void ubt_nimble_free(void *ptr) {
    ubt_port_free(ptr);
}

void *ubt_nimble_realloc(void *ptr, size_t size) {
    if (ptr != NULL && !ubt_block_is_listed((ubt_block_t *)ptr - 1)) {
        ptr = NULL;
    }
    void *fresh = ubt_port_alloc(size, 8);
    if (fresh != NULL && ptr != NULL) {
        size_t old = ((ubt_block_t *)ptr - 1)->size;
        memcpy(fresh, ptr, old < size ? old : size);
        ubt_port_free(ptr);
    }
    return fresh;
}

void ubt_glue_soft_reset(void);
void ubt_port_soft_reset(void);

void ubt_port_soft_reset(void) {
    ubt_glue_soft_reset();
    MP_STATE_VM(ubt_port_blocks) = NULL;
    ubt_port_heap_lost();
}

// NimBLE formats UUIDs with sprintf for its log messages (compiled out here). Weak, so a port that
// links a C library keeps its own.
static void ubt_sprintf_strn(void *data, const char *str, size_t len) {
    char **end = data;
    memcpy(*end, str, len);
    *end += len;
}

__attribute__((weak)) int sprintf(char *str, const char *fmt, ...) {
    char *end = str;
    mp_print_t print = { &end, ubt_sprintf_strn };
    va_list ap;
    va_start(ap, fmt);
    mp_vprintf(&print, fmt, ap);
    va_end(ap);
    *end = '\0';
    return (int)(end - str);
}

#else
// Unix: nothing here (a translation unit may not be empty).
typedef int ubt_port_heap_unused_t;
#endif
