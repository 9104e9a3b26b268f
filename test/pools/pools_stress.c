/* pools_stress.c - heaps used by one thread at a time, their blocks freed by
 * others, heaps destroyed and made again while the others go on.
 *
 *   pools_stress [seed [rounds]]
 *
 * 8 heap slots: even ones hold ma_heap_new heaps, slots 1 and 5 heaps in
 * files (ma_heap_open, 16 MiB), slots 3 and 7 ma_heap_new_in heaps over 16
 * MiB regions (anonymous, or a file mapped MAP_SHARED).
 * 4 allocating threads each take a slot whose lock is free (the program's
 * own synchronisation: one thread per heap at a time, any thread), make a
 * burst of blocks with malloc/calloc/aligned_alloc/strdup/realloc, write a
 * header (slot, size, tag) and a pattern, and hand them to 3 freeing threads
 * through a shared ring. Those check each block and free it (ma_free, or
 * ma_realloc then ma_free). Every so often the allocating thread retires its
 * slot: it waits, still holding the slot, until every block it handed out
 * has been freed (a counter per slot: the documented rule), then destroys
 * the heap and makes a new one in the slot (over the same region for the
 * fixed kind; the file kind opens its file again, which must be empty). At the end main drains the ring, destroys what is left, and
 * checks the counters. Seeded; threads count failures in an atomic.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define SLOTS 8
#define ALLOCATORS 4
#define FREERS 3
#define RING 1024
#define BURST 64
#define REGION (16 * MIB)
#define HDR 24 /* slot, size, tag at the start of every block */

struct slot {
    pthread_mutex_t lock;        /* held by the one thread using the heap */
    ma_heap_t *heap;             /* under lock */
    unsigned char *region;       /* fixed kind: the heap's memory; set once */
    char path[96];               /* file kind: the heap's file; set once */
    atomic_ulong handed, freed;  /* blocks given to the freers, and freed by them */
    unsigned long generation;    /* under lock: heaps made in this slot */
};

static struct slot slots[SLOTS];
static _Atomic(uintptr_t) ring[RING];
static atomic_ulong failures, destroys, frees;
static atomic_bool stop_freers;
static uint64_t seed = 777;
static unsigned rounds = 4000;
static char tmpdir[64];

static void fail(const char *what, const void *p, size_t a, size_t b)
{
    if (atomic_fetch_add(&failures, 1) < 10)
        fprintf(stderr, "pools_stress: %s: block %p (%zu, %zu)\n", what, p, a, b);
}

/* ---- Blocks ------------------------------------------------------------- */

struct header {
    uint64_t slot, size, tag;
};

static void stamp(void *p, unsigned slot, size_t size, uint64_t tag)
{
    struct header h = {slot, size, tag};
    memcpy(p, &h, sizeof h);
    pattern_fill((unsigned char *)p + HDR, size - HDR, tag);
}

/* Checks a block's header and pattern; returns its slot, or SLOTS. */
static unsigned verify(const void *p)
{
    struct header h;
    memcpy(&h, p, sizeof h);
    if (h.slot >= SLOTS || h.size < HDR || h.size > 1 * MIB) {
        fail("bad header", p, h.slot, h.size);
        return SLOTS;
    }
    size_t bad = pattern_find_bad((const unsigned char *)p + HDR, h.size - HDR, h.tag);
    if (bad != h.size - HDR)
        fail("bad contents", p, h.size, bad);
    if (A_USABLE(p) < h.size)
        fail("short block", p, A_USABLE(p), h.size);
    const unsigned char *region = slots[h.slot].region;
    if (region && ((const unsigned char *)p < region || (const unsigned char *)p >= region + REGION))
        fail("block outside its region", p, h.slot, 0);
    return (unsigned)h.slot;
}

static size_t random_size(rng_t *r)
{
    uint64_t x = rng_next(r) % 1000;
    if (x < 850)
        return rng_range(r, HDR, 300);
    if (x < 990)
        return rng_range(r, 301, 16 * KIB);
    return rng_range(r, 16 * KIB, 400 * KIB);
}

/* One block of the slot's heap, by a random entry point; NULL if the fixed
 * region is full. */
static void *make_block(struct slot *s, unsigned slot, rng_t *r)
{
    size_t size = random_size(r);
    uint64_t tag = rng_next(r);
    void *p;
    switch (rng_next(r) % 5) {
    case 0:
        p = ma_heap_calloc(s->heap, 1, size);
        if (p && !all_zero(p, size))
            fail("calloc not zeroed", p, size, 0);
        break;
    case 1:
        p = ma_heap_aligned_alloc(s->heap, (size_t)32 << (rng_next(r) % 8), size);
        break;
    case 2: { /* a block of the same heap grown, in place or moved */
        struct header want = {slot, HDR, tag}, got;
        void *q = ma_heap_malloc(s->heap, HDR);
        if (q)
            memcpy(q, &want, sizeof want);
        p = q ? ma_heap_realloc(s->heap, q, size) : NULL;
        if (p && (memcpy(&got, p, sizeof got), memcmp(&got, &want, sizeof got) != 0))
            fail("realloc lost the header", p, size, 0);
        if (!p && q)
            A_FREE(q);
        break;
    }
    case 3: {
        char text[64];
        snprintf(text, sizeof text, "%0*u", (int)(HDR + 7), slot);
        p = ma_heap_strdup(s->heap, text);
        if (p && strcmp(p, text) != 0)
            fail("strdup", p, 0, 0);
        size = HDR + 8;
        break;
    }
    default:
        p = ma_heap_malloc(s->heap, size);
    }
    if (p)
        stamp(p, slot, size, tag);
    return p;
}

/* ---- Threads -------------------------------------------------------------- */

static void free_block(void *p, rng_t *r)
{
    unsigned slot = verify(p);
    if (slot < SLOTS && rng_next(r) % 8 == 0) {
        struct header h;
        memcpy(&h, p, sizeof h);
        size_t keep = h.size < 64 ? h.size : 64;
        void *q = ma_realloc(p, keep); /* may stay in the heap or move out */
        if (!q)
            fail("realloc failed", p, keep, 0);
        else if (!pattern_ok((unsigned char *)q + HDR, keep - HDR, h.tag))
            fail("realloc lost contents", q, keep, 0);
        p = q;
    }
    A_FREE(p);
    atomic_fetch_add(&frees, 1);
    if (slot < SLOTS)
        atomic_fetch_add(&slots[slot].freed, 1);
}

static void *freer(void *arg)
{
    rng_t r = {seed ^ (uintptr_t)arg};
    for (;;) {
        bool last = atomic_load(&stop_freers);
        bool any = false;
        /* every slot once per pass, from a random one: a pass that started
         * after stop_freers and found nothing has left nothing behind */
        size_t start = (size_t)rng_next(&r);
        for (size_t i = 0; i < RING; i++) {
            uintptr_t v = atomic_exchange(&ring[(start + i) % RING], 0);
            if (v) {
                any = true;
                free_block((void *)v, &r);
            }
        }
        if (last && !any)
            return NULL;
    }
}

/* Hands p to the freers; if the ring stays full, frees it here. */
static void hand_off(struct slot *s, void *p, rng_t *r)
{
    atomic_fetch_add(&s->handed, 1);
    for (int tries = 0; tries < 32; tries++) {
        uintptr_t expected = 0;
        if (atomic_compare_exchange_strong(&ring[rng_next(r) % RING], &expected, (uintptr_t)p))
            return;
    }
    free_block(p, r);
}

static ma_heap_t *make_heap(unsigned i)
{
    if (slots[i].path[0])
        return ma_heap_open(slots[i].path, REGION, MA_CREATE);
    return slots[i].region ? ma_heap_new_in(slots[i].region, REGION) : ma_heap_new();
}

/* The rule: no free may still be on its way when destroy starts. */
static void retire(unsigned i)
{
    struct slot *s = &slots[i];
    while (atomic_load(&s->freed) != atomic_load(&s->handed))
        sched_yield();
    ma_heap_stats_t st;
    ma_heap_stats(s->heap, &st);
    if (st.blocks_in_use != 0)
        fail("blocks left after every free", s->heap, st.blocks_in_use, i);
    ma_heap_destroy(s->heap);
    atomic_fetch_add(&destroys, 1);
    s->heap = make_heap(i);
    s->generation++;
    if (!s->heap) {
        fail("heap not made again", NULL, i, s->generation);
        return;
    }
    ma_heap_stats(s->heap, &st); /* a file opened again holds what it held: nothing */
    if (st.blocks_in_use != 0)
        fail("blocks in a heap made again", s->heap, st.blocks_in_use, i);
}

static void *allocator(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    rng_t r = {seed * 31 + id};
    for (unsigned n = 0; n < rounds; n++) {
        unsigned i = (unsigned)(rng_next(&r) % SLOTS);
        struct slot *s = &slots[i];
        if (pthread_mutex_trylock(&s->lock) != 0)
            continue;
        if (s->heap) {
            for (unsigned b = 0; b < BURST; b++) {
                void *p = make_block(s, i, &r);
                if (p)
                    hand_off(s, p, &r);
            }
            if (rng_next(&r) % 40 == 0)
                retire(i);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

/* ---- Set-up --------------------------------------------------------------- */

static unsigned char *map_region(unsigned i)
{
    int fd = -1, flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if (i % 4 == 3) { /* some regions are files */
        char path[128];
        snprintf(path, sizeof path, "%s/region%u", tmpdir, i);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || ftruncate(fd, REGION) != 0) {
            perror(path);
            exit(2);
        }
        unlink(path);
        flags = MAP_SHARED;
    }
    unsigned char *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (fd >= 0)
        close(fd);
    return m;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 0);
    if (argc > 2)
        rounds = (unsigned)strtoul(argv[2], NULL, 0);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%.40s/pools_stress.XXXXXX", tmp);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        pthread_mutex_init(&slots[i].lock, NULL);
        slots[i].region = NULL;
        if (i % 4 == 1)
            snprintf(slots[i].path, sizeof slots[i].path, "%s/heap%u", tmpdir, i);
        else if (i % 2)
            slots[i].region = map_region(i);
        slots[i].heap = make_heap(i);
        if (!CHECK(slots[i].heap != NULL))
            return check_done();
    }

    pthread_t a[ALLOCATORS], f[FREERS];
    for (uintptr_t i = 0; i < FREERS; i++)
        pthread_create(&f[i], NULL, freer, (void *)i);
    for (uintptr_t i = 0; i < ALLOCATORS; i++)
        pthread_create(&a[i], NULL, allocator, (void *)i);
    for (size_t i = 0; i < ALLOCATORS; i++)
        pthread_join(a[i], NULL);
    atomic_store(&stop_freers, true);
    for (size_t i = 0; i < FREERS; i++)
        pthread_join(f[i], NULL);

    unsigned long handed = 0, freed = 0;
    for (unsigned i = 0; i < SLOTS; i++) {
        handed += atomic_load(&slots[i].handed);
        freed += atomic_load(&slots[i].freed);
        ma_heap_stats_t st;
        ma_heap_stats(slots[i].heap, &st);
        CHECK_EQ_U(st.blocks_in_use, 0);
        ma_heap_destroy(slots[i].heap);
        if (slots[i].region)
            munmap(slots[i].region, REGION);
        if (slots[i].path[0])
            unlink(slots[i].path);
    }
    rmdir(tmpdir);
    printf("pools_stress: seed %llu, %lu blocks handed off, %lu freed, %lu heaps destroyed "
           "and made again\n",
           (unsigned long long)seed, handed, freed, atomic_load(&destroys));
    CHECK_EQ_U(handed, freed);
    CHECK(atomic_load(&destroys) > 0);
    CHECK_EQ_U(atomic_load(&failures), 0);
    return check_done();
}
