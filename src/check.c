/* check.c - checked mode (MAPALLOC_SECURE, MAPALLOC_DEBUG, valgrind) and
 * ma_check().
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
 *    ones with 0xDD throughout (checked in malloc), and a leak report is
 *    printed at exit;
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
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "internal.h"

#define CANARY_SIZE MA_CANARY_SIZE
#define ALLOC_FILL 0xAA
#define FILL64 MA_FILL64                 /* MA_FREE_FILL in every byte */
#define LARGE_FILL_EDGE ((size_t)64 << 10) /* debug fills of mapped blocks */
#define MAX_REPORTED 100                 /* ma_check prints this many problems */
#define MAX_PAGE_BLOCKS 4096u            /* 64 KiB / 16: the most a page holds */
#define LIST_LIMIT ((uint64_t)1 << 24)   /* a longer remote_full list is a cycle */

/* First word of a quarantined block: an encoded link to itself, which no
 * free list holds (it would be a loop). Only our free writes it: a live
 * block holds it by a chance of 2^-64, and a copy of another quarantined
 * block's first word is that block's tag, not this one's. lean_free's look
 * for an in-page link sees it at no extra cost. */
static inline uintptr_t qtag(const void *b) { return ma_block_encode(b); }

static uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* Bits that differ from the fill in [from, to), a multiple of 8 bytes
 * long (the mirror of ma_fill_range). */
static inline uint64_t fill_diff(const uint8_t *from, const uint8_t *to) {
    const ma_v16_t fill = {FILL64, FILL64};
    if (to - from < 16) return to > from ? load64(from) ^ FILL64 : 0;
    ma_v16_t diff = {0, 0}, v;
    for (; from + 16 < to; from += 16) {
        memcpy(&v, from, sizeof v);
        diff |= v ^ fill;
    }
    memcpy(&v, to - 16, sizeof v);
    diff |= v ^ fill;
    return diff[0] | diff[1];
}

/* The first and the last 16 bytes of [from, to) hold the fill. */
static inline bool edges_intact(const uint8_t *from, const uint8_t *to) {
#ifdef __SSE2__
    /* compare bytes and take the mask: two instructions fewer than
     * folding the difference down to one word (SECURE's free) */
    const __m128i fill = _mm_set1_epi8((char)MA_FREE_FILL);
    __m128i same = _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)from), fill),
                                 _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(to - MA_FILL_EDGE)), fill));
    return _mm_movemask_epi8(same) == 0xFFFF;
#else
    const ma_v16_t fill = {FILL64, FILL64};
    ma_v16_t head, edge;
    memcpy(&head, from, sizeof head);
    memcpy(&edge, to - MA_FILL_EDGE, sizeof edge);
    ma_v16_t diff = (head ^ fill) | (edge ^ fill);
    return (diff[0] | diff[1]) == 0;
#endif
}

/* The part of the block at b that ma_fill_free wrote (the same `end`
 * and `whole`). */
static inline bool fill_intact_to(const uint8_t *b, const uint8_t *end, bool whole) {
    const uint8_t *from = b + MA_LINK_SIZE, *to = end;
    if (whole || to - from < MA_FILL_EDGE) return fill_diff(from, to) == 0;
    return edges_intact(from, to);
}

/* MAPALLOC_SECURE alone's fill and its check, for a block of size bytes
 * (at least MA_SECURE_BLOCK_MIN): what ma_fill_free and fill_intact_to
 * (not whole) do, the 16 bytes after the link and the 16 before the
 * canary, without testing the size on the way. */
static inline void lean_fill(uint8_t *b, size_t size) {
    MA_ASSERT(size >= MA_SECURE_BLOCK_MIN);
    ma_fill_edges(b + MA_LINK_SIZE, b + size - CANARY_SIZE);
}

static inline bool lean_fill_intact(const uint8_t *b, size_t size) {
    MA_ASSERT(size >= MA_SECURE_BLOCK_MIN);
    return edges_intact(b + MA_LINK_SIZE, b + size - CANARY_SIZE);
}

/* Where the fill span of a block of size bytes at b ends: the canary. */
static inline uint8_t *fill_end(const uint8_t *b, size_t size) { return (uint8_t *)b + size - ma_block_tail(); }

static inline bool fill_intact(const uint8_t *b, size_t size, bool whole) {
    return fill_intact_to(b, fill_end(b, size), whole);
}

/* A free block's first word: a link to NULL (also the quarantine tag) or
 * to a block of ours (remote_full lists link blocks of different pages). */
static bool free_word(const uint8_t *b) {
    ma_block_t *link = ma_block_decode((uintptr_t)load64(b));
    return link == NULL || ma_segment_small_of(link) != NULL;
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
    if (!fill_intact(p, size, ma_debug))
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
        if (b && MA_UNLIKELY((uintptr_t)load64(b) != qtag(b) ||
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
    if (MA_UNLIKELY((uintptr_t)load64(b) != qtag(b) ||
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

/* The canary of the block at p, a block of page (secure), is intact. */
static inline bool canary_intact(const ma_page_t *page, const uint8_t *p) {
    return load64(p + page->block_size - CANARY_SIZE) == ma_canary_of(p);
}

static bool valid_block(const void *b);

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
    for (uint64_t n = 0; link && n < LIST_LIMIT && valid_block((void *)link); n++) {
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
    uintptr_t w = (uintptr_t)load64(p);
    if (w == qtag(p)) return true;
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
    if (!fill_intact(p, page->block_size, whole) || !free_word(p)) return false;
    const uint8_t *to = (const uint8_t *)ma_block_decode(w);
    return to == NULL || !valid_block(to) || (uintptr_t)load64(to) != qtag(to);
}

/* The block must not be free; `what` names the call if it is. */
static void check_not_freed(const ma_page_t *page, const uint8_t *p, const char *what) {
    if (ma_page_link_plausible(page, (uintptr_t)load64(p)) && confirmed_free(page, p, ma_debug))
        ma_diag_fatal_ptr(what, p, page->sclass);
}

/* The block must be live: its canary intact (secure), and not free. */
static void check_live(const ma_page_t *page, const uint8_t *p) {
    if (ma_secure && !canary_intact(page, p)) ma_diag_fatal_ptr("heap overflow", p, page->sclass);
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
    lean_finish(page, p, qtag(p));
}

/* Secure (lean) free: check_live's checks, then lean_finish. The full
 * double-free check runs only when the first word is a link to NULL (the
 * tag) or into the page, which misses a block on a heap's remote_full
 * list (its link leads to another page). Whatever may fail or call
 * further is a tail call, so that this path saves no registers. */
static inline void lean_free(ma_page_t *page, uint8_t *p) {
    const uintptr_t tag = qtag(p);
    uintptr_t w = (uintptr_t)load64(p);
    if (MA_UNLIKELY(!canary_intact(page, p) || ma_page_link_plausible(p, w))) {
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
    ma_fill_free(p, fill_end(p, size), ma_debug);
    store64(p, qtag(p));
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
        if (size <= usable && size >= usable / 2) return p;
    } else if (size > MA_PAGED_MAX && !ma_valgrind) {
        ma_large_t *large = ma_region_of(p);
        if (large && ma_region_is_large(large) && ma_large_owns(large, p)) {
            void *q = ma_large_realloc(large, p, size);
            if (q) return q;
        }
    }
    void *q = ma_check_alloc(NULL, size, MA_ALIGN_MIN, false);
    if (!q) return NULL;
    memcpy(q, p, size < usable ? size : usable);
    ma_check_free(p);
    return q;
}

/* ---- ma_check and the leak report ------------------------------------------- */

typedef struct walk_s {
    ma_heap_t *me;                       /* the calling thread's heap, or NULL */
    bool deep;                           /* look inside blocks (fills, canaries) */
    int problems;
    uint64_t live[MA_CLASS_COUNT];       /* blocks in use, per class */
    uint64_t large_count[64];            /* live large blocks, by log2 of usable size */
    uint64_t large_bytes[64];
} walk_t;

static void problem(walk_t *w, const char *what, const void *at) {
    if (++w->problems > MAX_REPORTED) return;
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc: check: ");
    ma_buf_str(&b, what);
    ma_buf_str(&b, " ");
    ma_buf_hex(&b, (uintptr_t)at);
    ma_buf_str(&b, "\n");
    ma_buf_flush(&b);
}

/* The heap's owner cannot change its pages while we look: it is the
 * calling thread, or no thread (abandoned and user heaps). Heaps lock held. */
static bool quiescent(const walk_t *w, const ma_heap_t *heap) {
    return heap != NULL && (heap == w->me || !heap->owned);
}

static void check_queue(walk_t *w, ma_heap_t *heap, const ma_pageq_t *q, unsigned cls) {
    const ma_page_t *prev = NULL;
    uint64_t n = 0;
    for (const ma_page_t *page = q->first; page; prev = page, page = page->next) {
        bool full = q == &heap->full;
        if (page->prev != prev || page->heap != heap || ++n > LIST_LIMIT ||
            (!full && page->sclass != cls) || page->in_full != full ||
            page->pinned != (!full && page == q->first && page->slice_count <= MA_PIN_SLICES)) {
            problem(w, "page queue broken at page descriptor", page);
            return;
        }
    }
    if (q->last != prev) problem(w, "page queue's last page wrong in heap", heap);
}

static bool valid_block(const void *b) {
    ma_segment_t *seg = ma_segment_small_of(b);
    return seg && ma_page_block_index(ma_segment_page_of(seg, b), b) != UINT32_MAX;
}

static void check_heap(walk_t *w, ma_heap_t *heap) {
    uint32_t kind = atomic_load_explicit(&heap->kind, memory_order_relaxed);
    if ((kind != MA_HEAP_THREAD && kind != MA_HEAP_USER) || !quiescent(w, heap)) return;
    for (unsigned cls = 1; cls < MA_CLASS_COUNT; cls++) check_queue(w, heap, &heap->queue[cls], cls);
    check_queue(w, heap, &heap->full, 0);
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) {
        const ma_page_t *first = heap->queue[ma_sizeclass_direct(i * 16)].first;
        if (i == 0 && ma_secure) first = NULL;  /* malloc(0): zero-size blocks */
        if (heap->direct[i] != (first ? first : &ma_page_empty)) problem(w, "stale direct entry in heap", heap);
    }
    uintptr_t link = atomic_load_explicit(&heap->remote_full, memory_order_acquire);
    for (uint64_t n = 0; link; n++) {
        ma_block_t *b = (ma_block_t *)link;
        if (!valid_block(b) || n > LIST_LIMIT) {
            problem(w, "remote free list broken at", b);
            break;
        }
        link = (uintptr_t)ma_block_decode(b->next);
    }
    const ma_check_heap_t *q = &heap->check;
    if (q->q_next >= MA_QUARANTINE_SLOTS) problem(w, "quarantine index wrong in heap", heap);
    for (uint32_t i = 0; i < MA_QUARANTINE_SLOTS; i++) {
        const uint8_t *b = q->q_ring[i].block;
        if (!b) continue;
        if (!valid_block(b) || page_of(b) != q->q_ring[i].page) problem(w, "quarantine holds a foreign pointer", b);
        else if (w->deep && (uintptr_t)load64(b) != qtag(b)) problem(w, "write after free of", b);
    }
}

static bool descriptor_sane(walk_t *w, const ma_page_t *page) {
    ma_segment_t *seg = (ma_segment_t *)((uintptr_t)page & ~MA_SEGMENT_MASK);
    size_t idx = (size_t)(page - seg->pages);
    unsigned cls = page->sclass;
    size_t size = cls >= 1 && cls < MA_CLASS_COUNT ? ma_sizeclass_size(cls) : 0;
    bool ok = size != 0 && page->block_size == size && page->slice_count == ma_sizeclass_slices(cls) &&
              idx + page->slice_count <= MA_SEGMENT_SLICES &&
              page->start == (uint8_t *)seg + (idx << MA_SLICE_SHIFT) &&
              page->reserved == ((size_t)page->slice_count << MA_SLICE_SHIFT) / size &&
              page->reserved <= MAX_PAGE_BLOCKS && page->capacity <= page->reserved &&
              page->recip == (((uint64_t)1 << MA_RECIP_SHIFT) + size - 1) / size;
    for (unsigned i = 0; ok && i < page->slice_count; i++) ok = seg->slice_first[idx + i] == idx;
    ok = ok && page->carved == (uint32_t)page->capacity * page->block_size;
    if (!ok) problem(w, "corrupted page descriptor", page);
    return ok;
}

/* Canary of any block of a page (secure). */
static void deep_check_canary(walk_t *w, const ma_page_t *page, const uint8_t *b) {
    if (ma_secure && !canary_intact(page, b)) problem(w, "heap overflow of", b);
}

/* A block on its page's lists: canary, and fill, which in SECURE alone the
 * blocks of quarantined pages carved and never handed out do not have. */
static void deep_check_free(walk_t *w, const ma_page_t *page, const uint8_t *b) {
    deep_check_canary(w, page, b);
    if ((!ma_secure_only || !page->quarantined) && !fill_intact(b, page->block_size, ma_debug))
        problem(w, "write after free of", b);
}

/* Marks the blocks of one free list; returns how many, or stops at the
 * first link that leaves the page or comes back. */
static uint32_t mark_list(walk_t *w, const ma_page_t *page, const ma_block_t *b, uint64_t *bits) {
    uint32_t n = 0;
    for (; b; b = ma_block_decode(b->next)) {
        uint32_t i = ma_page_block_index(page, b);
        if (i == UINT32_MAX) {
            problem(w, "free list leaves its page: bad link in page", page->start);
            break;
        }
        if (bits[i / 64] & ((uint64_t)1 << (i % 64))) {
            problem(w, "block twice on the free lists (double free?):", b);
            break;
        }
        bits[i / 64] |= (uint64_t)1 << (i % 64);
        n++;
        if (w->deep) deep_check_free(w, page, (const uint8_t *)b);
    }
    return n;
}

/* A block not on its page's lists: live, or free elsewhere (a quarantine,
 * a heap's remote_full list). */
static bool block_live(walk_t *w, const ma_page_t *page, const uint8_t *b) {
    if (!w->deep) return true;
    size_t size = page->block_size;
    deep_check_canary(w, page, b);
    if ((uintptr_t)load64(b) == qtag(b)) {  /* quarantined */
        if (!fill_intact(b, size, ma_debug)) problem(w, "write after free of", b);
        return false;
    }
    return !(fill_intact(b, size, ma_debug) && free_word(b));
}

static void check_page(const ma_page_t *page, void *arg) {
    walk_t *w = arg;
    unsigned cls = page->sclass < MA_CLASS_COUNT ? page->sclass : 0;
    if (!quiescent(w, page->heap)) {  /* its owner runs: its counters will do */
        uint32_t used = ma_page_used(page);
        w->live[cls] += used < page->capacity ? used : page->capacity;
        return;
    }
    if (!descriptor_sane(w, page)) return;
    uint64_t bits[MAX_PAGE_BLOCKS / 64] = {0};
    uint32_t listed = mark_list(w, page, page->free, bits);
    listed += mark_list(w, page, page->local_free, bits);
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_acquire) & ~MA_TF_NOTIFY;
    mark_list(w, page, (const ma_block_t *)tf, bits);  /* still counted as used */
    if (ma_page_used(page) != page->capacity - listed)
        problem(w, "block counts disagree (allocs - frees != carved - free) in page", page->start);
    uint64_t live = 0;
    for (uint32_t i = 0; i < page->capacity; i++) {
        if (bits[i / 64] & ((uint64_t)1 << (i % 64))) continue;
        live += block_live(w, page, page->start + (size_t)i * page->block_size);
    }
    w->live[cls] += live;
}

static void check_large(void *region, void *arg) {
    walk_t *w = arg;
    ma_large_t *large = region;
    uint32_t state = atomic_load_explicit(&large->state, memory_order_acquire);
    if (large->kind != MA_KIND_LARGE) {
        problem(w, "corrupted large block header at", large);
        return;
    }
    if (state == 0) return;  /* being mapped right now */
    bool ok = (state == MA_LARGE_LIVE || state == MA_LARGE_CACHED) && large->map_size % MA_OS_PAGE == 0 &&
              large->offset >= MA_LARGE_HEADER && large->guard == (ma_secure ? MA_OS_PAGE : 0) &&
              large->offset + large->guard < large->map_size;
    if (!ok) {
        problem(w, "corrupted large block header at", large);
        return;
    }
    if (state != MA_LARGE_LIVE) return;
    size_t usable = ma_large_usable(large);
    unsigned bucket = 63u - (unsigned)__builtin_clzl(usable);
    w->large_count[bucket]++;
    w->large_bytes[bucket] += usable;
}

/* Every heap, then every page (heaps lock, then each heap's segment set:
 * the order of heap.c), then every large mapping. */
static int walk(walk_t *w) {
    w->me = ma_heap_current();
    w->deep = ma_checked && !ma_valgrind;
    ma_heap_lock();
    for (ma_heap_t *heap = ma_heap_first(); heap; heap = heap->next_all) check_heap(w, heap);
    ma_heap_visit_pages_locked(check_page, w);
    ma_heap_unlock();
    ma_large_visit_all(check_large, w);
    if (w->problems > 0) {
        ma_buf_t b = {.len = 0};
        ma_buf_str(&b, "mapalloc: check: ");
        ma_buf_u64(&b, (uint64_t)w->problems);
        ma_buf_str(&b, w->problems > MAX_REPORTED ? " problems (the first ones above)\n" : " problem(s)\n");
        ma_buf_flush(&b);
    }
    return w->problems;
}

int ma_check(void) {
    ma_process_init();
    walk_t w;
    memset(&w, 0, sizeof w);
    return walk(&w);
}

static void leak_line(uint64_t count, const char *what, uint64_t size, int cls, uint64_t bytes) {
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc: leaked: ");
    ma_buf_u64(&b, count);
    ma_buf_str(&b, what);
    ma_buf_u64(&b, size);
    ma_buf_str(&b, " bytes");
    if (cls > 0) {
        ma_buf_str(&b, " (size class ");
        ma_buf_u64(&b, (uint64_t)cls);
        ma_buf_str(&b, ")");
    }
    ma_buf_str(&b, ": ");
    ma_buf_u64(&b, bytes);
    ma_buf_str(&b, " bytes\n");
    ma_buf_flush(&b);
}

/* At exit: this thread's quarantine (each block checked as it leaves)
 * and the cached large blocks' fills, so that a write after free that no
 * later free or malloc looked at is still reported. MAPALLOC_DEBUG then
 * prints what ma_check finds and the blocks still in use, by size class
 * and by power of two for large blocks. Blocks that the C library keeps
 * to the end (stdio buffers, ...) are among them. */
void ma_check_at_exit(void) {
    if (ma_valgrind) return;  /* memcheck's own report says more */
    ma_check_flush();
    ma_large_cache_check();
    if (!ma_debug) return;
    ma_heap_t *me = ma_heap_current();
    if (me) ma_heap_drain_remote(me);
    walk_t w;
    memset(&w, 0, sizeof w);
    walk(&w);
    uint64_t blocks = 0, bytes = 0;
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) {
        blocks += w.live[c];
        bytes += w.live[c] * (ma_sizeclass_size(c) - ma_block_tail());
    }
    for (unsigned i = 0; i < 64; i++) {
        blocks += w.large_count[i];
        bytes += w.large_bytes[i];
    }
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc: leak report: ");
    ma_buf_u64(&b, blocks);
    ma_buf_str(&b, " blocks (");
    ma_buf_u64(&b, bytes);
    ma_buf_str(&b, " bytes) in use at exit\n");
    ma_buf_flush(&b);
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++)
        if (w.live[c])
            leak_line(w.live[c], " blocks of ", ma_sizeclass_size(c) - ma_block_tail(), (int)c,
                      w.live[c] * (ma_sizeclass_size(c) - ma_block_tail()));
    for (unsigned i = 0; i < 64; i++)
        if (w.large_count[i])
            leak_line(w.large_count[i], " large blocks of up to ", ((uint64_t)2 << i) - 1, 0, w.large_bytes[i]);
}
