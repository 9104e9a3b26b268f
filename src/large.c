/* large.c - blocks over MA_MEDIUM_MAX (256 KiB), or aligned to more than a
 * slice, each in a mapping of its own.
 *
 * A mapping starts on a 4 MiB boundary with a small header (ma_large_t), so
 * free() finds it through the byte map like a segment. Freed mappings are
 * kept in a small cache for MAPALLOC_PURGE_DELAY_MS (at most
 * MAPALLOC_LARGE_CACHE_MB in all): programs that free and re-allocate big
 * buffers reuse pages that are already resident instead of faulting fresh
 * ones. A cached mapping is resized to the new request with munmap of its
 * tail or mremap, and growing a live block moves pages with mremap instead
 * of copying bytes. The cache and the statistics have a lock of their
 * own (cache_lock), which also keeps a mapping from being unmapped while
 * ma_large_visit_all looks at it.
 * A large block of a user heap (ma_heap_new) is also on its heap's list,
 * under the heap's large_lock, so ma_heap_destroy can unmap them all.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

static ma_lock_t cache_lock = MA_LOCK_INIT(MA_RANK_LARGE);
static ma_large_t *cache;          /* cache_lock: most recently freed first */
static _Atomic uint64_t cache_bytes; /* written under cache_lock; read by the purger's test */
static ma_large_stats_t stats;     /* cache_lock */

#define SHRINK_SLACK ((size_t)64 << 10)  /* smaller excess stays mapped */
#define REFIT_SLACK ((size_t)8 << 20)    /* a reused mapping keeps this much extra */

/* Live large blocks: count more (1), fewer (-1) or the same (0), and bytes
 * mapped for them more or fewer by `bytes`, in the statistics and in the
 * segment layer's count of bytes in use. The one place both change. */
static void account_locked(int count, int64_t bytes) {
    MA_ASSERT(ma_lock_held(&cache_lock));
    stats.count += (uint64_t)(int64_t)count;
    stats.bytes += (uint64_t)bytes;
    ma_segment_account(bytes);
}

static void account(int count, int64_t bytes) {
    ma_lock(&cache_lock);
    account_locked(count, bytes);
    ma_unlock(&cache_lock);
}

static size_t round_page(size_t n) { return (n + MA_OS_PAGE - 1) & ~(size_t)(MA_OS_PAGE - 1); }

/* MAPALLOC_SECURE: the last page of each mapping is PROT_NONE, so an
 * overflow off the end of a large block faults. It follows the end of the
 * mapping: lifted before a resize (mremap moves only a range of one
 * protection; a shrink unmaps it with the tail) and set again after. */
static void guard_set(ma_large_t *large, bool on) {
    if (large->guard) ma_os_protect((uint8_t *)large + large->map_size - large->guard, large->guard, !on);
}

/* ---- Checked mode: a cached block's fill ----
 * A freed large block waits in the cache, mapped. In SECURE its first 24
 * and last 16 usable bytes get the free fill (MAPALLOC_DEBUG's check.c
 * fills more of it), checked when the mapping is reused, unmapped by the
 * cache, or at exit: a write after free is reported there. */
#define FILL_HEAD 24u
#define FILL_TAIL 16u

static bool cache_checked(void) { return (ma_secure || ma_debug) && !ma_valgrind; }

static uint8_t *old_block(const ma_large_t *large) { return (uint8_t *)large + large->offset; }

static void cache_fill(ma_large_t *large) {
    uint8_t *p = old_block(large);
    size_t usable = ma_large_usable(large);
    memset(p, MA_FREE_FILL, FILL_HEAD);
    memset(p + usable - FILL_TAIL, MA_FREE_FILL, FILL_TAIL);
}

static bool all_fill(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != MA_FREE_FILL) return false;
    return true;
}

static void cache_check(const ma_large_t *large) {
    const uint8_t *p = old_block(large);
    size_t usable = ma_large_usable(large);
    if (!all_fill(p, FILL_HEAD) || !all_fill(p + usable - FILL_TAIL, FILL_TAIL))
        ma_diag_fatal_ptr("write after free", p, -1);
}

static void cache_remove(ma_large_t **link) {
    ma_large_t *large = *link;
    *link = large->next;
    atomic_fetch_sub_explicit(&cache_bytes, large->map_size, memory_order_relaxed);
    if (cache_checked()) cache_check(large);
}

void ma_large_cache_check(void) {
    if (!cache_checked()) return;
    ma_lock(&cache_lock);
    for (ma_large_t *large = cache; large; large = large->next) cache_check(large);
    ma_unlock(&cache_lock);
}

static void unmap_large(ma_large_t *large) {
    if (large->offset >= MA_SEGMENT_SIZE)
        ma_segment_map_set((uintptr_t)large + large->offset, MA_MAP_NONE);
    ma_segment_map_set((uintptr_t)large, MA_MAP_NONE);
    ma_os_unmap(large, large->map_size);
}

/* ---- A user heap's list (its large_lock held) ---- */

static void owner_link(ma_large_t *large) {
    ma_heap_t *h = large->heap;
    large->prev = NULL;
    large->next = h->large_list;
    if (h->large_list) h->large_list->prev = large;
    h->large_list = large;
}

static void owner_unlink(ma_large_t *large) {
    if (large->prev) large->prev->next = large->next;
    else large->heap->large_list = large->next;
    if (large->next) large->next->prev = large->prev;
    large->next = large->prev = NULL;
}

/* After mremap moved a block: its neighbours point at the old address. */
static void owner_relink(ma_large_t *moved) {
    if (moved->prev) moved->prev->next = moved;
    else moved->heap->large_list = moved;
    if (moved->next) moved->next->prev = moved;
}

/* Unmap cached mappings older than the purge delay (all of them with all),
 * and the oldest while the cache is over its size. cache_lock held. */
static size_t cache_expire_locked(uint64_t now, bool all) {
    long delay = ma_option(MA_OPT_PURGE_DELAY_MS);
    uint64_t cap = (uint64_t)ma_option(MA_OPT_LARGE_CACHE_MB) << 20;
    size_t released = 0;
    uint64_t kept = 0;
    for (ma_large_t **link = &cache; *link;) {
        ma_large_t *large = *link;
        bool expired = all || (delay >= 0 && now - large->cached_at >= (uint64_t)delay);
        if (expired || kept + large->map_size > cap) {
            cache_remove(link);
            released += large->map_size;
            unmap_large(large);
        } else {
            kept += large->map_size;
            link = &large->next;
        }
    }
    return released;
}

/* The smallest cached mapping that holds `need` bytes, else the largest
 * one (to be grown). cache_lock held. */
static ma_large_t *cache_take_locked(size_t need) {
    ma_large_t **best = NULL, **biggest = NULL;
    for (ma_large_t **link = &cache; *link; link = &(*link)->next) {
        size_t size = (*link)->map_size;
        if (size >= need && (!best || size < (*best)->map_size)) best = link;
        if (!biggest || size > (*biggest)->map_size) biggest = link;
    }
    ma_large_t **link = best ? best : biggest;
    if (!link) return NULL;
    ma_large_t *large = *link;
    cache_remove(link);
    return large;
}

/* Grow a block's mapping; NULL (the block intact) on failure. mremap may
 * move it, and the kernel frees the old range inside the call, where
 * another thread's new mapping may land and mark the byte map at once: so
 * the old entry is cleared before, and the entry of wherever the block ends
 * up is set after. No other thread touches a block being resized. */
static ma_large_t *remap(ma_large_t *large, size_t old_size, size_t need) {
    ma_segment_map_set((uintptr_t)large, MA_MAP_NONE);
    ma_large_t *moved = ma_os_remap_aligned(large, old_size, need, MA_SEGMENT_SIZE);
    ma_segment_map_set((uintptr_t)(moved ? moved : large), MA_MAP_LARGE);
    return moved;
}

/* Fit a cached mapping to `need` bytes; NULL (and it is gone) on failure. */
static ma_large_t *refit(ma_large_t *large, size_t need) {
    if (large->map_size >= need) {
        /* The tail stays unless it is both big and most of the mapping:
         * cutting it drops resident pages that the next, larger request
         * would fault back in (the usable size is the whole mapping). */
        size_t excess = large->map_size - need;
        if (excess > REFIT_SLACK && excess / 3 > need && ma_os_shrink(large, large->map_size, need)) {
            large->map_size = need;
            guard_set(large, true);
        }
        return large;
    }
    size_t old_size = large->map_size;
    guard_set(large, false);
    ma_large_t *moved = remap(large, old_size, need);
    if (!moved) {
        ma_segment_map_set((uintptr_t)large, MA_MAP_NONE);
        ma_os_unmap(large, old_size);
        return NULL;
    }
    moved->map_size = need;
    guard_set(moved, true);
    return moved;
}

/* Where the block starts in its mapping: after the header, at the
 * alignment; for alignments above 4 MiB, 4 MiB in (the header's boundary
 * is then the one just below the block's, so the byte map entry of the
 * block says "one boundary back": any alignment fits the map). */
static size_t block_offset(size_t align) {
    if (align <= MA_LARGE_HEADER) return MA_LARGE_HEADER;
    return align <= MA_SEGMENT_SIZE ? align : MA_SEGMENT_SIZE;
}

void *ma_large_alloc(size_t size, size_t align, bool zero, ma_heap_t *owner) {
    ma_process_init();
    if (size > (size_t)PTRDIFF_MAX - 2 * MA_SEGMENT_SIZE || align > ((size_t)1 << (MA_ADDR_BITS - 2))) {
        errno = ENOMEM;
        return NULL;
    }
    size_t offset = block_offset(align);
    size_t map_align = align > MA_SEGMENT_SIZE ? align : MA_SEGMENT_SIZE;
    if (size > (size_t)PTRDIFF_MAX - offset - map_align) {
        errno = ENOMEM;
        return NULL;
    }
    /* Even a block of 0 bytes must lie inside its mapping. */
    size_t guard = ma_secure ? MA_OS_PAGE : 0;
    size_t need = round_page(offset + (size ? size : 1)) + guard;
    ma_large_t *large = NULL;
    bool fresh = false;
    if (map_align == MA_SEGMENT_SIZE) {
        ma_lock(&cache_lock);
        large = cache_take_locked(need);
        ma_unlock(&cache_lock);
        if (large) large = refit(large, need);
    }
    if (!large) {
        large = ma_os_map_aligned_at(need, map_align, align > MA_SEGMENT_SIZE ? offset : 0);
        if (!large) {
            errno = ENOMEM;
            return NULL;
        }
        fresh = true;
        large->kind = MA_KIND_LARGE;
        large->map_size = need;
        large->guard = guard;
        guard_set(large, true);
        ma_segment_map_set((uintptr_t)large, MA_MAP_LARGE);
    }
    large->offset = offset;
    large->next = large->prev = NULL;
    large->heap = owner;
    large->profiled = 0;
    uint8_t *p = (uint8_t *)large + offset;
    if (offset >= MA_SEGMENT_SIZE)
        ma_segment_map_set((uintptr_t)p, (uint8_t)(MA_MAP_LARGE + (offset >> MA_SEGMENT_SHIFT)));
    atomic_store_explicit(&large->state, MA_LARGE_LIVE, memory_order_release);
    if (zero && !fresh) memset(p, 0, size);
    if (owner) {
        ma_lock(&owner->large_lock);
        owner_link(large);
        ma_unlock(&owner->large_lock);
    }
    ma_lock(&cache_lock);
    account_locked(1, (int64_t)large->map_size);
    stats.allocs++;
    stats.alloc_bytes += ma_large_usable(large);
    ma_unlock(&cache_lock);
    return p;
}

bool ma_large_owns(const ma_large_t *large, const void *p) {
    return (const uint8_t *)large + large->offset == (const uint8_t *)p;
}

size_t ma_large_usable(const ma_large_t *large) { return large->map_size - large->offset - large->guard; }

void ma_large_free(ma_large_t *large, const void *p) {
    if (!ma_large_owns(large, p)) ma_diag_fatal_ptr("invalid free", p, 0);
    uint32_t expected = MA_LARGE_LIVE;
    if (!atomic_compare_exchange_strong_explicit(&large->state, &expected, MA_LARGE_CACHED,
                                                 memory_order_acq_rel, memory_order_relaxed))
        ma_diag_fatal_ptr("double free", p, -1);
    if (large->heap) {
        ma_heap_t *h = large->heap;
        ma_lock(&h->large_lock);
        owner_unlink(large);
        large->heap = NULL;
        ma_unlock(&h->large_lock);
    }
    uint64_t cap = (uint64_t)ma_option(MA_OPT_LARGE_CACHE_MB) << 20;
    bool keep = large->offset < MA_SEGMENT_SIZE && large->map_size <= cap;
    if (keep && ma_secure && cache_checked()) cache_fill(large);
    ma_lock(&cache_lock);
    account_locked(-1, -(int64_t)large->map_size);
    uint64_t now = ma_os_now_ms();
    if (keep) {
        large->cached_at = now;
        large->next = cache;
        cache = large;
        atomic_fetch_add_explicit(&cache_bytes, large->map_size, memory_order_relaxed);
    } else {
        unmap_large(large);
    }
    cache_expire_locked(now, false);
    ma_unlock(&cache_lock);
}

/* Resize in place where possible: shrink by unmapping the tail, grow with
 * mremap (pages move, nothing is copied). NULL with errno = ENOMEM, and the
 * block intact, when it cannot be done here; the caller then copies. */
void *ma_large_realloc(ma_large_t *large, void *p, size_t size) {
    size_t usable = ma_large_usable(large);
    if (size <= usable) {
        size_t need = round_page(large->offset + size) + large->guard;
        /* Only a real shrink gives memory back: a block that just grew with
         * headroom keeps it for the next realloc. */
        if (size < usable / 2 && usable - size >= SHRINK_SLACK && size > MA_MEDIUM_MAX) {
            size_t old = large->map_size;
            if (ma_os_shrink(large, old, need)) {
                large->map_size = need;
                guard_set(large, true);
                account(0, -(int64_t)(old - need));
            }
        }
        return p;
    }
    if (large->offset >= MA_SEGMENT_SIZE || size > (size_t)PTRDIFF_MAX - 2 * MA_SEGMENT_SIZE) return NULL;
    /* Leave room to grow again: string builders call realloc in steps. */
    size_t need = round_page(large->offset + size) + large->guard;
    size_t ahead = round_page(large->map_size + large->map_size / 4);
    if (need < ahead) need = ahead;
    size_t old = large->map_size;
    ma_heap_t *owner = large->heap;  /* its list must not see the move half done */
    if (owner) ma_lock(&owner->large_lock);
    guard_set(large, false);
    ma_large_t *moved = remap(large, old, need);
    if (moved && moved != large && owner) owner_relink(moved);
    if (owner) ma_unlock(&owner->large_lock);
    if (!moved) {
        guard_set(large, true);
        return NULL;
    }
    moved->map_size = need;
    guard_set(moved, true);
    account(0, (int64_t)(need - old));
    return (uint8_t *)moved + moved->offset;
}

void ma_large_stats(ma_large_stats_t *out) {
    ma_lock(&cache_lock);
    *out = stats;
    out->cached_bytes = atomic_load_explicit(&cache_bytes, memory_order_relaxed);
    ma_unlock(&cache_lock);
}

/* ma_heap_destroy and _reset: unmap every large block of the heap. */
void ma_large_release_owner(ma_heap_t *owner) {
    ma_lock(&owner->large_lock);
    ma_large_t *list = owner->large_list;
    owner->large_list = NULL;
    ma_unlock(&owner->large_lock);
    ma_lock(&cache_lock);
    while (list) {
        ma_large_t *next = list->next;
        account_locked(-1, -(int64_t)list->map_size);
        unmap_large(list);
        list = next;
    }
    ma_unlock(&cache_lock);
}

/* The purge tick of the cache: what has waited a purge delay (everything
 * with all) is unmapped. */
size_t ma_large_cache_tick(bool all) {
    ma_lock(&cache_lock);
    size_t released = cache_expire_locked(ma_os_now_ms(), all);
    ma_unlock(&cache_lock);
    return released;
}

size_t ma_large_trim(void) { return ma_large_cache_tick(true); }

uint64_t ma_large_cached(void) { return atomic_load_explicit(&cache_bytes, memory_order_relaxed); }

/* fn on the header of every large mapping, live or cached; none is
 * unmapped meanwhile (fn must not take cache_lock). */
void ma_large_visit_all(ma_region_visit_fn *fn, void *arg) {
    ma_lock(&cache_lock);
    ma_segment_visit_large(fn, arg);
    ma_unlock(&cache_lock);
}


/* fn on each large block of the heap, under its large_lock; stops at the
 * first non-zero result and returns it. */
int ma_large_visit_owner(ma_heap_t *owner, ma_large_visit_fn *fn, void *arg) {
    int r = 0;
    ma_lock(&owner->large_lock);
    for (ma_large_t *large = owner->large_list; large && r == 0; large = large->next) r = fn(large, arg);
    ma_unlock(&owner->large_lock);
    return r;
}
