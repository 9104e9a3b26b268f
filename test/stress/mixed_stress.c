/* mixed_stress.c - every entry point at once, under LD_PRELOAD.
 *
 *   mixed_stress [rounds] [ops_per_thread]
 *
 * Each round 8 threads (and 40 short detached ones) malloc, calloc (checked
 * zero), realloc (checked prefix), posix_memalign, aligned_alloc and
 * memalign (checked alignment, 8 B to 64 KiB) sizes 0 to 1 MiB, and swap
 * blocks through a shared slot table, so most frees are cross-thread;
 * every 5th round ends with malloc_trim. A background thread forks
 * meanwhile; each child allocates, starts a thread and exits. Every block
 * carries a pattern from its address and size, checked before it is freed
 * or reallocated. Exit status 1 on any error. Written during a sweep of
 * real programs under mapalloc (default, SECURE, DEBUG modes).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 8
#define NSLOTS 4096

struct blk { unsigned char *p; size_t n; };
static _Atomic(struct blk *) shared[NSLOTS];
static atomic_int errors;
static atomic_int stop_forker;

static uint64_t rnd(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

static size_t pick_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 1000;
    if (r < 700) return rnd(s) % 257;          /* small */
    if (r < 950) return rnd(s) % 16385;        /* medium */
    if (r < 990) return rnd(s) % 300000;       /* up to ~large threshold */
    return rnd(s) % (1024 * 1024 + 1);         /* large */
}

static unsigned char pat(const void *p, size_t n) { return (unsigned char)(((uintptr_t)p >> 4) ^ n ^ 0x5a); }

static void fill(unsigned char *p, size_t n)
{
    unsigned char c = pat(p, n);
    if (n <= 64) { memset(p, c, n); return; }
    memset(p, c, 32); memset(p + n - 32, c, 32);
    p[n / 2] = c;
}

static int check(const unsigned char *p, size_t n)
{
    unsigned char c = pat(p, n);
    if (n <= 64) { for (size_t i = 0; i < n; i++) if (p[i] != c) return 0; return 1; }
    for (size_t i = 0; i < 32; i++) if (p[i] != c || p[n - 32 + i] != c) return 0;
    return p[n / 2] == c;
}

static void bad(const char *what, void *p, size_t n)
{
    fprintf(stderr, "stress: %s p=%p n=%zu\n", what, p, n);
    atomic_fetch_add(&errors, 1);
}

static struct blk *alloc_blk(uint64_t *s)
{
    struct blk *b = malloc(sizeof *b);
    if (!b) { bad("malloc(blk) NULL", NULL, sizeof *b); return NULL; }
    size_t n = pick_size(s);
    unsigned kind = rnd(s) % 6;
    void *p = NULL;
    size_t al = (size_t)1 << (3 + rnd(s) % 14); /* 8 .. 64 KiB */
    switch (kind) {
    case 0: case 1: p = malloc(n); break;
    case 2: {
        size_t nm = 1 + rnd(s) % 16;
        p = calloc(nm, n / nm + 1);
        n = nm * (n / nm + 1);
        if (p) { size_t step = n > 4096 ? 4093 : 1; for (size_t i = 0; i < n; i += step) if (((unsigned char *)p)[i]) { bad("calloc not zero", p, n); break; } }
        break; }
    case 3: if (posix_memalign(&p, al, n)) p = NULL; break;
    case 4: p = aligned_alloc(al, (n + al - 1) / al * al); n = (n + al - 1) / al * al; break;
    case 5: p = memalign(al, n); break;
    }
    if (!p && n) { bad("alloc NULL", NULL, n); free(b); return NULL; }
    if (kind >= 3 && ((uintptr_t)p & (al - 1))) bad("misaligned", p, al);
    if (p && malloc_usable_size(p) < n) bad("usable_size < n", p, n);
    b->p = p; b->n = n;
    if (p) fill(b->p, n);
    return b;
}

static void free_blk(struct blk *b)
{
    if (!b) return;
    if (b->p && !check(b->p, b->n)) bad("corrupted content", b->p, b->n);
    free(b->p);
    free(b);
}

static void realloc_blk(struct blk *b, uint64_t *s)
{
    if (b->p && !check(b->p, b->n)) bad("corrupted before realloc", b->p, b->n);
    size_t n = pick_size(s);
    unsigned char *q = realloc(b->p, n);
    if (!q && n) { bad("realloc NULL", b->p, n); return; }
    size_t keep = b->n < n ? b->n : n;
    if (q && b->p && keep) {
        /* verify preserved prefix: old pattern was pat(oldp, oldn) */
        unsigned char c = pat(b->p, b->n);
        size_t lim = keep < 32 ? keep : 32;
        for (size_t i = 0; i < lim; i++) if (q[i] != c) { bad("realloc lost data", q, n); break; }
    }
    if (n == 0 && q == NULL) { b->p = NULL; b->n = 0; return; }
    b->p = q; b->n = n;
    if (q) fill(q, n);
}

struct targ { uint64_t seed; long ops; };

static void *worker(void *arg)
{
    struct targ *t = arg;
    uint64_t s = t->seed;
    struct blk *local[64] = {0};
    for (long i = 0; i < t->ops; i++) {
        unsigned op = rnd(&s) % 10;
        unsigned li = rnd(&s) % 64;
        if (op < 4) {                        /* local churn */
            free_blk(local[li]);
            local[li] = alloc_blk(&s);
        } else if (op < 6) {                 /* realloc */
            if (local[li]) realloc_blk(local[li], &s);
        } else {                              /* cross-thread exchange */
            unsigned si = rnd(&s) % NSLOTS;
            struct blk *nb = (op < 9) ? alloc_blk(&s) : NULL;
            struct blk *old = atomic_exchange(&shared[si], nb);
            free_blk(old);
        }
    }
    for (int i = 0; i < 64; i++) free_blk(local[i]);
    return NULL;
}

static atomic_int detached_live;
static void *detached_worker(void *arg)
{
    worker(arg);
    free(arg);
    atomic_fetch_sub(&detached_live, 1);
    return NULL;
}

static void spawn_detached(uint64_t seed, int n)
{
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < n; i++) {
        struct targ *t = malloc(sizeof *t);
        t->seed = seed * (uint64_t)(i + 7) | 1; t->ops = 300;
        atomic_fetch_add(&detached_live, 1);
        pthread_t th;
        if (pthread_create(&th, &at, detached_worker, t)) { atomic_fetch_sub(&detached_live, 1); free(t); }
    }
    pthread_attr_destroy(&at);
}

static void *forker(void *arg)
{
    uint64_t s = (uintptr_t)arg | 1;
    int n = 0;
    while (n == 0 || (!atomic_load(&stop_forker) && n < 40)) { /* at least one fork */
        usleep(20000 + rnd(&s) % 30000);
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); continue; }
        if (pid == 0) {
            /* child: allocate, check, exit (no exec). */
            uint64_t cs = s ^ 0x1234;
            struct blk *v[256] = {0};
            for (int i = 0; i < 4000; i++) {
                int k = rnd(&cs) % 256;
                free_blk(v[k]);
                v[k] = alloc_blk(&cs);
            }
            for (int k = 0; k < 256; k++) free_blk(v[k]);
            /* spawn one thread in child too */
            struct targ ta = { cs, 2000 };
            pthread_t th;
            if (pthread_create(&th, NULL, worker, &ta) == 0) pthread_join(th, NULL);
            _exit(atomic_load(&errors) ? 3 : 0);
        }
        int st;
        if (waitpid(pid, &st, 0) < 0) { perror("waitpid"); continue; }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "stress: fork child failed status=0x%x\n", st);
            atomic_fetch_add(&errors, 1);
        }
        n++;
    }
    return (void *)(intptr_t)n;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 30;
    long ops = argc > 2 ? atol(argv[2]) : 20000;
    pthread_t fk;
    pthread_create(&fk, NULL, forker, (void *)(uintptr_t)0x9e3779b97f4a7c15ull);
    for (int r = 0; r < rounds; r++) {
        pthread_t th[NTHREADS];
        struct targ ta[NTHREADS];
        for (int i = 0; i < NTHREADS; i++) {
            ta[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(r * NTHREADS + i + 1) | 1;
            ta[i].ops = ops;
            if (pthread_create(&th[i], NULL, worker, &ta[i])) { perror("pthread_create"); return 2; }
        }
        spawn_detached(0x2545F4914F6CDD1Dull * (uint64_t)(r + 1), 40);
        for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
        /* occasionally detach-style short threads */
        if (r % 5 == 4) malloc_trim(0);
    }
    while (atomic_load(&detached_live) > 0) usleep(1000);
    atomic_store(&stop_forker, 1);
    void *nf;
    pthread_join(fk, &nf);
    for (int i = 0; i < NSLOTS; i++) free_blk(atomic_exchange(&shared[i], NULL));
    if ((intptr_t)nf == 0) { fprintf(stderr, "stress: no fork done\n"); atomic_fetch_add(&errors, 1); }
    printf("stress done: rounds=%d ops=%ld forks>0=%d errors=%d\n", rounds, ops, (intptr_t)nf > 0, atomic_load(&errors));
    return atomic_load(&errors) ? 1 : 0;
}
