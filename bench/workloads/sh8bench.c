/* sh8bench - like sh6bench, but blocks are freed by another thread (after
 * MicroQuill's SmartHeap sh8bench).
 *
 * Threads form a ring. In each pass a thread allocates a batch of blocks of
 * growing sizes and posts it to the next thread's mailbox, then takes the
 * batch its predecessor posted and frees it in LIFO, FIFO, random or
 * odd-then-even order. With one thread the ring is the thread itself.
 */
#include "common.h"

enum { BATCH = 1000, BLOCKS_PER_SCALE = 250000, MAILBOX_CAP = 4 };

static const size_t ranges[][2] = {
    { 8, 64 }, { 64, 512 }, { 8, 256 }, { 512, 4096 }, { 16, 2048 },
};
enum { NRANGES = sizeof ranges / sizeof ranges[0] };

typedef struct {
    long pass;        /* pass of the sender, picks the free order */
    slot_t b[BATCH];
} batch_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch_t *box[MAILBOX_CAP];
    int head, count;
} mailbox_t;

typedef struct {
    mailbox_t in;     /* batches posted to this thread */
    void *next;       /* the worker_t that receives this thread's batches */
    long passes;
    rng_t rng;
    uint64_t bytes, freed;
} worker_t;

static void post(mailbox_t *m, batch_t *b)
{
    pthread_mutex_lock(&m->lock);
    while (m->count == MAILBOX_CAP) pthread_cond_wait(&m->changed, &m->lock);
    m->box[(m->head + m->count++) % MAILBOX_CAP] = b;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
}

static batch_t *take(mailbox_t *m)
{
    pthread_mutex_lock(&m->lock);
    while (m->count == 0) pthread_cond_wait(&m->changed, &m->lock);
    batch_t *b = m->box[m->head];
    m->head = (m->head + 1) % MAILBOX_CAP;
    m->count--;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
    return b;
}

static batch_t *make_batch(long pass, uint64_t *bytes)
{
    batch_t *b = malloc(sizeof *b);
    if (!b) bench_fail(2, "malloc failed");
    b->pass = pass;
    size_t lo = ranges[pass % NRANGES][0], hi = ranges[pass % NRANGES][1];
    for (size_t k = 0; k < BATCH; k++) {
        size_t n = lo + k * (hi - lo) / BATCH;
        slot_put(&b->b[k], n, (uint64_t)pass + k);
        *bytes += n;
    }
    return b;
}

static void free_batch(batch_t *b, rng_t *r)
{
    static const int odd_even = 3;
    int order = (int)(b->pass % 4);
    if (order == 2) {                       /* random: a shuffled sweep */
        for (size_t i = BATCH - 1; i > 0; i--) {
            size_t j = (size_t)(rng_next(r) % (i + 1));
            slot_t t = b->b[i];
            b->b[i] = b->b[j];
            b->b[j] = t;
        }
    }
    for (size_t i = 0; i < BATCH; i++) {
        size_t k = order == 0 ? BATCH - 1 - i
                 : order == odd_even ? (i < BATCH / 2 ? 2 * i + 1 : 2 * (i - BATCH / 2))
                 : i;
        slot_clear(&b->b[k]);
    }
    free(b);
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    worker_t *next = w->next;
    for (long pass = 0; pass < w->passes; pass++) {
        post(&next->in, make_batch(pass, &w->bytes));
        free_batch(take(&w->in), &w->rng);
        w->freed += BATCH;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    int t = a.threads;
    /* every thread does the same number of passes, so each mailbox
     * receives exactly as many batches as its owner takes */
    long passes = (long)BLOCKS_PER_SCALE * a.scale / BATCH / t;
    if (passes < 1) passes = 1;
    worker_t *w = calloc((size_t)t, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    for (int i = 0; i < t; i++) {
        pthread_mutex_init(&w[i].in.lock, NULL);
        pthread_cond_init(&w[i].in.changed, NULL);
        w[i].next = &w[(i + 1) % t];
        w[i].passes = passes;
        w[i].rng = rng_seeded(a.seed, (uint64_t)i + 1);
    }
    double t0 = now_s();
    run_threads(t, worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t bytes = 0, freed = 0;
    for (int i = 0; i < t; i++) {
        bytes += w[i].bytes;
        freed += w[i].freed;
    }
    if (freed != (uint64_t)passes * BATCH * (uint64_t)t)
        bench_fail(3, "freed %llu blocks", (unsigned long long)freed);
    free(w);
    printf("RESULT blocks=%llu bytes=%llu mblocks_per_s=%.2f\n", (unsigned long long)freed,
           (unsigned long long)bytes, (double)freed / el / 1e6);
    return 0;
}
