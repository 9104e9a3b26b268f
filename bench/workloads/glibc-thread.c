/* glibc-thread - the glibc-simple loop run in T threads at once (after
 * glibc's bench-malloc-thread): per-thread fast paths and contention.
 */
#include "glibc-kernel.h"

enum { ROUNDS_PER_SCALE = 100 };

typedef struct {
    long rounds;
    uint64_t salt, sum;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    void **blocks = calloc(KERNEL_MAX_BATCH, sizeof *blocks);
    if (!blocks) bench_fail(2, "calloc failed");
    for (long r = 0; r < w->rounds; r++) w->sum += kernel_round(blocks, w->salt + (uint64_t)r);
    free(blocks);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long rounds = (long)ROUNDS_PER_SCALE * a.scale;
    worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    for (int i = 0; i < a.threads; i++) {
        w[i].rounds = share(rounds, i, a.threads);
        w[i].salt = a.seed + 7919u * (unsigned)i;
    }
    double t0 = now_s();
    run_threads(a.threads, worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t sum = 0;
    for (int i = 0; i < a.threads; i++) sum += w[i].sum;
    free(w);
    double n = (double)rounds * KERNEL_ROUND_BLOCKS;
    printf("RESULT pairs=%.0f checksum=%llu mpairs_per_s=%.2f\n", n,
           (unsigned long long)sum, n / el / 1e6);
    return 0;
}
