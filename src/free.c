/* free.c - free, local and remote.
 *
 * The fast path (ma_free): the byte map says whether the pointer is ours
 * and where its segment starts; the slice gives the page; the block must
 * start exactly at a carved block (checked with a multiply, not a divide).
 * If the page belongs to this thread's heap, the block goes on the page's
 * local_free list: no lock, no atomic. Otherwise it is pushed on the page's
 * thread_free list with one compare-and-swap (ma_free_remote). In checked
 * mode no page is the thread's (ma_heap_free_tls is the empty heap), so
 * every free reaches free_other or ma_free_slow, which hand it to check.c.
 *
 * Double frees: a free block's first word is an encoded link to a block of
 * the same page (or the encoded NULL). If the word being freed looks like
 * that, the page's lists are searched, and a hit is fatal. User data almost
 * never looks like an encoded in-page link, so the search is rare.
 */
#include <errno.h>
#include "internal.h"

static MA_COLD void check_double_free(ma_page_t *page, ma_block_t *b) {
    if (ma_page_list_contains(page, page->free, b) || ma_page_list_contains(page, page->local_free, b))
        ma_diag_fatal_ptr("double free", b, page->sclass);
}

/* p lies in a segment but is not a carved block of its page. A span with
 * no blocks (given back to its segment, or a heap's spare) keeps the class
 * it last held: p on a block boundary of that class, inside the span, was
 * a block, so this is its second free (pages of spans over 4 slices - big
 * blocks and those over 32 KiB - go back as soon as they empty). Else p
 * was never a block. */
void ma_free_bad(const ma_page_t *page, const void *p) {
    size_t off = (uintptr_t)p - (uintptr_t)page->start;
    if (page->block_size == 0 && page->sclass != 0 && page->sclass < MA_CLASS_COUNT &&
        off < ((size_t)page->slice_count << MA_SLICE_SHIFT) && off % ma_sizeclass_size(page->sclass) == 0)
        ma_diag_fatal_ptr("double free", p, page->sclass);
    ma_diag_fatal_ptr("invalid free", p, page->block_size ? page->sclass : 0);
}

/* A block whose first word looks like a free block's: searched, then
 * pushed. Apart, and reached by a tail call, so that the fast path keeps
 * nothing on the stack across it. */
static MA_COLD void free_local_suspect(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) {
    check_double_free(page, b);
    ma_page_free_push(heap, page, b);
}

static inline void free_local(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) {
    if (MA_UNLIKELY(ma_page_link_plausible(b, b->next))) {
        free_local_suspect(heap, page, b);
        return;
    }
    ma_page_free_push(heap, page, b);
}

/* Not the calling thread's page - or checked mode, where no page is.
 * Inline: a call here costs the cross-thread free one more instruction. */
static inline void free_other(ma_heap_t *heap, ma_page_t *page, void *p) {
    if (MA_UNLIKELY(ma_checked)) ma_check_free_block(page, p);
    else ma_free_remote_batched(heap, page, p);
}

/* p lies in one of our segments but starts no block of it. It may still be
 * a block of a fixed heap made inside one of ours (a heap in a malloc'd
 * buffer): the fixed heaps' registry has the last word. */
static MA_COLD void free_not_block(ma_page_t *page, void *p) {
    ma_heap_t *fixed = ma_fixed_find(p);
    if (fixed == NULL) ma_free_bad(page, p);
    int saved = errno;
    ma_fixed_free(fixed, p, "invalid free");
    errno = saved;
}

/* The byte map's entry says whether p lies in a segment (one compare also
 * keeps the index in the map); the segment's slice table gives the page;
 * p must be the start of a carved block (ma_page_block_index, inline). */
void ma_free(void *p) {
    uintptr_t a = (uintptr_t)p, idx = a >> MA_SEGMENT_SHIFT;
    if (MA_UNLIKELY(idx >= MA_SEGMAP_ENTRIES ||
                    atomic_load_explicit(&ma_segmap[idx], memory_order_relaxed) != MA_MAP_SEGMENT)) {
        ma_free_slow(p);
        return;
    }
    ma_page_t *page = ma_segment_page_of((ma_segment_t *)(a & ~MA_SEGMENT_MASK), p);
    if (MA_UNLIKELY(ma_page_block_index(page, p) == UINT32_MAX)) {
        free_not_block(page, p);
        return;
    }
    ma_heap_t *heap = ma_heap_free_tls;
    if (MA_LIKELY(page->heap == heap)) free_local(heap, page, p);
    else free_other(heap, page, p);
}

/* Another thread's page: the chain head..tail (linked, tail's link to be
 * set here) goes on its thread_free list with one compare-and-swap, or,
 * if the owner parked the page as full, the flag is cleared and the chain
 * goes to the owning heap's remote_full list so that it learns the page
 * has room. The page cannot change heaps meanwhile: the blocks being freed
 * still count as in use. */
static void send_chain(ma_page_t *page, ma_block_t *head, ma_block_t *tail) {
    uintptr_t old = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    for (;;) {
        if (old & MA_TF_NOTIFY) {
            if (!atomic_compare_exchange_weak_explicit(&page->thread_free, &old, old & ~MA_TF_NOTIFY,
                                                       memory_order_acq_rel, memory_order_relaxed))
                continue;
            ma_heap_t *heap = page->heap;
            uintptr_t first = atomic_load_explicit(&heap->remote_full, memory_order_relaxed);
            do {
                tail->next = ma_block_encode((void *)first);
            } while (!atomic_compare_exchange_weak_explicit(&heap->remote_full, &first, (uintptr_t)head,
                                                            memory_order_release, memory_order_relaxed));
            /* a heap with no thread: whoever next needs memory collects it,
             * and the purger if nobody does */
            if (atomic_load_explicit(&heap->is_abandoned, memory_order_relaxed)) {
                atomic_store_explicit(&ma_heap_abandoned_news, true, memory_order_relaxed);
                ma_purger_kick();
            }
            return;
        }
        tail->next = ma_block_encode((void *)old);
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &old, (uintptr_t)head,
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
}

/* A block freed by another thread, back on its page (heap.c drains its
 * remote list) without the double-free test: its first word is the remote
 * chain's link, which the test would take for a free block's. */
void ma_free_local(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) { ma_page_free_push(heap, page, b); }

void ma_free_remote(ma_page_t *page, ma_block_t *b) { send_chain(page, b, b); }

/* Frees of other threads' blocks are gathered per destination page in the
 * freeing thread's heap (heap->rbatch, a few slots chosen by the page's
 * address) and sent a chain at a time: one compare-and-swap, and one
 * transfer of the page's remote cache line, per MA_RBATCH_MAX blocks
 * instead of per block (snmalloc sends such batches as messages). A
 * thread holds at most MA_RBATCH_SLOTS * MA_RBATCH_MAX blocks back: a
 * slot is sent when full, when another page needs it, and all of them on
 * the thread's malloc slow path, on ma_trim and when it exits. Blocks of a
 * user heap's pages are sent at once (ma_heap_destroy may unmap them the
 * moment the free returns), and so are those of a thread with no heap. */
void ma_free_remote_batched(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) {
    if (MA_UNLIKELY(heap == &ma_heap_empty || !page->batchable)) {
        send_chain(page, b, b);
        return;
    }
    ma_rbatch_t *slot = &heap->rbatch[((uintptr_t)page >> 7) % MA_RBATCH_SLOTS];
    if (MA_LIKELY(slot->page == page)) {
        b->next = ma_block_encode(slot->head);
        slot->head = b;
        if (MA_UNLIKELY(++slot->count >= MA_RBATCH_MAX)) ma_free_flush_slot(slot);
        return;
    }
    if (slot->page) send_chain(slot->page, slot->head, slot->tail);
    slot->page = page;
    slot->head = slot->tail = b;
    slot->count = 1;
}

void ma_free_flush_slot(ma_rbatch_t *slot) {
    if (!slot->page) return;
    send_chain(slot->page, slot->head, slot->tail);
    slot->page = NULL;
    slot->count = 0;
}

/* Every block the thread of heap holds back goes to its page. */
void ma_free_flush(ma_heap_t *heap) {
    for (unsigned i = 0; i < MA_RBATCH_SLOTS; i++) ma_free_flush_slot(&heap->rbatch[i]);
}

/* A large mapping may be smaller than its 4 MiB chunk, and the rest of the
 * chunk may hold other memory: a caller's region or a heap file with a
 * fixed heap in it. So the byte map's entry for such a chunk may name a
 * large mapping that another thread is still setting up: the fixed heaps'
 * registry is asked first, and a large header is read only for pointers
 * that no fixed heap holds. */
static ma_large_t *large_owning(void *region, const void *p) {
    if (region == NULL || !ma_region_is_large(region)) return NULL;
    return ma_large_owns(region, p) ? region : NULL;
}

/* NULL, blocks of fixed heaps (file heaps free this way at every call),
 * large blocks, and pointers that are not ours. */
void ma_free_slow(void *p) {
    if (MA_UNLIKELY(ma_checked)) {
        ma_check_free(p);
        return;
    }
    if (p == NULL) return;
    ma_heap_t *fixed = ma_fixed_find(p);
    if (fixed) {
        /* the heap profiler's sampled blocks live in fixed heaps */
        if (MA_UNLIKELY(ma_profiling)) ma_profile_free_fixed(fixed, p);
        else ma_fixed_free(fixed, p, "invalid free");   /* leaves errno alone */
        return;
    }
    int saved = errno;
    ma_purger_kick();
    void *region = ma_region_of(p);
    ma_large_t *large = large_owning(region, p);
    if (large) {
        if (MA_UNLIKELY(large->profiled)) ma_profile_free_large(large, p);
        else ma_large_free(large, p);
    }
    else ma_diag_fatal_ptr("invalid free", p, region && ma_region_is_large(region) ? -1 : 0);
    errno = saved;
}

/* Usable bytes of the block at p; a pointer that is not the start of one of
 * our live blocks is fatal, named after `what`. */
size_t ma_usable_of(const void *p, const char *what) {
    if (MA_UNLIKELY(ma_checked)) return ma_check_usable(p, what);
    return ma_usable_unchecked(p, what);
}

size_t ma_usable_unchecked(const void *p, const char *what) {
    void *region = ma_region_of(p);
    if (region == NULL || ma_map_value(p) != MA_MAP_SEGMENT) {
        ma_heap_t *fixed = ma_fixed_find(p);
        if (fixed) return ma_fixed_usable(fixed, p, what);
        ma_large_t *large = large_owning(region, p);
        if (large && atomic_load_explicit(&large->state, memory_order_relaxed) == MA_LARGE_LIVE)
            return ma_large_usable(large);
        ma_diag_fatal_ptr(what, p, region ? -1 : 0);
    }
    ma_page_t *page = ma_segment_page_of(region, p);
    if (ma_page_block_index(page, p) == UINT32_MAX) {
        ma_heap_t *fixed = ma_fixed_find(p);   /* a fixed heap in a block of ours */
        if (fixed == NULL) ma_diag_fatal_ptr(what, p, 0);
        return ma_fixed_usable(fixed, p, what);
    }
    return page->block_size;
}

/* The fixed (or file) heap p is a block of, or NULL when p starts a block
 * of a page or a large block of ours, or is nobody's. realloc's question:
 * a fixed heap's block stays in its heap. */
ma_heap_t *ma_free_fixed_of(const void *p) {
    ma_segment_t *seg = ma_segment_small_of(p);
    if (seg && ma_page_block_index(ma_segment_page_of(seg, p), p) != UINT32_MAX) return NULL;
    return ma_fixed_find(p);   /* a large block's start is in no fixed heap but one inside it */
}
