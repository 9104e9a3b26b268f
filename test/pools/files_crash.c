/* files_crash.c - processes hammer one heap file while one of them is
 * killed with SIGKILL at random moments, over and over.
 *
 *   pools_files_crash [seed [kills]]
 *   pools_files_crash worker PATH SEED      (exec'd by the test)
 *
 * The heap holds a table of slots (found through the root). Three workers,
 * each a separate program (fork + exec, so each maps the file where it
 * likes), loop: take a random slot; if it holds a block, check it (its own
 * offset, size and a pattern keyed by a tag) and free it (sometimes after
 * a realloc, which keeps it in the heap); if empty, allocate a block of a
 * mixed size (16 B .. 200 KiB, some aligned), fill it, and commit it by
 * putting its offset in the slot. Meanwhile the parent kills a random
 * worker after a random 1-15 ms, many times, and starts another in its
 * place. Then it stops the workers (each must have found every block it
 * took intact) and checks, once with the heap still open and once more
 * after opening it again alone (which takes back what the killed ones left):
 *  - every committed block is live (ma_heap_visit) and intact;
 *  - live blocks that no slot holds are at most one per kill (a worker dies
 *    with at most one block between the heap and its slot);
 * and after freeing all of them, one block of nearly the heap's whole size
 * fits: no space was lost. No timing is checked: the kill moments only
 * decide which states are tried.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"
#include "ma_test.h"

#define HEAP_SIZE (64 * MIB)
#define WORKERS 3
#define SLOTS 2048
#define HDR_WORDS 3 /* own offset, size, tag */

struct table {
    _Atomic uint64_t stop;
    _Atomic uint64_t bad;            /* blocks a worker found damaged */
    _Atomic uint64_t slots[SLOTS];   /* offsets of committed blocks, 0: empty */
};

static size_t block_size(rng_t *r)
{
    uint64_t x = rng_next(r) % 100;
    if (x < 70)
        return rng_range(r, 24, 400);
    if (x < 95)
        return rng_range(r, 400, 16 * KIB);
    return rng_range(r, 16 * KIB, 200 * KIB);
}

static int block_ok(ma_heap_t *h, uint64_t off)
{
    uint64_t *p = ma_heap_pointer(h, off);
    return p && p[0] == off && p[1] >= HDR_WORDS * 8 &&
           pattern_ok(p + HDR_WORDS, p[1] - HDR_WORDS * 8, p[2]);
}

/* ---- The worker ------------------------------------------------------------ */

static int worker(const char *path, uint64_t s)
{
    ma_heap_t *h = ma_heap_open(path, 0, 0);
    if (!h)
        return 10;
    struct table *t = ma_heap_pointer(h, ma_heap_root_get(h));
    if (!t)
        return 11;
    rng_t r = {s};
    while (!atomic_load(&t->stop)) {
        _Atomic uint64_t *slot = &t->slots[rng_next(&r) % SLOTS];
        uint64_t off = atomic_exchange(slot, 0);
        if (off) {
            if (!block_ok(h, off))
                atomic_fetch_add(&t->bad, 1);
            uint64_t *p = ma_heap_pointer(h, off);
            if (rng_next(&r) % 16 == 0)
                p = A_REALLOC(p, p[1] + 1000);
            A_FREE(p);
            continue;
        }
        size_t size = block_size(&r);
        uint64_t *p = rng_next(&r) % 16 == 0 ? ma_heap_aligned_alloc(h, 4096, size)
                                              : ma_heap_malloc(h, size);
        if (!p)
            continue; /* full for now */
        off = ma_heap_offset(h, p);
        p[0] = off;
        p[1] = size;
        p[2] = rng_next(&r);
        pattern_fill(p + HDR_WORDS, size - HDR_WORDS * 8, p[2]);
        uint64_t expected = 0;
        if (!atomic_compare_exchange_strong(slot, &expected, off))
            A_FREE(p);
    }
    ma_heap_close(h);
    return 0;
}

/* ---- The parent -------------------------------------------------------------- */

static char self[] = "/proc/self/exe";

static pid_t spawn(const char *path, uint64_t s)
{
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)s);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"pools_files_crash", "worker", (char *)path, seed_s, NULL};
        execv(self, argv);
        _exit(127);
    }
    return pid;
}

struct live_set {
    uint64_t *offs;
    size_t n, cap;
    ma_heap_t *h;
};

static int collect(void *block, size_t size, void *arg)
{
    struct live_set *l = arg;
    (void)size;
    if (l->n < l->cap)
        l->offs[l->n] = ma_heap_offset(l->h, block);
    l->n++;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every committed block live and intact; the live blocks no slot holds
 * (the table itself aside) in *orphans, their offsets in orphan_offs. */
static void verify(ma_heap_t *h, struct table *t, size_t *orphans, uint64_t *orphan_offs, size_t max)
{
    struct live_set l = {malloc(4 * SLOTS * sizeof(uint64_t)), 0, 4 * SLOTS, h};
    ma_heap_visit(h, collect, &l);
    if (!CHECK(l.n <= l.cap))
        return;
    qsort(l.offs, l.n, sizeof *l.offs, cmp_u64);
    size_t committed = 0, missing = 0, damaged = 0;
    uint64_t *held = malloc(SLOTS * sizeof *held);
    for (size_t i = 0; i < SLOTS; i++) {
        uint64_t off = atomic_load(&t->slots[i]);
        if (!off)
            continue;
        held[committed++] = off;
        missing += bsearch(&off, l.offs, l.n, sizeof off, cmp_u64) == NULL;
        damaged += !block_ok(h, off);
    }
    qsort(held, committed, sizeof *held, cmp_u64);
    uint64_t table_off = ma_heap_offset(h, t);
    *orphans = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.offs[i] != table_off && !bsearch(&l.offs[i], held, committed, sizeof *held, cmp_u64)) {
            if (*orphans < max)
                orphan_offs[*orphans] = l.offs[i];
            ++*orphans;
        }
    printf("    %zu blocks committed, %zu live, %zu orphans\n", committed, l.n, *orphans);
    CHECK_EQ_U(missing, 0);
    CHECK_EQ_U(damaged, 0);
    free(l.offs);
    free(held);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "worker") == 0)
        return worker(argv[2], strtoull(argv[3], NULL, 0));
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 99;
    unsigned kills = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 60;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "%.40s/pools_crash.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(path, sizeof path, "%s/heap", dir);

    ma_heap_t *h = ma_heap_open(path, HEAP_SIZE, MA_CREATE | MA_EXCL);
    struct table *t = h ? ma_heap_calloc(h, 1, sizeof *t) : NULL;
    if (!CHECK(t != NULL))
        return check_done();
    ma_heap_root_set(h, ma_heap_offset(h, t));

    rng_t r = {seed};
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pids[i] = spawn(path, seed * 100 + (uint64_t)i);
    unsigned signalled = 0;
    for (unsigned k = 0; k < kills; k++) {
        struct timespec ts = {0, (long)rng_range(&r, 1, 15) * 1000000L};
        nanosleep(&ts, NULL);
        int v = (int)(rng_next(&r) % WORKERS);
        kill(pids[v], SIGKILL);
        int status;
        waitpid(pids[v], &status, 0);
        /* a worker that had not started yet dies all the same */
        signalled += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                   (WIFEXITED(status) && WEXITSTATUS(status) == 0)))
            fprintf(stderr, "    worker %d: status 0x%x\n", (int)pids[v], status);
        pids[v] = spawn(path, seed * 100 + WORKERS + k);
    }
    atomic_store(&t->stop, 1);
    for (int i = 0; i < WORKERS; i++) {
        int status;
        waitpid(pids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK_EQ_U(atomic_load(&t->bad), 0);
    printf("pools_files_crash: seed %llu, %u workers killed, %llu repairs after a dead lock holder\n",
           (unsigned long long)seed, signalled, (unsigned long long)ma_fixed_repairs(h));

    size_t orphans;
    uint64_t orphan_offs[256];
    printf("  with the heap still open:\n");
    verify(h, t, &orphans, orphan_offs, 256);
    CHECK(orphans <= kills);
    CHECK_EQ_U(ma_heap_close(h), 0);

    printf("  opened again, alone:\n");
    h = ma_heap_open(path, 0, 0);
    if (!CHECK(h != NULL))
        return check_done();
    t = ma_heap_pointer(h, ma_heap_root_get(h));
    verify(h, t, &orphans, orphan_offs, 256);
    CHECK(orphans <= kills && orphans <= 256);
    /* everything freed: the heap must be whole again */
    for (size_t i = 0; i < SLOTS; i++)
        if (atomic_load(&t->slots[i]))
            A_FREE(ma_heap_pointer(h, t->slots[i]));
    for (size_t i = 0; i < orphans && i < 256; i++)
        A_FREE(ma_heap_pointer(h, orphan_offs[i]));
    A_FREE(t);
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    void *big = ma_heap_malloc(h, HEAP_SIZE - 2 * MIB);
    CHECK(big != NULL);
    CHECK_EQ_U(ma_heap_close(h), 0);
    unlink(path);
    rmdir(dir);
    return check_done();
}
