/* cache-scratch - passive false sharing (after Hoard's cache-scratch).
 *
 * Main allocates one small object per thread, back to back, and hands one to
 * each thread. Each thread frees the object it was given, then repeatedly
 * allocates an object of the same size, writes every byte of it many times,
 * checks it and frees it. An allocator that gives the freed block (which
 * shares a cache line with its neighbours' blocks) back to the thread makes
 * the threads fight over that line.
 */
#include "common.h"

enum { OBJ_SIZE = 8, REPS = 2000, ITERS_PER_SCALE = 2000 };

typedef struct {
    char *given;      /* object allocated by main */
    long iters;
    uint64_t writes;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    free_tagged(w->given, OBJ_SIZE, 7);
    for (long i = 0; i < w->iters; i++) {
        volatile char *p = malloc(OBJ_SIZE);
        if (!p) bench_fail(2, "malloc failed");
        for (int k = 0; k < OBJ_SIZE; k++) p[k] = 0;
        for (int r = 0; r < REPS; r++)
            for (int k = 0; k < OBJ_SIZE; k++) p[k]++;
        for (int k = 0; k < OBJ_SIZE; k++)
            if (p[k] != (char)REPS) bench_fail(3, "lost a write at %p", (void *)p);
        w->writes += (uint64_t)REPS * OBJ_SIZE;
        free((void *)p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long total = (long)ITERS_PER_SCALE * a.scale;
    worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    for (int i = 0; i < a.threads; i++) {
        w[i].given = xmalloc_tagged(OBJ_SIZE, 7);
        w[i].iters = share(total, i, a.threads);
    }
    double t0 = now_s();
    run_threads(a.threads, worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t writes = 0;
    for (int i = 0; i < a.threads; i++) writes += w[i].writes;
    free(w);
    printf("RESULT writes=%llu gwrites_per_s=%.3f\n", (unsigned long long)writes,
           (double)writes / el / 1e9);
    return 0;
}
