/* xmalloc - producer/consumer (after xmalloc-test).
 *
 * Producers allocate blocks of 16..256 B, fill batches of BATCH pointers and
 * push each batch on a shared bounded queue; consumers pop batches, check and
 * free every block, and free the batch itself. Every block is freed by a
 * thread other than the one that allocated it. With T threads there are
 * max(1, T/2) producers and max(1, T - producers) consumers, so T = 1 runs
 * one of each.
 */
#include "common.h"

enum { BATCH = 64, QUEUE_CAP = 128, BLOCKS_PER_SCALE = 1000000,
       MIN_SIZE = 16, MAX_SIZE = 256 };

typedef struct {
    int n;
    uint32_t size[BATCH];
    void *p[BATCH];
} batch_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    batch_t *ring[QUEUE_CAP];
    int head, count;
    int producers_left;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
        PTHREAD_COND_INITIALIZER, { 0 }, 0, 0, 0 };

static void queue_push(batch_t *b)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == QUEUE_CAP) pthread_cond_wait(&q.not_full, &q.lock);
    q.ring[(q.head + q.count++) % QUEUE_CAP] = b;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* NULL once the queue is empty and every producer is done */
static batch_t *queue_pop(void)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.lock);
    batch_t *b = NULL;
    if (q.count > 0) {
        b = q.ring[q.head];
        q.head = (q.head + 1) % QUEUE_CAP;
        q.count--;
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.lock);
    return b;
}

static void producer_done(void)
{
    pthread_mutex_lock(&q.lock);
    q.producers_left--;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

typedef struct {
    int producer;     /* 1: producer, 0: consumer */
    long batches;     /* batches to produce */
    rng_t rng;
    uint64_t blocks;  /* blocks freed (consumer) */
} worker_t;

static void produce(worker_t *w)
{
    for (long i = 0; i < w->batches; i++) {
        batch_t *b = malloc(sizeof *b);
        if (!b) bench_fail(2, "malloc failed");
        b->n = BATCH;
        for (int k = 0; k < BATCH; k++) {
            size_t n = rng_range(&w->rng, MIN_SIZE, MAX_SIZE);
            b->size[k] = (uint32_t)n;
            b->p[k] = xmalloc_tagged(n, (uintptr_t)b + (uint64_t)k);
        }
        queue_push(b);
    }
    producer_done();
}

static void consume(worker_t *w)
{
    batch_t *b;
    while ((b = queue_pop()) != NULL) {
        for (int k = 0; k < b->n; k++)
            free_tagged(b->p[k], b->size[k], (uintptr_t)b + (uint64_t)k);
        w->blocks += (uint64_t)b->n;
        free(b);
    }
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    if (w->producer) produce(w);
    else consume(w);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 2);
    int np = a.threads / 2 > 0 ? a.threads / 2 : 1;
    int nc = a.threads - np > 0 ? a.threads - np : 1;
    long batches = (long)BLOCKS_PER_SCALE * a.scale / BATCH;
    worker_t *w = calloc((size_t)(np + nc), sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    q.producers_left = np;
    for (int i = 0; i < np + nc; i++) {
        w[i].producer = i < np;
        w[i].batches = i < np ? share(batches, i, np) : 0;
        w[i].rng = rng_seeded(a.seed, (uint64_t)i + 1);
    }
    double t0 = now_s();
    run_threads(np + nc, worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t freed = 0;
    for (int i = 0; i < np + nc; i++) freed += w[i].blocks;
    if (freed != (uint64_t)batches * BATCH)
        bench_fail(3, "freed %llu blocks, expected %llu", (unsigned long long)freed,
                   (unsigned long long)batches * BATCH);
    free(w);
    printf("RESULT producers=%d consumers=%d blocks=%llu mblocks_per_s=%.2f\n", np, nc,
           (unsigned long long)freed, (double)freed / el / 1e6);
    return 0;
}
