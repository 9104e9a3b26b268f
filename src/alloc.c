/* alloc.c - malloc and its relatives.
 *
 * The fast path (ma_malloc): the thread's heap, the page for the size -
 * from heap->direct up to 1 KiB, with no size-class computation; the first
 * page of the class's queue for medium sizes (up to MA_MEDIUM_MAX) - and
 * pop the first block of its free list. No lock, no atomic. Everything
 * else - a thread's first call, a page running dry, large sizes,
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
    ma_page_t *page;
    if (MA_LIKELY(size <= MA_SMALL_MAX)) {
        page = heap->direct[ma_direct_index(size)];
    } else if (size <= MA_MEDIUM_MAX && MA_LIKELY(!ma_medium_slow)) {
        /* medium sizes: the first page of the class's queue (MAPALLOC_SECURE
         * needs a class with room for the canary, and the profiler counts
         * medium blocks one by one: both take the slow path) */
        page = heap->queue[ma_sizeclass_of(size)].first;
        if (MA_UNLIKELY(page == NULL)) return ma_alloc_slow(heap, size);
    } else {
        return ma_alloc_slow(heap, size);
    }
    if (MA_LIKELY(page->free != NULL)) return ma_page_pop(page);
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

/* ---- Threads past their exit hook ------------------------------------
 * A pthread key destructor of the program may allocate after init.c's
 * thread_done gave the thread's heap back, and glibc runs the
 * destructors of a key set again in the next round, up to
 * PTHREAD_DESTRUCTOR_ITERATIONS rounds: a heap the thread took then, in
 * the last round, would never be given back, and every exiting thread
 * would keep one. So such a thread takes no heap: it allocates from one
 * shared heap (a user heap, ma_heap_new's kind: any thread may free its
 * blocks), one thread at a time under late_lock. */
__thread bool ma_thread_exited __attribute__((tls_model("initial-exec")));
static ma_lock_t late_lock = MA_LOCK_INIT(MA_RANK_LATE);
static ma_heap_t *late_heap;   /* late_lock; made on first use */

void *ma_alloc_late(size_t size, size_t align, bool zero) {
    ma_lock(&late_lock);
    if (!late_heap) late_heap = ma_heap_user_new();
    void *p = late_heap ? ma_alloc_in(late_heap, size, align, zero) : NULL;
    ma_unlock(&late_lock);
    if (!p) errno = ENOMEM;
    return p;
}

/* The thread has no heap in ma_heap_tls: its first call, or its exit hook
 * ran. The allocator starts here, so the mode is known before the first
 * block is handed out. */
static MA_COLD void *alloc_first(size_t size) {
    ma_process_init();
    if (ma_checked) return ma_check_malloc(size);
    if (ma_profiling) return ma_profile_malloc(&ma_heap_empty, size);
    if (size > MA_MEDIUM_MAX) return ma_large_alloc(size, MA_ALIGN_MIN, false, NULL);
    if (ma_thread_exited) return ma_alloc_late(size, MA_ALIGN_MIN, false);
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
    ma_purger_kick();
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
    if (heap == &ma_heap_empty && ma_thread_exited) return ma_alloc_late(size, align, false);
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
    if (!ma_array_size(count, size, &total)) return NULL;
    if (total > MA_MEDIUM_MAX) return calloc_large(total);
    void *p = ma_malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

/* realloc's one policy (here, check.c, pool.c): a block of `usable` bytes
 * asked to hold `size` stays where it is (0) if size fits and takes more
 * than half of it. Else it moves, and the size to allocate is returned: a
 * block that grows gets at least a quarter more than it had (tcmalloc's
 * rule), so a string or an array grown in small steps moves log-many
 * times, not once per size class (the classes above 256 KiB are 64 KiB
 * apart); a block that shrinks to half or less moves to a smaller class.
 * If the quarter more cannot be had, the caller tries `size` alone. */
size_t ma_alloc_realloc_size(size_t usable, size_t size) {
    if (size <= usable && size >= usable / 2) return 0;
    if (size > usable && size - usable < usable / 4) return usable + usable / 4;
    return size;
}

static void *realloc_move(void *p, size_t usable, size_t size) {
    size_t want = ma_alloc_realloc_size(usable, size);
    if (want == 0) want = size;  /* a large block that stayed too big */
    void *q = ma_malloc(want);
    if (!q && want > size) q = ma_malloc(size);
    if (!q) return NULL;
    memcpy(q, p, size < usable ? size : usable);
    ma_free(p);
    return q;
}

void *ma_realloc(void *p, size_t size) {
    if (p == NULL) return ma_malloc(size);
    if (MA_UNLIKELY(ma_checked)) return ma_check_realloc(p, size);
    if (MA_UNLIKELY(ma_profiling)) return ma_profile_realloc(p, size);
    if (size == 0) {  /* glibc: free and return NULL */
        ma_free(p);
        return NULL;
    }
    /* a block of a page: its class is its usable size */
    ma_segment_t *seg = ma_segment_small_of(p);
    if (MA_LIKELY(seg != NULL)) {
        const ma_page_t *page = ma_segment_page_of(seg, p);
        if (MA_LIKELY(ma_page_block_index(page, p) != UINT32_MAX)) {
            size_t usable = page->block_size;
            if (ma_alloc_realloc_size(usable, size) == 0) return p;
            return realloc_move(p, usable, size);
        }
    }
    ma_heap_t *fixed = ma_free_fixed_of(p);   /* before any header: see free.c */
    if (fixed) return ma_fixed_realloc(fixed, p, size);
    void *region = ma_region_of(p);
    if (region && ma_region_is_large(region) && ma_large_owns(region, p)) {
        ma_large_t *large = region;
        /* a freed block waits in the cache, mapped: ma_usable_of below
         * names the misuse */
        if (size > MA_MEDIUM_MAX &&
            atomic_load_explicit(&large->state, memory_order_acquire) == MA_LARGE_LIVE) {
            void *q = ma_large_realloc(large, p, size);
            if (q) return q;
        }
    }
    size_t usable = ma_usable_of(p, "invalid realloc");
    return realloc_move(p, usable, size);
}

void *ma_reallocarray(void *p, size_t count, size_t size) {
    size_t total;
    if (!ma_array_size(count, size, &total)) return NULL;
    return ma_realloc(p, total);
}

static bool pow2(size_t x) { return x && !(x & (x - 1)); }

/* glibc: a non-power-of-two alignment is rounded up; one too big to round
 * is EINVAL. */
void *ma_memalign(size_t align, size_t size) {
    if (align > ((size_t)1 << 63)) {
        errno = EINVAL;
        return NULL;
    }
    if (!pow2(align)) align = align <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(align - 1));
    return ma_alloc_aligned(size, align);
}

/* C17 (DR 460), and glibc from 2.38: an alignment that is not a power of
 * two (0 included) is EINVAL. */
void *ma_aligned_alloc(size_t align, size_t size) {
    if (!pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return ma_alloc_aligned(size, align);
}

/* A failure is returned, and left in errno too (ENOMEM), as glibc,
 * jemalloc, mimalloc and tcmalloc do. */
int ma_posix_memalign(void **out, size_t align, size_t size) {
    if (!pow2(align) || align % sizeof(void *) != 0) return EINVAL;
    void *p = ma_alloc_aligned(size, align);
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
