/* fixed.c - heaps inside caller memory (ma_heap_new_in).
 *
 * Owns everything in the region [base, base + size) the caller lends, and
 * never reads or writes a byte outside it:
 *
 *   base                                                        base + size
 *   | ma_heap_t | fixed_t: lock, bins | block | block | ... | block |
 *                                     ^ arena                       ^ end
 *
 * A block is a 16-byte header {size | flags, check} followed by the user's
 * bytes; check = word ^ address ^ secret, so free validates a pointer before
 * trusting it. A free block also holds two encoded bin links after its
 * header and its size in its last 8 bytes (the footer), which its successor's
 * PREV_FREE flag says to read: free coalesces both ways in constant time.
 * Free blocks sit in bins of sizes spaced a quarter of a power of two apart.
 *
 * Invariants, under the heap's lock:
 *  - blocks tile [arena, end) exactly, and no two free blocks are adjacent;
 *  - every free block is in exactly one bin, the one of its size;
 *  - a header that passes its check and says "in use" starts a live block:
 *    a block is marked freed before it is absorbed by a neighbour, and a
 *    reset draws a new secret, so stale headers inside blocks never pass as
 *    live; one that says "freed" makes a second free a double free.
 *
 * Threads: one lock per heap, inside the region, serialises every call on
 * it (frees come from any thread; visit holds it while fn runs). The
 * registry of live heaps, which maps a pointer to its heap and sets the
 * MA_MAP_FIXED byte-map entries, has its own lock, taken before a heap's
 * lock (but a free from visit's fn takes it with the heap's lock held). A
 * region may lie inside a block of another live one. Both are lock.c's
 * ma_lock_t, so fork takes them with the others; a heap's lock leaves
 * lock.c's registry when the heap is destroyed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define HDR 16u                        /* header bytes before every block */
#define MIN_BLOCK 48u                  /* header, two links and a footer */
#define F_INUSE ((uint64_t)1)          /* the block is live */
#define F_PREV_FREE ((uint64_t)2)      /* the block before it is free (read its footer) */
#define F_FREED ((uint64_t)4)          /* free, and was a live block at this address */
#define F_MASK ((uint64_t)15)          /* sizes are multiples of 16: low bits are flags */
#define SCAN_FIRST 16u                 /* blocks tried in a bin before going up a bin */
#define ADDR_LIMIT ((uintptr_t)1 << MA_ADDR_BITS)
/* Bins 3..15 hold one size each, 48..240 bytes; then four bins per power
 * of two, up to regions of 2^MA_ADDR_BITS bytes. */
#define BIN_LINEAR 16u
#define BIN_COUNT (BIN_LINEAR + (MA_ADDR_BITS - 8) * 4)
#define BIN_WORDS ((BIN_COUNT + 63) / 64)

typedef struct hdr_s {
    uint64_t word;   /* size in bytes (multiple of 16) | F_ flags */
    uint64_t check;  /* word ^ address ^ secret */
} hdr_t;

typedef struct free_s {
    hdr_t h;
    uintptr_t next, prev;  /* bin links, XOR the secret; encoded NULL ends */
} free_t;

typedef struct fixed_s {
    ma_lock_t lock;                /* knows its holder: a free from visit's fn is caught */
    uint8_t *base, *arena, *end;   /* the region, first header, end (16-aligned); set once */
    uint64_t secret;               /* keys checks and links; redrawn by every reset */
    size_t blocks, bytes;          /* live blocks and their usable bytes */
    size_t high;                   /* highest block end handed out since the reset, from base */
    ma_heap_t *heap;               /* the heap struct at base */
    struct fixed_s *reg_next;      /* registry lock: the list of live heaps */
    struct fixed_s **reg_pprev;    /* registry lock */
    uint64_t bin_map[BIN_WORDS];   /* bit i: bins[i] is not empty */
    free_t *bins[BIN_COUNT];       /* free blocks by size, LIFO */
} fixed_t;

#define STATE_OFFSET ((sizeof(ma_heap_t) + 63) & ~(size_t)63)
#define ARENA_OFFSET ((STATE_OFFSET + sizeof(fixed_t) + 15) & ~(size_t)15)
_Static_assert(sizeof(hdr_t) == HDR, "blocks stay 16-byte aligned");
_Static_assert(sizeof(free_t) + sizeof(uint64_t) <= MIN_BLOCK, "a free block holds links and footer");
_Static_assert(ARENA_OFFSET + 4 * MIN_BLOCK <= MA_HEAP_IN_MIN, "the smallest region holds blocks");

static ma_lock_t reg_lock = MA_LOCK_INIT(MA_RANK_FIXED_REGISTRY);
static fixed_t *reg_first;          /* registry lock */
static _Atomic uint64_t draws;      /* makes every secret different */

/* ---- Fatal errors ------------------------------------------------------- */

static _Noreturn MA_COLD void corrupt(const void *at) {
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc: corrupted heap block at ");
    ma_buf_hex(&b, (uintptr_t)at);
    ma_buf_str(&b, "\n");
    ma_buf_flush(&b);
    abort();
}

/* ---- Headers ------------------------------------------------------------ */

static uint64_t seal(const fixed_t *st, const hdr_t *h, uint64_t word) {
    return word ^ (uintptr_t)h ^ st->secret;
}

static void put(const fixed_t *st, hdr_t *h, size_t size, uint64_t flags) {
    h->word = size | flags;
    h->check = seal(st, h, h->word);
}

static size_t bsize(const hdr_t *h) { return (size_t)(h->word & ~F_MASK); }
static hdr_t *at(void *h, size_t off) { return (hdr_t *)((uint8_t *)h + off); }

/* The header passes its check and its block lies inside the arena. */
static bool sane(const fixed_t *st, const hdr_t *h) {
    size_t size = bsize(h);
    return h->check == seal(st, h, h->word) && size >= MIN_BLOCK &&
           size <= (size_t)(st->end - (const uint8_t *)h);
}

static hdr_t *checked(const fixed_t *st, hdr_t *h) {
    if (MA_UNLIKELY(!sane(st, h))) corrupt(h);
    return h;
}

static free_t *checked_free(const fixed_t *st, free_t *f) {
    if (MA_UNLIKELY(!sane(st, &f->h) || (f->h.word & F_INUSE))) corrupt(f);
    return f;
}

static void set_prev_free(const fixed_t *st, hdr_t *h, bool on) {
    if ((uint8_t *)h == st->end) return;
    checked(st, h);
    put(st, h, bsize(h), (h->word & (F_INUSE | F_FREED)) | (on ? F_PREV_FREE : 0));
}

/* The free block before h, found through its footer. */
static free_t *prev_free(const fixed_t *st, hdr_t *h) {
    uint64_t size = ((const uint64_t *)h)[-1];
    if (size < MIN_BLOCK || (size & F_MASK) || size > (size_t)((uint8_t *)h - st->arena))
        corrupt(h);
    free_t *f = checked_free(st, (free_t *)((uint8_t *)h - size));
    if (bsize(&f->h) != size) corrupt(h);
    return f;
}

/* ---- Bins --------------------------------------------------------------- */

static unsigned bin_of(size_t size) {
    size_t units = size >> 4;
    if (units < BIN_LINEAR) return (unsigned)units;
    unsigned b = 63u - (unsigned)__builtin_clzl(units);
    return BIN_LINEAR + (b - 4) * 4 + (unsigned)((units >> (b - 2)) & 3);
}

static uintptr_t enc(const fixed_t *st, const free_t *f) { return (uintptr_t)f ^ st->secret; }

/* Links are checked before they are followed: an overwritten free block
 * must not send us outside the region. */
static free_t *dec(const fixed_t *st, uintptr_t v, const void *from) {
    uintptr_t a = v ^ st->secret;
    if (a == 0) return NULL;
    if ((a & 15) || a < (uintptr_t)st->arena || a >= (uintptr_t)st->end) corrupt(from);
    return (free_t *)a;
}

static void bin_push(fixed_t *st, free_t *f) {
    unsigned i = bin_of(bsize(&f->h));
    free_t *head = st->bins[i];
    f->next = enc(st, head);
    f->prev = enc(st, NULL);
    if (head) head->prev = enc(st, f);
    st->bins[i] = f;
    st->bin_map[i / 64] |= (uint64_t)1 << (i % 64);
}

static void bin_remove(fixed_t *st, free_t *f) {
    unsigned i = bin_of(bsize(&f->h));
    free_t *next = dec(st, f->next, f), *prev = dec(st, f->prev, f);
    if (next && dec(st, next->prev, next) != f) corrupt(next);
    if (prev) {
        if (dec(st, prev->next, prev) != f) corrupt(prev);
        prev->next = f->next;
    } else {
        if (st->bins[i] != f) corrupt(f);
        st->bins[i] = next;
    }
    if (next) next->prev = f->prev;
    if (!st->bins[i]) st->bin_map[i / 64] &= ~((uint64_t)1 << (i % 64));
}

/* First block of at least `want` bytes among the first `limit` of bin i. */
static free_t *scan_bin(const fixed_t *st, unsigned i, size_t want, size_t limit) {
    for (free_t *f = st->bins[i]; f && limit; f = dec(st, f->next, f), limit--)
        if (bsize(&checked_free(st, f)->h) >= want) return f;
    return NULL;
}

/* Any block of a bin above i: all of them are big enough. */
static free_t *first_above(const fixed_t *st, unsigned i) {
    unsigned from = i + 1;
    for (unsigned w = from / 64; w < BIN_WORDS; w++) {
        uint64_t m = st->bin_map[w];
        if (w == from / 64) m &= ~(uint64_t)0 << (from % 64);
        if (m) return checked_free(st, st->bins[w * 64 + (unsigned)__builtin_ctzll(m)]);
    }
    return NULL;
}

/* A short first-fit in the request's own bin keeps exact fits in use; a
 * bigger bin next keeps the search constant-time; the full scan last means
 * a request fails only when nothing fits. */
static free_t *take_fit(fixed_t *st, size_t want) {
    unsigned i = bin_of(want);
    free_t *f = scan_bin(st, i, want, SCAN_FIRST);
    if (!f) f = first_above(st, i);
    if (!f) f = scan_bin(st, i, want, SIZE_MAX);
    if (f) bin_remove(st, f);
    return f;
}

/* Writes a free block (header, footer) and bins it. */
static void make_free(fixed_t *st, hdr_t *h, size_t size, uint64_t flags) {
    put(st, h, size, flags);
    ((uint64_t *)at(h, size))[-1] = size;
    bin_push(st, (free_t *)h);
}

/* ---- Allocation --------------------------------------------------------- */

/* Bytes between block b's user pointer and the next one aligned to align,
 * either 0 or big enough to become a free block. */
static size_t lead_gap(const hdr_t *b, size_t align) {
    uintptr_t p = (uintptr_t)b + HDR;
    size_t gap = ((p + align - 1) & ~(uintptr_t)(align - 1)) - p;
    while (gap != 0 && gap < MIN_BLOCK) gap += align;
    return gap;
}

/* Takes a free block of at least `want` bytes and cuts out a live block of
 * `need` bytes whose user pointer is aligned to align. Returns its header. */
static hdr_t *carve(fixed_t *st, size_t need, size_t want, size_t align) {
    free_t *f = take_fit(st, want);
    if (!f) return NULL;
    hdr_t *b = &f->h;
    size_t size = bsize(b);
    uint64_t prev_flag = 0;   /* a free block never follows a free block */
    size_t gap = align > MA_ALIGN_MIN ? lead_gap(b, align) : 0;
    if (gap) {
        make_free(st, b, gap, 0);
        b = at(b, gap);
        size -= gap;
        prev_flag = F_PREV_FREE;
    }
    if (size - need >= MIN_BLOCK) {
        make_free(st, at(b, need), size - need, 0);
        size = need;
    } else {
        set_prev_free(st, at(b, size), false);
    }
    put(st, b, size, F_INUSE | prev_flag);
    size_t top = (size_t)((uint8_t *)at(b, size) - st->base);
    if (top > st->high) st->high = top;
    st->blocks++;
    st->bytes += size - HDR;
    return b;
}

static void lock(fixed_t *st, const void *p) {
    if (MA_UNLIKELY(ma_lock_held(&st->lock)))   /* freed into h from ma_heap_visit's fn */
        ma_diag_fatal_ptr("free during ma_heap_visit", p, 0);
    ma_lock(&st->lock);
}

static void unlock(fixed_t *st) { ma_unlock(&st->lock); }

/* Taken unless this thread holds it already (visit's fn). */
static bool lock_unless_held(fixed_t *st) {
    if (ma_lock_held(&st->lock)) return false;
    ma_lock(&st->lock);
    return true;
}

void *ma_fixed_alloc(ma_heap_t *h, size_t size, size_t align, bool zero) {
    fixed_t *st = h->fixed;
    MA_ASSERT((align & (align - 1)) == 0);
    if (align < MA_ALIGN_MIN) align = MA_ALIGN_MIN;
    if (size >= ADDR_LIMIT || align >= ADDR_LIMIT) {
        errno = ENOMEM;
        return NULL;
    }
    size_t need = (size + HDR + 15) & ~(size_t)15;
    if (need < MIN_BLOCK) need = MIN_BLOCK;
    size_t want = align > MA_ALIGN_MIN ? need + align + MIN_BLOCK : need;
    lock(st, NULL);
    hdr_t *b = carve(st, need, want, align);
    size_t usable = b ? bsize(b) - HDR : 0;
    unlock(st);
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    if (zero) memset(b + 1, 0, usable);
    return b + 1;
}

/* ---- Free --------------------------------------------------------------- */

/* The header of the live block at p; fatal if p is not one: if_freed when
 * it was one and is free now. */
static hdr_t *live_block(const fixed_t *st, const void *p, const char *what, const char *if_freed) {
    uintptr_t a = (uintptr_t)p;
    if ((a & 15) || a < (uintptr_t)st->arena + HDR || a >= (uintptr_t)st->end)
        ma_diag_fatal_ptr(what, p, 0);
    hdr_t *b = (hdr_t *)p - 1;
    if (!sane(st, b)) ma_diag_fatal_ptr(what, p, 0);
    if (!(b->word & F_INUSE)) ma_diag_fatal_ptr(b->word & F_FREED ? if_freed : what, p, 0);
    return b;
}

/* b is marked freed before anything can absorb it, so that its header,
 * left inside a bigger free block, reads "freed" to a later double free.
 * (Headers that reset and splits write read "free" only: a pointer there
 * was never handed out, or not since the reset.) */
static void release(fixed_t *st, hdr_t *b) {
    size_t size = bsize(b);
    uint64_t prev_flag = b->word & F_PREV_FREE;
    put(st, b, size, prev_flag | F_FREED);
    hdr_t *next = at(b, size);
    if ((uint8_t *)next < st->end && !(checked(st, next)->word & F_INUSE)) {
        bin_remove(st, (free_t *)next);
        size += bsize(next);
    }
    if (prev_flag) {
        free_t *prev = prev_free(st, b);
        bin_remove(st, prev);
        size += bsize(&prev->h);
        b = &prev->h;
    }
    make_free(st, b, size, b->word & F_FREED);
    set_prev_free(st, at(b, size), true);
}

void ma_fixed_free(ma_heap_t *h, void *p, const char *what) {
    fixed_t *st = h->fixed;
    lock(st, p);
    hdr_t *b = live_block(st, p, what, "double free");
    st->blocks--;
    st->bytes -= bsize(b) - HDR;
    release(st, b);
    unlock(st);
}

/* Allowed from a visit's fn, which runs with the lock held by this thread:
 * its lock knows its holder, and the heap is ours already. */
size_t ma_fixed_usable(ma_heap_t *h, const void *p, const char *what) {
    fixed_t *st = h->fixed;
    bool took = lock_unless_held(st);
    size_t n = bsize(live_block(st, p, what, what)) - HDR;
    if (took) unlock(st);
    return n;
}

/* ---- Whole-heap calls (one thread at a time: the ma_heap_ rules) --------- */

static uint64_t draw_secret(const fixed_t *st) {
    uint64_t z = (uint64_t)ma_key ^ (uintptr_t)st;
    z += (atomic_fetch_add(&draws, 1) + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) | 1;   /* never 0: the encoded NULL must differ from NULL */
}

/* Everything free: one block over the whole arena. A new secret voids every
 * header written before. Lock held (or the heap not yet published). */
static void empty_locked(fixed_t *st) {
    st->secret = draw_secret(st);
    memset(st->bin_map, 0, sizeof st->bin_map);
    memset(st->bins, 0, sizeof st->bins);
    st->blocks = st->bytes = 0;
    st->high = (size_t)(st->arena - st->base);
    make_free(st, (hdr_t *)st->arena, (size_t)(st->end - st->arena), 0);
}

void ma_fixed_reset(ma_heap_t *h) {
    fixed_t *st = h->fixed;
    lock(st, NULL);
    empty_locked(st);
    unlock(st);
}

int ma_fixed_visit(ma_heap_t *h, ma_heap_visit_fn *fn, void *arg) {
    fixed_t *st = h->fixed;
    int rc = 0;
    lock(st, NULL);
    for (hdr_t *b = (hdr_t *)st->arena; rc == 0 && (uint8_t *)b < st->end; b = at(b, bsize(b)))
        if (checked(st, b)->word & F_INUSE) rc = fn(b + 1, bsize(b) - HDR, arg);
    unlock(st);
    return rc;
}

/* os_bytes: the region from its base to the end of the highest block
 * handed out since the last reset (a high-water mark, metadata included);
 * past it, free space holds one header and one footer. */
void ma_fixed_stats(ma_heap_t *h, ma_heap_stats_t *out) {
    fixed_t *st = h->fixed;
    lock(st, NULL);
    out->blocks_in_use = st->blocks;
    out->bytes_in_use = st->bytes;
    out->os_bytes = st->high;
    unlock(st);
}

/* ---- The registry and the byte map -------------------------------------- */

static bool overlaps(const fixed_t *st, uintptr_t lo, uintptr_t hi) {
    return lo < (uintptr_t)st->end && (uintptr_t)st->base < hi;
}

/* Is [lo, hi) inside one live block of r? A walk, but only ma_heap_new_in
 * asks. Registry lock held; r's lock may be ours already (visit's fn). */
static bool inside_live_block(fixed_t *r, uintptr_t lo, uintptr_t hi) {
    bool took = lock_unless_held(r), inside = false;
    for (hdr_t *b = (hdr_t *)r->arena; (uint8_t *)b < r->end; b = at(b, bsize(b))) {
        uintptr_t start = (uintptr_t)(b + 1), end = (uintptr_t)at(b, bsize(checked(r, b)));
        if (lo < end) {
            inside = (b->word & F_INUSE) && lo >= start && hi <= end;
            break;
        }
    }
    if (took) unlock(r);
    return inside;
}

/* A new region must not overlap a live one, unless it lies inside a live
 * block of it (a heap in a block of another). Registry lock held. */
static bool clashes(uintptr_t lo, uintptr_t hi) {
    for (fixed_t *r = reg_first; r; r = r->reg_next)
        if (overlaps(r, lo, hi) && !inside_live_block(r, lo, hi)) return true;
    return false;
}

static bool chunk_in_use(uintptr_t chunk) {
    for (const fixed_t *r = reg_first; r; r = r->reg_next)
        if (overlaps(r, chunk, chunk + MA_SEGMENT_SIZE)) return true;
    return false;
}

/* A chunk may also hold a large mapping of ours (one ends mid-chunk, and
 * the kernel may place caller memory right after it) or a segment (caller
 * memory that came from mapalloc): such an entry stays, and large.c may
 * overwrite ours; so MA_MAP_FIXED is a hint, and ma_fixed_find, which reads
 * only the registry, has the last word. Compare-and-swap, because large.c
 * writes entries under its own lock. */
static void map_swap(uintptr_t chunk, uint8_t from, uint8_t to) {
    uint8_t expected = from;
    atomic_compare_exchange_strong_explicit(&ma_segmap[chunk >> MA_SEGMENT_SHIFT], &expected, to,
                                            memory_order_relaxed, memory_order_relaxed);
}

static void mark(const fixed_t *st) {
    uintptr_t last = ((uintptr_t)st->end - 1) & ~MA_SEGMENT_MASK;
    for (uintptr_t c = (uintptr_t)st->base & ~MA_SEGMENT_MASK; c <= last; c += MA_SEGMENT_SIZE)
        map_swap(c, MA_MAP_NONE, MA_MAP_FIXED);
}

/* st is off the registry already: clear what no other live region needs. */
static void unmark(const fixed_t *st) {
    uintptr_t last = ((uintptr_t)st->end - 1) & ~MA_SEGMENT_MASK;
    for (uintptr_t c = (uintptr_t)st->base & ~MA_SEGMENT_MASK; c <= last; c += MA_SEGMENT_SIZE)
        if (!chunk_in_use(c)) map_swap(c, MA_MAP_FIXED, MA_MAP_NONE);
}

static void reg_link(fixed_t *st) {
    st->reg_next = reg_first;
    st->reg_pprev = &reg_first;
    if (reg_first) reg_first->reg_pprev = &st->reg_next;
    reg_first = st;
}

static void reg_unlink(fixed_t *st) {
    *st->reg_pprev = st->reg_next;
    if (st->reg_next) st->reg_next->reg_pprev = st->reg_pprev;
}

/* The innermost live region holding p: regions nest only inside blocks,
 * so it is the containing one that starts highest. */
ma_heap_t *ma_fixed_find(const void *p) {
    uintptr_t a = (uintptr_t)p;
    const fixed_t *best = NULL;
    ma_lock(&reg_lock);
    for (const fixed_t *r = reg_first; r; r = r->reg_next)
        if (overlaps(r, a, a + 1) && (!best || r->base > best->base)) best = r;
    ma_heap_t *h = best ? best->heap : NULL;
    ma_unlock(&reg_lock);
    return h;
}

/* ---- Birth and death ---------------------------------------------------- */

/* A heap struct no thread can mistake for its own: nothing in its direct
 * table, its kind says where its blocks are. */
static ma_heap_t *heap_init(void *base) {
    ma_heap_t *h = base;
    memset(h, 0, sizeof *h);
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) h->direct[i] = &ma_page_empty;
    atomic_store_explicit(&h->kind, MA_HEAP_FIXED, memory_order_relaxed);
    return h;
}

static fixed_t *state_init(ma_heap_t *h, size_t size) {
    fixed_t *st = (fixed_t *)((uint8_t *)h + STATE_OFFSET);
    memset(st, 0, sizeof *st);   /* a free lock, yet to join lock.c's registry */
    st->base = (uint8_t *)h;
    st->arena = st->base + ARENA_OFFSET;
    st->end = st->base + size;
    st->heap = h;
    empty_locked(st);
    h->fixed = st;
    return st;
}

ma_heap_t *ma_fixed_new(void *base, size_t size) {
    uintptr_t lo = (uintptr_t)base;
    if (!base || (lo & 15) || size < MA_HEAP_IN_MIN || lo >= ADDR_LIMIT || size > ADDR_LIMIT - lo) {
        errno = EINVAL;
        return NULL;
    }
    size &= ~(size_t)15;
    ma_lock(&reg_lock);
    if (clashes(lo, lo + size)) {
        ma_unlock(&reg_lock);
        errno = EINVAL;
        return NULL;
    }
    ma_heap_t *h = heap_init(base);
    fixed_t *st = state_init(h, size);
    reg_link(st);
    mark(st);
    ma_unlock(&reg_lock);
    return h;
}

/* The region goes back to the caller as it is; only our marks go. Taking
 * the heap's lock waits out a free that broke the rules by running late. */
void ma_fixed_destroy(ma_heap_t *h) {
    fixed_t *st = h->fixed;
    ma_lock(&reg_lock);
    reg_unlink(st);
    unmark(st);
    ma_unlock(&reg_lock);
    lock(st, NULL);
    unlock(st);
    ma_lock_forget(&st->lock);
}
