/* shares.c - known amounts from three functions, for the heap profiler.
 *
 *   shares [total_mb]
 *
 * Four threads allocate, in rounds, one block from each of alloc_60,
 * alloc_30 and alloc_10 of 6x, 3x and x bytes (x drawn log-uniform from
 * 16 B to 10 KiB, so blocks of 16 B to 64 KiB): 60%, 30% and 10% of the
 * bytes, exactly. Half of the blocks are freed at once by their thread, a
 * sixth later by the main thread (frees from another thread), the rest stay
 * live. At the end the program prints the truth,
 *
 *   TRUTH alloc <bytes of alloc_60> <alloc_30> <alloc_10>
 *   TRUTH live  <bytes of alloc_60> <alloc_30> <alloc_10>
 *
 * and exits; the profile written at exit is checked against it by
 * check_shares.sh with `go tool pprof -top`. Built with the standard names
 * (run with LD_PRELOAD) and with the ma_ names (the ma_ build).
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "ma_test.h"

#define THREADS 4
#define NOIPA __attribute__((noipa))

typedef struct {
    void *p;
    size_t size;
    int fn;       /* 0: alloc_60, 1: alloc_30, 2: alloc_10 */
} block_t;

typedef struct {
    uint64_t seed;
    size_t budget;                  /* bytes this thread allocates */
    block_t *later;                 /* blocks the main thread frees */
    size_t nlater, cap_later;
    uint64_t alloc[3], live[3];
} worker_t;

/* Each keeps its result alive past the call, so that the call is not a
 * tail call and the function has a frame of its own. */
NOIPA void *alloc_60(size_t n) {
    char *p = A_MALLOC(n);
    if (p) p[0] = 60;
    return p;
}

NOIPA void *alloc_30(size_t n) {
    char *p = A_MALLOC(n);
    if (p) p[0] = 30;
    return p;
}

NOIPA void *alloc_10(size_t n) {
    char *p = A_MALLOC(n);
    if (p) p[0] = 10;
    return p;
}

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *run(void *arg) {
    worker_t *w = arg;
    size_t done = 0;
    while (done < w->budget) {
        double u = (double)(next(&w->seed) >> 11) / 9007199254740992.0;
        size_t x = (size_t)exp(log(16.0) + u * (log(10923.0) - log(16.0)));
        size_t sizes[3] = {6 * x, 3 * x, x};
        for (int fn = 0; fn < 3; fn++) {
            void *p = fn == 0 ? alloc_60(sizes[fn]) : fn == 1 ? alloc_30(sizes[fn]) : alloc_10(sizes[fn]);
            if (!p) {
                fprintf(stderr, "out of memory\n");
                exit(2);
            }
            w->alloc[fn] += sizes[fn];
            done += sizes[fn];
            unsigned fate = (unsigned)(next(&w->seed) % 6);
            if (fate < 3) {             /* freed now */
                A_FREE(p);
            } else if (fate == 3) {     /* freed by the main thread */
                if (w->nlater == w->cap_later) {
                    w->cap_later = w->cap_later ? 2 * w->cap_later : 1024;
                    w->later = realloc(w->later, w->cap_later * sizeof *w->later);
                    if (!w->later) exit(2);
                }
                w->later[w->nlater++] = (block_t){p, sizes[fn], fn};
            } else {                    /* stays */
                w->live[fn] += sizes[fn];
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    size_t total = (size_t)(argc > 1 ? atol(argv[1]) : 400) << 20;
    static worker_t w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].seed = 0x5eed0000u + (uint64_t)i;
        w[i].budget = total / THREADS;
        if (pthread_create(&t[i], NULL, run, &w[i]) != 0) return 2;
    }
    uint64_t alloc[3] = {0}, live[3] = {0};
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        for (size_t k = 0; k < w[i].nlater; k++) A_FREE(w[i].later[k].p);
        for (int fn = 0; fn < 3; fn++) {
            alloc[fn] += w[i].alloc[fn];
            live[fn] += w[i].live[fn];
        }
        free(w[i].later);
    }
    printf("TRUTH alloc %llu %llu %llu\n", (unsigned long long)alloc[0], (unsigned long long)alloc[1],
           (unsigned long long)alloc[2]);
    printf("TRUTH live %llu %llu %llu\n", (unsigned long long)live[0], (unsigned long long)live[1],
           (unsigned long long)live[2]);
    return 0;
}
