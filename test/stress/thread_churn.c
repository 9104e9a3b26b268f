/* thread_churn.c - 3000 short-lived threads, at most 8 alive at once.
 *
 *   thread_churn [seed]
 *
 * Each thread allocates a few hundred blocks, frees most of them, checks and
 * frees half of the blocks an earlier (finished) thread left behind, and
 * leaves a few of its own in a global array. The memory of finished threads
 * must be reused: the figure taken after the first 200 threads may grow by
 * at most 32 MiB until the end (both taken after a trim). The ma_ build reads ma_stats_get()'s
 * os_mapped; the preload build (-DUSE_STD=1) reads the resident set from
 * /proc/self/statm. At the end main checks and frees the blocks left.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define NTHREADS 3000
#define ALIVE 8
#define FIRST_FIGURE_AFTER 200
#define PER_THREAD 300
#define LEFT 8       /* blocks each thread leaves behind */
#define LEFT_EVERY 37 /* block i is left behind if i % LEFT_EVERY == 5 */
#define REAPED_LAG 16 /* thread i frees half of what thread i - 16 left */
#define SLACK (32 * MIB)

struct left_block {
    void *p;
    size_t size;
};

/* Row t is written by thread t, then by thread t + REAPED_LAG, which is
 * created after thread t was joined, then read by main after all joins. */
static struct left_block left[NTHREADS][LEFT];
static atomic_ulong failures;
static uint64_t seed = 777;

static void fail(const char *what, unsigned thread, size_t size)
{
    if (atomic_fetch_add(&failures, 1) < 10)
        fprintf(stderr, "thread_churn: %s (thread %u, size %zu)\n", what,
                thread, size);
}

static uint64_t tag_of(unsigned thread, unsigned i)
{
    return seed * 1000003 + (uint64_t)thread * PER_THREAD + i;
}

static size_t random_size(rng_t *r)
{
    uint64_t x = rng_next(r) % 1000;
    if (x < 900)
        return rng_range(r, 1, 512);
    if (x < 995)
        return rng_range(r, 513, 64 * KIB);
    return rng_range(r, 64 * KIB, 300 * KIB);
}

/* Checks and frees every other block that thread `t` left. */
static void reap_half(unsigned t)
{
    for (unsigned j = 0; j < LEFT; j += 2) {
        struct left_block *b = &left[t][j];
        if (b->p == NULL)
            continue;
        if (!pattern_ok(b->p, b->size, tag_of(t, j)))
            fail("left block changed before another thread freed it", t,
                 b->size);
        A_FREE(b->p);
        b->p = NULL;
    }
}

static void *thread_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    rng_t r = {seed + id};
    void *blocks[PER_THREAD];
    size_t sizes[PER_THREAD];
    unsigned nleft = 0;

    for (unsigned i = 0; i < PER_THREAD; i++) {
        int keep = i % LEFT_EVERY == 5 && nleft < LEFT;
        sizes[i] = keep ? rng_range(&r, 16, 512) : random_size(&r);
        blocks[i] = A_MALLOC(sizes[i]);
        if (blocks[i] == NULL) {
            fail("malloc failed", id, sizes[i]);
            continue;
        }
        if (keep) {
            pattern_fill(blocks[i], sizes[i], tag_of(id, nleft));
            left[id][nleft++] = (struct left_block){blocks[i], sizes[i]};
            blocks[i] = NULL;
        } else {
            pattern_fill(blocks[i], sizes[i], tag_of(id, i) + 1);
        }
    }
    if (id >= REAPED_LAG)
        reap_half(id - REAPED_LAG);
    for (unsigned k = 0; k < PER_THREAD; k++) {
        unsigned i = (unsigned)((k * 7919u + id) % PER_THREAD); /* shuffled */
        if (blocks[i] == NULL)
            continue;
        if (!pattern_ok(blocks[i], sizes[i], tag_of(id, i) + 1))
            fail("block changed", id, sizes[i]);
        A_FREE(blocks[i]);
    }
    return NULL;
}

/* The figure that must stay bounded, in bytes. Trimmed first: what is
 * left is what the live blocks and the heaps hold, not free memory still
 * waiting for its purge delay, which depends on how the threads were
 * scheduled (4 copies at once on 2 cores grew the untrimmed figure by
 * 40 MiB, 1 run in 60). */
static uint64_t memory_figure(void)
{
    A_TRIM(0);
#if USE_STD
    unsigned long vm = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%lu %lu", &vm, &rss) != 2)
        fail("cannot read /proc/self/statm", 0, 0);
    if (f)
        fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
#else
    ma_stats_t st;
    ma_stats_get(&st);
    return st.os_mapped;
#endif
}

static void join_all(pthread_t *alive, int *running)
{
    for (unsigned k = 0; k < ALIVE; k++) {
        if (running[k])
            pthread_join(alive[k], NULL);
        running[k] = 0;
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 0);
    static pthread_t alive[ALIVE];
    static int running[ALIVE];
    uint64_t first = 0;
    for (unsigned i = 0; i < NTHREADS; i++) {
        if (i == FIRST_FIGURE_AFTER) {
            join_all(alive, running);
            first = memory_figure();
        }
        unsigned s = i % ALIVE;
        if (running[s])
            pthread_join(alive[s], NULL);
        running[s] = pthread_create(&alive[s], NULL, thread_main,
                                    (void *)(uintptr_t)i) == 0;
        if (!running[s]) {
            fprintf(stderr, "pthread_create failed at thread %u\n", i);
            return 2;
        }
    }
    join_all(alive, running);
    uint64_t end = memory_figure();
    printf("thread_churn (%s): %s after %d threads %.1f MiB, after %d %.1f MiB\n",
           A_FLAVOUR, USE_STD ? "resident" : "os_mapped", FIRST_FIGURE_AFTER,
           first / 1048576.0, NTHREADS, end / 1048576.0);
    CHECK(first > 0);
    CHECK(end <= first + SLACK);

    unsigned long bad = 0, count = 0;
    for (unsigned t = 0; t < NTHREADS; t++) {
        for (unsigned j = 0; j < LEFT; j++) {
            struct left_block *b = &left[t][j];
            if (b->p == NULL)
                continue;
            count++;
            bad += !pattern_ok(b->p, b->size, tag_of(t, j));
            A_FREE(b->p);
        }
    }
    printf("%lu blocks left by threads checked and freed\n", count);
    CHECK(count >= (NTHREADS - REAPED_LAG) * LEFT / 2);
    CHECK(bad == 0);
    CHECK_EQ_U(atomic_load(&failures), 0);
    return check_done();
}
