/* stress_handoff.c - blocks allocated by one thread, checked and freed (or
 * realloc'ed) by another.
 *
 *   stress_handoff [seed [threads [rounds]]]
 *
 * Each round a thread allocates a block of a random size (mostly small,
 * some of 4 KiB-300 KiB, a few of 1-4 MiB), writes a header (size, tag) and
 * a pattern derived from the tag, and swaps it into a random slot of a
 * shared array (atomic_exchange). Whatever it gets back was written by some
 * other thread: it checks it, then frees it, or reallocs it, checks what was
 * kept, refills it and hands it on. The odd-numbered threads stop early while
 * their blocks are still in the slots, and fresh threads take their place;
 * at the end main checks and frees whatever is left.
 *
 * Threads never call CHECK (check.h is not thread-safe): they count
 * failures in an atomic, which main checks.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "ma_test.h"

#define NSLOTS 512
#define MAX_THREADS 64
#define HDR 16 /* size and tag, at the start of every block */
#define MAX_BLOCK (4 * MIB)

static _Atomic(uintptr_t) slots[NSLOTS];
static atomic_ulong failures;
static atomic_ulong handoffs;
static uint64_t seed = 12345;

struct worker {
    pthread_t thread;
    unsigned id;
    unsigned rounds;
};

static void fail(const char *what, const void *p, size_t size, size_t at)
{
    if (atomic_fetch_add(&failures, 1) < 10)
        fprintf(stderr, "stress_handoff: %s: block %p, size %zu, offset %zu\n",
                what, p, size, at);
}

static size_t random_size(rng_t *r)
{
    uint64_t x = rng_next(r) % 1000;
    if (x < 900)
        return rng_range(r, HDR, 512);
    if (x < 960)
        return rng_range(r, 513, 4 * KIB);
    if (x < 998)
        return rng_range(r, 4 * KIB, 300 * KIB);
    return rng_range(r, 1 * MIB, MAX_BLOCK);
}

static void write_block(unsigned char *p, size_t size, uint64_t tag)
{
    uint64_t hdr[2] = {size, tag};
    memcpy(p, hdr, HDR);
    pattern_fill(p + HDR, size - HDR, tag);
}

/* Checks a block written by write_block(); returns its size, 0 if bad. */
static size_t check_block(const unsigned char *p)
{
    uint64_t hdr[2];
    memcpy(hdr, p, HDR);
    size_t size = (size_t)hdr[0];
    if (size < HDR || size > MAX_BLOCK) {
        fail("header overwritten", p, size, 0);
        return 0;
    }
    if (A_USABLE(p) < size) {
        fail("usable size below the requested size", p, size, A_USABLE(p));
        return 0;
    }
    size_t at = pattern_find_bad(p + HDR, size - HDR, hdr[1]);
    if (at != size - HDR) {
        fail("contents changed", p, size, HDR + at);
        return 0;
    }
    return size;
}

static void *new_block(rng_t *r, unsigned id)
{
    size_t size = random_size(r);
    unsigned char *p = A_MALLOC(size);
    if (p == NULL) {
        fail("malloc failed", NULL, size, 0);
        return NULL;
    }
    write_block(p, size, mix64(seed ^ size) + id);
    return p;
}

static void check_and_free(void *p)
{
    check_block(p);
    A_FREE(p);
}

/* Reallocs a received block, checks the part kept, refills it. */
static void *grow_or_shrink(unsigned char *p, size_t size, rng_t *r)
{
    uint64_t hdr[2];
    memcpy(hdr, p, HDR);
    size_t n = random_size(r);
    unsigned char *q = A_REALLOC(p, n);
    if (q == NULL) {
        fail("realloc failed", p, n, 0);
        return p;
    }
    size_t keep = (size < n ? size : n) - HDR;
    size_t at = pattern_find_bad(q + HDR, keep, hdr[1]);
    if (memcmp(q, hdr, HDR) != 0 || at != keep)
        fail("realloc lost contents", q, n, HDR + at);
    write_block(q, n, mix64(seed ^ n) + 7);
    return q;
}

static void give(void *p, rng_t *r)
{
    size_t k = (size_t)(rng_next(r) % NSLOTS);
    void *old = (void *)atomic_exchange(&slots[k], (uintptr_t)p);
    if (old != NULL)
        check_and_free(old);
}

static void receive(unsigned char *p, rng_t *r)
{
    size_t size = check_block(p);
    atomic_fetch_add_explicit(&handoffs, 1, memory_order_relaxed);
    if (size != 0 && rng_next(r) % 4 == 0)
        give(grow_or_shrink(p, size, r), r);
    else
        A_FREE(p);
}

/* Some blocks that never leave the thread, freed in LIFO order. */
static void local_churn(rng_t *r, unsigned id)
{
    void *mine[8];
    int n = (int)rng_range(r, 1, 8);
    for (int i = 0; i < n; i++)
        mine[i] = new_block(r, id);
    for (int i = n - 1; i >= 0; i--)
        if (mine[i] != NULL)
            check_and_free(mine[i]);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    rng_t r = {seed * 1000003 + w->id};
    for (unsigned round = 0; round < w->rounds; round++) {
        void *p = new_block(&r, w->id);
        if (p == NULL)
            continue;
        size_t k = (size_t)(rng_next(&r) % NSLOTS);
        void *old = (void *)atomic_exchange(&slots[k], (uintptr_t)p);
        if (old != NULL)
            receive(old, &r);
        if (round % 16 == 0)
            local_churn(&r, w->id);
    }
    return NULL;
}

static void start(struct worker *w, unsigned id, unsigned rounds)
{
    w->id = id;
    w->rounds = rounds;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    unsigned nthreads = 4, rounds = 40000;
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 0);
    if (argc > 2)
        nthreads = (unsigned)strtoul(argv[2], NULL, 0);
    if (argc > 3)
        rounds = (unsigned)strtoul(argv[3], NULL, 0);
    if (nthreads < 2 || nthreads > MAX_THREADS / 2 || rounds < 4) {
        fprintf(stderr, "usage: %s [seed [threads 2..%d [rounds >= 4]]]\n",
                argv[0], MAX_THREADS / 2);
        return 2;
    }
    printf("stress_handoff (%s): seed %llu, %u threads, %u rounds\n",
           A_FLAVOUR, (unsigned long long)seed, nthreads, rounds);

    /* The odd-numbered threads stop after a quarter of the rounds, leaving
     * their blocks in the slots; each is replaced by a fresh thread. */
    static struct worker workers[MAX_THREADS];
    for (unsigned i = 0; i < nthreads; i++)
        start(&workers[i], i, i % 2 ? rounds / 4 : rounds);
    for (unsigned i = 1; i < nthreads; i += 2) {
        pthread_join(workers[i].thread, NULL);
        start(&workers[nthreads + i], nthreads + i, rounds / 2);
    }
    for (unsigned i = 0; i < nthreads; i += 2)
        pthread_join(workers[i].thread, NULL);
    for (unsigned i = 1; i < nthreads; i += 2)
        pthread_join(workers[nthreads + i].thread, NULL);

    unsigned long left = 0;
    for (size_t k = 0; k < NSLOTS; k++) {
        void *p = (void *)atomic_exchange(&slots[k], 0);
        if (p != NULL) {
            left++;
            check_and_free(p);
        }
    }
    printf("%lu blocks handed over, %lu left at the end\n",
           atomic_load(&handoffs), left);
    CHECK(atomic_load(&handoffs) > rounds / 2);
    CHECK(left > 0);
    CHECK_EQ_U(atomic_load(&failures), 0);
    return check_done();
}
