/* workload.h - the workload of bench/fileheap, shared by the mapalloc side
 * (fileheap.c) and the Boost.Interprocess side (boost.cpp), so that both
 * run exactly the same operations.
 *
 * Each process keeps SLOTS slots; each operation picks a slot at random:
 * a block there is freed, an empty slot gets a new block (its first and
 * last 8 bytes written). Sizes by mix:
 *   small  16..512 bytes
 *   mixed  60% 16..128, 30% 128..1024, 9% 1..8 KiB, 1% 8..256 KiB
 * The generator is splitmix64, seeded per process.
 */
#ifndef FILEHEAP_WORKLOAD_H
#define FILEHEAP_WORKLOAD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 4096

static inline uint64_t wl_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline size_t wl_range(uint64_t *s, size_t lo, size_t hi) { return lo + wl_next(s) % (hi - lo + 1); }

static inline size_t wl_size(uint64_t *s, int mixed)
{
    if (!mixed)
        return wl_range(s, 16, 512);
    uint64_t x = wl_next(s) % 100;
    if (x < 60)
        return wl_range(s, 16, 128);
    if (x < 90)
        return wl_range(s, 129, 1024);
    if (x < 99)
        return wl_range(s, 1025, 8192);
    return wl_range(s, 8193, 256 * 1024);
}

static inline void wl_touch(void *p, size_t size)
{
    uint64_t v = size;
    memcpy(p, &v, 8 < size ? 8 : size);
    if (size >= 16)
        memcpy((char *)p + size - 8, &v, 8);
}

static inline double wl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs `ops` operations with ALLOC(size) and FREE(p); frees what is left.
 * A macro, so that each side's calls are direct. */
#define WL_RUN(slots, seed, ops, mixed, ALLOC, FREE)                  \
    do {                                                              \
        uint64_t wl_s = (seed);                                       \
        for (unsigned long wl_i = 0; wl_i < (ops); wl_i++) {          \
            size_t wl_k = wl_next(&wl_s) % SLOTS;                     \
            if ((slots)[wl_k]) {                                      \
                FREE((slots)[wl_k]);                                  \
                (slots)[wl_k] = 0;                                    \
                continue;                                             \
            }                                                         \
            size_t wl_n = wl_size(&wl_s, (mixed));                    \
            void *wl_p = ALLOC(wl_n);                                 \
            if (!wl_p)                                                \
                abort();                                              \
            wl_touch(wl_p, wl_n);                                     \
            (slots)[wl_k] = wl_p;                                     \
        }                                                             \
        for (size_t wl_k = 0; wl_k < SLOTS; wl_k++)                   \
            if ((slots)[wl_k]) {                                      \
                FREE((slots)[wl_k]);                                  \
                (slots)[wl_k] = 0;                                    \
            }                                                         \
    } while (0)

/* ---- Processes ------------------------------------------------------------
 * wl_processes(P, fn, ctx) forks P processes; each calls fn(i, ctx), which
 * prepares (opens the heap), calls wl_ready() when it is about to start,
 * and returns the seconds its run took. Every process starts together
 * (after all are ready); the result is the slowest one's time. */
static int wl_ready_fd[2], wl_go_fd[2], wl_out_fd[2];

static inline void wl_ready(void)
{
    char c = 1;
    if (write(wl_ready_fd[1], &c, 1) != 1 || read(wl_go_fd[0], &c, 1) != 1)
        _exit(3);
}

static inline double wl_processes(int procs, double (*fn)(int, void *), void *ctx)
{
    if (pipe(wl_ready_fd) || pipe(wl_go_fd) || pipe(wl_out_fd))
        abort();
    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            double t = fn(i, ctx);
            if (write(wl_out_fd[1], &t, sizeof t) != (ssize_t)sizeof t)
                _exit(3);
            _exit(0);
        }
    }
    char c;
    for (int i = 0; i < procs; i++)
        if (read(wl_ready_fd[0], &c, 1) != 1)
            abort();
    for (int i = 0; i < procs; i++)
        if (write(wl_go_fd[1], &c, 1) != 1)
            abort();
    double worst = 0;
    for (int i = 0; i < procs; i++) {
        double t = 0;
        if (read(wl_out_fd[0], &t, sizeof t) != (ssize_t)sizeof t)
            abort();
        if (t > worst)
            worst = t;
    }
    int bad = 0;
    for (int i = 0; i < procs; i++) {
        int st;
        wait(&st);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    for (int i = 0; i < 2; i++) {
        close(wl_ready_fd[i]);
        close(wl_go_fd[i]);
        close(wl_out_fd[i]);
    }
    return bad ? -1 : worst;
}

#endif
