/* check.c - checked mode (MAPALLOC_SECURE, MAPALLOC_DEBUG, valgrind): the
 * checked allocate and free. ma_check() and the leak report are audit.c's.
 *
 * In checked mode every free misses its fast path (ma_heap_free_tls stays
 * the empty heap) and a slow path hands it here; so does every malloc but
 * MAPALLOC_SECURE's alone, whose blocks need nothing when handed out. The
 * thread's heap is in ma_heap_checked_tls. Blocks come from the same
 * heaps, pages and large mappings as always; this layer wraps each one:
 *  - every checked mode: a freed block gets the free fill (ma_fill_free),
 *    checked before the block can be handed out again (write after free);
 *    with its first word it also tells a double free from the free of a
 *    live block;
 *  - MAPALLOC_SECURE: the last 8 bytes of each block of a page hold its
 *    canary, written when page.c carves the block and checked on free
 *    (heap overflow); freed blocks of thread heaps wait in a quarantine
 *    ring per heap, and their fill is checked when they leave it; page.c
 *    shuffles carved blocks, segment.c and large.c add guard pages;
 *  - MAPALLOC_DEBUG: new blocks are filled with 0xAA (not calloc's), freed
 *    ones with 0xDD throughout (checked in malloc), and audit.c prints a
 *    leak report at exit;
 *  - valgrind: memcheck is told of each block (malloc-like, free-like), and
 *    free blocks are no-access but for their first word, the link.
 * States of a block of a page in checked mode: live (first word: the
 * program's, or 0 if it never wrote there); quarantined (first word = its
 * quarantine tag, fill intact); listed (first word = encoded link; fill
 * intact, but for blocks carved and never handed out in SECURE alone). The
 * modes are fixed before the first block exists.
 * A block that looks freed is confirmed before it is called a double free
 * (confirmed_free): a live block may hold a copy of a freed one's bytes
 * (glibc's tst-tcfree3 copies them), and a hardening mode must not end a
 * correct program.
 */
#include <errno.h>
#include "internal.h"

#define CANARY_SIZE MA_CANARY_SIZE
#define ALLOC_FILL 0xAA
#define LARGE_FILL_EDGE ((size_t)64 << 10) /* debug fills of mapped blocks */

static void store64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* MAPALLOC_SECURE alone's fill and its check, for a block of size bytes
 * (at least MA_SECURE_BLOCK_MIN): what ma_fill_free and ma_fill_intact_to
 * (not whole) do, the 16 bytes after the link and the 16 before the
 * canary, without testing the size on the way. */
static inline void lean_fill(uint8_t *b, size_t size) {
    MA_ASSERT(size >= MA_SECURE_BLOCK_MIN);
    ma_fill_edges(b + MA_LINK_SIZE, b + size - CANARY_SIZE);
}

static inline bool lean_fill_intact(const uint8_t *b, size_t size) {
    MA_ASSERT(size >= MA_SECURE_BLOCK_MIN);
    return ma_fill_edges_intact(b + MA_LINK_SIZE, b + size - CANARY_SIZE);
}

static void fill_edges(uint8_t *p, size_t size, int byte) {
    if (size <= 2 * LARGE_FILL_EDGE) {
        memset(p, byte, size);
        return;
    }
    memset(p, byte, LARGE_FILL_EDGE);
    memset(p + size - LARGE_FILL_EDGE, byte, LARGE_FILL_EDGE);
}

static inline ma_page_t *page_of(const void *p) { return ma_segment_page_of(ma_segment_small_of(p), p); }

static bool user_heap(ma_heap_t *heap) {
    return heap && atomic_load_explicit(&heap->kind, memory_order_relaxed) == MA_HEAP_USER;
}

/* ---- Zero-size blocks (MAPALLOC_SECURE) ---------------------------------------
 * malloc(0) hands out a pointer into a region mapped without access, so
 * any read or write through it faults (SIGSEGV) where a block of 32 bytes
 * would have let 24 of them pass. The pointers are 16 bytes apart and
 * unique while live: a bitmap says which are, and a cursor goes round the
 * region, so that a freed one comes back as late as possible. free clears
 * the bit (a clear bit: double free); the usable size is 0. Only plain
 * malloc(0) (and calloc, realloc(NULL, 0)) come here: aligned and pool
 * requests of 0 bytes get ordinary blocks. Not under valgrind. */
#define ZERO_REGION ((size_t)256 << 20)
#define ZERO_SLOTS (ZERO_REGION / MA_ALIGN_MIN)
static uint8_t *_Atomic zero_base;      /* the region, once made (never unmapped) */
static _Atomic uint64_t *_Atomic zero_live; /* ZERO_SLOTS bits: live pointers */
static _Atomic uint64_t zero_cursor;    /* the slot tried next */

static bool zero_blocks(void) { return ma_secure && !ma_valgrind; }

/* The region and its bitmap, made by the first caller (a loser of the
 * race gives its own back). */
static MA_COLD uint8_t *zero_init(void) {
    size_t bitmap_bytes = ZERO_SLOTS / 8;
    uint8_t *base = ma_os_reserve(ZERO_REGION);
    _Atomic uint64_t *live = base ? ma_os_map(bitmap_bytes) : NULL;
    if (!live) {
        if (base) ma_os_unmap(base, ZERO_REGION);
        return NULL;
    }
    _Atomic uint64_t *no_bits = NULL;
    if (!atomic_compare_exchange_strong(&zero_live, &no_bits, live)) {
        ma_os_unmap(base, ZERO_REGION);
        ma_os_unmap((void *)live, bitmap_bytes);
        while ((base = atomic_load(&zero_base)) == NULL) ma_os_pause(0);
        return base;
    }
    atomic_store(&zero_base, base);
    return base;
}

static MA_NOINLINE void *zero_alloc(void) {
    uint8_t *base = atomic_load_explicit(&zero_base, memory_order_acquire);
    if (!base && (base = zero_init()) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    _Atomic uint64_t *live = atomic_load_explicit(&zero_live, memory_order_relaxed);
    for (uint64_t tries = 0; tries < ZERO_SLOTS; tries++) {
        uint64_t i = atomic_fetch_add_explicit(&zero_cursor, 1, memory_order_relaxed) % ZERO_SLOTS;
        uint64_t bit = (uint64_t)1 << (i % 64);
        if (!(atomic_fetch_or(&live[i / 64], bit) & bit)) return base + i * MA_ALIGN_MIN;
    }
    errno = ENOMEM;
    return NULL;
}

static bool zero_owns(const void *p) {
    uint8_t *base = atomic_load_explicit(&zero_base, memory_order_acquire);
    return base && (uintptr_t)p - (uintptr_t)base < ZERO_REGION;
}

/* The slot of p, a live zero-size block; fatal (`what`) otherwise. */
static uint64_t zero_slot(const void *p, const char *what) {
    uint64_t off = (uintptr_t)p - (uintptr_t)atomic_load(&zero_base), i = off / MA_ALIGN_MIN;
    if (off % MA_ALIGN_MIN != 0) ma_diag_fatal_ptr(what, p, 0);
    if (!(atomic_load(&atomic_load(&zero_live)[i / 64]) >> (i % 64) & 1))
        ma_diag_fatal_ptr(strcmp(what, "invalid free") == 0 ? "double free" : what, p, 0);
    return i;
}

static void zero_free(const void *p) {
    uint64_t i = zero_slot(p, "invalid free"), bit = (uint64_t)1 << (i % 64);
    if (!(atomic_fetch_and(&atomic_load(&zero_live)[i / 64], ~bit) & bit))
        ma_diag_fatal_ptr("double free", p, 0);   /* two frees at once */
}

/* ---- Allocation ------------------------------------------------------------ */

static void *finish_large(uint8_t *p, bool zero) {
    ma_large_t *large = ma_region_of(p);
    size_t usable = ma_large_usable(large);
    if (ma_debug && !zero) fill_edges(p, usable, ALLOC_FILL);
    if (ma_valgrind) ma_os_vg_malloclike(p, usable, zero);
    return p;
}

static void *alloc_large(ma_heap_t *heap, size_t size, size_t align, bool zero) {
    uint8_t *p = ma_large_alloc(size, align < MA_ALIGN_MIN ? MA_ALIGN_MIN : align, zero,
                                user_heap(heap) ? heap : NULL);
    return p ? finish_large(p, zero) : NULL;
}

/* The head of page->free after a pop: the link the popped block held must
 * lead to a block of the page, so that a broken list is named at the block
 * that broke it. */
static inline void check_next(const ma_page_t *page, const uint8_t *popped) {
    if (MA_UNLIKELY(page->free && ma_page_block_index(page, page->free) == UINT32_MAX))
        ma_diag_fatal_ptr("corrupted free list at", popped, page->sclass);
}

/* A block just popped in MAPALLOC_SECURE alone. Its canary is in place
 * since it was carved. Its fill was checked when it left the quarantine,
 * or, for blocks that skip it, is checked now. The fast path of malloc
 * hands out blocks of quarantined pages without coming here. */
static inline void *finish_lean(ma_page_t *page, uint8_t *p) {
    if (MA_UNLIKELY(!page->quarantined)) {
        check_next(page, p);
        if (!lean_fill_intact(p, page->block_size)) ma_diag_fatal_ptr("write after free", p, page->sclass);
    }
    return p;
}

/* A block just popped from its page, in any checked mode. */
static void *finish_small(uint8_t *p, bool zero) {
    ma_page_t *page = page_of(p);
    size_t usable = ma_page_usable(page);
    if (ma_secure_only) {
        finish_lean(page, p);
        if (zero) memset(p, 0, usable);
        return p;
    }
    size_t size = page->block_size;
    check_next(page, p);
    if (ma_valgrind) ma_os_vg_mark(p, size, MA_VG_DEFINED);
    if (!ma_fill_intact(p, size, ma_debug))
        ma_diag_fatal_ptr("write after free", p, page->sclass);
    if (zero) memset(p, 0, usable);
    else if (ma_debug) memset(p, ALLOC_FILL, usable);
    if (ma_valgrind) {
        ma_os_vg_malloclike(p, usable, zero);
        if (usable < size) ma_os_vg_mark(p + usable, size - usable, MA_VG_NOACCESS);
    }
    return p;
}

/* memcheck counts a pointer from our page descriptors (page->start) as a
 * reference: under valgrind the first block of each page is never handed
 * out, so that a leak is reported as such whichever block it is. */
static uint8_t *pop_small(ma_heap_t *heap, size_t size, size_t align) {
    uint8_t *p = ma_alloc_unchecked(heap, size, align, false);
    while (ma_valgrind && p && ma_segment_small_of(p) && p == page_of(p)->start)
        p = ma_alloc_unchecked(heap, size, align, false);
    return p;
}

void *ma_check_alloc(ma_heap_t *heap, size_t size, size_t align, bool zero) {
    size_t tail = ma_block_tail();
    if (size > MA_PAGED_MAX - tail || align > MA_SLICE_SIZE) return alloc_large(heap, size, align, zero);
    if (!heap && (heap = ma_heap_checked_tls) == NULL && ma_thread_exited)
        return ma_alloc_late(size, align, zero);
    if (!heap && (heap = ma_heap_checked_tls) == NULL && (heap = ma_heap_thread_init()) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *p;
    size_t need = ma_block_need(size);
    if (MA_LIKELY(align <= MA_ALIGN_MIN && !ma_valgrind)) p = ma_alloc_class(heap, ma_sizeclass_of(need));
    else p = pop_small(heap, need, align);
    if (!p) return NULL;
    return ma_segment_small_of(p) ? finish_small(p, zero) : finish_large(p, zero);
}

/* malloc's slow path in checked mode. For MAPALLOC_SECURE alone a small
 * or medium block needs a class with room for its canary (up to
 * MA_SMALL_MAX the one heap->direct gives), and the lean finish. */
/* A few of the blocks in the thread's quarantine, checked as they will be
 * when they leave it, on each malloc that takes this slow path: a write
 * after free is found even when the thread frees nothing more. A block
 * waits unchecked for at most MA_QUARANTINE_SLOTS frees or
 * MA_QUARANTINE_SLOTS / RING_CHECKS slow paths of its thread (then at its
 * exit, or the program's). */
#define RING_CHECKS 2u
static MA_NOINLINE void ring_check(ma_heap_t *heap) {
    ma_check_heap_t *q = &heap->check;
    for (unsigned k = 0; k < RING_CHECKS; k++) {
        uint32_t i = q->q_check++ % MA_QUARANTINE_SLOTS;
        const uint8_t *b = q->q_ring[i].block;
        if (b && MA_UNLIKELY((uintptr_t)ma_load64(b) != ma_quarantine_tag(b) ||
                             (ma_secure_only && !lean_fill_intact(b, q->q_ring[i].page->block_size))))
            ma_diag_fatal_ptr("write after free", b, q->q_ring[i].page->sclass);
    }
}

void *ma_check_malloc(size_t size) {
    ma_heap_t *heap = ma_heap_checked_tls;
    if (ma_secure && heap != NULL) ring_check(heap);
    if (size == 0 && zero_blocks()) return zero_alloc();
    if (MA_LIKELY(ma_secure_only && heap != NULL && size <= MA_PAGED_MAX - CANARY_SIZE)) {
        unsigned cls = size <= MA_SMALL_MAX ? ma_sizeclass_direct(size) : ma_sizeclass_of(ma_block_need(size));
        uint8_t *p = ma_alloc_class(heap, cls);
        return p ? finish_lean(page_of(p), p) : NULL;
    }
    return ma_check_alloc(NULL, size, MA_ALIGN_MIN, false);
}

/* ---- Free ------------------------------------------------------------------ */

/* To the page's lists, for good. */
static inline void release(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) {
    if (heap && page->heap == heap) ma_page_free_push(heap, page, b);
    else ma_free_remote(page, b);
}

/* A block leaves the quarantine: its tag must be intact, and with
 * check_fill (SECURE alone) its fill too (the other modes check the fill
 * in malloc, and under valgrind the fill is no-access), else something
 * wrote to it after it was freed. Then it goes to its page's lists. */
static inline void unquarantine(ma_heap_t *heap, ma_page_t *page, uint8_t *b, bool check_fill) {
    if (MA_UNLIKELY((uintptr_t)ma_load64(b) != ma_quarantine_tag(b) ||
                    (check_fill && !lean_fill_intact(b, page->block_size))))
        ma_diag_fatal_ptr("write after free", b, page->sclass);
    if (page->heap == heap) ma_page_free_push(heap, page, (ma_block_t *)b);  /* heap: the ring's */
    else ma_free_remote(page, (ma_block_t *)b);
}

/* SECURE alone's: out of line, so that lean_free needs no saved registers
 * (and its arguments in the order ma_page_free_push wants them). */
static MA_NOINLINE void lean_unquarantine(ma_page_t *page, uint8_t *b, ma_heap_t *heap) {
    unquarantine(heap, page, b, true);
}

/* The quarantine is a ring of the last MA_QUARANTINE_SLOTS blocks the
 * thread freed: each free takes a slot and releases the block freed that
 * many frees before. Blocks above MA_QUARANTINE_BLOCK_MAX skip it, which
 * bounds what it holds to 1 MiB. */
static inline void quarantine(ma_heap_t *heap, ma_page_t *page, uint8_t *b, bool lean) {
    ma_check_heap_t *q = &heap->check;
    uint32_t i = q->q_next;
    uint8_t *old = q->q_ring[i].block;
    ma_page_t *old_page = q->q_ring[i].page;
    q->q_ring[i].block = b;
    q->q_ring[i].page = page;
    q->q_next = (i + 1) % MA_QUARANTINE_SLOTS;
    if (!old) return;
    if (lean) lean_unquarantine(old_page, old, heap);
    else unquarantine(heap, old_page, old, ma_secure_only);
}

/* Whether a block of page freed by the thread of heap (NULL: the thread
 * has none, it is exiting) waits in its quarantine. */
static inline bool quarantined(const ma_heap_t *heap, const ma_page_t *page) {
    return heap != NULL && page->quarantined;
}

/* b is on one of page's lists (its owner's, and those other threads push
 * on: thread_free, the heap's remote_full). Only the page's owner may look,
 * or anyone while its heap has no owner (heaps lock held). */
static bool listed(const ma_page_t *page, const uint8_t *b) {
    const ma_block_t *block = (const ma_block_t *)b;
    if (ma_page_list_contains(page, page->free, block) || ma_page_list_contains(page, page->local_free, block))
        return true;
    uintptr_t tf = atomic_load_explicit((_Atomic uintptr_t *)&page->thread_free, memory_order_acquire);
    if (ma_page_list_contains(page, (ma_block_t *)(tf & ~MA_TF_NOTIFY), block)) return true;
    uintptr_t link = atomic_load_explicit(&page->heap->remote_full, memory_order_acquire);
    for (uint64_t n = 0; link && n < MA_LIST_LIMIT && ma_block_valid((void *)link); n++) {
        if (link == (uintptr_t)b) return true;
        link = (uintptr_t)ma_block_decode(((ma_block_t *)link)->next);
    }
    return false;
}

/* p, a block of page whose first word looks freed (a plausible link, or a
 * quarantine tag), is free: in a quarantine (its own tag), or on a list of
 * its page, searched where that is safe: the calling thread's page, or one
 * whose heap has no thread. A page of another live thread cannot be
 * searched: there a link and the free fill are the evidence, but not a
 * link to a block that is itself quarantined (a copy of a quarantined
 * block's first word). */
static bool confirmed_free(const ma_page_t *page, const uint8_t *p, bool whole) {
    uintptr_t w = (uintptr_t)ma_load64(p);
    if (w == ma_quarantine_tag(p)) return true;
    ma_heap_t *heap = page->heap, *me = ma_heap_checked_tls;
    if (heap == NULL) return false;   /* its span went back: not listed */
    if (heap == me) return listed(page, p);
    bool searched = false, found = false;
    ma_heap_lock();
    if (!heap->owned && atomic_load_explicit(&heap->kind, memory_order_relaxed) == MA_HEAP_THREAD) {
        searched = true;
        found = page->heap == heap && listed(page, p);
    }
    ma_heap_unlock();
    if (searched) return found;
    if (!ma_fill_intact(p, page->block_size, whole) || !ma_block_free_word(p)) return false;
    const uint8_t *to = (const uint8_t *)ma_block_decode(w);
    return to == NULL || !ma_block_valid(to) || (uintptr_t)ma_load64(to) != ma_quarantine_tag(to);
}

/* The block must not be free; `what` names the call if it is. */
static void check_not_freed(const ma_page_t *page, const uint8_t *p, const char *what) {
    if (ma_page_link_plausible(page, (uintptr_t)ma_load64(p)) && confirmed_free(page, p, ma_debug))
        ma_diag_fatal_ptr(what, p, page->sclass);
}

/* The block must be live: its canary intact (secure), and not free. */
static void check_live(const ma_page_t *page, const uint8_t *p) {
    if (ma_secure && !ma_canary_intact(page, p)) ma_diag_fatal_ptr("heap overflow", p, page->sclass);
    check_not_freed(page, p, "double free");
}

/* Secure (lean) free of a block of a page, after its checks: fill, tag,
 * quarantine. The tag is read before the stores, which the compiler must
 * assume may change the secret. */
static inline void lean_finish(ma_page_t *page, uint8_t *p, uintptr_t tag) {
    lean_fill(p, page->block_size);
    store64(p, tag);
    ma_heap_t *heap = ma_heap_checked_tls;
    if (MA_LIKELY(quarantined(heap, page))) quarantine(heap, page, p, true);
    else release(heap, page, (ma_block_t *)p);
}

/* A block whose canary is broken or whose first word looks free. */
static MA_COLD void lean_free_suspect(ma_page_t *page, uint8_t *p) {
    check_live(page, p);
    lean_finish(page, p, ma_quarantine_tag(p));
}

/* Secure (lean) free: check_live's checks, then lean_finish. The full
 * double-free check runs only when the first word is a link to NULL (the
 * tag) or into the page, which misses a block on a heap's remote_full
 * list (its link leads to another page). Whatever may fail or call
 * further is a tail call, so that this path saves no registers. */
static inline void lean_free(ma_page_t *page, uint8_t *p) {
    const uintptr_t tag = ma_quarantine_tag(p);
    uintptr_t w = (uintptr_t)ma_load64(p);
    if (MA_UNLIKELY(!ma_canary_intact(page, p) || ma_page_link_plausible(p, w))) {
        lean_free_suspect(page, p);
        return;
    }
    lean_finish(page, p, tag);
}

/* DEBUG's and valgrind's free of a block of a page, with SECURE or not. */
static MA_NOINLINE void free_block(ma_page_t *page, uint8_t *p) {
    size_t size = page->block_size;
    if (ma_valgrind) {
        ma_os_vg_freelike(p);
        ma_os_vg_mark(p, size, MA_VG_DEFINED);
    }
    check_live(page, p);
    ma_fill_free(p, ma_fill_end(p, size), ma_debug);
    store64(p, ma_quarantine_tag(p));
    if (ma_valgrind) ma_os_vg_mark(p + MA_LINK_SIZE, size - MA_LINK_SIZE, MA_VG_NOACCESS);
    ma_heap_t *heap = ma_heap_checked_tls;
    if (ma_secure && quarantined(heap, page)) quarantine(heap, page, p, false);
    else release(heap, page, (ma_block_t *)p);
}

/* SECURE alone's free is lean_free, in here; the other modes' is apart. */
void ma_check_free_block(ma_page_t *page, void *block) {
    if (MA_UNLIKELY(!ma_secure_only)) {
        free_block(page, block);
        return;
    }
    lean_free(page, block);
}

static void free_large(ma_large_t *large, uint8_t *p) {
    if (atomic_load_explicit(&large->state, memory_order_acquire) != MA_LARGE_LIVE)
        ma_diag_fatal_ptr("double free", p, -1);
    if (ma_debug) fill_edges(p, ma_large_usable(large), MA_FREE_FILL);
    if (ma_valgrind) ma_os_vg_freelike(p);
    ma_large_free(large, p);
}

/* As ma_free_slow: large blocks, blocks of fixed heaps, foreign pointers
 * (munmap may run: the caller keeps errno). */
static void free_elsewhere(uint8_t *p) {
    ma_heap_t *fixed = ma_fixed_find(p);   /* first: see free.c's large_owning */
    if (fixed) {
        ma_fixed_free(fixed, p, "invalid free");
        return;
    }
    if (zero_owns(p)) {
        zero_free(p);
        return;
    }
    void *region = ma_region_of(p);
    bool large = region && ma_region_is_large(region);
    if (large && ma_large_owns(region, p)) free_large(region, p);
    else ma_diag_fatal_ptr("invalid free", p, large ? -1 : 0);
}

void ma_check_free(void *p) {
    if (p == NULL) return;
    ma_segment_t *seg = ma_segment_small_of(p);
    if (seg) {
        ma_page_t *page = ma_segment_page_of(seg, p);
        if (ma_page_block_index(page, p) != UINT32_MAX) {
            ma_check_free_block(page, p);
            return;
        }
        if (ma_fixed_find(p) == NULL) ma_free_bad(page, p); /* else a fixed heap in a block of ours */
    }
    int saved = errno;
    free_elsewhere(p);
    errno = saved;
}

void ma_check_flush(void) {
    ma_heap_t *heap = ma_heap_checked_tls;
    if (heap) ma_check_thread_done(heap);
}

void ma_check_thread_done(ma_heap_t *heap) {
    ma_check_heap_t *q = &heap->check;
    for (uint32_t i = 0; i < MA_QUARANTINE_SLOTS; i++) {
        uint8_t *b = q->q_ring[i].block;
        q->q_ring[i].block = NULL;
        if (b) unquarantine(heap, q->q_ring[i].page, b, ma_secure_only);
    }
}

/* ---- realloc, usable size ---------------------------------------------------- */

/* A freed block of a page is caught here as in realloc (not under
 * memcheck, where its bytes may be undefined: memcheck reports it). */
size_t ma_check_usable(const void *p, const char *what) {
    ma_heap_t *fixed = ma_free_fixed_of(p);
    if (fixed) return ma_fixed_usable(fixed, p, what);
    if (zero_owns(p)) {
        zero_slot(p, what);
        return 0;
    }
    size_t usable = ma_usable_unchecked(p, what);
    if (!ma_segment_small_of(p)) return usable;
    if (!ma_valgrind) check_not_freed(page_of(p), p, what);
    return usable - ma_block_tail();
}

void *ma_check_realloc(void *p, size_t size) {
    if (size == 0) {
        ma_check_free(p);
        return NULL;
    }
    ma_heap_t *fixed = ma_free_fixed_of(p);
    if (fixed) return ma_fixed_realloc(fixed, p, size);
    size_t usable = ma_check_usable(p, "invalid realloc");
    if (ma_segment_small_of(p)) {
        /* Under memcheck the block's bytes may be undefined, and reading
         * them here would be reported against a correct program; memcheck
         * itself reports a realloc of a freed block (ma_check_free below
         * then stops it). */
        if (!ma_valgrind) check_live(page_of(p), p);
        if (ma_alloc_realloc_size(usable, size) == 0) return p;
    } else if (size > MA_PAGED_MAX && !ma_valgrind) {
        ma_large_t *large = ma_region_of(p);
        if (large && ma_region_is_large(large) && ma_large_owns(large, p)) {
            void *q = ma_large_realloc(large, p, size);
            if (q) return q;
        }
    }
    size_t want = ma_alloc_realloc_size(usable, size);
    if (want == 0) want = size;  /* a large block that stayed too big */
    void *q = ma_check_alloc(NULL, want, MA_ALIGN_MIN, false);
    if (!q && want > size) q = ma_check_alloc(NULL, size, MA_ALIGN_MIN, false);
    if (!q) return NULL;
    memcpy(q, p, size < usable ? size : usable);
    ma_check_free(p);
    return q;
}
