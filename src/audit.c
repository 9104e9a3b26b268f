/* audit.c - ma_check() and MAPALLOC_DEBUG's leak report: a walk over every
 * heap, page and large mapping that checks what it can read without
 * stopping the other threads.
 *
 * A heap's page queues, direct table, remote_full list and quarantine
 * ring, and its pages' free lists, are looked at only while they cannot
 * change under the walk: the heap is the calling thread's, or has no
 * thread (abandoned and user heaps), under the heaps lock. Of a page of
 * another live thread only the counters are read. In checked mode (but
 * under valgrind) the walk also looks inside blocks: canaries, the free
 * fill, quarantine tags (checked.h). Problems are printed, never fatal;
 * ma_check() returns their number. At exit (checked mode) the calling
 * thread's quarantine and the large cache are checked a last time, and
 * MAPALLOC_DEBUG prints what the walk finds and the blocks still in use.
 */
#include "internal.h"

#define MAX_REPORTED 100                 /* ma_check prints this many problems */

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
    ma_buf_t b;
    ma_buf_begin(&b, "check: ");
    ma_buf_str(&b, what);
    ma_buf_str(&b, " ");
    ma_buf_hex(&b, (uintptr_t)at);
    ma_buf_end(&b);
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
        if (page->prev != prev || page->heap != heap || ++n > MA_LIST_LIMIT ||
            (!full && page->sclass != cls) || page->in_full != full ||
            page->pinned != (!full && page == q->first && page->slice_count <= MA_PIN_SLICES)) {
            problem(w, "page queue broken at page descriptor", page);
            return;
        }
    }
    if (q->last != prev) problem(w, "page queue's last page wrong in heap", heap);
}

static void check_heap(walk_t *w, ma_heap_t *heap) {
    uint32_t kind = atomic_load_explicit(&heap->kind, memory_order_relaxed);
    if ((kind != MA_HEAP_THREAD && kind != MA_HEAP_USER) || !quiescent(w, heap)) return;
    for (unsigned cls = 1; cls < MA_CLASS_COUNT; cls++) check_queue(w, heap, &heap->queue[cls], cls);
    check_queue(w, heap, &heap->full, 0);
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) {
        const ma_page_t *first = heap->queue[ma_sizeclass_direct(i * MA_DIRECT_STEP)].first;
        if (i == 0 && ma_secure) first = NULL;  /* malloc(0): zero-size blocks */
        if (heap->direct[i] != (first ? first : &ma_page_empty)) problem(w, "stale direct entry in heap", heap);
    }
    uintptr_t link = atomic_load_explicit(&heap->remote_full, memory_order_acquire);
    for (uint64_t n = 0; link; n++) {
        ma_block_t *b = (ma_block_t *)link;
        if (!ma_block_valid(b) || n > MA_LIST_LIMIT) {
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
        if (!ma_block_valid(b) || ma_segment_page_of(ma_segment_small_of(b), b) != q->q_ring[i].page) problem(w, "quarantine holds a foreign pointer", b);
        else if (w->deep && (uintptr_t)ma_load64(b) != ma_quarantine_tag(b)) problem(w, "write after free of", b);
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
              page->reserved <= MA_PAGE_BLOCKS_MAX && page->capacity <= page->reserved &&
              page->recip == (((uint64_t)1 << MA_RECIP_SHIFT) + size - 1) / size;
    for (unsigned i = 0; ok && i < page->slice_count; i++) ok = seg->slice_first[idx + i] == idx;
    ok = ok && page->carved == (uint32_t)page->capacity * page->block_size;
    if (!ok) problem(w, "corrupted page descriptor", page);
    return ok;
}

/* Canary of any block of a page (secure). */
static void deep_check_canary(walk_t *w, const ma_page_t *page, const uint8_t *b) {
    if (ma_secure && !ma_canary_intact(page, b)) problem(w, "heap overflow of", b);
}

/* A block on its page's lists: canary, and fill, which in SECURE alone the
 * blocks of quarantined pages carved and never handed out do not have. */
static void deep_check_free(walk_t *w, const ma_page_t *page, const uint8_t *b) {
    deep_check_canary(w, page, b);
    if ((!ma_secure_only || !page->quarantined) && !ma_fill_intact(b, page->block_size, ma_debug))
        problem(w, "write after free of", b);
}

/* Marks the blocks of one free list; returns how many, or stops at the
 * first link that leaves the page or comes back. */
static uint32_t mark_list(walk_t *w, const ma_page_t *page, const ma_block_t *b, ma_block_set_t *free_set) {
    uint32_t n = 0;
    for (; b; b = ma_block_decode(b->next)) {
        uint32_t i = ma_page_block_index(page, b);
        if (i == UINT32_MAX) {
            problem(w, "free list leaves its page: bad link in page", page->start);
            break;
        }
        if (ma_block_set_has(free_set, i)) {
            problem(w, "block twice on the free lists (double free?):", b);
            break;
        }
        ma_block_set_add(free_set, i);
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
    if ((uintptr_t)ma_load64(b) == ma_quarantine_tag(b)) {  /* quarantined */
        if (!ma_fill_intact(b, size, ma_debug)) problem(w, "write after free of", b);
        return false;
    }
    return !(ma_fill_intact(b, size, ma_debug) && ma_block_free_word(b));
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
    ma_block_set_t free_set = {{0}};
    uint32_t listed = mark_list(w, page, page->free, &free_set);
    listed += mark_list(w, page, page->local_free, &free_set);
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_acquire) & ~MA_TF_NOTIFY;
    mark_list(w, page, (const ma_block_t *)tf, &free_set);  /* still counted as used */
    if (ma_page_used(page) != page->capacity - listed)
        problem(w, "block counts disagree (allocs - frees != carved - free) in page", page->start);
    uint64_t live = 0;
    for (uint32_t i = 0; i < page->capacity; i++) {
        if (ma_block_set_has(&free_set, i)) continue;
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
        ma_buf_t b;
        ma_buf_begin(&b, "check: ");
        ma_buf_u64(&b, (uint64_t)w->problems);
        ma_buf_str(&b, w->problems > MAX_REPORTED ? " problems (the first ones above)" : " problem(s)");
        ma_buf_end(&b);
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
    ma_buf_t b;
    ma_buf_begin(&b, "leaked: ");
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
    ma_buf_str(&b, " bytes");
    ma_buf_end(&b);
}

/* At exit: this thread's quarantine (each block checked as it leaves)
 * and the cached large blocks' fills, so that a write after free that no
 * later free or malloc looked at is still reported. MAPALLOC_DEBUG then
 * prints what ma_check finds and the blocks still in use, by size class
 * and by power of two for large blocks. Blocks that the C library keeps
 * to the end (stdio buffers, ...) are among them. */
void ma_audit_at_exit(void) {
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
    ma_buf_t b;
    ma_buf_begin(&b, "leak report: ");
    ma_buf_u64(&b, blocks);
    ma_buf_str(&b, " blocks (");
    ma_buf_u64(&b, bytes);
    ma_buf_str(&b, " bytes) in use at exit");
    ma_buf_end(&b);
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++)
        if (w.live[c])
            leak_line(w.live[c], " blocks of ", ma_sizeclass_size(c) - ma_block_tail(), (int)c,
                      w.live[c] * (ma_sizeclass_size(c) - ma_block_tail()));
    for (unsigned i = 0; i < 64; i++)
        if (w.large_count[i])
            leak_line(w.large_count[i], " large blocks of up to ", ((uint64_t)2 << i) - 1, 0, w.large_bytes[i]);
}
