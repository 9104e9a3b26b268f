/* profile.c - the sampling heap profiler (MAPALLOC_PROFILE): which code
 * holds the memory, estimated from a sample of the allocations.
 *
 * Sampling is by bytes, as in tcmalloc and jemalloc: sample points fall
 * in the stream of allocated bytes at exponential distances of mean
 * MAPALLOC_PROFILE_RATE, so a block of B bytes is sampled with
 * probability p = 1 - exp(-B/rate), whatever came before, and a sample of
 * s requested bytes stands for s / p bytes: the estimates are unbiased.
 *
 * Malloc's fast path runs unchanged: the count is kept per size class, in
 * blocks, where the fast path gets them (see "Counting" below: a refill
 * hands it no more blocks than are left before the sample point), and
 * large blocks, always allocated on a slow path, are counted in bytes.
 * alloc.c's slow paths come here when ma_profiling. Free's fast path is
 * untouched too: a sampled block is allocated where no thread heap's page
 * is - up to SMALL_SAMPLE bytes in a fixed heap (fixed.c) over regions this
 * file maps, bigger ones as large blocks marked `profiled` - so its free
 * leaves the fast path by itself and ends in ma_profile_free_fixed or
 * ma_profile_free_large (free.c's slow path), which forget the sample.
 * When profiling is off nothing here runs.
 *
 * Each sample keeps its call stack (stackwalk.c), its size, its weight and
 * the time; samples with the same stack share a bucket, which keeps the
 * estimated objects and bytes allocated since the start (the allocated
 * profile) and still live (the live profile). Buckets are never freed.
 * All of it lives in memory mapped from the OS layer, guarded by one lock,
 * taken before any lock below it (its rank, MA_RANK_PROFILE; fork takes it
 * with the others, lock.c).
 *
 * Dumps (pprof.c writes them): at exit, from ma_profile_dump, and each
 * time the estimated live heap has grown MAPALLOC_PROFILE_INTERVAL_MB since
 * the last such dump (or since its lowest point after it), to FILE.<seq>.
 */
#include <errno.h>
#include "internal.h"

#define SMALL_SAMPLE MA_MEDIUM_MAX           /* bigger sampled blocks are large blocks */
#define SMALL_ALIGN_MAX ((size_t)4 << 10)     /* ... and so are more aligned ones */
#define REGION_SIZE ((size_t)64 << 20)        /* a fixed heap for small sampled blocks */
#define REGIONS_MAX 1024u
#define ARENA_CHUNK ((size_t)1 << 20)         /* buckets and sample records, carved */
#define PATH_BYTES 4200u

/* ---- Per thread ------------------------------------------------------------ */

/* The count down to the next sample is heap->prof_left, where malloc's
 * path reaches it at no extra cost; an adopted heap keeps its count, which
 * is as good as a new one (the distance has no memory). */
static __thread uint64_t rng_state;    /* xorshift64*, 0 until seeded */

/* ---- Shared, under `lock` ---------------------------------------------------- */

static ma_lock_t lock = MA_LOCK_INIT(MA_RANK_PROFILE);
static bool ready;                     /* the tables below are mapped */
static bool broken;                    /* they could not be: nothing is sampled */
static ma_prof_bucket_t **buckets;     /* by stack hash */
static size_t bucket_mask, bucket_count;
static ma_prof_bucket_t *bucket_first, *bucket_last;  /* every bucket, oldest first (all_next) */
static size_t frame_count;             /* sum of the buckets' depths */
static ma_prof_sample_t **samples;     /* live samples, by address */
static size_t sample_mask, sample_count;
static ma_prof_sample_t *spare_samples;  /* records of freed samples, for reuse */
static uint8_t *arena_next, *arena_end;
static ma_heap_t *regions[REGIONS_MAX];  /* fixed heaps holding small sampled blocks, newest last */
static unsigned region_count;
static uint64_t small_allocs, small_alloc_bytes;  /* sampled blocks of the fixed heaps, cumulative */
static double live_bytes;              /* estimated live bytes of every sample */
static double interval_mark;           /* live_bytes at the last interval dump, or lower since */
static uint64_t dump_seq;              /* interval dumps so far */

/* ---- Numbers ------------------------------------------------------------------ */

/* ln(x) for x > 0 normal: x = m * 2^e, m in [sqrt(1/2), sqrt(2)), and
 * ln(m) = 2 atanh((m-1)/(m+1)), a series in s^2 <= 0.03 (no libm). */
static double ln(double x) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1023 << 52);
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double s = (m - 1) / (m + 1), s2 = s * s;
    double series = 1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 / 13)))));
    return e * 0.6931471805599453 + 2 * s * series;
}

/* 1 - exp(-a) for a >= 0: a series for small a, else exp(-a) = 2^-n e^-r
 * with |r| <= ln(2)/2. */
static double one_minus_exp_neg(double a) {
    if (a < 1e-4) return a * (1 - a / 2 * (1 - a / 3));
    if (a > 700) return 1;
    int n = (int)(a * 1.4426950408889634 + 0.5);
    double r = a - n * 0.6931471805599453, term = 1, sum = 1;
    for (int k = 1; k <= 14; k++) {
        term *= -r / k;
        sum += term;
    }
    uint64_t bits = (uint64_t)(1023 - n) << 52;  /* 2^-n, n <= 1010 */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return 1 - sum * scale;
}

static uint64_t rng_next(void) {
    if (rng_state == 0) rng_state = ma_os_random() | 1;
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rate(void) { return (uint64_t)ma_option(MA_OPT_PROFILE_RATE); }

/* Bytes to the next sample: exponential, of mean `rate`. */
static uint64_t draw(void) {
    double u = (double)(rng_next() >> 11) * 0x1.0p-53;  /* [0, 1) */
    double d = -ln(1 - u) * (double)rate();
    if (d < 1) return 1;
    if (d > 0x1.0p62) return (uint64_t)1 << 62;
    return (uint64_t)d + 1;
}


/* The sampler's own functions and the allocation entry points above it,
 * which the stack walk leaves out when mapalloc is linked into the program. */
typedef void (*fn_t)(void);
static void *take_sample(size_t size, size_t align, bool zero, ma_heap_t *heap, size_t block);
static void *refill(ma_heap_t *heap, unsigned cls, size_t size, size_t align);
static void sample_in_place(void *p, size_t size, size_t growth);
static const fn_t own_functions[] = {
    (fn_t)take_sample, (fn_t)refill, (fn_t)sample_in_place, (fn_t)ma_profile_malloc, (fn_t)ma_profile_alloc,
    (fn_t)ma_profile_realloc, (fn_t)ma_malloc, (fn_t)ma_alloc_slow, (fn_t)ma_calloc, (fn_t)ma_realloc,
    (fn_t)ma_reallocarray, (fn_t)ma_alloc_aligned, (fn_t)ma_memalign, (fn_t)ma_aligned_alloc,
    (fn_t)ma_posix_memalign, (fn_t)ma_valloc, (fn_t)ma_pvalloc,
};
#define OWN_COUNT (sizeof own_functions / sizeof own_functions[0])
static uintptr_t own_sorted[OWN_COUNT];   /* their addresses, sorted (setup_locked) */

/* ---- Tables (lock held) -------------------------------------------------------------- */

static void *arena_take(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if ((size_t)(arena_end - arena_next) < n) {
        size_t chunk = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        uint8_t *p = ma_os_map(chunk);
        if (!p) return NULL;
        arena_next = p;
        arena_end = p + chunk;
    }
    void *p = arena_next;
    arena_next += n;
    return p;
}

/* A zeroed table of 2^k pointers. */
static void *table_new(size_t slots) { return ma_os_map(slots * sizeof(void *)); }

static bool setup_locked(void) {
    if (ready || broken) return ready;
    for (size_t i = 0; i < OWN_COUNT; i++) {   /* insertion sort */
        uintptr_t a = (uintptr_t)own_functions[i];
        size_t j = i;
        for (; j > 0 && own_sorted[j - 1] > a; j--) own_sorted[j] = own_sorted[j - 1];
        own_sorted[j] = a;
    }
    bucket_mask = 511;   /* 4 KiB each to start with: they grow */
    sample_mask = 511;
    buckets = table_new(bucket_mask + 1);
    samples = table_new(sample_mask + 1);
    ready = buckets && samples;
    broken = !ready;
    return ready;
}

static uint64_t stack_hash(const uintptr_t *pcs, uint32_t depth) {
    uint64_t h = 0xcbf29ce484222325ull ^ depth;
    for (uint32_t i = 0; i < depth; i++) h = (h ^ pcs[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static size_t addr_slot(uintptr_t a, size_t mask) { return (size_t)((a * MA_GOLDEN64) >> 24) & mask; }

/* Doubles a chained table when it holds as many entries as slots. */
static void grow_buckets(void) {
    size_t mask = bucket_mask * 2 + 1;
    ma_prof_bucket_t **t = table_new(mask + 1);
    if (!t) return;  /* longer chains, still correct */
    for (ma_prof_bucket_t *b = bucket_first; b; b = b->all_next) {
        size_t i = b->hash & mask;
        b->next = t[i];
        t[i] = b;
    }
    ma_os_unmap(buckets, (bucket_mask + 1) * sizeof(void *));
    buckets = t;
    bucket_mask = mask;
}

static void grow_samples(void) {
    size_t mask = sample_mask * 2 + 1;
    ma_prof_sample_t **t = table_new(mask + 1);
    if (!t) return;
    for (size_t i = 0; i <= sample_mask; i++) {
        ma_prof_sample_t *s = samples[i], *next;
        for (; s; s = next) {
            next = s->next;
            size_t j = addr_slot(s->addr, mask);
            s->next = t[j];
            t[j] = s;
        }
    }
    ma_os_unmap(samples, (sample_mask + 1) * sizeof(void *));
    samples = t;
    sample_mask = mask;
}

static ma_prof_bucket_t *bucket_of(const uintptr_t *pcs, uint32_t depth) {
    uint64_t h = stack_hash(pcs, depth);
    for (ma_prof_bucket_t *b = buckets[h & bucket_mask]; b; b = b->next)
        if (b->hash == h && b->depth == depth && memcmp(b->pcs, pcs, depth * sizeof *pcs) == 0) return b;
    ma_prof_bucket_t *b = arena_take(sizeof *b + depth * sizeof *pcs);
    if (!b) return NULL;
    memset(b, 0, sizeof *b);
    b->hash = h;
    b->depth = depth;
    memcpy(b->pcs, pcs, depth * sizeof *pcs);
    b->next = buckets[h & bucket_mask];
    buckets[h & bucket_mask] = b;
    if (bucket_last) bucket_last->all_next = b;
    else bucket_first = b;
    bucket_last = b;
    frame_count += depth;
    if (++bucket_count > bucket_mask) grow_buckets();
    return b;
}

/* The live sample of block p, unlinked, or NULL. */
static ma_prof_sample_t *sample_unlink(uintptr_t p) {
    if (!ready) return NULL;
    for (ma_prof_sample_t **link = &samples[addr_slot(p, sample_mask)]; *link; link = &(*link)->next) {
        ma_prof_sample_t *s = *link;
        if (s->addr != p) continue;
        *link = s->next;
        sample_count--;
        return s;
    }
    return NULL;
}

/* ---- Sampled blocks --------------------------------------------------------------------- */

/* A small sampled block from the profiler's fixed heaps (lock held); a
 * new region when all are full. */
static void *small_block_locked(size_t size, size_t align, bool zero) {
    for (unsigned i = region_count; i-- > 0;) {
        void *p = ma_fixed_alloc(regions[i], size, align, zero);
        if (p) return p;
    }
    if (region_count == REGIONS_MAX) return NULL;
    void *base = ma_os_map_aligned(REGION_SIZE, MA_SEGMENT_SIZE);  /* whole byte-map chunks */
    if (!base) return NULL;
    ma_heap_t *h = ma_fixed_new(base, REGION_SIZE);
    if (!h) {
        ma_os_unmap(base, REGION_SIZE);
        return NULL;
    }
    regions[region_count++] = h;
    return ma_fixed_alloc(h, size, align, zero);
}

static void dump_interval(uint64_t seq);


/* The blocks a sample stands for, when total bytes were counted for it. */
static double inverse_probability(uint64_t total) { return 1 / one_minus_exp_neg((double)total / (double)rate()); }

static void sample_link(ma_prof_sample_t *s) {
    size_t i = addr_slot(s->addr, sample_mask);
    s->next = samples[i];
    samples[i] = s;
    if (++sample_count > sample_mask) grow_samples();
}

/* An interval dump due now: its number, or 0 (lock held). */
static uint64_t interval_due(void);

/* Records a sample of the block p, of size bytes, sampled when total bytes
 * had been counted for it: it stands for 1 / (1 - exp(-total/rate))
 * blocks. The bucket's allocated figures grow by the sample's, or by
 * alloc_bytes when that is not negative (lock held). Returns the number
 * of the interval dump that is due, or 0. */
static uint64_t record_locked(void *p, size_t size, uint64_t total, const uintptr_t *pcs, uint32_t depth,
                              double alloc_bytes) {
    ma_prof_bucket_t *b = bucket_of(pcs, depth);
    if (!b) return 0;  /* out of memory: the block goes unrecorded */
    ma_prof_sample_t *s = spare_samples;
    if (s) spare_samples = s->next;
    else if ((s = arena_take(sizeof *s)) == NULL) return 0;
    double n = inverse_probability(total), w = (double)size * n;
    *s = (ma_prof_sample_t){.addr = (uintptr_t)p, .bucket = b, .size = size, .total = total, .weight = w,
                            .time_ms = ma_os_now_ms()};
    sample_link(s);
    if (alloc_bytes < 0) {
        b->alloc_count += n;
        b->alloc_bytes += w;
    } else {
        b->alloc_bytes += alloc_bytes;
    }
    b->live_count += n;
    b->live_bytes += w;
    live_bytes += w;
    return interval_due();
}

static uint64_t interval_due(void) {
    long interval = ma_option(MA_OPT_PROFILE_INTERVAL_MB);
    if (interval > 0 && live_bytes >= interval_mark + (double)((uint64_t)interval << 20)) {
        interval_mark = live_bytes;
        return ++dump_seq;
    }
    return 0;
}

/* A block to sample (sampled with probability 1 - exp(-block/rate)):
 * walk the stack, take the block from the profiler's memory, record it.
 * If the profiler cannot (no memory for its tables or regions), the block
 * comes from the thread's heap, unsampled. */
static MA_NOINLINE void *take_sample(size_t size, size_t align, bool zero, ma_heap_t *heap, size_t block) {
    bool small = block <= SMALL_SAMPLE && align <= SMALL_ALIGN_MAX;
    void *p = NULL;
    if (!small && (p = ma_large_alloc(size, align, zero, NULL)) == NULL) return NULL;
    uintptr_t pcs[MA_STACK_MAX];
    uint64_t due = 0;
    ma_lock(&lock);
    if (setup_locked()) {
        uint32_t depth = ma_stack_walk(pcs, MA_STACK_MAX, own_sorted, OWN_COUNT);
        /* as big as the block of its class would be: the same room to grow in place */
        if (small && (p = small_block_locked(block, align, zero)) != NULL) {
            small_allocs++;
            small_alloc_bytes += block;
        }
        if (p) {
            due = record_locked(p, size, block, pcs, depth, -1);
            if (!small) ((ma_large_t *)ma_region_of(p))->profiled = 1;
        }
    }
    ma_unlock(&lock);
    if (due) dump_interval(due);
    return p ? p : ma_alloc_unchecked(heap, size, align, zero);
}

/* A large block that realloc grew in place by growth bytes, and a sample
 * point fell in them: sampled now, here. Counted for it: its size (its
 * earlier sizes went unsampled; that is exact for a block that only ever
 * grew). The allocated bytes: the growth's estimate. */
static MA_NOINLINE void sample_in_place(void *p, size_t size, size_t growth) {
    uintptr_t pcs[MA_STACK_MAX];
    uint64_t due = 0;
    ma_lock(&lock);
    if (setup_locked()) {
        uint32_t depth = ma_stack_walk(pcs, MA_STACK_MAX, own_sorted, OWN_COUNT);
        due = record_locked(p, size, size, pcs, depth, (double)growth * inverse_probability(growth));
        ((ma_large_t *)ma_region_of(p))->profiled = 1;
    }
    ma_unlock(&lock);
    if (due) dump_interval(due);
}

/* A sampled large block that realloc resized in place (from p to q): its
 * sample follows it. It stands for a block of its new size, counted for
 * all the bytes it ever grew by; a growth with a sample point in it adds
 * its estimate to the allocated bytes. */
static void resample_in_place(void *p, void *q, size_t size, size_t growth, bool hit) {
    uint64_t due = 0;
    ma_lock(&lock);
    ma_prof_sample_t *s = sample_unlink((uintptr_t)p);
    if (s) {
        ma_prof_bucket_t *b = s->bucket;
        double n0 = s->weight / (double)s->size, w0 = s->weight;
        s->addr = (uintptr_t)q;
        s->size = size;
        s->total += growth;
        double n = inverse_probability(s->total);
        s->weight = (double)size * n;
        b->live_count += n - n0;
        b->live_bytes += s->weight - w0;
        live_bytes += s->weight - w0;
        if (hit) b->alloc_bytes += (double)growth * inverse_probability(growth);
        if (live_bytes < interval_mark) interval_mark = live_bytes;
        sample_link(s);
        due = interval_due();
    }
    ma_unlock(&lock);
    if (due) dump_interval(due);
}

static void forget(void *p);

/* ---- Counting ------------------------------------------------------------------------------
 * Blocks of a size class are counted in blocks, at the moment the fast
 * path is given them: the slow path that refills the page of class c
 * (ma_profile_malloc, from alloc.c's slow path) hands it at most
 * heap->prof_skip[c] - 1 blocks, the number left before the next sampled
 * one, and cuts the page's free list after them (the rest waits on the
 * page's local_free list, where its owner's frees go). So the fast path
 * itself runs unchanged and misses exactly at the sample point; the
 * refill that follows samples. The skips are floor(D / B) for an
 * exponential D of mean `rate` and the class's block size B: each block is
 * sampled with probability 1 - exp(-B/rate), independently, as if by the
 * one process that samples bytes (split by class, it is one per class).
 * Blocks of classes the fast path does not serve (over MA_SMALL_MAX) are
 * counted one by one, and large blocks, all allocated on a slow path, in
 * bytes (heap->prof_left). */

/* 1 + blocks of b bytes to hand out before the next sample. */
static uint64_t draw_skip(size_t b) { return draw() / b + 1; }

/* The thread's heap; the first call of a thread makes it. */
static ma_heap_t *thread_heap(void) {
    ma_heap_t *heap = ma_heap_tls;
    if (MA_UNLIKELY(heap == &ma_heap_empty)) {
        ma_process_init();
        heap = ma_heap_thread_init();
    }
    return heap;
}

/* The free list of page keeps its first `keep` blocks; the rest moves to
 * local_free (empty: the page was just collected). Links are checked as
 * the pop checks them. */
static void cut_list(ma_page_t *page, uint64_t keep) {
    ma_block_t *b = page->free;
    for (uint64_t i = 1; i < keep; i++) {
        b = ma_block_decode(b->next);
        if (MA_UNLIKELY(((uintptr_t)b ^ (uintptr_t)page) >= MA_SEGMENT_SIZE)) ma_page_corrupted_link(page, b);
    }
    ma_block_t *rest = ma_block_decode(b->next);
    b->next = ma_block_encode(NULL);
    MA_ASSERT(page->local_free == NULL);
    page->local_free = rest;
}

/* Classes above this one are never in heap->direct: malloc's fast path
 * does not serve them, every allocation of theirs comes through here and
 * is counted one by one. The fast path's pages stay in their queue when
 * they empty (heap.c: spans of at most 4 slices), so the blocks a refill
 * hands over are all handed out before the next one. */
#define LAST_FAST_CLASS ma_sizeclass_of(MA_SMALL_MAX)

/* The page of class cls ran dry (or, above LAST_FAST_CLASS, any block of
 * it): the sample point, or a refill that hands the fast path no more
 * blocks than are left before it. */
static MA_NOINLINE void *refill(ma_heap_t *heap, unsigned cls, size_t size, size_t align) {
    uint64_t skip = heap->prof_skip[cls];
    if (MA_UNLIKELY(skip <= 1)) {
        size_t block = ma_sizeclass_size(cls);
        if (skip == 0) heap->prof_skip[cls] = skip = draw_skip(block);
        if (skip == 1) {
            heap->prof_skip[cls] = draw_skip(block);
            return take_sample(size, align, false, heap, block);
        }
    }
    if (cls > LAST_FAST_CLASS) {
        heap->prof_skip[cls] = skip - 1;
        return ma_alloc_class(heap, cls);
    }
    if (atomic_load_explicit(&heap->remote_full, memory_order_relaxed)) ma_heap_drain_remote(heap);
    ma_page_t *page = ma_heap_find_page(heap, cls);
    if (MA_UNLIKELY(page == NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    ma_page_collect(page);   /* now every free block of the page is on page->free */
    uint64_t listed = page->capacity - ma_page_used(page), left = heap->prof_skip[cls] - 1;
    if (left >= listed) {
        heap->prof_skip[cls] -= listed;
    } else {
        cut_list(page, left);
        heap->prof_skip[cls] = 1;
    }
    return ma_page_pop(page);
}

/* A block of class cls for size bytes from the thread's heap (what
 * ma_alloc_class does, with the count). */
static inline void *class_alloc(ma_heap_t *heap, unsigned cls, size_t size, size_t align) {
    ma_page_t *page = heap->queue[cls].first;
    if (cls <= LAST_FAST_CLASS) {
        if (MA_LIKELY(page != NULL && page->free != NULL)) return ma_page_pop(page);
    } else {
        uint64_t skip = heap->prof_skip[cls];
        if (MA_LIKELY(skip > 1 && page != NULL && page->free != NULL)) {
            heap->prof_skip[cls] = skip - 1;
            return ma_page_pop(page);
        }
    }
    return refill(heap, cls, size, align);
}

/* Blocks over MA_MEDIUM_MAX (or more aligned than a slice), counted in
 * bytes. */
static void *large_alloc(ma_heap_t *heap, size_t size, size_t align, bool zero) {
    if (heap->prof_left == 0) heap->prof_left = draw();
    if (size < heap->prof_left) {
        heap->prof_left -= size;
        return ma_large_alloc(size, align, zero, NULL);
    }
    heap->prof_left = draw();
    return take_sample(size, align, zero, heap, size);
}

/* ---- Entry points (alloc.c, free.c) --------------------------------------------------------- */

/* malloc's slow path when profiling: a page ran dry, a medium or large
 * size, or the thread's first call (heap is then the empty heap). */
void *ma_profile_malloc(ma_heap_t *heap, size_t size) {
    if (MA_UNLIKELY(heap == &ma_heap_empty) && (heap = thread_heap()) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (size > MA_MEDIUM_MAX) return large_alloc(heap, size, MA_ALIGN_MIN, false);
    return class_alloc(heap, ma_sizeclass_of(size), size, MA_ALIGN_MIN);
}

/* Aligned and large zeroed allocations when profiling: as
 * ma_alloc_unchecked, with the count. */
void *ma_profile_alloc(size_t size, size_t align, bool zero) {
    ma_heap_t *heap = thread_heap();
    if (!heap) {
        errno = ENOMEM;
        return NULL;
    }
    if (align < MA_ALIGN_MIN) align = MA_ALIGN_MIN;
    if (size <= MA_MEDIUM_MAX && align <= MA_SLICE_SIZE) {
        unsigned cls = ma_sizeclass_of(size < align ? align : size);
        while (cls < MA_CLASS_COUNT && (ma_sizeclass_size(cls) & (align - 1)) != 0) cls++;
        if (cls < MA_CLASS_COUNT) {
            void *p = class_alloc(heap, cls, size, align);
            if (p && zero) memset(p, 0, size);
            return p;
        }
    }
    return large_alloc(heap, size, align, zero);
}

/* realloc when profiling. A large block grows in place (or moves by
 * mremap) as ma_realloc would let it, and the bytes it grows by are
 * counted like new ones: a sampled block's sample follows it, and an
 * unsampled one is sampled when a sample point falls in its growth. A
 * smaller block stays where ma_realloc would keep it (its allocation was
 * counted; a sample keeps its size); anything else moves: a malloc, a copy
 * and a free, counted as such. */
void *ma_profile_realloc(void *p, size_t size) {
    if (size == 0) {
        ma_free(p);
        return NULL;
    }
    size_t usable = ma_usable_of(p, "invalid realloc");
    void *region = ma_region_of(p);
    ma_large_t *large = region && ma_region_is_large(region) && ma_large_owns(region, p) ? region : NULL;
    if (!large && size <= usable && size >= usable / 2 && usable <= MA_MEDIUM_MAX) return p;
    ma_heap_t *heap;
    if (large && size > MA_MEDIUM_MAX && (heap = thread_heap()) != NULL) {
        bool sampled = large->profiled;
        void *q = ma_large_realloc(large, p, size);
        if (q) {
            /* the bytes beyond the old usable size are new: counted */
            size_t growth = size > usable ? size - usable : 0;
            bool hit = false;
            if (growth) {
                if (heap->prof_left == 0) heap->prof_left = draw();
                hit = growth >= heap->prof_left;
                heap->prof_left = hit ? draw() : heap->prof_left - growth;
            }
            if (sampled) resample_in_place(p, q, size, growth, hit);
            else if (hit) sample_in_place(q, size, growth);
            return q;
        }
    }
    void *q = ma_malloc(size);
    if (!q) return NULL;
    memcpy(q, p, size < usable ? size : usable);
    ma_free(p);
    return q;
}

static void forget(void *p) {
    ma_lock(&lock);
    ma_prof_sample_t *s = sample_unlink((uintptr_t)p);
    if (s) {
        ma_prof_bucket_t *b = s->bucket;
        b->live_count -= s->weight / (double)s->size;
        b->live_bytes -= s->weight;
        live_bytes -= s->weight;
        if (live_bytes < interval_mark) interval_mark = live_bytes;
        s->next = spare_samples;
        spare_samples = s;
    }
    ma_unlock(&lock);
}

/* A block of a fixed heap is freed while profiling: a sampled one is
 * forgotten, then freed (a second free of it is then caught by fixed.c). */
void ma_profile_free_fixed(ma_heap_t *fixed, void *p) {
    forget(p);
    ma_fixed_free(fixed, p, "invalid free");
}

void ma_profile_free_large(ma_large_t *large, void *p) {
    forget(p);
    ma_large_free(large, p);
}

/* The statistics (stats.c) count blocks of pages and large blocks: the
 * small sampled blocks are added here, counted as the fixed heaps do. */
void ma_profile_stats(ma_stats_t *st) {
    ma_lock(&lock);
    st->blocks_allocated += small_allocs;
    st->bytes_allocated += small_alloc_bytes;
    for (unsigned i = 0; i < region_count; i++) {
        ma_heap_stats_t hs;
        ma_fixed_stats(regions[i], &hs);
        st->blocks_in_use += hs.blocks_in_use;
        st->bytes_in_use += hs.bytes_in_use;
    }
    ma_unlock(&lock);
}

/* ---- Dumps ------------------------------------------------------------------------------------ */

static void each_live(ma_prof_sample_fn *fn, void *arg) {
    for (size_t i = 0; ready && i <= sample_mask; i++)
        for (ma_prof_sample_t *s = samples[i]; s; s = s->next) fn(s, arg);
}

/* template with %p replaced by the process id, and ".seq" appended when
 * seq is not 0; false if it does not fit. */
static bool expand(const char *template, uint64_t seq, char *out, size_t n) {
    ma_buf_t b = {.len = 0};
    size_t len = 0;
    for (const char *s = template; *s; s++) {
        b.len = 0;
        if (s[0] == '%' && s[1] == 'p') {
            ma_buf_u64(&b, (uint64_t)ma_os_getpid());
            s++;
        } else {
            b.data[b.len++] = *s;
        }
        if (len + b.len >= n) return false;
        memcpy(out + len, b.data, b.len);
        len += b.len;
    }
    if (seq) {
        b.len = 0;
        ma_buf_str(&b, ".");
        ma_buf_u64(&b, seq);
        if (len + b.len >= n) return false;
        memcpy(out + len, b.data, b.len);
        len += b.len;
    }
    out[len] = '\0';
    return true;
}

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && memcmp(s + n - m, tail, m) == 0;
}

static void warn_unwritten(const char *path, int err) {
    ma_buf_t b;
    const char *name = ma_diag_errno_name(err);
    ma_buf_begin(&b, "warning: cannot write the heap profile ");
    ma_buf_str(&b, path);
    ma_buf_str(&b, ": ");
    if (name) {
        ma_buf_str(&b, name);
    } else {
        ma_buf_str(&b, "errno ");
        ma_buf_u64(&b, (uint64_t)err);
    }
    ma_buf_end(&b);
}

/* Writes the profile to template (expanded); 0, or -1 with errno. A file
 * name ending in .heap gets the legacy text format. */
static int dump_to(const char *template, uint64_t seq) {
    char path[PATH_BYTES];
    if (!expand(template, seq, path, sizeof path)) {
        errno = ENAMETOOLONG;
        warn_unwritten(template, errno);
        return -1;
    }
    bool legacy = ends_with(template, ".heap");
    ma_pprof_modules_t *mods = legacy ? NULL : ma_pprof_modules_collect();   /* before the lock */
    int fd = ma_os_open_write(path);
    if (fd < 0) {
        int err = errno;
        warn_unwritten(path, err);
        ma_pprof_modules_free(mods);
        errno = err;
        return -1;
    }
    ma_lock(&lock);
    ma_pprof_data_t d = {.buckets = bucket_first, .frame_count = frame_count, .each_sample = each_live,
                         .rate = (long)rate(), .now_ms = ma_os_now_ms()};
    int rc = ma_pprof_write(fd, legacy, &d, mods);
    int err = errno;
    ma_unlock(&lock);
    if (ma_os_close(fd) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    ma_pprof_modules_free(mods);
    if (rc != 0) warn_unwritten(path, err);
    errno = err;
    return rc;
}

static void dump_interval(uint64_t seq) {
    int saved = errno;
    dump_to(ma_option_profile_file(), seq);
    errno = saved;
}

int ma_profile_dump(const char *path) {
    ma_process_init();
    if (!ma_profiling) {
        errno = ENOTSUP;
        return -1;
    }
    return dump_to(path ? path : ma_option_profile_file(), 0);
}

void ma_profile_at_exit(void) {
    int saved = errno;
    dump_to(ma_option_profile_file(), 0);
    errno = saved;
}

