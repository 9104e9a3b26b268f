/* reclaim.c - memory that threads leave behind, free memory left resident,
 * and mmap failing while memory is free: it must all come back.
 *
 *   reclaim [MiB]        (default 64)
 *
 *  - left_behind: a worker builds MiB of blocks and exits; main frees them
 *    (every free a cross-thread one, into the worker's abandoned heap) and
 *    builds as much of its own. Its blocks must reuse the worker's memory:
 *    the resident set may grow by at most 1.5x MiB in all, where keeping
 *    the worker's memory would take 2x.
 *  - idle_return: then main frees everything and calls nothing more: the
 *    resident set must come back within 16 MiB of where it started, by
 *    itself (the background purger), within 5 s (it takes about 0.5 s).
 *  - fork_purger: a child of this (threaded) process does the same.
 *  - enomem_retry: in a child under RLIMIT_AS, fill the
 *    address space with 100 KB blocks, free them, then take 1 MiB blocks:
 *    at least 80% as many bytes must come back (mmap fails, the allocator
 *    must release what it holds free and try again).
 *  - user_heap_remote (ma_ names only): blocks of a user heap freed by
 *    another thread, then the heap destroyed at once: that thread must not
 *    keep them in a batch to send later into unmapped memory.
 * Under TSan (reclaim_tsan) the fork cases are left out: TSan allows no
 * thread in a child of a threaded process, and takes the address space.
 * What is measured: with the standard names, the resident set
 * (/proc/self/statm); with the ma_ names, the bytes mapped and not purged
 * (ma_stats_get's os_committed), which TSan's shadow memory does not blur.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#ifndef RECLAIM_TSAN
#define RECLAIM_TSAN 0   /* TSan reserves most of the address space: no RLIMIT_AS test */
#endif

static size_t total_bytes = 64 * MIB;

static size_t rss(void)
{
#if !USE_STD
    ma_stats_t st;
    ma_stats_get(&st);
    return st.os_committed;
#endif
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct {
    void **blocks;
    size_t count;
    size_t bytes;
} batch_t;

/* Blocks of 100 B to 8 KiB until `bytes`, each written whole. */
static void build(batch_t *b, size_t bytes, uint64_t seed)
{
    rng_t r = {seed * 1000003};
    size_t cap = bytes / 100 + 1;
    b->blocks = malloc(cap * sizeof *b->blocks);   /* libc's in the ma_ build */
    b->count = 0;
    b->bytes = 0;
    while (b->bytes < bytes && b->count < cap) {
        size_t n = rng_range(&r, 100, 8192);
        void *p = A_MALLOC(n);
        if (!CHECK(p != NULL)) break;
        memset(p, 0x5a, n);
        b->blocks[b->count++] = p;
        b->bytes += n;
    }
}

static void release(batch_t *b)
{
    for (size_t i = 0; i < b->count; i++) A_FREE(b->blocks[i]);
    free(b->blocks);
    b->blocks = NULL;
    b->count = 0;
}

static batch_t worker_batch;

static void *worker(void *arg)
{
    (void)arg;
    build(&worker_batch, total_bytes, 11);
    return NULL;
}

/* Polls the resident set for up to 5 s; true once it is below limit. */
static int comes_back_below(size_t limit, double *after_s)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100; i++) {
        if (rss() < limit) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            *after_s = (double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
            return 1;
        }
        usleep(50 * 1000);
    }
    return 0;
}

static void left_behind_then_idle(size_t base)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0 && pthread_join(t, NULL) == 0);
    release(&worker_batch);  /* every free goes to the worker's abandoned heap */
    batch_t mine;
    build(&mine, total_bytes, 12);
    size_t peak = rss();
    printf("-- left_behind: %zu MiB built twice, resident %zu -> %zu MiB (limit %zu)\n",
           total_bytes / MIB, base / MIB, peak / MIB, (base + total_bytes * 3 / 2) / MIB);
    CHECK(peak < base + total_bytes * 3 / 2);
    release(&mine);
    double s = 0;
    int back = comes_back_below(base + 16 * MIB, &s);
    printf("-- idle_return: resident %zu MiB after the frees; %s after %.2f s\n", rss() / MIB,
           back ? "back" : "NOT back", s);
    CHECK(back);
}

#if !RECLAIM_TSAN  /* TSan: no threads after a threaded fork, no RLIMIT_AS */
static void fork_purger(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        size_t base = rss();
        batch_t b;
        build(&b, total_bytes, 13);
        release(&b);
        double s;
        _exit(comes_back_below(base + 16 * MIB, &s) ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    printf("-- fork_purger: child %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAILED");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* In a child: RLIMIT_AS at what is mapped now plus `room`. */
static void enomem_retry(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        size_t vm = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (f && fscanf(f, "%lu", &pages) == 1) vm = pages * (size_t)sysconf(_SC_PAGESIZE);
        if (f) fclose(f);
        size_t room = 2 * total_bytes + 64 * MIB;
        struct rlimit rl = {vm + room, vm + room};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(2);
        enum { MAXB = 1 << 16 };
        static void *p[MAXB];
        size_t n = 0, small = 0, big = 0;
        while (n < MAXB && small < room && (p[n] = A_MALLOC(100 * 1000)) != NULL) {
            memset(p[n], 1, 4096);
            small += 100 * 1000;
            n++;
        }
        for (size_t i = 0; i < n; i++) A_FREE(p[i]);
        size_t m = 0;
        while (m < MAXB && (p[m] = A_MALLOC(MIB)) != NULL) {
            memset(p[m], 2, 4096);
            big += MIB;
            m++;
        }
        printf("-- enomem_retry: %zu MiB of 100 KB blocks, then %zu MiB of 1 MiB blocks\n", small / MIB,
               big / MIB);
        fflush(stdout);
        _exit(small > 32 * MIB && big >= small / 10 * 8 ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
#endif

#if !USE_STD
static ma_heap_t *uheap;
static void *uheap_blocks[200];
static pthread_mutex_t step_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t step_cond = PTHREAD_COND_INITIALIZER;
static int step;

static void wait_step(int s)
{
    pthread_mutex_lock(&step_lock);
    while (step < s) pthread_cond_wait(&step_cond, &step_lock);
    pthread_mutex_unlock(&step_lock);
}

static void set_step(int s)
{
    pthread_mutex_lock(&step_lock);
    step = s;
    pthread_cond_broadcast(&step_cond);
    pthread_mutex_unlock(&step_lock);
}

static void *user_heap_freer(void *arg)
{
    (void)arg;
    void *mine = ma_malloc(64);  /* this thread has a heap: its remote frees may batch */
    wait_step(1);
    for (int i = 0; i < 200; i++) ma_free(uheap_blocks[i]);
    set_step(2);
    wait_step(3);  /* the heap is destroyed now */
    for (int i = 0; i < 20000; i++) ma_free(ma_malloc(48 + (size_t)i % 2000));
    ma_free(mine);
    return NULL;
}

static void user_heap_remote(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, user_heap_freer, NULL) == 0);
    uheap = ma_heap_new();
    for (int i = 0; i < 200; i++) uheap_blocks[i] = ma_heap_malloc(uheap, 32 + (size_t)i % 64);
    set_step(1);
    wait_step(2);
    ma_heap_destroy(uheap);
    set_step(3);
    CHECK(pthread_join(t, NULL) == 0);
    printf("-- user_heap_remote: done\n");
}
#endif

int main(int argc, char **argv)
{
    if (argc > 1) total_bytes = (size_t)atol(argv[1]) * MIB;
    printf("reclaim (%s)\n", A_FLAVOUR);
    size_t base = rss();
    left_behind_then_idle(base);
#if !RECLAIM_TSAN  /* TSan: no threads after a threaded fork, no RLIMIT_AS */
    fork_purger();
    enomem_retry();
#endif
#if !USE_STD
    user_heap_remote();
#endif
    return check_done();
}
