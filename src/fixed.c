/* fixed.c - the engine of heaps that live in memory mapalloc does not own:
 * caller memory (ma_heap_new_in) and files or shared memory (ma_heap_open,
 * whose files fileheap.c opens, checks and maps).
 *
 * A heap's bytes start at its origin: the shared state (fx_state_t), then
 * the arena of blocks. Everything in them is an offset from the origin,
 * never an address, so they mean the same at any address, in any process
 * that maps them, in this run or a later one:
 *
 *   origin                                                      capacity
 *   | state: header, lock, bins, stacks | block | ... | block | wilderness |
 *                                       ^ arena               ^ top
 *
 * A block is a 16-byte header {word = size | flags, check} and the user's
 * bytes; check = word (less F_PREV_FREE) ^ offset ^ secret, so a pointer is
 * validated before it is trusted. Blocks tile [arena, top); past top the
 * wilderness has never been handed out (a file heap's file ends at
 * `committed`, at or after top, and grows with it).
 *
 * Two tiers:
 *  - the core, under the heap's lock: free blocks in bins of sizes a quarter
 *    of a power of two apart, with a footer so that a free coalesces both
 *    ways in constant time; the wilderness extended when no bin fits;
 *  - the stacks, lock-free: one per size class up to STACK_MAX, a Treiber
 *    stack of blocks that are free for the program but in use for the core
 *    (freeing or taking one is one compare-and-swap; the head carries an ABA
 *    counter). A stacked block holds an encoded link and a tag
 *    (offset ^ secret ^ STACKED) after its header; the core gives stacked
 *    blocks back to the bins only when it runs out of room (flush_stacks).
 *
 * Invariants, under the lock:
 *  - blocks tile [arena, top) exactly, no two free blocks are adjacent, and
 *    every free block is in the bin of its size;
 *  - the core writes headers only under the lock; other threads read them
 *    (free's check) at any time, so a header's word is read and written
 *    whole (relaxed atomics), and the one bit changed on a live block,
 *    F_PREV_FREE, is outside the check;
 *  - a header that passes its check and says "in use" starts a block that
 *    is live or stacked (its tag tells); one that says "freed" makes a
 *    second free a double free. A reset draws a new secret.
 *
 * Processes and crashes. The lock is a robust, process-shared,
 * error-checking mutex in the state. A header is written by one 16-byte
 * store (put), which a dying process completes or never starts, and every
 * change writes its headers from the far end back: whenever a process
 * dies, the walk from the arena reads whole headers that tile [arena,
 * top), a block being cut still whole in the free block it comes from.
 * Bins, links and footers may be half updated; the next locker gets
 * EOWNERDEAD and repairs (rebuild): walks the arena and rebuilds bins,
 * footers, flags and the wilderness flag from the headers alone. A
 * process that dies inside a stack operation loses at most the one block
 * it was taking or giving: tagged but on no stack, it waits for the next
 * process that opens the heap alone (ma_fixed_recover), which returns
 * every tagged block to the bins.
 *
 * The registry (process-local) maps an address to its heap for free():
 * an array of [lo, hi) ranges read without a lock, written under reg_lock;
 * it also sets the MA_MAP_FIXED byte-map entries, a hint.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define HDR 16u                        /* header bytes before every block */
#define MIN_BLOCK 48u                  /* header, two links and a footer */
#define F_INUSE ((uint64_t)1)          /* the block is live (or stacked) */
#define F_PREV_FREE ((uint64_t)2)      /* the block before it is free (read its footer) */
#define F_FREED ((uint64_t)4)          /* free, and was a live block at this address */
#define F_MASK ((uint64_t)15)          /* sizes are multiples of 16: low bits are flags */
#define SCAN_FIRST 16u                 /* blocks tried in a bin before going up a bin */
#define CAP_BITS 42                    /* a heap holds at most 4 TiB */
#define CAP_MAX ((uint64_t)1 << CAP_BITS)
#define UNIT_BITS (CAP_BITS - 4)       /* a stack head: block offset / 16 ... */
#define UNIT_MASK (((uint64_t)1 << UNIT_BITS) - 1)
#define ABA_ONE ((uint64_t)1 << UNIT_BITS) /* ... and a counter above it */
#define STACKED 0x5ac4ec0000000000ull  /* tag salt; above CAP_BITS, never an offset */
#define GROW_MIN ((uint64_t)64 << 10)  /* the wilderness is taken at least this much at a time */
#define FILE_STEP ((uint64_t)1 << 20)  /* a file grows by multiples of this ... */
#define FILE_SHARE 8u                  /* ... and by at least 1/8 of its length */
/* Bins 3..15 hold one size each, 48..240 bytes; then four bins per power
 * of two, up to CAP_MAX. */
#define BIN_LINEAR 16u
#define BIN_COUNT (BIN_LINEAR + (CAP_BITS - 8) * 4)
#define BIN_WORDS ((BIN_COUNT + 63) / 64)
/* Stack classes: 48..256 bytes by 16 (14 classes), then eight per power
 * of two up to STACK_MAX (block sizes, header included). */
#define STACK_LINEAR 14u
#define STACK_MAX ((uint64_t)64 << 10)
#define STACK_COUNT (STACK_LINEAR + 8 * 8)
#define FX_MAGIC 0x706165686170616dull  /* "mapaheap", the file's first bytes */
#define FX_VERSION 1u

typedef struct hdr_s {
    uint64_t word;   /* size in bytes (multiple of 16) | F_ flags; relaxed atomic */
    uint64_t check;  /* seal(word): word less F_PREV_FREE ^ offset ^ secret */
} hdr_t;

typedef struct free_s {
    hdr_t h;
    uint64_t next, prev;  /* bin links: offsets XOR the secret; encoded 0 ends */
} free_t;

typedef struct stacked_s {
    hdr_t h;
    uint64_t link;  /* the next block's stack word (offset / 16) XOR the secret */
    uint64_t tag;   /* offset ^ secret ^ STACKED while the block is on a stack */
} stacked_t;

/* Written once when the heap is made, checked by every ma_heap_open. */
typedef struct fx_head_s {
    uint64_t magic;       /* FX_MAGIC */
    uint32_t version;     /* FX_VERSION: the layout of all that follows */
    uint32_t state_bytes; /* sizeof(fx_state_t) of the writer */
    uint64_t capacity;    /* bytes from the origin the heap may use */
    uint64_t arena;       /* offset of the first block */
    uint64_t lock_bytes;  /* sizeof(pthread_mutex_t) of the writer */
    uint64_t checksum;    /* of the fields above (ma_fixed_checksum) */
} fx_head_t;

typedef struct fx_stack_s {
    _Atomic uint64_t head;  /* any: top block / 16 | ABA counter; 0 units: empty */
    uint64_t pad[7];        /* one cache line per class: processes contend on heads */
} fx_stack_t;

/* The shared state, at the origin: position independent. */
typedef struct fx_state_s {
    fx_head_t head;              /* immutable */
    pthread_mutex_t lock;        /* robust, process-shared, error-checking */
    uint64_t secret;             /* lock (reset: alone): keys checks, links and tags */
    _Atomic uint64_t top;        /* lock; read by anyone: end of the last block */
    _Atomic uint64_t committed;  /* lock: bytes backed by the file (new_in: capacity) */
    _Atomic uint64_t root;       /* any: the program's root offset */
    uint64_t top_prev_free;      /* lock: the block that ends at top is free */
    _Atomic uint64_t repairs;    /* lock: rebuilds after a lock holder died */
    uint64_t bin_map[BIN_WORDS]; /* lock: bit i: bins[i] is not empty */
    uint64_t bins[BIN_COUNT];    /* lock: first free block of each bin, 0: none */
    fx_stack_t stacks[STACK_COUNT] __attribute__((aligned(64)));
} fx_state_t;

/* The process-local handle: at the head of a ma_heap_new_in region, or in
 * memory mapped for it (file heaps). */
typedef struct fixed_s {
    uint8_t *o;             /* the origin in this process */
    fx_state_t *sh;         /* the same, typed */
    uint64_t capacity;      /* sh->head.capacity, trusted once checked */
    uint64_t arena;         /* sh->head.arena, idem */
    uint8_t *lo, *hi;       /* what the registry covers: the region, or the mapping */
    ma_heap_t *heap;
    int fd;                 /* the file of a file heap, or -1 */
    bool file;              /* ma_heap_open made it */
    bool shared_mem;        /* its lock may be held in another process: fork leaves it */
    bool fork_locked;       /* registry lock: fork_prepare holds the heap's lock */
    uint32_t reg;           /* registry lock: its registry slot */
    struct fixed_s *next_closed; /* handle pool: closed file heaps, oldest first */
} fixed_t;

#define HEAP_BYTES ((sizeof(ma_heap_t) + 63) & ~(size_t)63)
#define ARENA_OFFSET ((sizeof(fx_state_t) + 63) & ~(size_t)63)
#define LOCAL_BYTES (HEAP_BYTES + sizeof(fixed_t) + 63)   /* before a new_in origin */
_Static_assert(sizeof(hdr_t) == HDR, "blocks stay 16-byte aligned");
_Static_assert(sizeof(free_t) + sizeof(uint64_t) <= MIN_BLOCK, "a free block holds links and footer");
_Static_assert(sizeof(stacked_t) <= MIN_BLOCK, "a stacked block holds link and tag");
_Static_assert(LOCAL_BYTES + ARENA_OFFSET + 4 * MIN_BLOCK <= MA_HEAP_IN_MIN, "the smallest region holds blocks");
_Static_assert(ARENA_OFFSET + 4 * MIN_BLOCK <= MA_HEAP_OPEN_MIN, "the smallest file holds blocks");
_Static_assert((STACKED & (CAP_MAX - 1)) == 0, "a tag never equals an offset's bits");

static _Atomic uint64_t draws;      /* makes every secret different */

/* ---- Fatal errors ------------------------------------------------------- */

static _Noreturn MA_COLD void corrupt(const void *at) {
    ma_diag_fatal_ptr("corrupted heap block at", at, 0);
}

/* ---- Offsets, headers --------------------------------------------------- */

static void *ptr(const fixed_t *fx, uint64_t off) { return fx->o + off; }
static uint64_t off_of(const fixed_t *fx, const void *p) { return (uint64_t)((const uint8_t *)p - fx->o); }
static hdr_t *at(void *h, uint64_t off) { return (hdr_t *)((uint8_t *)h + off); }
static uint64_t top_of(const fixed_t *fx) { return atomic_load_explicit(&fx->sh->top, memory_order_acquire); }

static uint64_t word_of(const hdr_t *h) { return __atomic_load_n(&h->word, __ATOMIC_RELAXED); }
static uint64_t check_of(const hdr_t *h) { return __atomic_load_n(&h->check, __ATOMIC_RELAXED); }
static uint64_t size_of(uint64_t word) { return word & ~F_MASK; }
static uint64_t bsize(const hdr_t *h) { return size_of(word_of(h)); }

static uint64_t seal(const fixed_t *fx, const hdr_t *h, uint64_t word) {
    return (word & ~F_PREV_FREE) ^ off_of(fx, h) ^ fx->sh->secret;
}

/* One 16-byte store, a single instruction: a process dies between two
 * instructions, never inside one, so no crash leaves a header half
 * written (the compiler must not split it: hence the asm). */
typedef uint64_t hdr_v __attribute__((vector_size(16)));
static void put(const fixed_t *fx, hdr_t *h, uint64_t size, uint64_t flags) {
    hdr_v v = {size | flags, seal(fx, h, size | flags)};
    __asm__ volatile("movdqa %1, %0" : "=m"(*h) : "x"(v));
}

/* The header passes its check and its block lies inside [arena, top). */
static bool sane_word(const fixed_t *fx, const hdr_t *h, uint64_t w, uint64_t top) {
    uint64_t size = size_of(w), off = off_of(fx, h);
    return check_of(h) == seal(fx, h, w) && size >= MIN_BLOCK && size <= top - off;
}

static hdr_t *checked(const fixed_t *fx, hdr_t *h) {
    if (MA_UNLIKELY(!sane_word(fx, h, word_of(h), top_of(fx)))) corrupt(h);
    return h;
}

static free_t *checked_free(const fixed_t *fx, free_t *f) {
    if (MA_UNLIKELY(!sane_word(fx, &f->h, word_of(&f->h), top_of(fx)) || (word_of(&f->h) & F_INUSE)))
        corrupt(f);
    return f;
}

/* h's F_PREV_FREE bit; at top, the state's flag. */
static void set_prev_free(const fixed_t *fx, hdr_t *h, bool on) {
    if (off_of(fx, h) == top_of(fx)) {
        fx->sh->top_prev_free = on;
        return;
    }
    uint64_t w = word_of(checked(fx, h));
    __atomic_store_n(&h->word, on ? w | F_PREV_FREE : w & ~F_PREV_FREE, __ATOMIC_RELAXED);
}

/* The free block before h, found through its footer. */
static free_t *prev_free(const fixed_t *fx, hdr_t *h) {
    uint64_t size = ((const uint64_t *)h)[-1];
    if (size < MIN_BLOCK || (size & F_MASK) || size > off_of(fx, h) - fx->arena) corrupt(h);
    free_t *f = checked_free(fx, (free_t *)((uint8_t *)h - size));
    if (bsize(&f->h) != size) corrupt(h);
    return f;
}

/* ---- Stacked blocks: the tag ---------------------------------------------
 * A live block's first bytes are the program's, and another thread may be
 * writing them while the core or a stale pop reads them: such reads are
 * deliberate races, validated afterwards (a tag or a link is keyed by the
 * secret), and kept out of ThreadSanitizer's sight. */
static inline uint64_t racy_load(const uint64_t *p) {
    uint64_t v;
    __asm__ volatile("movq %1, %0" : "=r"(v) : "m"(*p));   /* one load, unseen by TSan */
    return v;
}

static uint64_t tag_for(const fixed_t *fx, const hdr_t *h) {
    return off_of(fx, h) ^ fx->sh->secret ^ STACKED;
}

static bool is_stacked(const fixed_t *fx, const hdr_t *h) {
    return racy_load(&((const stacked_t *)h)->tag) == tag_for(fx, h);
}

/* ---- Bins --------------------------------------------------------------- */

static unsigned bin_of(uint64_t size) {
    uint64_t units = size >> 4;
    if (units < BIN_LINEAR) return (unsigned)units;
    unsigned b = 63u - (unsigned)__builtin_clzll(units);
    return BIN_LINEAR + (b - 4) * 4 + (unsigned)((units >> (b - 2)) & 3);
}

static uint64_t enc(const fixed_t *fx, const free_t *f) {
    return (f ? off_of(fx, f) : 0) ^ fx->sh->secret;
}

/* Links are checked before they are followed: an overwritten free block
 * must not send us outside the arena. */
static free_t *dec(const fixed_t *fx, uint64_t v, const void *from) {
    uint64_t off = v ^ fx->sh->secret;
    if (off == 0) return NULL;
    if ((off & 15) || off < fx->arena || off >= top_of(fx)) corrupt(from);
    return ptr(fx, off);
}

static free_t *bin_first(const fixed_t *fx, unsigned i) {
    uint64_t off = fx->sh->bins[i];
    if (off == 0) return NULL;
    if ((off & 15) || off < fx->arena || off >= top_of(fx)) corrupt(fx->o);
    return checked_free(fx, ptr(fx, off));
}

static void bin_push(fixed_t *fx, free_t *f) {
    fx_state_t *sh = fx->sh;
    unsigned i = bin_of(bsize(&f->h));
    free_t *head = bin_first(fx, i);
    f->next = enc(fx, head);
    f->prev = enc(fx, NULL);
    if (head) head->prev = enc(fx, f);
    sh->bins[i] = off_of(fx, f);
    sh->bin_map[i / 64] |= (uint64_t)1 << (i % 64);
}

static void bin_remove(fixed_t *fx, free_t *f) {
    fx_state_t *sh = fx->sh;
    unsigned i = bin_of(bsize(&f->h));
    free_t *next = dec(fx, f->next, f), *prev = dec(fx, f->prev, f);
    if (next && dec(fx, next->prev, next) != f) corrupt(next);
    if (prev) {
        if (dec(fx, prev->next, prev) != f) corrupt(prev);
        prev->next = f->next;
    } else {
        if (sh->bins[i] != off_of(fx, f)) corrupt(f);
        sh->bins[i] = next ? off_of(fx, next) : 0;
    }
    if (next) next->prev = f->prev;
    if (!sh->bins[i]) sh->bin_map[i / 64] &= ~((uint64_t)1 << (i % 64));
}

/* First block of at least `want` bytes among the first `limit` of bin i. */
static free_t *scan_bin(const fixed_t *fx, unsigned i, uint64_t want, size_t limit) {
    for (free_t *f = bin_first(fx, i); f && limit; f = dec(fx, f->next, f), limit--)
        if (bsize(&checked_free(fx, f)->h) >= want) return f;
    return NULL;
}

/* Any block of a bin above i: all of them are big enough. */
static free_t *first_above(const fixed_t *fx, unsigned i) {
    unsigned from = i + 1;
    for (unsigned w = from / 64; w < BIN_WORDS; w++) {
        uint64_t m = fx->sh->bin_map[w];
        if (w == from / 64) m &= ~(uint64_t)0 << (from % 64);
        if (m) return bin_first(fx, w * 64 + (unsigned)__builtin_ctzll(m));
    }
    return NULL;
}

/* A short first-fit in the request's own bin keeps exact fits in use; a
 * bigger bin next keeps the search constant-time; the full scan last means
 * a request fails only when nothing fits. */
static free_t *take_fit(fixed_t *fx, uint64_t want) {
    unsigned i = bin_of(want);
    free_t *f = scan_bin(fx, i, want, SCAN_FIRST);
    if (!f) f = first_above(fx, i);
    if (!f) f = scan_bin(fx, i, want, SIZE_MAX);
    if (f) bin_remove(fx, f);
    return f;
}

/* Writes a free block (header, footer) and bins it. */
static void make_free(fixed_t *fx, hdr_t *h, uint64_t size, uint64_t flags) {
    put(fx, h, size, flags);
    ((uint64_t *)at(h, size))[-1] = size;
    bin_push(fx, (free_t *)h);
}

/* ---- Stack classes -------------------------------------------------------- */

/* Block sizes of the classes (header included): 48..256 by 16, then 9..16
 * eighths of each power of two from 256 to 32 Ki. */
static const uint32_t class_sizes[STACK_COUNT] = {
    48,    64,    80,    96,    112,   128,   144,   160,   176,   192,   208,   224,   240,
    256,   288,   320,   352,   384,   416,   448,   480,   512,   576,   640,   704,   768,
    832,   896,   960,   1024,  1152,  1280,  1408,  1536,  1664,  1792,  1920,  2048,  2304,
    2560,  2816,  3072,  3328,  3584,  3840,  4096,  4608,  5120,  5632,  6144,  6656,  7168,
    7680,  8192,  9216,  10240, 11264, 12288, 13312, 14336, 15360, 16384, 18432, 20480, 22528,
    24576, 26624, 28672, 30720, 32768, 36864, 40960, 45056, 49152, 53248, 57344, 61440, 65536};
_Static_assert(sizeof class_sizes / sizeof class_sizes[0] == STACK_COUNT, "one size per class");

static uint64_t class_size(unsigned c) { return class_sizes[c]; }

/* The class whose blocks hold `need` bytes (need <= STACK_MAX, a multiple
 * of 16, at least MIN_BLOCK). */
static unsigned class_up(uint64_t need) {
    if (need <= 256) return (unsigned)(need >> 4) - 3;
    uint64_t m = need - 1;
    unsigned b = 63u - (unsigned)__builtin_clzll(m);
    return STACK_LINEAR + (b - 8) * 8 + (unsigned)(m >> (b - 3)) - 8;
}

/* The class a block of `size` bytes serves (size <= STACK_MAX). */
static unsigned class_down(uint64_t size) {
    unsigned c = class_up(size);
    return class_size(c) > size ? c - 1 : c;
}

/* ---- Stacks --------------------------------------------------------------- */

static void stack_push(fixed_t *fx, hdr_t *b, unsigned c) {
    stacked_t *s = (stacked_t *)b;
    _Atomic uint64_t *head = &fx->sh->stacks[c].head;
    uint64_t units = off_of(fx, b) >> 4, old = atomic_load_explicit(head, memory_order_relaxed);
    s->tag = tag_for(fx, b);
    do {
        s->link = (old & UNIT_MASK) ^ fx->sh->secret;
    } while (!atomic_compare_exchange_weak_explicit(head, &old, units | ((old & ~UNIT_MASK) + ABA_ONE),
                                                    memory_order_release, memory_order_relaxed));
}

/* A block of class c, or NULL. The link is read before the block is ours
 * (another thread may have taken it meanwhile: then the head changed and
 * the exchange fails); an impossible link under an unchanged head is a
 * corrupted stack. The block is checked once it is ours: its tag (which
 * only a push with the secret writes) and that its header is in use and
 * big enough. Inline in ma_fixed_alloc; errors go out of line. */
static MA_COLD void pop_corrupt(const fixed_t *fx, uint64_t units) { corrupt(ptr(fx, units << 4)); }

static inline hdr_t *stack_pop(fixed_t *fx, unsigned c) {
    _Atomic uint64_t *head = &fx->sh->stacks[c].head;
    uint64_t secret = fx->sh->secret, old = atomic_load_explicit(head, memory_order_acquire);
    for (;;) {
        uint64_t units = old & UNIT_MASK;
        if (units == 0) return NULL;
        stacked_t *s = ptr(fx, units << 4);
        uint64_t next = racy_load(&s->link) ^ secret;
        if (MA_UNLIKELY(next - (fx->arena >> 4) >= (top_of(fx) - fx->arena) >> 4 && next != 0)) {
            uint64_t now = atomic_load_explicit(head, memory_order_acquire);
            if (now == old) pop_corrupt(fx, units);
            old = now;
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(head, &old, next | ((old & ~UNIT_MASK) + ABA_ONE),
                                                  memory_order_acquire, memory_order_acquire)) {
            uint64_t w = word_of(&s->h), off = units << 4;
            if (MA_UNLIKELY(s->tag != (off ^ secret ^ STACKED) || check_of(&s->h) != ((w & ~F_PREV_FREE) ^ off ^ secret) ||
                            !(w & F_INUSE) || size_of(w) < class_size(c)))
                pop_corrupt(fx, units);
            s->tag = 0;
            return &s->h;
        }
    }
}

/* ---- The core: allocation ------------------------------------------------ */

/* Bytes between block b's user pointer and the next one aligned to align,
 * either 0 or big enough to become a free block. */
static uint64_t lead_gap(const fixed_t *fx, const hdr_t *b, size_t align) {
    uint64_t p = off_of(fx, b) + HDR;   /* the origin is 64-aligned, or page-aligned */
    uintptr_t a = (uintptr_t)fx->o + p;
    uint64_t gap = ((a + align - 1) & ~(uintptr_t)(align - 1)) - a;
    while (gap != 0 && gap < MIN_BLOCK) gap += align;
    return gap;
}

/* The file must reach `end`: grown by a step (under the lock). */
static bool commit(fixed_t *fx, uint64_t end) {
    fx_state_t *sh = fx->sh;
    uint64_t have = atomic_load_explicit(&sh->committed, memory_order_relaxed);
    if (end <= have) return true;
    if (fx->fd < 0) return false;
    uint64_t want = end > have + have / FILE_SHARE ? end : have + have / FILE_SHARE;
    want = (want + FILE_STEP - 1) & ~(FILE_STEP - 1);
    if (want > fx->capacity) want = fx->capacity;
    int saved = errno;
    bool ok = ma_os_file_grow(fx->fd, have, want) == 0;
    errno = saved;
    if (ok) atomic_store_explicit(&sh->committed, want, memory_order_release);
    return ok;
}

/* Takes at least `want` bytes of wilderness as a free block, merged with
 * a free block before it. The header is written before top moves, and
 * the merge last, so a crash leaves two free neighbours (rebuild merges). */
static bool extend(fixed_t *fx, uint64_t want) {
    fx_state_t *sh = fx->sh;
    uint64_t top = top_of(fx), room = fx->capacity - top;
    hdr_t *h = ptr(fx, top);
    bool merge = sh->top_prev_free;
    uint64_t have = merge ? bsize(&prev_free(fx, h)->h) : 0;
    uint64_t short_by = want > have ? want - have : MIN_BLOCK;
    if (short_by > room) return false;
    uint64_t ext = short_by < GROW_MIN ? GROW_MIN : (short_by + 15) & ~(uint64_t)15;
    if (ext > room || room - ext < MIN_BLOCK) ext = room;
    if (ext < MIN_BLOCK || !commit(fx, top + ext)) return false;
    put(fx, h, ext, merge ? F_PREV_FREE : 0);
    ((uint64_t *)at(h, ext))[-1] = ext;
    atomic_store_explicit(&sh->top, top + ext, memory_order_release);
    sh->top_prev_free = true;
    if (!merge) {
        bin_push(fx, (free_t *)h);
        return true;
    }
    free_t *prev = prev_free(fx, h);
    bin_remove(fx, prev);
    make_free(fx, &prev->h, bsize(&prev->h) + ext, word_of(&prev->h) & F_FREED);
    return true;
}

static void release(fixed_t *fx, hdr_t *b);

/* Every stacked block back to the bins, one at a time (a crash loses at
 * most one): the last resort before ENOMEM. Lock held. */
static bool flush_stacks(fixed_t *fx) {
    bool any = false;
    for (unsigned c = 0; c < STACK_COUNT; c++) {
        hdr_t *b;
        while ((b = stack_pop(fx, c)) != NULL) {
            release(fx, b);
            any = true;
        }
    }
    return any;
}

/* Takes a free block of at least `want` bytes and cuts out a live block of
 * `need` bytes whose user pointer is aligned to align. Returns its header.
 * Headers are written from the far end back: the remainder, the block,
 * the gap. */
static hdr_t *carve(fixed_t *fx, uint64_t need, uint64_t want, size_t align) {
    free_t *f = take_fit(fx, want);
    if (!f && extend(fx, want)) f = take_fit(fx, want);
    if (!f && flush_stacks(fx)) {   /* coalesced: it may fit now, or with the wilderness */
        f = take_fit(fx, want);
        if (!f && extend(fx, want)) f = take_fit(fx, want);
    }
    if (!f) return NULL;
    hdr_t *b = &f->h;
    uint64_t size = bsize(b), gap = align > MA_ALIGN_MIN ? lead_gap(fx, b, align) : 0;
    uint64_t first_flags = word_of(b) & F_PREV_FREE;   /* a free block follows a live one */
    hdr_t *live = at(b, gap);
    uint64_t live_size = size - gap;
    if (live_size - need >= MIN_BLOCK) {
        make_free(fx, at(live, need), live_size - need, 0);
        live_size = need;
    } else {
        set_prev_free(fx, at(live, live_size), false);
    }
    put(fx, live, live_size, F_INUSE | (gap ? F_PREV_FREE : first_flags));
    if (gap) make_free(fx, b, gap, first_flags);
    return live;
}

/* ---- The core: free ------------------------------------------------------- */

/* b is marked freed before anything can absorb it, so that its header,
 * left inside a bigger free block, reads "freed" to a later double free.
 * (Headers that resets and splits write read "free" only: a pointer there
 * was never handed out, or not since the reset.) */
static void release(fixed_t *fx, hdr_t *b) {
    uint64_t size = bsize(b), prev_flag = word_of(b) & F_PREV_FREE, top = top_of(fx);
    put(fx, b, size, prev_flag | F_FREED);
    hdr_t *start = b;
    hdr_t *next = at(b, size);
    if (off_of(fx, next) < top && !(word_of(checked(fx, next)) & F_INUSE)) {
        bin_remove(fx, (free_t *)next);
        size += bsize(next);
    }
    if (prev_flag) {
        free_t *prev = prev_free(fx, b);
        bin_remove(fx, prev);
        size += bsize(&prev->h);
        start = &prev->h;
    }
    make_free(fx, start, size, word_of(start) & F_FREED);
    set_prev_free(fx, at(start, size), true);
}

/* ---- Rebuild: the structure from the headers alone ------------------------
 * After a lock holder died (lone == false: other processes may be using
 * the stacks, so stacked blocks stay as they are) or when a process opens
 * the heap alone (lone: every tagged block is free, the stacks start
 * empty). Returns the offset of the first header that cannot be read, or
 * 0 if the walk reached top. */

/* The offset of the first header that fails its check, or 0 (a walk that
 * changes nothing: a refused file stays as it was). */
static uint64_t verify(const fixed_t *fx) {
    uint64_t top = top_of(fx), off = fx->arena;
    while (off < top) {
        hdr_t *h = ptr(fx, off);
        if (!sane_word(fx, h, word_of(h), top)) return off;
        off += bsize(h);
    }
    return 0;
}

static uint64_t rebuild(fixed_t *fx, bool lone) {
    fx_state_t *sh = fx->sh;
    uint64_t top = top_of(fx), off = fx->arena;
    memset(sh->bin_map, 0, sizeof sh->bin_map);
    memset(sh->bins, 0, sizeof sh->bins);
    if (lone)
        for (unsigned c = 0; c < STACK_COUNT; c++) atomic_store_explicit(&sh->stacks[c].head, 0, memory_order_relaxed);
    uint64_t run = 0, run_flags = 0;   /* start of the free blocks being merged, or 0 */
    while (off < top) {
        hdr_t *h = ptr(fx, off);
        if (!sane_word(fx, h, word_of(h), top)) return off;
        uint64_t w = word_of(h), size = size_of(w);
        if ((w & F_INUSE) && lone && size <= STACK_MAX && is_stacked(fx, h)) {
            ((stacked_t *)h)->tag = 0;
            w = F_FREED;   /* never again "in use": it may end up inside a free block */
            put(fx, h, size, w);
        }
        if (!(w & F_INUSE)) {
            if (!run) {
                run = off;
                run_flags = w & F_FREED;
            }
        } else {
            if (run) make_free(fx, ptr(fx, run), off - run, run_flags);
            put(fx, h, size, (w & F_MASK & ~F_PREV_FREE) | (run ? F_PREV_FREE : 0));
            run = 0;
        }
        off += size;
    }
    if (run) make_free(fx, ptr(fx, run), top - run, run_flags);
    sh->top_prev_free = run != 0;
    return 0;
}

/* ---- The lock -------------------------------------------------------------- */

static void init_lock(fx_state_t *sh) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->lock, &attr);
    pthread_mutexattr_destroy(&attr);
}

/* 0, or EDEADLK (this thread holds it: visit's fn), or worse. EOWNERDEAD:
 * a holder died, perhaps in the middle of a change; the structure is
 * rebuilt from the headers before anyone else goes on. */
static int take(fixed_t *fx) {
    int rc = pthread_mutex_lock(&fx->sh->lock);
    if (MA_LIKELY(rc != EOWNERDEAD)) return rc;
    uint64_t bad = rebuild(fx, false);
    if (bad) ma_diag_fatal_ptr("corrupted heap (found while repairing after a process died) at", ptr(fx, bad), 0);
    atomic_fetch_add_explicit(&fx->sh->repairs, 1, memory_order_relaxed);
    pthread_mutex_consistent(&fx->sh->lock);
    return 0;
}

static void lock(fixed_t *fx) {
    int rc = take(fx);
    if (MA_LIKELY(rc == 0)) return;
    if (rc == EDEADLK) ma_diag_fatal_around("heap ", fx->heap, " used from its own ma_heap_visit callback");
    ma_diag_fatal_around("heap ", fx->heap, ": its lock is unusable");
}

static void unlock(fixed_t *fx) { pthread_mutex_unlock(&fx->sh->lock); }

/* ---- Allocation and free (any thread, any process) ------------------------ */

/* From the core: a block of `need` bytes aligned to align. */
static MA_NOINLINE hdr_t *alloc_core(fixed_t *fx, uint64_t need, size_t align) {
    uint64_t want = align > MA_ALIGN_MIN ? need + align + MIN_BLOCK : need;
    lock(fx);
    hdr_t *b = carve(fx, need, want, align);
    unlock(fx);
    if (!b) errno = ENOMEM;
    return b;
}

/* Small sizes pop their class's stack (rounded up to the class, whose
 * blocks then serve any of its sizes); the rest, and an empty stack, go
 * to the core. */
void *ma_fixed_malloc(ma_heap_t *h, size_t size) {
    fixed_t *fx = h->fixed;
    if (MA_LIKELY(size <= STACK_MAX - HDR)) {
        uint64_t need = (size + HDR + 15) & ~(uint64_t)15;
        unsigned c = class_up(need < MIN_BLOCK ? MIN_BLOCK : need);
        hdr_t *b = stack_pop(fx, c);
        if (MA_LIKELY(b != NULL) || (b = alloc_core(fx, class_size(c), MA_ALIGN_MIN)) != NULL) return b + 1;
        return NULL;
    }
    return ma_fixed_alloc(h, size, MA_ALIGN_MIN, false);
}

void *ma_fixed_alloc(ma_heap_t *h, size_t size, size_t align, bool zero) {
    fixed_t *fx = h->fixed;
    MA_ASSERT((align & (align - 1)) == 0);
    if (align < MA_ALIGN_MIN) align = MA_ALIGN_MIN;
    if (size >= CAP_MAX || align >= CAP_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    uint64_t need = (size + HDR + 15) & ~(uint64_t)15;
    if (need < MIN_BLOCK) need = MIN_BLOCK;
    hdr_t *b = NULL;
    if (align == MA_ALIGN_MIN && need <= STACK_MAX) {
        unsigned c = class_up(need);
        b = stack_pop(fx, c);
        need = class_size(c);
    }
    if (!b && (b = alloc_core(fx, need, align)) == NULL) return NULL;
    if (zero) memset(b + 1, 0, bsize(b) - HDR);
    return b + 1;
}

/* The header of the live block at p; fatal if p is not one: if_freed when
 * it was one and is free now (on a stack, or "freed" in its header). The
 * slow and thorough way: ma_fixed_free's fast path comes here only to die. */
static hdr_t *live_block(const fixed_t *fx, const void *p, const char *what, const char *if_freed) {
    uintptr_t a = (uintptr_t)p, o = (uintptr_t)fx->o;
    if ((a & 15) || a < o + fx->arena + HDR || a >= o + top_of(fx)) ma_diag_fatal_ptr(what, p, 0);
    hdr_t *b = (hdr_t *)p - 1;
    uint64_t w = word_of(b);
    if (!sane_word(fx, b, w, top_of(fx))) ma_diag_fatal_ptr(what, p, 0);
    if (!(w & F_INUSE)) ma_diag_fatal_ptr(w & F_FREED ? if_freed : what, p, 0);
    if (size_of(w) <= STACK_MAX && is_stacked(fx, b)) ma_diag_fatal_ptr(if_freed, p, 0);
    return b;
}

/* A block over STACK_MAX, or a misuse (live_block says which). */
static MA_COLD void free_slow(fixed_t *fx, void *p, const char *what) {
    lock(fx);
    release(fx, live_block(fx, p, what, "double free"));
    unlock(fx);
}

/* The fast path: a small live block, checked (aligned, inside the arena,
 * its header sealed and in use, no tag yet), onto its class's stack. */
void ma_fixed_free(ma_heap_t *h, void *p, const char *what) {
    fixed_t *fx = h->fixed;
    hdr_t *b = (hdr_t *)p - 1;
    uint64_t off = off_of(fx, b), top = top_of(fx), secret = fx->sh->secret;
    if (MA_UNLIKELY(((uintptr_t)p & 15) || off - fx->arena >= top - fx->arena)) {
        free_slow(fx, p, what);   /* not even inside the arena: nothing read */
        return;
    }
    uint64_t w = word_of(b), size = size_of(w);
    if (MA_UNLIKELY(!(w & F_INUSE) || size > STACK_MAX || size < MIN_BLOCK || size > top - off ||
                    check_of(b) != ((w & ~F_PREV_FREE) ^ off ^ secret) ||
                    racy_load(&((stacked_t *)b)->tag) == (off ^ secret ^ STACKED))) {
        free_slow(fx, p, what);
        return;
    }
    stack_push(fx, b, class_down(size));
}

size_t ma_fixed_usable(ma_heap_t *h, const void *p, const char *what) {
    return (size_t)(bsize(live_block(h->fixed, p, what, what)) - HDR);
}

/* Stays in its heap: a file heap's data must not move out of the file. */
void *ma_fixed_realloc(ma_heap_t *h, void *p, size_t size) {
    size_t usable = ma_fixed_usable(h, p, "invalid realloc");
    if (size <= usable && size >= usable / 2) return p;
    void *q = ma_fixed_alloc(h, size, MA_ALIGN_MIN, false);
    if (q) {
        memcpy(q, p, size < usable ? size : usable);
        ma_fixed_free(h, p, "invalid realloc");
    }
    return q;
}

/* ---- Whole-heap calls ------------------------------------------------------ */

static uint64_t draw_secret(const void *salt) {
    uint64_t z = (uint64_t)ma_key ^ (uintptr_t)salt ^ ma_os_random();
    z += (atomic_fetch_add(&draws, 1) + 1) * MA_GOLDEN64;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) | 1;   /* never 0: the encoded 0 must differ from 0 */
}

/* Everything free, the stacks empty (their counters go on), the root gone;
 * a new secret voids every header written before. Lock held, or the heap
 * not yet published. */
static void empty_locked(fixed_t *fx) {
    fx_state_t *sh = fx->sh;
    for (unsigned c = 0; c < STACK_COUNT; c++) {
        uint64_t old = atomic_load_explicit(&sh->stacks[c].head, memory_order_relaxed);
        atomic_store_explicit(&sh->stacks[c].head, (old & ~UNIT_MASK) + ABA_ONE, memory_order_release);
    }
    sh->secret = draw_secret(sh);
    memset(sh->bin_map, 0, sizeof sh->bin_map);
    memset(sh->bins, 0, sizeof sh->bins);
    sh->top_prev_free = false;
    atomic_store_explicit(&sh->top, fx->arena, memory_order_release);
    atomic_store_explicit(&sh->root, 0, memory_order_relaxed);
}

void ma_fixed_reset(ma_heap_t *h) {
    fixed_t *fx = h->fixed;
    lock(fx);
    empty_locked(fx);
    unlock(fx);
}

/* Live blocks: in use, not stacked. */
int ma_fixed_visit(ma_heap_t *h, ma_heap_visit_fn *fn, void *arg) {
    fixed_t *fx = h->fixed;
    int rc = 0;
    lock(fx);
    uint64_t top = top_of(fx);
    for (hdr_t *b = ptr(fx, fx->arena); rc == 0 && off_of(fx, b) < top; b = at(b, bsize(b))) {
        uint64_t w = word_of(checked(fx, b));
        if ((w & F_INUSE) && !(size_of(w) <= STACK_MAX && is_stacked(fx, b)))
            rc = fn(b + 1, (size_t)(size_of(w) - HDR), arg);
    }
    unlock(fx);
    return rc;
}

/* A walk, like ma_heap_stats of a user heap. os_bytes: from the region's
 * start (new_in) to top, or the file's length. */
void ma_fixed_stats(ma_heap_t *h, ma_heap_stats_t *out) {
    fixed_t *fx = h->fixed;
    out->blocks_in_use = out->bytes_in_use = 0;
    lock(fx);
    uint64_t top = top_of(fx);
    for (hdr_t *b = ptr(fx, fx->arena); off_of(fx, b) < top; b = at(b, bsize(b))) {
        uint64_t w = word_of(checked(fx, b));
        if ((w & F_INUSE) && !(size_of(w) <= STACK_MAX && is_stacked(fx, b))) {
            out->blocks_in_use++;
            out->bytes_in_use += (size_t)(size_of(w) - HDR);
        }
    }
    out->os_bytes = fx->file ? (size_t)atomic_load(&fx->sh->committed) : (size_t)(fx->o + top - fx->lo);
    unlock(fx);
}

/* ---- Offsets and the root ---------------------------------------------------- */

uint64_t ma_fixed_offset(ma_heap_t *h, const void *p) {
    fixed_t *fx = h->fixed;
    if (p == NULL) return 0;
    uintptr_t a = (uintptr_t)p, o = (uintptr_t)fx->o;
    if (a < o || a - o >= fx->capacity) ma_diag_fatal_around("ma_heap_offset: ", p, " is not inside the heap");
    return a - o;
}

/* NULL for 0, and for an offset past what the file holds (reading there
 * would raise SIGBUS): offsets come from data, which may be wrong. */
void *ma_fixed_pointer(ma_heap_t *h, uint64_t off) {
    fixed_t *fx = h->fixed;
    if (off == 0 || off >= atomic_load_explicit(&fx->sh->committed, memory_order_acquire)) return NULL;
    return ptr(fx, off);
}

void ma_fixed_root_set(ma_heap_t *h, uint64_t off) {
    atomic_store_explicit(&((fixed_t *)h->fixed)->sh->root, off, memory_order_release);
}

uint64_t ma_fixed_root_get(ma_heap_t *h) {
    return atomic_load_explicit(&((fixed_t *)h->fixed)->sh->root, memory_order_acquire);
}

uint64_t ma_fixed_repairs(ma_heap_t *h) {
    return atomic_load_explicit(&((fixed_t *)h->fixed)->sh->repairs, memory_order_relaxed);
}

/* The heap's bytes in use, for ma_heap_sync: the state and [arena, top). */
int ma_fixed_sync(ma_heap_t *h) {
    fixed_t *fx = h->fixed;
    return ma_os_sync(fx->o, (size_t)top_of(fx), fx->fd);
}

/* ---- Format, check, recover (fileheap.c and ma_fixed_new) ------------------ */

uint64_t ma_fixed_checksum(const void *head) {
    const fx_head_t *hd = head;
    const uint64_t w[5] = {hd->magic, ((uint64_t)hd->version << 32) | hd->state_bytes, hd->capacity,
                           hd->arena, hd->lock_bytes};
    uint64_t z = 0x6d61706865617021ull;
    for (unsigned i = 0; i < 5; i++) {
        z = (z ^ w[i]) * MA_GOLDEN64;
        z ^= z >> 29;
    }
    return z;
}

/* A new, empty heap at origin (64-aligned) of `capacity` bytes, of which
 * `committed` are backed. The magic goes last: a heap whose making was cut
 * short is "not a heap". */
void ma_fixed_format(void *origin, uint64_t capacity, uint64_t committed) {
    fx_state_t *sh = origin;
    memset(sh, 0, sizeof *sh);
    fx_head_t *hd = &sh->head;
    hd->version = FX_VERSION;
    hd->state_bytes = (uint32_t)sizeof(fx_state_t);
    hd->capacity = capacity;
    hd->arena = ARENA_OFFSET;
    hd->lock_bytes = sizeof(pthread_mutex_t);
    init_lock(sh);
    fixed_t fx = {.o = origin, .sh = sh, .capacity = capacity, .arena = ARENA_OFFSET, .fd = -1};
    atomic_store_explicit(&sh->committed, committed, memory_order_relaxed);
    empty_locked(&fx);
    hd->magic = FX_MAGIC;
    hd->checksum = ma_fixed_checksum(hd);
}

size_t ma_fixed_head_size(void) { return sizeof(fx_head_t); }
size_t ma_fixed_arena_offset(void) { return ARENA_OFFSET; }
uint64_t ma_fixed_capacity_max(void) { return CAP_MAX; }

/* What is wrong with the header at head (a copy of the file's first bytes,
 * `len` of them, len >= sizeof(fx_head_t) unless the magic is wrong), or
 * NULL; *err gets the errno to report. */
const char *ma_fixed_check_head(const void *head, uint64_t file_len, int *err, uint64_t *capacity) {
    const fx_head_t *hd = head;
    *err = EINVAL;
    *capacity = hd->capacity;
    if (file_len < sizeof hd->magic || hd->magic != FX_MAGIC) return "not a mapalloc heap (no magic number)";
    if (file_len < sizeof *hd) return "truncated: shorter than a heap header";
    if (hd->version != FX_VERSION) {
        *err = ENOTSUP;
        return hd->version > FX_VERSION ? "made by a newer mapalloc (heap format version too high)"
                                        : "made by an older mapalloc (heap format version too low)";
    }
    if (hd->checksum != ma_fixed_checksum(hd)) return "corrupted header (checksum mismatch)";
    if (hd->state_bytes != sizeof(fx_state_t) || hd->lock_bytes != sizeof(pthread_mutex_t)) {
        *err = ENOTSUP;
        return "made by a mapalloc built for another platform (layout differs)";
    }
    if (hd->arena != ARENA_OFFSET || hd->capacity > CAP_MAX || hd->capacity < MA_HEAP_OPEN_MIN ||
        (hd->capacity & (MA_OS_PAGE - 1)))
        return "corrupted header (impossible sizes)";
    if (file_len < ARENA_OFFSET) return "truncated: shorter than the heap's state";
    return NULL;
}

/* The mutable state of a mapped heap whose header passed: the sizes hold
 * together and the file holds what they say. Other processes may be
 * growing it meanwhile: top is read before committed, committed before
 * the file's length, the reverse of the order they grow in. */
const char *ma_fixed_check_state(const void *origin, int fd, int *err) {
    const fx_state_t *sh = origin;
    uint64_t top = atomic_load_explicit(&sh->top, memory_order_acquire);
    uint64_t committed = atomic_load_explicit(&sh->committed, memory_order_acquire);
    int64_t file_len = ma_os_file_size(fd);
    *err = EINVAL;
    if (file_len < 0) {
        *err = errno;
        return "cannot use it";
    }
    if (committed > sh->head.capacity || top < ARENA_OFFSET || top > committed || (top & 15))
        return "corrupted state (impossible sizes)";
    if ((uint64_t)file_len < committed) return "truncated: the file is shorter than the heap";
    return NULL;
}

/* ---- The registry and the byte map ---------------------------------------- */

#define REG_PER_CHUNK 512u
#define REG_CHUNKS 64u

typedef struct reg_entry_s {
    _Atomic uintptr_t lo;          /* 0: a free slot; set last, cleared first */
    _Atomic uintptr_t hi;
    _Atomic(fixed_t *) fx;
    uintptr_t pad;
} reg_entry_t;

static ma_lock_t reg_lock = MA_LOCK_INIT(MA_RANK_FIXED_REGISTRY);
static _Atomic(reg_entry_t *) reg_chunks[REG_CHUNKS];  /* mapped on demand, kept */
static _Atomic uint32_t reg_used;                      /* slots [0, reg_used) may be live */

static reg_entry_t *reg_slot(uint32_t i) {
    reg_entry_t *chunk = atomic_load_explicit(&reg_chunks[i / REG_PER_CHUNK], memory_order_acquire);
    return &chunk[i % REG_PER_CHUNK];
}

static bool overlaps(const fixed_t *fx, uintptr_t lo, uintptr_t hi) {
    return lo < (uintptr_t)fx->hi && (uintptr_t)fx->lo < hi;
}

/* Is [lo, hi) inside one live block of r? A walk, but only ma_heap_new_in
 * asks. Registry lock held; r's lock may be ours already (visit's fn). */
static bool inside_live_block(fixed_t *r, uintptr_t lo, uintptr_t hi) {
    int rc = take(r);
    if (rc != 0 && rc != EDEADLK) ma_diag_fatal_around("heap ", r->heap, ": its lock is unusable");
    bool took = rc == 0, inside = false;
    uint64_t top = top_of(r);
    for (hdr_t *b = ptr(r, r->arena); off_of(r, b) < top; b = at(b, bsize(b))) {
        uintptr_t start = (uintptr_t)(b + 1), end = (uintptr_t)at(b, bsize(checked(r, b)));
        if (lo < end) {
            inside = (word_of(b) & F_INUSE) && !is_stacked(r, b) && lo >= start && hi <= end;
            break;
        }
    }
    if (took) unlock(r);
    return inside;
}

/* A new region must not overlap a live one, unless it lies inside a live
 * block of it (a heap in a block of another). Registry lock held. */
static bool clashes(uintptr_t lo, uintptr_t hi) {
    for (uint32_t i = 0; i < reg_used; i++) {
        reg_entry_t *e = reg_slot(i);
        fixed_t *r = atomic_load_explicit(&e->fx, memory_order_relaxed);
        if (atomic_load_explicit(&e->lo, memory_order_relaxed) && overlaps(r, lo, hi) &&
            !inside_live_block(r, lo, hi))
            return true;
    }
    return false;
}

static bool chunk_in_use(uintptr_t chunk) {
    for (uint32_t i = 0; i < reg_used; i++) {
        reg_entry_t *e = reg_slot(i);
        if (atomic_load_explicit(&e->lo, memory_order_relaxed) &&
            overlaps(atomic_load_explicit(&e->fx, memory_order_relaxed), chunk, chunk + MA_SEGMENT_SIZE))
            return true;
    }
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

static void mark(const fixed_t *fx) {
    uintptr_t last = ((uintptr_t)fx->hi - 1) & ~MA_SEGMENT_MASK;
    for (uintptr_t c = (uintptr_t)fx->lo & ~MA_SEGMENT_MASK; c <= last; c += MA_SEGMENT_SIZE)
        map_swap(c, MA_MAP_NONE, MA_MAP_FIXED);
}

/* fx is off the registry already: clear what no other live region needs. */
static void unmark(const fixed_t *fx) {
    uintptr_t last = ((uintptr_t)fx->hi - 1) & ~MA_SEGMENT_MASK;
    for (uintptr_t c = (uintptr_t)fx->lo & ~MA_SEGMENT_MASK; c <= last; c += MA_SEGMENT_SIZE)
        if (!chunk_in_use(c)) map_swap(c, MA_MAP_FIXED, MA_MAP_NONE);
}

/* The lowest free slot; its range goes in last, so a reader never sees a
 * range without its heap. Registry lock held. */
static bool reg_add(fixed_t *fx) {
    uint32_t i = 0;
    while (i < reg_used && atomic_load_explicit(&reg_slot(i)->lo, memory_order_relaxed)) i++;
    if (i >= REG_PER_CHUNK * REG_CHUNKS) return false;
    if (!atomic_load_explicit(&reg_chunks[i / REG_PER_CHUNK], memory_order_relaxed)) {
        reg_entry_t *chunk = ma_os_map(REG_PER_CHUNK * sizeof(reg_entry_t));
        if (!chunk) return false;
        atomic_store_explicit(&reg_chunks[i / REG_PER_CHUNK], chunk, memory_order_release);
    }
    reg_entry_t *e = reg_slot(i);
    atomic_store_explicit(&e->fx, fx, memory_order_relaxed);
    atomic_store_explicit(&e->hi, (uintptr_t)fx->hi, memory_order_relaxed);
    atomic_store_explicit(&e->lo, (uintptr_t)fx->lo, memory_order_release);
    if (i == reg_used) atomic_store_explicit(&reg_used, i + 1, memory_order_release);
    fx->reg = i;
    mark(fx);
    return true;
}

static void reg_remove(fixed_t *fx) {
    atomic_store_explicit(&reg_slot(fx->reg)->lo, 0, memory_order_release);
    unmark(fx);
}

/* The innermost live region holding p: regions nest only inside blocks,
 * so it is the containing one that starts highest. No lock: free() asks. */
ma_heap_t *ma_fixed_find(const void *p) {
    uintptr_t a = (uintptr_t)p, best_lo = 0;
    fixed_t *best = NULL;
    uint32_t used = atomic_load_explicit(&reg_used, memory_order_acquire);
    for (uint32_t i = 0; i < used; i++) {
        reg_entry_t *e = reg_slot(i);
        uintptr_t lo = atomic_load_explicit(&e->lo, memory_order_acquire);
        if (lo && a >= lo && lo >= best_lo && a < atomic_load_explicit(&e->hi, memory_order_relaxed)) {
            best_lo = lo;
            best = atomic_load_explicit(&e->fx, memory_order_relaxed);
        }
    }
    return best ? best->heap : NULL;
}

/* ---- Birth and death ------------------------------------------------------ */

/* A heap struct no thread can mistake for its own: nothing in its direct
 * table, its kind says where its blocks are. */
static ma_heap_t *heap_init(void *at_) {
    ma_heap_t *h = at_;
    memset(h, 0, sizeof *h);
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) h->direct[i] = &ma_page_empty;
    atomic_store_explicit(&h->kind, MA_HEAP_FIXED, memory_order_release);
    return h;
}

ma_heap_t *ma_fixed_new(void *base, size_t size) {
    uintptr_t lo = (uintptr_t)base;
    if (!base || (lo & 15) || size < MA_HEAP_IN_MIN || lo >= ((uintptr_t)1 << MA_ADDR_BITS) ||
        size > ((uintptr_t)1 << MA_ADDR_BITS) - lo) {
        errno = EINVAL;
        return NULL;
    }
    uintptr_t origin = (lo + HEAP_BYTES + sizeof(fixed_t) + 63) & ~(uintptr_t)63;
    uint64_t capacity = (uint64_t)((lo + (size & ~(size_t)15)) - origin) & ~(uint64_t)15;
    if (capacity > CAP_MAX) {
        errno = EINVAL;
        return NULL;
    }
    ma_lock(&reg_lock);
    if (clashes(lo, lo + size)) {
        ma_unlock(&reg_lock);
        errno = EINVAL;
        return NULL;
    }
    ma_heap_t *h = heap_init(base);
    fixed_t *fx = (fixed_t *)((uint8_t *)base + HEAP_BYTES);
    memset(fx, 0, sizeof *fx);
    *fx = (fixed_t){.o = (uint8_t *)origin, .sh = (fx_state_t *)origin, .capacity = capacity,
                    .arena = ARENA_OFFSET, .lo = base, .hi = (uint8_t *)lo + size, .heap = h, .fd = -1};
    fx->shared_mem = ma_os_is_shared(base, size);
    ma_fixed_format(fx->o, capacity, capacity);
    h->fixed = fx;
    if (!reg_add(fx)) {
        ma_unlock(&reg_lock);
        errno = ENOMEM;
        return NULL;
    }
    ma_unlock(&reg_lock);
    return h;
}

/* File heaps' handles: mapped, never unmapped, reused oldest first once a
 * few are waiting, so that a closed heap stays recognisably dead a while. */
#define HANDLE_BYTES ((HEAP_BYTES + sizeof(fixed_t) + MA_OS_PAGE - 1) & ~(size_t)(MA_OS_PAGE - 1))
#define HANDLE_KEEP 8u
static fixed_t *closed_first, *closed_last;  /* registry lock */
static uint32_t closed_count;                 /* registry lock */

static ma_heap_t *handle_take(void) {
    if (closed_count > HANDLE_KEEP) {
        fixed_t *fx = closed_first;
        closed_first = fx->next_closed;
        if (!closed_first) closed_last = NULL;
        closed_count--;
        return fx->heap;
    }
    return ma_os_map(HANDLE_BYTES);
}

/* A heap over a mapped file heap whose state has been checked: origin is
 * the mapping (map_size bytes), fd its file (kept for growth and sync). */
ma_heap_t *ma_fixed_attach(void *origin, size_t map_size, int fd) {
    ma_lock(&reg_lock);
    ma_heap_t *h = handle_take();
    if (!h) {
        ma_unlock(&reg_lock);
        errno = ENOMEM;
        return NULL;
    }
    heap_init(h);
    fixed_t *fx = (fixed_t *)((uint8_t *)h + HEAP_BYTES);
    fx_state_t *sh = origin;
    *fx = (fixed_t){.o = origin, .sh = sh, .capacity = sh->head.capacity, .arena = sh->head.arena,
                    .lo = origin, .hi = (uint8_t *)origin + map_size, .heap = h, .fd = fd,
                    .file = true, .shared_mem = true};
    h->fixed = fx;
    if (!reg_add(fx)) {
        atomic_store_explicit(&h->kind, MA_HEAP_DEAD, memory_order_release);
        fx->next_closed = NULL;   /* back to the pool, unused */
        if (closed_last) closed_last->next_closed = fx;
        else closed_first = fx;
        closed_last = fx;
        closed_count++;
        ma_unlock(&reg_lock);
        errno = ENOMEM;
        return NULL;
    }
    ma_unlock(&reg_lock);
    return h;
}

/* Opened alone (no other process has the file): the lock may be in any
 * state a crash or a power loss left it in, so it is made anew; then every
 * block is checked and every stacked one returned to the bins. Returns the
 * offset of an unreadable header, or 0. */
uint64_t ma_fixed_recover(void *origin) {
    fx_state_t *sh = origin;
    fixed_t fx = {.o = origin, .sh = sh, .capacity = sh->head.capacity, .arena = sh->head.arena, .fd = -1};
    uint64_t bad = verify(&fx);
    if (bad) return bad;
    init_lock(sh);
    return rebuild(&fx, true);
}

bool ma_fixed_is_file(ma_heap_t *h) { return ((fixed_t *)h->fixed)->file; }

void ma_fixed_file_of(ma_heap_t *h, void **origin, size_t *map_size, int *fd) {
    fixed_t *fx = h->fixed;
    *origin = fx->o;
    *map_size = (size_t)(fx->hi - fx->lo);
    *fd = fx->fd;
}

/* The heap leaves the registry and is marked dead; a new_in region goes
 * back to the caller as it is, a file heap's handle to the pool (the
 * caller, fileheap.c, unmaps and closes). Taking the heap's lock waits out
 * a call that broke the rules by running late. */
void ma_fixed_destroy(ma_heap_t *h) {
    fixed_t *fx = h->fixed;
    ma_lock(&reg_lock);
    reg_remove(fx);
    ma_unlock(&reg_lock);
    lock(fx);
    unlock(fx);
    atomic_store_explicit(&h->kind, MA_HEAP_DEAD, memory_order_release);
    if (!fx->file) return;
    ma_lock(&reg_lock);
    fx->next_closed = NULL;
    if (closed_last) closed_last->next_closed = fx;
    else closed_first = fx;
    closed_last = fx;
    closed_count++;
    ma_unlock(&reg_lock);
}

/* ---- fork ------------------------------------------------------------------
 * The registry lock is lock.c's and goes with the others. A heap in
 * private memory: its lock (robust, process-shared, so not one of lock.c's)
 * is taken too after those, so the child finds the heap whole, and the
 * child's copy, held by a thread it does not have, is made anew. It is
 * tried, never waited for while the others are held (lock.c says why);
 * one still busy after a few milliseconds is left, and the child makes it
 * anew all the same. A heap in shared memory (a file heap, or
 * ma_heap_new_in over MAP_SHARED memory) is the same heap in both: its lock
 * is left alone, and a holder in the parent releases it for both. */

#define FORK_TRIES 200   /* ma_os_pause rounds: about 10 ms */

void ma_fixed_fork_prepare(void) {
    if (ma_os_single_threaded()) return;   /* as lock.c: nobody else can hold one */
    for (uint32_t i = 0; i < reg_used; i++) {
        reg_entry_t *e = reg_slot(i);
        fixed_t *fx = atomic_load_explicit(&e->fx, memory_order_relaxed);
        if (!atomic_load_explicit(&e->lo, memory_order_relaxed)) continue;
        fx->fork_locked = false;
        if (fx->shared_mem) continue;
        for (unsigned round = 0; round < FORK_TRIES && !fx->fork_locked; round++) {
            int rc = pthread_mutex_trylock(&fx->sh->lock);
            if (rc == EOWNERDEAD) pthread_mutex_consistent(&fx->sh->lock);
            fx->fork_locked = rc == 0 || rc == EOWNERDEAD;
            if (!fx->fork_locked) ma_os_pause(round);
        }
    }
}

void ma_fixed_fork_parent(void) {
    if (ma_os_single_threaded()) return;
    for (uint32_t i = 0; i < reg_used; i++) {
        reg_entry_t *e = reg_slot(i);
        fixed_t *fx = atomic_load_explicit(&e->fx, memory_order_relaxed);
        if (atomic_load_explicit(&e->lo, memory_order_relaxed) && fx->fork_locked) unlock(fx);
    }
}

void ma_fixed_fork_child(void) {
    for (uint32_t i = 0; i < reg_used; i++) {
        reg_entry_t *e = reg_slot(i);
        fixed_t *fx = atomic_load_explicit(&e->fx, memory_order_relaxed);
        if (atomic_load_explicit(&e->lo, memory_order_relaxed) && !fx->shared_mem) init_lock(fx->sh);
    }
}
