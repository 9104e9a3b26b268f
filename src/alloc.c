/* alloc.c - malloc and its relatives.
 *
 * The fast path (ma_malloc, sizes up to 1 KiB): the thread's heap, the page
 * for the size from heap->direct, pop the first block of its free list.
 * No lock, no atomic, no size-class computation. Everything else - a
 * thread's first call, a page running dry, medium and large sizes,
 * alignment - goes through ma_alloc_slow and friends; in checked mode
 * they hand it to check.c (ma_check_malloc, ma_check_alloc), and when
 * profiling to profile.c. For
 * MAPALLOC_SECURE alone the fast path serves too: heap->direct then maps
 * each size to a class with room for the block's canary (heap.c).
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

void ma_page_corrupted_link(ma_page_t *page, ma_block_t *b) {
    ma_diag_fatal_ptr("corrupted free list at", b, page->sclass);
}

void *ma_malloc(size_t size) {
    ma_heap_t *heap = ma_heap_tls;
    if (MA_LIKELY(size <= MA_SMALL_MAX)) {
        ma_page_t *page = heap->direct[(size + 15) >> 4];
        if (MA_LIKELY(page->free != NULL)) return ma_page_pop(page);
    }
    return ma_alloc_slow(heap, size);
}

void *ma_alloc_class(ma_heap_t *heap, unsigned cls) {
    ma_page_t *page = heap->queue[cls].first;
    if (MA_UNLIKELY(page == NULL || page->free == NULL)) {
        if (atomic_load_explicit(&heap->remote_full, memory_order_relaxed)) ma_heap_drain_remote(heap);
        page = ma_heap_find_page(heap, cls);
        if (MA_UNLIKELY(page == NULL)) {
            errno = ENOMEM;
            return NULL;
        }
    }
    return ma_page_pop(page);
}

/* The thread has no heap in ma_heap_tls: its first call. The allocator
 * starts here, so the mode is known before the first block is handed out. */
static MA_COLD void *alloc_first(size_t size) {
    ma_process_init();
    if (ma_checked) return ma_check_malloc(size);
    if (ma_profiling) return ma_profile_malloc(&ma_heap_empty, size);
    if (size > MA_MEDIUM_MAX) return ma_large_alloc(size, MA_ALIGN_MIN, false, NULL);
    ma_heap_t *heap = ma_heap_thread_init();
    if (!heap) {
        errno = ENOMEM;
        return NULL;
    }
    return ma_alloc_class(heap, ma_sizeclass_of(size));
}

/* In checked mode (check.c) every malloc that misses the fast path goes
 * there: all of them but MAPALLOC_SECURE's, whose thread heap is in
 * ma_heap_tls (its blocks need a larger class than the size: the canary).
 * When profiling, the misses go to profile.c, which counts them (one test
 * for both: ma_diverted). */
MA_NOINLINE void *ma_alloc_slow(ma_heap_t *heap, size_t size) {
    if (MA_UNLIKELY(ma_diverted)) return ma_checked ? ma_check_malloc(size) : ma_profile_malloc(heap, size);
    if (MA_UNLIKELY(heap == &ma_heap_empty)) return alloc_first(size);
    if (size > MA_MEDIUM_MAX) return ma_large_alloc(size, MA_ALIGN_MIN, false, NULL);
    return ma_alloc_class(heap, ma_sizeclass_of(size));
}

/* Any size, any alignment (a power of two), from a thread heap or a user
 * heap. Up to a slice (64 KiB), pages start aligned, so a class whose size
 * is a multiple of align gives aligned blocks; beyond, or for large sizes,
 * the block gets a mapping of its own (on the user heap's list). */
void *ma_alloc_unchecked(ma_heap_t *heap, size_t size, size_t align, bool zero) {
    void *p = NULL;
    if (size <= MA_MEDIUM_MAX && align <= MA_SLICE_SIZE) {
        unsigned cls = ma_sizeclass_of(size < align ? align : size);
        while (cls < MA_CLASS_COUNT && (ma_sizeclass_size(cls) & (align - 1)) != 0) cls++;
        if (cls < MA_CLASS_COUNT) {
            p = ma_alloc_class(heap, cls);
            if (p && zero) memset(p, 0, size);
            return p;
        }
    }
    ma_heap_t *owner = atomic_load_explicit(&heap->kind, memory_order_relaxed) == MA_HEAP_USER ? heap : NULL;
    return ma_large_alloc(size, align < MA_ALIGN_MIN ? MA_ALIGN_MIN : align, zero, owner);
}

/* The entry of user heaps (pool.c) and of aligned allocations. */
void *ma_alloc_in(ma_heap_t *heap, size_t size, size_t align, bool zero) {
    if (MA_UNLIKELY(ma_checked)) return ma_check_alloc(heap, size, align, zero);
    return ma_alloc_unchecked(heap, size, align, zero);
}

void *ma_alloc_aligned(size_t size, size_t align) {
    if (align <= MA_ALIGN_MIN) return ma_malloc(size);
    ma_process_init();
    if (MA_UNLIKELY(ma_checked)) return ma_check_alloc(NULL, size, align, false);
    if (MA_UNLIKELY(ma_profiling)) return ma_profile_alloc(size, align, false);
    if (size > MA_MEDIUM_MAX) return ma_large_alloc(size, align, false, NULL);
    ma_heap_t *heap = ma_heap_tls;
    if (heap == &ma_heap_empty && (heap = ma_heap_thread_init()) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return ma_alloc_unchecked(heap, size, align, false);
}

static void *calloc_large(size_t total) {
    ma_process_init();
    if (MA_UNLIKELY(ma_checked)) return ma_check_alloc(NULL, total, MA_ALIGN_MIN, true);
    if (MA_UNLIKELY(ma_profiling)) return ma_profile_alloc(total, MA_ALIGN_MIN, true);
    return ma_large_alloc(total, MA_ALIGN_MIN, true, NULL);
}

void *ma_calloc(size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (total > MA_MEDIUM_MAX) return calloc_large(total);
    void *p = ma_malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void *ma_realloc(void *p, size_t size) {
    if (p == NULL) return ma_malloc(size);
    if (MA_UNLIKELY(ma_checked)) return ma_check_realloc(p, size);
    if (MA_UNLIKELY(ma_profiling)) return ma_profile_realloc(p, size);
    if (size == 0) {  /* glibc: free and return NULL */
        ma_free(p);
        return NULL;
    }
    void *region = ma_region_of(p);
    if (region && ma_region_is_large(region) && ma_large_owns(region, p)) {
        ma_large_t *large = region;
        if (size > MA_MEDIUM_MAX) {
            void *q = ma_large_realloc(large, p, size);
            if (q) return q;
        }
    }
    size_t usable = ma_usable_of(p, "invalid realloc");
    if (size <= usable && size >= usable / 2 && usable <= MA_MEDIUM_MAX) return p;
    void *q = ma_malloc(size);
    if (!q) return NULL;
    memcpy(q, p, size < usable ? size : usable);
    ma_free(p);
    return q;
}

void *ma_reallocarray(void *p, size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return ma_realloc(p, total);
}

static bool pow2(size_t x) { return x && !(x & (x - 1)); }

/* glibc: a non-power-of-two alignment is rounded up; one too big to round
 * is EINVAL. aligned_alloc behaves the same in glibc 2.36. */
void *ma_memalign(size_t align, size_t size) {
    if (align > ((size_t)1 << 63)) {
        errno = EINVAL;
        return NULL;
    }
    if (!pow2(align)) align = align <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(align - 1));
    return ma_alloc_aligned(size, align);
}

void *ma_aligned_alloc(size_t align, size_t size) { return ma_memalign(align, size); }

int ma_posix_memalign(void **out, size_t align, size_t size) {
    if (!pow2(align) || align % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = ma_alloc_aligned(size, align);
    errno = saved;
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *ma_valloc(size_t size) { return ma_alloc_aligned(size, MA_OS_PAGE); }

void *ma_pvalloc(size_t size) {
    size_t rounded;
    if (__builtin_add_overflow(size, MA_OS_PAGE - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(size_t)(MA_OS_PAGE - 1);
    return ma_alloc_aligned(rounded ? rounded : MA_OS_PAGE, MA_OS_PAGE);
}

size_t ma_usable_size(const void *p) {
    if (p == NULL) return 0;
    return ma_usable_of(p, "invalid malloc_usable_size");
}
