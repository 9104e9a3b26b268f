/* segment.c - 4 MiB segments cut into spans of 64 KiB slices, the sets of
 * segments that heaps own, the pool of free segments, the byte map that
 * tells our regions from other memory, and purging.
 *
 * Every segment belongs to one set (a heap's, ma_segset_t) or lies in the
 * pool. A set's segments, their masks and their spans change under the
 * set's lock, which its heap's thread takes to take or give back a span
 * (uncontended: no other thread allocates from the set) and which any
 * thread takes to purge, trim or look at the set. The pool is a list of
 * entirely free segments under its own lock, taken only when a set runs
 * out of room or has an empty segment too many: 4 MiB at a time, not a
 * page at a time.
 *
 * A free slice is "dirty" until purged. Spans are taken from dirty slices
 * first (no page faults), and purged (madvise) once they have stayed free
 * for one to two purge delays: dirty_old is the part of a segment that was
 * already dirty at its set's previous purge tick. When more than
 * MAPALLOC_DIRTY_MAX_MB is dirty in all, the set that frees purges its
 * oldest dirty slices at once. Pool segments are purged the same way, and
 * unmapped when the pool holds more than MA_POOL_KEEP of them or on trim.
 * Lock order: a set's lock, then the pool lock.
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

#define SET_EMPTY_KEEP 1u   /* entirely free segments a set keeps before the pool gets them */

static uint64_t slices_usable(void) { return ma_secure ? MA_SLICES_USABLE & ~GUARD_SLICE : MA_SLICES_USABLE; }

static void guard_segment(ma_segment_t *seg) {
    ma_os_protect((uint8_t *)seg + HEADER_BYTES, MA_SLICE_SIZE - HEADER_BYTES, false);
    ma_os_protect((uint8_t *)seg + MA_SEGMENT_SIZE - MA_SLICE_SIZE, MA_SLICE_SIZE, false);
}

static ma_lock_t pool_lock = MA_LOCK_INIT(MA_RANK_POOL);
static ma_segment_t *pool;          /* pool lock: free segments, most recently added first */
static uint32_t pool_count;         /* pool lock */
static uint64_t pool_tick_ms;       /* pool lock: the pool's last purge tick */
static _Atomic uint64_t dirty_bytes;  /* free slices that may be resident, everywhere */
static _Atomic uint64_t inuse_bytes;  /* bytes in spans and live large mappings */
static _Atomic uint64_t inuse_peak;

void ma_segment_map_set(uintptr_t base, uint8_t v) {
    size_t i = base >> MA_SEGMENT_SHIFT;
    atomic_store_explicit(&ma_segmap[i], v, memory_order_relaxed);
    uint64_t bit = (uint64_t)1 << (i / MAP_CHUNK % 64);
    _Atomic uint64_t *word = &map_touched[i / MAP_CHUNK / 64];
    if (v != MA_MAP_NONE && !(atomic_load_explicit(word, memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
}

void ma_segment_account(int64_t delta) {
    uint64_t now = atomic_fetch_add_explicit(&inuse_bytes, (uint64_t)delta, memory_order_relaxed) + (uint64_t)delta;
    uint64_t peak = atomic_load_explicit(&inuse_peak, memory_order_relaxed);
    while (delta > 0 && now > peak &&
           !atomic_compare_exchange_weak_explicit(&inuse_peak, &peak, now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

uint64_t ma_segment_inuse(uint64_t *peak) {
    if (peak) *peak = atomic_load_explicit(&inuse_peak, memory_order_relaxed);
    return atomic_load_explicit(&inuse_bytes, memory_order_relaxed);
}

uint64_t ma_segment_dirty(void) { return atomic_load_explicit(&dirty_bytes, memory_order_relaxed); }

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

static void dirty_add(int64_t delta) { atomic_fetch_add_explicit(&dirty_bytes, (uint64_t)delta, memory_order_relaxed); }

static bool segment_empty(const ma_segment_t *seg) { return seg->free_mask == slices_usable(); }

/* madvise the slices of mask (the caller's lock held), run by run. */
static size_t purge_slices(ma_segment_t *seg, uint64_t mask) {
    size_t bytes = slices_bytes(mask);
    for (uint64_t m = mask; m;) {
        unsigned first = (unsigned)__builtin_ctzll(m);
        uint64_t rest = ~(m >> first);
        unsigned count = rest ? (unsigned)__builtin_ctzll(rest) : 64 - first;
        ma_os_purge((uint8_t *)seg + ((size_t)first << MA_SLICE_SHIFT), (size_t)count << MA_SLICE_SHIFT);
        m &= ~run_mask(first, count);
    }
    seg->dirty_mask &= ~mask;
    seg->dirty_old &= ~mask;
    dirty_add(-(int64_t)bytes);
    return bytes;
}

/* ---- Lists: a set's segments and the pool, both doubly linked ---- */

static void list_push(ma_segment_t **head, ma_segment_t *seg) {
    seg->prev = NULL;
    seg->next = *head;
    if (*head) (*head)->prev = seg;
    *head = seg;
}

static void list_remove(ma_segment_t **head, ma_segment_t *seg) {
    if (seg->prev) seg->prev->next = seg->next;
    else *head = seg->next;
    if (seg->next) seg->next->prev = seg->prev;
    seg->next = seg->prev = NULL;
}

/* ---- Mapping and unmapping ---- */

static ma_segment_t *segment_new(void) {
    ma_segment_t *seg = ma_os_map_aligned(MA_SEGMENT_SIZE, MA_SEGMENT_SIZE);
    if (!seg) return NULL;
    if (ma_secure) guard_segment(seg);
    seg->kind = MA_KIND_SEGMENT;
    seg->free_mask = slices_usable();
    /* Fresh slices are neither resident nor counted as committed. */
    atomic_fetch_sub_explicit(&ma_os_stats.committed, MA_SEGMENT_SIZE - MA_SLICE_SIZE, memory_order_relaxed);
    ma_segment_map_set((uintptr_t)seg, MA_MAP_SEGMENT);
    return seg;
}

/* Unmap a segment, whatever it still holds (a destroyed heap's pages);
 * it is on no list. */
static void segment_unmap(ma_segment_t *seg) {
    uint64_t used = ~seg->free_mask & slices_usable();
    dirty_add(-(int64_t)slices_bytes(seg->dirty_mask));
    ma_segment_account(-(int64_t)slices_bytes(used));
    /* Purged and never-used slices are already out of "committed"; put
     * them back so that unmapping takes exactly the segment's size. */
    size_t resident = MA_SLICE_SIZE + slices_bytes(used | seg->dirty_mask);
    atomic_fetch_add_explicit(&ma_os_stats.committed, MA_SEGMENT_SIZE - resident, memory_order_relaxed);
    ma_segment_map_set((uintptr_t)seg, MA_MAP_NONE);
    ma_os_unmap(seg, MA_SEGMENT_SIZE);
    /* "released" counts what was resident: purged slices were counted. */
    atomic_fetch_sub_explicit(&ma_os_stats.released, MA_SEGMENT_SIZE - resident, memory_order_relaxed);
}

/* ---- The pool ---- */

/* Purge what has been dirty in the pool for a whole delay (everything
 * with force), and unmap what it holds beyond `keep` segments, the least
 * recently added first. Pool lock held. */
static size_t pool_tick_locked(uint64_t now, bool force, uint32_t keep) {
    long delay = ma_option(MA_OPT_PURGE_DELAY_MS);
    size_t released = 0;
    bool tick = force || (delay >= 0 && now - pool_tick_ms >= (uint64_t)delay);
    if (tick) pool_tick_ms = now;
    uint32_t n = 0;
    ma_segment_t *next;
    for (ma_segment_t *seg = pool; seg; seg = next) {
        next = seg->next;
        if (++n > keep) {
            list_remove(&pool, seg);
            pool_count--;
            released += MA_SLICE_SIZE + slices_bytes(seg->dirty_mask);
            segment_unmap(seg);
            continue;
        }
        if (!tick) continue;
        released += purge_slices(seg, force ? seg->dirty_mask : seg->dirty_old & seg->dirty_mask);
        seg->dirty_old = seg->dirty_mask;
    }
    return released;
}

static void pool_put(ma_segment_t *seg) {
    seg->set = NULL;
    ma_lock(&pool_lock);
    list_push(&pool, seg);
    pool_count++;
    pool_tick_locked(ma_os_now_ms(), false, MA_POOL_KEEP);
    ma_unlock(&pool_lock);
}

/* A free segment from the pool (one still resident first), or NULL. */
static ma_segment_t *pool_take(void) {
    ma_lock(&pool_lock);
    ma_segment_t *seg = pool;
    for (ma_segment_t *s = pool; s; s = s->next)
        if (s->dirty_mask) {
            seg = s;
            break;
        }
    if (seg) {
        list_remove(&pool, seg);
        pool_count--;
    }
    ma_unlock(&pool_lock);
    return seg;
}

/* ---- Sets ---- */

void ma_segment_set_init(ma_segset_t *set) {
    set->lock = (ma_lock_t)MA_LOCK_INIT(MA_RANK_SET);
    set->first = set->last = NULL;
    set->count = 0;
    set->empty = 0;
    set->tick_ms = set->purged_ms = set->refault_ms = 0;
    set->delay_ms = 0;
}

/* At the end: older segments are searched first and fill up, so that the
 * newer ones can empty out and go to the pool. */
static void set_add(ma_segset_t *set, ma_segment_t *seg) {
    seg->set = set;
    seg->purged_mask = 0;  /* purged for another set: no refault of this one's */
    seg->next = NULL;
    seg->prev = set->last;
    if (set->last) set->last->next = seg;
    else set->first = seg;
    set->last = seg;
    set->count++;
    set->empty++;
}

static void set_remove(ma_segset_t *set, ma_segment_t *seg) {
    if (set->last == seg) set->last = seg->prev;
    list_remove(&set->first, seg);
    set->count--;
    if (segment_empty(seg)) set->empty--;
}

/* Over the dirty bound: purge until the total is at most target - first
 * the pool's segments, which nobody uses now (the least recently pooled
 * first), then the set's slices that were already dirty at its last tick,
 * then the rest of its dirty slices. The set's own free slices are the
 * ones its thread takes next: they go last, but for its empty segments.
 * Set lock held. */
static size_t purge_down_to(ma_segset_t *set, uint64_t target) {
    size_t released = 0;
    ma_lock(&pool_lock);
    ma_segment_t *last = pool;
    while (last && last->next) last = last->next;
    for (ma_segment_t *seg = last; seg && ma_segment_dirty() > target; seg = seg->prev)
        released += purge_slices(seg, seg->dirty_mask);
    ma_unlock(&pool_lock);
    for (int pass = 0; pass < 2 && ma_segment_dirty() > target; pass++)
        for (ma_segment_t *seg = set->first; seg && ma_segment_dirty() > target; seg = seg->next) {
            if (pass == 0 && !segment_empty(seg)) continue;  /* empty segments first */
            released += purge_slices(seg, pass == 1 ? seg->dirty_old & seg->dirty_mask : seg->dirty_mask);
        }
    return released;
}

/* How much free memory may stay resident: MAPALLOC_DIRTY_MAX_MB, or as
 * much as is in use if that is more. A heap whose pages come and go holds
 * about as much free as used in its segments (pages of many classes,
 * partly used); a fixed bound purged it again and again as threads were
 * added (mstress at 4 threads: 178k page faults, mimalloc's 39k). */
static uint64_t dirty_bound(void) {
    uint64_t max = (uint64_t)ma_option(MA_OPT_DIRTY_MAX_MB) << 20;
    uint64_t inuse = atomic_load_explicit(&inuse_bytes, memory_order_relaxed);
    return inuse > max ? inuse : max;
}

/* The set's purge delay adapts to its program: slices its tick purged and
 * a span took again soon after were purged too early (each 4 KiB a page
 * fault, and system time, for memory the program wanted), so the delay
 * doubles, up to ADAPT_MAX times MAPALLOC_PURGE_DELAY_MS; it halves back
 * once no such refault has come for ADAPT_CALM delays. python3 on the
 * README's job, at a fixed 100 ms: 32.7k page faults (glibc 24k). */
#define ADAPT_MAX 5u
#define ADAPT_SOON 4u    /* "soon": within this many delays of the purge */
#define ADAPT_CALM 16u

static uint64_t set_delay(const ma_segset_t *set) {
    return set->delay_ms ? set->delay_ms : (uint64_t)ma_option(MA_OPT_PURGE_DELAY_MS);
}

/* A span took slices of mask that the set's tick had purged. */
static void set_refault(ma_segset_t *set, uint64_t now) {
    uint64_t delay = set_delay(set), base = (uint64_t)ma_option(MA_OPT_PURGE_DELAY_MS);
    set->refault_ms = now;
    if (now - set->purged_ms < ADAPT_SOON * delay && delay * 2 <= ADAPT_MAX * base) set->delay_ms = (uint32_t)(delay * 2);
}

/* The set's purge tick: what has been dirty for a whole delay is purged
 * (all of it with force); over the dirty bound, the oldest at once. An
 * empty segment beyond SET_EMPTY_KEEP goes to the pool (with force: every
 * empty one). Set lock held. */
static size_t set_tick_locked(ma_segset_t *set, uint64_t now, bool force) {
    long option = ma_option(MA_OPT_PURGE_DELAY_MS);
    uint64_t max = dirty_bound();
    size_t released = 0;
    if (!force && ma_segment_dirty() > max) released += purge_down_to(set, max - max / 8);
    if (!force && (option < 0 || now - set->tick_ms < set_delay(set))) return released;
    set->tick_ms = now;
    if (set->delay_ms && now - set->refault_ms > ADAPT_CALM * set->delay_ms) {
        set->delay_ms /= 2;
        if (set->delay_ms <= (uint64_t)option) set->delay_ms = 0;
    }
    ma_segment_t *next;
    for (ma_segment_t *seg = set->first; seg; seg = next) {
        next = seg->next;
        uint64_t timed = force ? seg->dirty_mask : seg->dirty_old & seg->dirty_mask;
        if (timed) {
            released += purge_slices(seg, timed);
            seg->purged_mask |= timed;
            set->purged_ms = now;
        }
        seg->dirty_old = seg->dirty_mask;
        if (segment_empty(seg) && (force || set->empty > SET_EMPTY_KEEP)) {
            set_remove(set, seg);
            pool_put(seg);
        }
    }
    return released;
}

static ma_page_t *take_span(ma_segment_t *seg, unsigned first, unsigned count) {
    uint64_t run = run_mask(first, count);
    uint64_t resident = run & seg->dirty_mask;
    atomic_fetch_add_explicit(&ma_os_stats.committed, slices_bytes(run & ~resident), memory_order_relaxed);
    dirty_add(-(int64_t)slices_bytes(resident));
    if (segment_empty(seg)) seg->set->empty--;
    seg->free_mask &= ~run;
    seg->dirty_mask &= ~run;
    seg->dirty_old &= ~run;
    ma_segment_account((int64_t)count << MA_SLICE_SHIFT);
    if (MA_UNLIKELY(run & seg->purged_mask)) {
        seg->purged_mask &= ~run;
        if (seg->set) set_refault(seg->set, ma_os_now_ms());
    }
    ma_page_t *page = &seg->pages[first];
    for (unsigned i = 0; i < count; i++) seg->slice_first[first + i] = (uint8_t)first;
    page->slice_count = (uint8_t)count;
    page->start = (uint8_t *)seg + ((size_t)first << MA_SLICE_SHIFT);
    return page;
}

/* A run of `slices` slices in the set's segments, oldest first (address
 * ordered first fit), preferring slices that are still resident (no page
 * faults). Set lock held. */
static ma_page_t *set_take_locked(ma_segset_t *set, unsigned slices) {
    for (int pass = 0; pass < 2; pass++) {
        for (ma_segment_t *seg = set->first; seg; seg = seg->next) {
            uint64_t mask = pass == 0 ? (seg->free_mask & seg->dirty_mask) : seg->free_mask;
            int first = find_run(mask, slices);
            if (first >= 0) return take_span(seg, (unsigned)first, slices);
        }
    }
    return NULL;
}

/* A span of `slices` slices for a page of the set's heap: from its own
 * segments, else from a segment of the pool, else (with map_new) from a
 * new one. */
ma_page_t *ma_segment_span_alloc(ma_segset_t *set, unsigned slices, bool map_new) {
    ma_lock(&set->lock);
    ma_page_t *page = set_take_locked(set, slices);
    if (page) set_tick_locked(set, ma_os_now_ms(), false);
    ma_unlock(&set->lock);
    if (page) return page;
    ma_segment_t *seg = pool_take();
    if (!seg && (!map_new || (seg = segment_new()) == NULL)) return NULL;
    ma_lock(&set->lock);
    set_add(set, seg);
    page = take_span(seg, (unsigned)find_run(seg->free_mask, slices), slices);
    ma_unlock(&set->lock);
    return page;
}

/* The span of page back to its segment, dirty. */
void ma_segment_span_free(ma_page_t *page) {
    ma_segment_t *seg = (ma_segment_t *)((uintptr_t)page & ~MA_SEGMENT_MASK);
    ma_segset_t *set = seg->set;
    unsigned first = (unsigned)(page - seg->pages);
    uint64_t run = run_mask(first, page->slice_count);
    ma_lock(&set->lock);
    MA_ASSERT((seg->free_mask & run) == 0);
    page->block_size = 0;
    __atomic_store_n(&page->capacity, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&page->carved, 0, __ATOMIC_RELAXED);
    page->heap = NULL;
    seg->free_mask |= run;
    seg->dirty_mask |= run;
    dirty_add((int64_t)slices_bytes(run));
    ma_segment_account(-(int64_t)slices_bytes(run));
    if (ma_option(MA_OPT_PURGE_DELAY_MS) == 0) purge_slices(seg, run);
    if (segment_empty(seg) && ++set->empty > SET_EMPTY_KEEP) {
        /* one empty segment is enough to grow into: the others serve
         * whichever set needs one next */
        set_remove(set, seg);
        pool_put(seg);
    }
    set_tick_locked(set, ma_os_now_ms(), false);
    ma_unlock(&set->lock);
}

/* Purge the set as its tick would (all of it, and every empty segment to
 * the pool, with force). Any thread; with if_idle, only if its lock is
 * free (the background purger does not make a heap's thread wait). */
size_t ma_segment_set_trim(ma_segset_t *set, bool force, bool if_idle) {
    if (if_idle) {
        if (!ma_lock_try(&set->lock)) return 0;
    } else {
        ma_lock(&set->lock);
    }
    size_t released = set_tick_locked(set, ma_os_now_ms(), force);
    ma_unlock(&set->lock);
    return released;
}

/* A heap abandoned by its thread: its empty segments go to the pool, where
 * any thread can take them, dirty as they are (the pool purges them). */
void ma_segment_set_shed(ma_segset_t *set) {
    ma_lock(&set->lock);
    ma_segment_t *next;
    for (ma_segment_t *seg = set->first; seg; seg = next) {
        next = seg->next;
        if (!segment_empty(seg)) continue;
        set_remove(set, seg);
        pool_put(seg);
    }
    ma_unlock(&set->lock);
}

/* ma_heap_destroy and _reset: every segment of the set back to the OS at
 * once, whatever its pages hold. */
void ma_segment_set_release(ma_segset_t *set) {
    ma_lock(&set->lock);
    while (set->first) {
        ma_segment_t *seg = set->first;
        set_remove(set, seg);
        segment_unmap(seg);
    }
    set->empty = 0;
    ma_unlock(&set->lock);
}

/* The pool's tick (everything free and purged with force, unmapping all
 * but keep segments). */
size_t ma_segment_pool_trim(bool force, uint32_t keep) {
    ma_lock(&pool_lock);
    size_t released = pool_tick_locked(ma_os_now_ms(), force, keep);
    ma_unlock(&pool_lock);
    return released;
}

void ma_segment_visit_pages(ma_segset_t *set, ma_page_visit_fn *fn, void *arg) {
    ma_lock(&set->lock);
    for (ma_segment_t *seg = set->first; seg; seg = seg->next) {
        for (unsigned i = 1; i < MA_SEGMENT_SLICES; i++) {
            const ma_page_t *page = &seg->pages[i];
            if ((seg->free_mask >> i) & 1) continue;
            if (seg->slice_first[i] != i || page->block_size == 0) continue;
            fn(page, arg);
        }
    }
    ma_unlock(&set->lock);
}

void ma_segment_set_lock(ma_segset_t *set) { ma_lock(&set->lock); }
void ma_segment_set_unlock(ma_segset_t *set) { ma_unlock(&set->lock); }

/* fn on the header of every large mapping in the byte map (live or
 * cached). The caller keeps them from being unmapped meanwhile. */
void ma_segment_visit_large(ma_region_visit_fn *fn, void *arg) {
    for (size_t chunk = 0; chunk < MA_SEGMAP_ENTRIES / MAP_CHUNK; chunk++) {
        if (!(atomic_load_explicit(&map_touched[chunk / 64], memory_order_relaxed) >> (chunk % 64) & 1))
            continue;
        for (size_t i = chunk * MAP_CHUNK; i < (chunk + 1) * MAP_CHUNK; i++)
            if (atomic_load_explicit(&ma_segmap[i], memory_order_relaxed) == MA_MAP_LARGE)
                fn((void *)(i << MA_SEGMENT_SHIFT), arg);
    }
}
