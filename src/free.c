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

/* A block whose first word looks like a free block's: searched, then
 * pushed. Apart, and reached by a tail call, so that the fast path keeps
 * nothing on the stack across it. */
static MA_COLD void free_local_suspect(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) {
    check_double_free(page, b);
    ma_page_free_push(heap, page, b);
}

static inline void free_local(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) {
    if (MA_UNLIKELY(ma_page_link_plausible(page, b->next))) {
        free_local_suspect(heap, page, b);
        return;
    }
    ma_page_free_push(heap, page, b);
}

/* Not the calling thread's page - or checked mode, where no page is.
 * Inline: a call here costs the cross-thread free one more instruction. */
static inline void free_other(ma_page_t *page, void *p) {
    if (MA_UNLIKELY(ma_checked)) ma_check_free_block(page, p);
    else ma_free_remote(page, p);
}

void ma_free(void *p) {
    ma_segment_t *seg = ma_segment_small_of(p);
    if (MA_UNLIKELY(seg == NULL)) {
        ma_free_slow(p);
        return;
    }
    ma_page_t *page = ma_segment_page_of(seg, p);
    if (MA_UNLIKELY(ma_page_block_index(page, p) == UINT32_MAX))
        ma_diag_fatal_ptr("invalid free", p, page->block_size ? page->sclass : 0);
    ma_heap_t *heap = ma_heap_free_tls;
    if (MA_LIKELY(page->heap == heap)) free_local(heap, page, p);
    else free_other(page, p);
}

void ma_free_local(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) { free_local(heap, page, b); }

/* Another thread's page: push on its thread_free list, or, if the owner
 * parked the page as full, clear the flag and hand the block to the owning
 * heap directly so it learns the page has room. The page cannot change
 * heaps meanwhile: the block being freed still counts as in use. */
void ma_free_remote(ma_page_t *page, ma_block_t *b) {
    uintptr_t old = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    for (;;) {
        if (old & MA_TF_NOTIFY) {
            if (!atomic_compare_exchange_weak_explicit(&page->thread_free, &old, old & ~MA_TF_NOTIFY,
                                                       memory_order_acq_rel, memory_order_relaxed))
                continue;
            ma_heap_t *heap = page->heap;
            uintptr_t head = atomic_load_explicit(&heap->remote_full, memory_order_relaxed);
            do {
                b->next = ma_block_encode((void *)head);
            } while (!atomic_compare_exchange_weak_explicit(&heap->remote_full, &head, (uintptr_t)b,
                                                            memory_order_release, memory_order_relaxed));
            return;
        }
        b->next = ma_block_encode((void *)old);
        if (atomic_compare_exchange_weak_explicit(&page->thread_free, &old, (uintptr_t)b,
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
}

/* A large mapping may be smaller than its 4 MiB chunk, and the rest of the
 * chunk may hold other memory: a caller's region with a fixed heap among
 * it. So when the byte map does not lead to a block that owns p, the fixed
 * heaps are asked before p is declared invalid. */
static ma_large_t *large_owning(void *region, const void *p) {
    if (region == NULL || !ma_region_is_large(region)) return NULL;
    return ma_large_owns(region, p) ? region : NULL;
}

/* NULL, large blocks, blocks of fixed heaps, and pointers that are not ours. */
void ma_free_slow(void *p) {
    if (MA_UNLIKELY(ma_checked)) {
        ma_check_free(p);
        return;
    }
    if (p == NULL) return;
    int saved = errno;
    void *region = ma_region_of(p);
    ma_large_t *large = large_owning(region, p);
    ma_heap_t *fixed;
    if (large) {
        if (MA_UNLIKELY(large->profiled)) ma_profile_free_large(large, p);
        else ma_large_free(large, p);
    } else if ((fixed = ma_fixed_find(p)) != NULL) {
        /* the heap profiler's sampled blocks live in fixed heaps */
        if (MA_UNLIKELY(ma_profiling)) ma_profile_free_fixed(fixed, p);
        else ma_fixed_free(fixed, p, "invalid free");
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
    if (region == NULL || ma_region_is_large(region)) {
        ma_large_t *large = large_owning(region, p);
        if (large && atomic_load_explicit(&large->state, memory_order_relaxed) == MA_LARGE_LIVE)
            return ma_large_usable(large);
        ma_heap_t *fixed = large ? NULL : ma_fixed_find(p);
        if (fixed == NULL) ma_diag_fatal_ptr(what, p, region ? -1 : 0);
        return ma_fixed_usable(fixed, p, what);
    }
    ma_page_t *page = ma_segment_page_of(region, p);
    if (ma_page_block_index(page, p) == UINT32_MAX) ma_diag_fatal_ptr(what, p, 0);
    return page->block_size;
}
