/* segment.c - 4 MiB segments cut into spans of 64 KiB slices, the byte map
 * that tells our regions from other memory, and purging.
 *
 * One lock (the segment lock) guards every segment's masks and the list of
 * segments; it is taken only when a heap needs a new page or gives one back,
 * never on the malloc/free fast paths. A free slice is "dirty" until purged:
 * a span freed now is purged after 1-2 purge delays (dirty_old is the set
 * that was already dirty at the previous tick), at once when more than
 * MAPALLOC_DIRTY_MAX_MB are dirty, and a segment left empty for a whole tick
 * is unmapped.
 */
#include <string.h>
#include "internal.h"

/* 32 MiB of address space in .bss: the kernel maps its pages only where
 * entries are written, and its address is a link-time constant. */
_Atomic uint8_t ma_segmap[MA_SEGMAP_ENTRIES];

/* One bit per 4 KiB of the byte map: set once an entry in it is set, so
 * that a walk over the large mappings (check.c) reads only those parts. */
#define MAP_CHUNK 4096u
static _Atomic uint64_t map_touched[MA_SEGMAP_ENTRIES / MAP_CHUNK / 64];

/* MAPALLOC_SECURE: guard pages of PROT_NONE around the header, from its end
 * to the end of slice 0, and the whole last slice, which then holds no
 * span. An overflow off the end of a segment, or backwards off its first
 * span, faults before it reaches a header (this one or the next
 * segment's); the guards are never touched, so they cost address space and
 * two mappings, not memory. */
#define HEADER_BYTES ((sizeof(ma_segment_t) + MA_OS_PAGE - 1) & ~(size_t)(MA_OS_PAGE - 1))
#define GUARD_SLICE ((uint64_t)1 << (MA_SEGMENT_SLICES - 1))

static uint64_t slices_usable(void) { return ma_secure ? MA_SLICES_USABLE & ~GUARD_SLICE : MA_SLICES_USABLE; }

static void guard_segment(ma_segment_t *seg) {
    ma_os_protect((uint8_t *)seg + HEADER_BYTES, MA_SLICE_SIZE - HEADER_BYTES, false);
    ma_os_protect((uint8_t *)seg + MA_SEGMENT_SIZE - MA_SLICE_SIZE, MA_SLICE_SIZE, false);
}

static ma_lock_t seg_lock = MA_LOCK_INIT(MA_RANK_SEGMENTS);
static ma_segment_t *seg_list;     /* all segments, oldest first */
static ma_segment_t *seg_last;
static uint64_t dirty_bytes;       /* free slices that may be resident */
static uint64_t inuse_bytes;       /* bytes in spans and live large mappings */
static uint64_t inuse_peak;
static uint64_t last_tick_ms;

void ma_segment_lock(void) { ma_lock(&seg_lock); }
void ma_segment_unlock(void) { ma_unlock(&seg_lock); }

void ma_segment_map_set(uintptr_t base, uint8_t v) {
    size_t i = base >> MA_SEGMENT_SHIFT;
    atomic_store_explicit(&ma_segmap[i], v, memory_order_relaxed);
    uint64_t bit = (uint64_t)1 << (i / MAP_CHUNK % 64);
    _Atomic uint64_t *word = &map_touched[i / MAP_CHUNK / 64];
    if (v != MA_MAP_NONE && !(atomic_load_explicit(word, memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
}

static uint64_t run_mask(unsigned first, unsigned count) {
    uint64_t ones = count >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << count) - 1);
    return ones << first;
}

/* Index of a run of `count` set bits in mask, or -1: the lowest run for
 * short spans, the highest for long ones, so the two kinds grow from the
 * two ends of a segment and small spans do not break up the long runs that
 * big pages need. */
#define LONG_SPAN 4u
static int find_run(uint64_t mask, unsigned count) {
    uint64_t starts = mask;
    for (unsigned i = 1; i < count && starts; i++) starts &= mask >> i;
    if (!starts) return -1;
    return count >= LONG_SPAN ? 63 - __builtin_clzll(starts) : __builtin_ctzll(starts);
}

static size_t slices_bytes(uint64_t mask) { return (size_t)__builtin_popcountll(mask) << MA_SLICE_SHIFT; }

static void purge_mask(ma_segment_t *seg, uint64_t mask) {
    while (mask) {
        unsigned first = (unsigned)__builtin_ctzll(mask);
        uint64_t rest = ~(mask >> first);
        unsigned count = rest ? (unsigned)__builtin_ctzll(rest) : 64 - first;
        ma_os_purge((uint8_t *)seg + ((size_t)first << MA_SLICE_SHIFT), (size_t)count << MA_SLICE_SHIFT);
        mask &= ~run_mask(first, count);
    }
}

static void purge_slices(ma_segment_t *seg, uint64_t mask) {
    purge_mask(seg, mask);
    seg->dirty_mask &= ~mask;
    seg->dirty_old &= ~mask;
    dirty_bytes -= slices_bytes(mask);
}

static void list_remove(ma_segment_t *seg) {
    if (seg->prev) seg->prev->next = seg->next;
    else seg_list = seg->next;
    if (seg->next) seg->next->prev = seg->prev;
    else seg_last = seg->prev;
}

/* Unmap a segment, whatever it still holds (a destroyed heap's pages). */
static void segment_unmap(ma_segment_t *seg) {
    list_remove(seg);
    uint64_t used = ~seg->free_mask & slices_usable();
    dirty_bytes -= slices_bytes(seg->dirty_mask);
    ma_segment_account_locked(-(int64_t)slices_bytes(used));
    if (seg->owner) seg->owner->segment_count--;
    /* Purged and never-used slices are already out of "committed"; put
     * them back so that unmapping takes exactly the segment's size. */
    size_t resident = MA_SLICE_SIZE + slices_bytes(used | seg->dirty_mask);
    atomic_fetch_add_explicit(&ma_os_stats.committed, MA_SEGMENT_SIZE - resident, memory_order_relaxed);
    ma_segment_map_set((uintptr_t)seg, MA_MAP_NONE);
    ma_os_unmap(seg, MA_SEGMENT_SIZE);
    /* "released" counts what was resident: purged slices were counted. */
    atomic_fetch_sub_explicit(&ma_os_stats.released, MA_SEGMENT_SIZE - resident, memory_order_relaxed);
}

/* ma_heap_destroy and _reset: every segment of the heap goes back at once. */
void ma_segment_release_owner(ma_heap_t *owner) {
    ma_lock(&seg_lock);
    ma_segment_t *next;
    for (ma_segment_t *seg = seg_list; seg; seg = next) {
        next = seg->next;
        if (seg->owner == owner) segment_unmap(seg);
    }
    ma_unlock(&seg_lock);
}

/* Over the dirty bound: purge down to half of it, what has been dirty
 * longest first (dirty_old), so that a steady stream of frees does not
 * purge - and fault back - memory that is about to be reused. */
static size_t purge_down_to(uint64_t target) {
    size_t released = 0;
    for (int pass = 0; pass < 2 && dirty_bytes > target; pass++) {
        for (ma_segment_t *seg = seg_list; seg && dirty_bytes > target; seg = seg->next) {
            uint64_t mask = pass == 0 ? (seg->dirty_old & seg->dirty_mask) : seg->dirty_mask;
            released += slices_bytes(mask);
            purge_slices(seg, mask);
        }
    }
    return released;
}

/* Purge what has been dirty for a whole delay, unmap segments that stayed
 * empty; with force, purge and unmap everything free now. Lock held. */
static size_t tick_locked(bool force) {
    long delay = ma_option(MA_OPT_PURGE_DELAY_MS);
    uint64_t now = ma_os_now_ms();
    uint64_t max = (uint64_t)ma_option(MA_OPT_DIRTY_MAX_MB) << 20;
    size_t released = 0;
    if (!force && dirty_bytes > max) released = purge_down_to(max / 2);
    if (!force && (delay < 0 || now - last_tick_ms < (uint64_t)delay)) return released;
    last_tick_ms = now;
    ma_segment_t *next;
    for (ma_segment_t *seg = seg_list; seg; seg = next) {
        next = seg->next;
        uint64_t old = force ? seg->dirty_mask : (seg->dirty_old & seg->dirty_mask);
        released += slices_bytes(old);
        purge_slices(seg, old);
        seg->dirty_old = seg->dirty_mask;
        bool empty = seg->free_mask == slices_usable();
        if (empty && (force || seg->was_empty)) {
            released += MA_SLICE_SIZE;
            segment_unmap(seg);
            continue;
        }
        seg->was_empty = empty;
    }
    return released + ma_large_cache_expire_locked(now, force);
}

void ma_segment_tick(bool force) {
    ma_lock(&seg_lock);
    tick_locked(force);
    ma_unlock(&seg_lock);
}

size_t ma_segment_trim(void) {
    ma_lock(&seg_lock);
    size_t released = tick_locked(true);
    ma_unlock(&seg_lock);
    return released;
}

static ma_segment_t *segment_new(ma_heap_t *owner) {
    ma_segment_t *seg = ma_os_map_aligned(MA_SEGMENT_SIZE, MA_SEGMENT_SIZE);
    if (!seg) return NULL;
    if (ma_secure) guard_segment(seg);
    seg->kind = MA_KIND_SEGMENT;
    seg->owner = owner;
    seg->free_mask = slices_usable();
    /* Fresh slices are neither resident nor counted as committed. */
    atomic_fetch_sub_explicit(&ma_os_stats.committed, MA_SEGMENT_SIZE - MA_SLICE_SIZE,
                              memory_order_relaxed);
    ma_segment_map_set((uintptr_t)seg, MA_MAP_SEGMENT);
    return seg;
}

static ma_page_t *take_span(ma_segment_t *seg, unsigned first, unsigned count) {
    uint64_t run = run_mask(first, count);
    uint64_t resident = run & seg->dirty_mask;
    atomic_fetch_add_explicit(&ma_os_stats.committed, slices_bytes(run & ~resident),
                              memory_order_relaxed);
    dirty_bytes -= slices_bytes(resident);
    seg->free_mask &= ~run;
    seg->dirty_mask &= ~run;
    seg->dirty_old &= ~run;
    seg->was_empty = 0;
    ma_segment_account_locked((int64_t)count << MA_SLICE_SHIFT);
    ma_page_t *page = &seg->pages[first];
    for (unsigned i = 1; i < count; i++) page[i].slice_offset = (uint8_t)i;
    page->slice_offset = 0;
    page->slice_count = (uint8_t)count;
    page->start = (uint8_t *)seg + ((size_t)first << MA_SLICE_SHIFT);
    return page;
}

/* A span of `slices` slices in a segment of `owner` (NULL: the shared
 * ones), preferring slices that are still resident (no page faults) and
 * low segments (so high ones can empty out). */
ma_page_t *ma_segment_span_alloc(unsigned slices, bool *zero, ma_heap_t *owner) {
    ma_lock(&seg_lock);
    tick_locked(false);
    for (int pass = 0; pass < 2; pass++) {
        for (ma_segment_t *seg = seg_list; seg; seg = seg->next) {
            if (seg->owner != owner) continue;
            uint64_t mask = pass == 0 ? (seg->free_mask & seg->dirty_mask) : seg->free_mask;
            int first = find_run(mask, slices);
            if (first >= 0) {
                *zero = pass == 1 && ((run_mask((unsigned)first, slices) & seg->dirty_mask) == 0) &&
                        ma_option(MA_OPT_PURGE_FREE) == 0;
                ma_page_t *page = take_span(seg, (unsigned)first, slices);
                ma_unlock(&seg_lock);
                return page;
            }
        }
    }
    ma_unlock(&seg_lock);
    ma_segment_t *seg = segment_new(owner);
    if (!seg) return NULL;
    ma_lock(&seg_lock);
    if (owner) owner->segment_count++;
    /* At the end: older segments are searched first and fill up, so the
     * newer ones can empty out and be unmapped. */
    seg->next = NULL;
    seg->prev = seg_last;
    if (seg_last) seg_last->next = seg;
    else seg_list = seg;
    seg_last = seg;
    *zero = true;
    ma_page_t *page = take_span(seg, (unsigned)find_run(seg->free_mask, slices), slices);
    ma_unlock(&seg_lock);
    return page;
}

void ma_segment_span_free(ma_page_t *page) {
    ma_segment_t *seg = (ma_segment_t *)((uintptr_t)page & ~MA_SEGMENT_MASK);
    unsigned first = (unsigned)(page - seg->pages);
    unsigned count = page->slice_count;
    uint64_t run = run_mask(first, count);
    ma_lock(&seg_lock);
    MA_ASSERT((seg->free_mask & run) == 0);
    page->block_size = 0;
    __atomic_store_n(&page->capacity, 0, __ATOMIC_RELAXED);
    page->heap = NULL;
    seg->free_mask |= run;
    seg->dirty_mask |= run;
    dirty_bytes += slices_bytes(run);
    ma_segment_account_locked(-((int64_t)count << MA_SLICE_SHIFT));
    if (ma_option(MA_OPT_PURGE_DELAY_MS) == 0) purge_slices(seg, run);
    tick_locked(false);
    ma_unlock(&seg_lock);
}

void ma_segment_visit_pages(ma_page_visit_fn *fn, void *arg) {
    ma_lock(&seg_lock);
    for (ma_segment_t *seg = seg_list; seg; seg = seg->next) {
        for (unsigned i = 1; i < MA_SEGMENT_SLICES; i++) {
            const ma_page_t *page = &seg->pages[i];
            if ((seg->free_mask >> i) & 1) continue;
            if (page->slice_offset != 0 || page->block_size == 0) continue;
            fn(page, arg);
        }
    }
    ma_unlock(&seg_lock);
}

/* fn on the header of every large mapping in the byte map (live or
 * cached), under the segment lock: fn must not take it. */
void ma_segment_visit_large(ma_region_visit_fn *fn, void *arg) {
    ma_lock(&seg_lock);
    for (size_t chunk = 0; chunk < MA_SEGMAP_ENTRIES / MAP_CHUNK; chunk++) {
        if (!(atomic_load_explicit(&map_touched[chunk / 64], memory_order_relaxed) >> (chunk % 64) & 1))
            continue;
        for (size_t i = chunk * MAP_CHUNK; i < (chunk + 1) * MAP_CHUNK; i++)
            if (atomic_load_explicit(&ma_segmap[i], memory_order_relaxed) == MA_MAP_LARGE)
                fn((void *)(i << MA_SEGMENT_SHIFT), arg);
    }
    ma_unlock(&seg_lock);
}

void ma_segment_account_locked(int64_t delta) {
    inuse_bytes += (uint64_t)delta;
    if (inuse_bytes > inuse_peak) inuse_peak = inuse_bytes;
}

uint64_t ma_segment_inuse(uint64_t *peak) {
    ma_lock(&seg_lock);
    uint64_t now = inuse_bytes;
    if (peak) *peak = inuse_peak;
    ma_unlock(&seg_lock);
    return now;
}
