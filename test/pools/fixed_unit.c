/* fixed_unit.c - fixed.c (heaps inside caller memory) tested directly,
 * through its internal interface (src/internal.h).
 *
 *   pools_fixed_unit [seed]
 *
 *  - ma_fixed_new rejects a misaligned base, a short region, and a region
 *    overlapping a live one; marks the byte map; ma_fixed_find finds the
 *    innermost region, and nothing after ma_fixed_destroy;
 *  - a seeded run of allocations (sizes 0..64 KiB, alignments 16..64 KiB,
 *    some zeroed) and frees checked against a model: contents, alignment,
 *    usable sizes, visit, stats;
 *  - filling to ENOMEM writes nothing outside the region (guard bytes), and
 *    after freeing everything the whole arena is one block again;
 *  - a region of 8 GiB (reserved, barely touched): blocks past 4 GiB;
 *  - one thread allocating while three others free, for TSan.
 *
 * Threads never call CHECK (check.h is not thread-safe): they count
 * failures in an atomic, which main checks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>

#include "check.h"
#include "internal.h"
#include "ma_test.h"

#define REGION (8 * MIB)
#define GUARD (64 * KIB)
#define SLOTS 2000

struct slot {
    unsigned char *p;
    size_t size;
    uint64_t tag;
};

static struct slot slots[SLOTS];

static unsigned char *map_guarded(size_t size)
{
    unsigned char *m = mmap(NULL, size + 2 * GUARD, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    memset(m, 0xa5, size + 2 * GUARD);
    return m + GUARD;
}

static int guards_intact(const unsigned char *region, size_t size)
{
    for (size_t i = 0; i < GUARD; i++)
        if (region[-1 - (ptrdiff_t)i] != 0xa5 || region[size + i] != 0xa5)
            return 0;
    return 1;
}

static void test_new(void)
{
    static _Alignas(64) unsigned char small[MA_HEAP_IN_MIN + 64];
    errno = 0;
    CHECK(ma_fixed_new(small + 8, MA_HEAP_IN_MIN) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ma_fixed_new(small, MA_HEAP_IN_MIN - 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ma_fixed_new(NULL, MA_HEAP_IN_MIN) == NULL && errno == EINVAL);

    ma_heap_t *h = ma_fixed_new(small, MA_HEAP_IN_MIN);
    if (!CHECK(h != NULL))
        return;
    CHECK_EQ_PTR(h, small);
    CHECK_EQ_U(h->kind, MA_HEAP_FIXED);
    CHECK_EQ_PTR(h->direct[1], &ma_page_empty);
    CHECK_EQ_U(ma_map_value(small), MA_MAP_FIXED);
    CHECK_EQ_PTR(ma_fixed_find(small + 1000), h);
    CHECK_EQ_PTR(ma_fixed_find(small + MA_HEAP_IN_MIN), NULL);
    /* the same region again, or one straddling it: refused */
    errno = 0;
    CHECK(ma_fixed_new(small, MA_HEAP_IN_MIN) == NULL && errno == EINVAL);
    void *p = ma_fixed_alloc(h, 100, 16, false);
    CHECK(p != NULL);
    ma_fixed_destroy(h);
    CHECK_EQ_PTR(ma_fixed_find(p), NULL);
}

/* A heap inside a block of another: pointers go to the inner one. */
static void test_nested(void)
{
    unsigned char *region = map_guarded(REGION);
    ma_heap_t *outer = ma_fixed_new(region, REGION);
    unsigned char *block = ma_fixed_alloc(outer, 1 * MIB, 16, false);
    /* in free space, or past the end of the block: refused */
    errno = 0;
    CHECK(ma_fixed_new(region + 4 * MIB, 1 * MIB) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(block && ma_fixed_new(block + 64 * KIB, 1 * MIB) == NULL && errno == EINVAL);
    ma_heap_t *inner = block ? ma_fixed_new(block, 1 * MIB) : NULL;
    if (!CHECK(inner != NULL))
        return;
    void *p = ma_fixed_alloc(inner, 64, 16, false);
    void *q = ma_fixed_alloc(outer, 64, 16, false);
    CHECK_EQ_PTR(ma_fixed_find(p), inner);
    CHECK_EQ_PTR(ma_fixed_find(q), outer);
    ma_fixed_free(inner, p, "invalid free");
    ma_fixed_destroy(inner);
    CHECK_EQ_PTR(ma_fixed_find(block), outer);
    CHECK_EQ_U(ma_map_value(region), MA_MAP_FIXED); /* the outer still needs it */
    ma_fixed_free(outer, block, "invalid free");
    ma_fixed_free(outer, q, "invalid free");
    ma_fixed_destroy(outer);
    CHECK_EQ_U(ma_map_value(region), MA_MAP_NONE);
    CHECK_EQ_U(ma_map_value(region + REGION - 1), MA_MAP_NONE);
    CHECK(guards_intact(region, REGION));
    munmap(region - GUARD, REGION + 2 * GUARD);
}

struct tally {
    size_t blocks, bytes, unknown;
};

static int count_block(void *block, size_t size, void *arg)
{
    struct tally *t = arg;
    int known = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (slots[i].p == block)
            known = size >= slots[i].size;
    t->blocks++;
    t->bytes += size;
    t->unknown += !known;
    return 0;
}

static size_t random_size(rng_t *r)
{
    uint64_t x = rng_next(r) % 100;
    if (x < 70)
        return rng_range(r, 0, 256);
    if (x < 95)
        return rng_range(r, 257, 8 * KIB);
    return rng_range(r, 8 * KIB, 64 * KIB);
}

static void check_against_model(ma_heap_t *h)
{
    struct tally t = {0, 0, 0};
    size_t blocks = 0, bytes = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            blocks++;
            bytes += ma_fixed_usable(h, slots[i].p, "invalid malloc_usable_size");
        }
    CHECK_EQ_U(ma_fixed_visit(h, count_block, &t), 0);
    CHECK_EQ_U(t.blocks, blocks);
    CHECK_EQ_U(t.bytes, bytes);
    CHECK_EQ_U(t.unknown, 0);
    ma_heap_stats_t st;
    ma_fixed_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, blocks);
    CHECK_EQ_U(st.bytes_in_use, bytes);
    CHECK(st.os_bytes <= REGION);
}

static void free_slot(ma_heap_t *h, struct slot *s, unsigned long *bad)
{
    if (!pattern_ok(s->p, s->size, s->tag))
        (*bad)++;
    ma_fixed_free(h, s->p, "invalid free");
    s->p = NULL;
}

static void random_ops(ma_heap_t *h, uint64_t seed, unsigned rounds)
{
    rng_t r = {seed};
    unsigned long bad = 0, misaligned = 0, short_usable = 0, not_zero = 0;
    for (unsigned n = 0; n < rounds; n++) {
        struct slot *s = &slots[rng_next(&r) % SLOTS];
        if (s->p) {
            free_slot(h, s, &bad);
            continue;
        }
        size_t size = random_size(&r);
        size_t align = (size_t)16 << (rng_next(&r) % 4 == 0 ? rng_next(&r) % 13 : 0);
        bool zero = rng_next(&r) % 4 == 0;
        s->p = ma_fixed_alloc(h, size, align, zero);
        if (!s->p)
            continue; /* full: fine, frees will make room */
        misaligned += ((uintptr_t)s->p & (align - 1)) != 0;
        short_usable += ma_fixed_usable(h, s->p, "usable") < size;
        not_zero += zero && !all_zero(s->p, size);
        s->size = size;
        s->tag = rng_next(&r);
        pattern_fill(s->p, size, s->tag);
    }
    CHECK_EQ_U(bad, 0);
    CHECK_EQ_U(misaligned, 0);
    CHECK_EQ_U(short_usable, 0);
    CHECK_EQ_U(not_zero, 0);
    check_against_model(h);
    for (size_t i = 0; i < SLOTS; i++)
        if (slots[i].p)
            free_slot(h, &slots[i], &bad);
    CHECK_EQ_U(bad, 0);
    check_against_model(h);
}

/* Blocks of 100..600 bytes until ENOMEM; returns how many. */
static size_t fill(ma_heap_t *h, void **out, size_t max, rng_t *r)
{
    size_t n = 0;
    for (;;) {
        errno = 0;
        void *p = ma_fixed_alloc(h, rng_range(r, 100, 600), 16, false);
        if (!p)
            break;
        if (n < max)
            out[n] = p;
        memset(p, 0x5a, 100);
        n++;
    }
    CHECK_EQ_U(errno, ENOMEM);
    return n;
}

static void test_fill(uint64_t seed)
{
    size_t max = REGION / 100;
    void **blocks = malloc(max * sizeof *blocks);
    unsigned char *region = map_guarded(REGION);
    ma_heap_t *h = ma_fixed_new(region, REGION);
    rng_t r = {seed};
    size_t first = fill(h, blocks, max, &r);
    CHECK(first > REGION / 700);
    CHECK(guards_intact(region, REGION));
    ma_heap_stats_t st;
    ma_fixed_stats(h, &st);
    CHECK(st.os_bytes > REGION - 1024 && st.os_bytes <= REGION);
    /* free every other block, then the rest: both coalescing directions */
    for (size_t i = 0; i < first; i += 2)
        ma_fixed_free(h, blocks[i], "invalid free");
    for (size_t i = 1; i < first; i += 2)
        ma_fixed_free(h, blocks[i], "invalid free");
    ma_fixed_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    /* one block over (almost) the whole region again */
    void *big = ma_fixed_alloc(h, REGION - 16 * KIB, 16, false);
    CHECK(big != NULL);
    ma_fixed_free(h, big, "invalid free");
    r.s = seed;
    size_t second = fill(h, blocks, max, &r);
    CHECK(second + second / 100 >= first && first + first / 100 >= second);
    CHECK(guards_intact(region, REGION));
    ma_fixed_reset(h);
    ma_fixed_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    CHECK_EQ_U(st.bytes_in_use, 0);
    CHECK(st.os_bytes < 16 * KIB);
    big = ma_fixed_alloc(h, REGION - 128 * KIB, 64 * KIB, true);
    CHECK(big != NULL && ((uintptr_t)big & (64 * KIB - 1)) == 0);
    ma_fixed_destroy(h);
    CHECK(guards_intact(region, REGION));
    munmap(region - GUARD, REGION + 2 * GUARD);
    free(blocks);
}

/* A region past 4 GiB (reserved, hardly touched): sizes above 32 bits. */
static void test_huge(void)
{
    size_t size = (size_t)8 << 30;
    unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        printf("no 8 GiB of address space: huge region skipped\n");
        return;
    }
    ma_heap_t *h = ma_fixed_new(m, size);
    /* small first: after big it may land past it (where depends on the
     * header's size and big's alignment), and 7 GiB would not fit */
    void *small = h ? ma_fixed_alloc(h, 100, 16, false) : NULL;
    unsigned char *big = h ? ma_fixed_alloc(h, (size_t)5 << 30, 4096, false) : NULL;
    if (CHECK(big != NULL && small != NULL)) {
        CHECK(ma_fixed_usable(h, big, "usable") >= (size_t)5 << 30);
        CHECK_EQ_PTR(ma_fixed_find(big + ((size_t)5 << 30) - 1), h);
        errno = 0;
        CHECK(ma_fixed_alloc(h, (size_t)4 << 30, 16, false) == NULL && errno == ENOMEM);
        ma_fixed_free(h, big, "invalid free");
        big = ma_fixed_alloc(h, (size_t)7 << 30, 16, false); /* coalesced again */
        CHECK(big != NULL);
    }
    if (h)
        ma_fixed_destroy(h);
    munmap(m, size);
}

/* ---- One allocating thread, three freeing ------------------------------ */

#define RING 256
#define FREERS 3
#define HANDOFFS 20000

static _Atomic(uintptr_t) ring[RING];
static atomic_ulong failures;
static atomic_bool done;
static ma_heap_t *shared_heap;

static void *freer(void *arg)
{
    rng_t r = {(uint64_t)(uintptr_t)arg};
    for (;;) {
        bool last = atomic_load(&done);
        int empty = 1;
        /* one offset per pass: the pass must visit every slot, or a
         * last block could be left behind when `last` is seen */
        size_t off = (size_t)rng_next(&r);
        for (size_t i = 0; i < RING; i++) {
            uintptr_t v = atomic_exchange(&ring[(i + off) % RING], 0);
            if (!v)
                continue;
            empty = 0;
            unsigned char *p = (unsigned char *)v;
            size_t size;
            memcpy(&size, p, sizeof size);
            if (!pattern_ok(p + 8, size - 8, size))
                atomic_fetch_add(&failures, 1);
            ma_fixed_free(shared_heap, p, "invalid free");
        }
        if (last && empty)
            return NULL;
    }
}

static void test_threads(uint64_t seed)
{
    unsigned char *region = map_guarded(REGION);
    shared_heap = ma_fixed_new(region, REGION);
    pthread_t t[FREERS];
    for (uintptr_t i = 0; i < FREERS; i++)
        pthread_create(&t[i], NULL, freer, (void *)(seed + i));
    rng_t r = {seed};
    for (unsigned n = 0; n < HANDOFFS; n++) {
        size_t size = rng_range(&r, 16, 2000);
        unsigned char *p = ma_fixed_alloc(shared_heap, size, 16, false);
        if (!p) { /* full: let the freers catch up */
            n--;
            continue;
        }
        memcpy(p, &size, sizeof size);
        pattern_fill(p + 8, size - 8, size);
        size_t i = rng_next(&r) % RING;
        while (atomic_load(&ring[i]) != 0)
            i = (i + 1) % RING;
        atomic_store(&ring[i], (uintptr_t)p);
    }
    atomic_store(&done, true);
    for (size_t i = 0; i < FREERS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_U(atomic_load(&failures), 0);
    ma_heap_stats_t st;
    ma_fixed_stats(shared_heap, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    ma_fixed_destroy(shared_heap);
    CHECK(guards_intact(region, REGION));
    munmap(region - GUARD, REGION + 2 * GUARD);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 4321;
    test_new();
    test_nested();
    unsigned char *region = map_guarded(REGION);
    ma_heap_t *h = ma_fixed_new(region, REGION);
    random_ops(h, seed, 200000);
    ma_fixed_reset(h);
    random_ops(h, seed + 1, 100000);
    ma_fixed_destroy(h);
    CHECK(guards_intact(region, REGION));
    munmap(region - GUARD, REGION + 2 * GUARD);
    test_fill(seed);
    test_huge();
    test_threads(seed);
    return check_done();
}
