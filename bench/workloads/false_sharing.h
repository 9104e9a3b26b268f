/* false_sharing.h - the body shared by cache-scratch and cache-thrash
 * (after Hoard's benchmarks of the same names).
 *
 * Each thread repeatedly allocates a small object, writes every byte of it
 * many times, checks it and frees it. With hand_out, main first allocates
 * one object per thread, back to back, and each thread starts by freeing
 * the one it was given (cache-scratch: passive false sharing); without,
 * the threads only use objects of their own (cache-thrash: active).
 */
#ifndef FALSE_SHARING_H
#define FALSE_SHARING_H
#include <stdbool.h>
#include "common.h"

enum { FS_OBJ_SIZE = 8, FS_REPS = 2000, FS_ITERS_PER_SCALE = 2000 };

typedef struct {
    char *given;      /* object allocated by main, or NULL */
    long iters;
    uint64_t writes;
} fs_worker_t;

static void *fs_worker(void *arg)
{
    fs_worker_t *w = arg;
    if (w->given) free_tagged(w->given, FS_OBJ_SIZE, 7);
    for (long i = 0; i < w->iters; i++) {
        volatile char *p = malloc(FS_OBJ_SIZE);
        if (!p) bench_fail(2, "malloc failed");
        for (int k = 0; k < FS_OBJ_SIZE; k++) p[k] = 0;
        for (int r = 0; r < FS_REPS; r++)
            for (int k = 0; k < FS_OBJ_SIZE; k++) p[k]++;
        for (int k = 0; k < FS_OBJ_SIZE; k++)
            if (p[k] != (char)FS_REPS) bench_fail(3, "lost a write at %p", (void *)p);
        w->writes += (uint64_t)FS_REPS * FS_OBJ_SIZE;
        free((void *)p);
    }
    return NULL;
}

static int false_sharing_main(int argc, char **argv, bool hand_out)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long total = (long)FS_ITERS_PER_SCALE * a.scale;
    fs_worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    for (int i = 0; i < a.threads; i++) {
        w[i].given = hand_out ? xmalloc_tagged(FS_OBJ_SIZE, 7) : NULL;
        w[i].iters = share(total, i, a.threads);
    }
    double t0 = now_s();
    run_threads(a.threads, fs_worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t writes = 0;
    for (int i = 0; i < a.threads; i++) writes += w[i].writes;
    free(w);
    printf("RESULT writes=%llu gwrites_per_s=%.3f\n", (unsigned long long)writes,
           (double)writes / el / 1e9);
    return 0;
}
#endif
