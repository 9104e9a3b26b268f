/* sh6bench - batches of growing sizes freed in varying order (after
 * MicroQuill's SmartHeap sh6bench).
 *
 * Each thread repeatedly allocates a batch of BATCH blocks whose sizes grow
 * across the batch (the size range changes from pass to pass), then frees
 * the batch in LIFO, FIFO, random or odd-then-even order, turn by turn.
 */
#include "common.h"

enum { BATCH = 1000, BLOCKS_PER_SCALE = 250000 };

static const size_t ranges[][2] = {
    { 8, 64 }, { 64, 512 }, { 8, 256 }, { 512, 4096 }, { 16, 2048 },
};
enum { NRANGES = sizeof ranges / sizeof ranges[0] };

typedef struct {
    long passes;
    rng_t rng;
    uint64_t bytes;
} worker_t;

static void fill_batch(slot_t *b, long pass, uint64_t *bytes)
{
    size_t lo = ranges[pass % NRANGES][0], hi = ranges[pass % NRANGES][1];
    for (size_t k = 0; k < BATCH; k++) {
        size_t n = lo + k * (hi - lo) / BATCH;
        slot_put(&b[k], n, (uint64_t)pass + k);
        *bytes += n;
    }
}

/* index of the i-th block to free, in the order chosen for this pass */
static size_t free_index(size_t i, long pass, const uint32_t *perm)
{
    switch (pass % 4) {
    case 0: return BATCH - 1 - i;                            /* LIFO */
    case 1: return i;                                        /* FIFO */
    case 2: return perm[i];                                  /* random */
    default: return i < BATCH / 2 ? 2 * i + 1 : 2 * (i - BATCH / 2);
    }
}

static void shuffle(uint32_t *perm, rng_t *r)
{
    for (uint32_t i = 0; i < BATCH; i++) perm[i] = i;
    for (uint32_t i = BATCH - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(rng_next(r) % (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    slot_t *b = calloc(BATCH, sizeof *b);
    uint32_t *perm = calloc(BATCH, sizeof *perm);
    if (!b || !perm) bench_fail(2, "calloc failed");
    for (long pass = 0; pass < w->passes; pass++) {
        fill_batch(b, pass, &w->bytes);
        if (pass % 4 == 2) shuffle(perm, &w->rng);
        for (size_t i = 0; i < BATCH; i++) slot_clear(&b[free_index(i, pass, perm)]);
    }
    free(perm);
    free(b);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long passes = (long)BLOCKS_PER_SCALE * a.scale / BATCH;
    worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    for (int i = 0; i < a.threads; i++) {
        w[i].passes = share(passes, i, a.threads);
        w[i].rng = rng_seeded(a.seed, (uint64_t)i + 1);
    }
    double t0 = now_s();
    run_threads(a.threads, worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t bytes = 0;
    for (int i = 0; i < a.threads; i++) bytes += w[i].bytes;
    free(w);
    printf("RESULT blocks=%ld bytes=%llu mblocks_per_s=%.2f\n", passes * BATCH,
           (unsigned long long)bytes, (double)passes * BATCH / el / 1e6);
    return 0;
}
