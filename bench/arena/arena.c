/* arena.c - an arena-style workload: each "request" allocates many small
 * objects (16-256 bytes, mixed), links them into a structure, touches it,
 * then releases everything.
 *
 *   arena MODE OBJECTS REQUESTS [SEED]
 *
 * MODE
 *   destroy  ma_heap_new per request, ma_heap_malloc per object, one
 *            ma_heap_destroy at the end of the request
 *   reset    one heap for the whole run, ma_heap_reset after each request
 *   fixed    one ma_heap_new_in heap over a buffer mapped once (room for a
 *            request), ma_heap_reset after each request
 *   malloc   malloc per object, free of every object (whichever malloc the
 *            program runs with: glibc's, or mapalloc's when linked with or
 *            preloaded libmapalloc.so)
 *
 * Object sizes are drawn uniformly from 16..256 bytes (at least 24: the two
 * links and the size).
 *
 * Prints one line: "arena MODE OBJECTS REQUESTS NS_PER_OBJECT FAULTS CHECKSUM",
 * FAULTS being the minor page faults per request (memory the OS had to give
 * again because it was given back).
 * Built with -DARENA_MALLOC_ONLY it needs no mapalloc at all (malloc mode
 * only), so glibc's malloc can be measured in a program that never loads
 * libmapalloc.so.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#ifndef ARENA_MALLOC_ONLY
#include "mapalloc.h"
#endif

/* An object: two links (the next one, and a random earlier one), a size,
 * and payload bytes up to its size. */
struct node {
    struct node *next, *back;
    uint32_t size;
    unsigned char payload[];
};

#define MIN_OBJECT 16
#define MAX_OBJECT 256

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef void *alloc_fn(void *ctx, size_t size);

/* Builds the structure of one request; returns its head. */
static struct node *build(alloc_fn *alloc, void *ctx, size_t objects, struct node **index)
{
    struct node *head = NULL, *tail = NULL;
    for (size_t i = 0; i < objects; i++) {
        size_t size = MIN_OBJECT + rng_next() % (MAX_OBJECT - MIN_OBJECT + 1);
        if (size < sizeof(struct node)) /* room for the links and the size */
            size = sizeof(struct node);
        struct node *n = alloc(ctx, size);
        if (!n) {
            fprintf(stderr, "arena: out of memory\n");
            exit(1);
        }
        n->next = NULL;
        n->back = i ? index[rng_next() % i] : n;
        n->size = (uint32_t)size;
        memset(n->payload, (int)(i & 0xff), size - offsetof(struct node, payload));
        index[i] = n;
        if (tail)
            tail->next = n;
        else
            head = n;
        tail = n;
    }
    return head;
}

/* Walks the structure, reading every object's links, size and last byte. */
static uint64_t touch(const struct node *head)
{
    uint64_t sum = 0;
    for (const struct node *n = head; n; n = n->next)
        sum += n->size + n->back->size + n->payload[n->size - offsetof(struct node, payload) - 1];
    return sum;
}

static void *alloc_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static uint64_t request_malloc(size_t objects, struct node **index)
{
    struct node *head = build(alloc_malloc, NULL, objects, index);
    uint64_t sum = touch(head);
    for (struct node *n = head, *next; n; n = next) {
        next = n->next;
        free(n);
    }
    return sum;
}

#ifndef ARENA_MALLOC_ONLY
static void *alloc_heap(void *ctx, size_t size) { return ma_heap_malloc(ctx, size); }

static ma_heap_t *new_heap(void)
{
    ma_heap_t *h = ma_heap_new();
    if (!h) {
        fprintf(stderr, "arena: ma_heap_new failed\n");
        exit(1);
    }
    return h;
}

static uint64_t request_destroy(size_t objects, struct node **index)
{
    ma_heap_t *h = new_heap();
    uint64_t sum = touch(build(alloc_heap, h, objects, index));
    ma_heap_destroy(h);
    return sum;
}

static ma_heap_t *reset_heap;

static ma_heap_t *fixed_heap(size_t objects)
{
    size_t size = objects * (MAX_OBJECT + 32) + (1 << 20);
    void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ma_heap_t *h = buf == MAP_FAILED ? NULL : ma_heap_new_in(buf, size);
    if (!h) {
        fprintf(stderr, "arena: ma_heap_new_in failed\n");
        exit(1);
    }
    return h;
}

static uint64_t request_reset(size_t objects, struct node **index)
{
    uint64_t sum = touch(build(alloc_heap, reset_heap, objects, index));
    ma_heap_reset(reset_heap);
    return sum;
}
#endif

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s destroy|reset|fixed|malloc OBJECTS REQUESTS [SEED]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    size_t objects = strtoul(argv[2], NULL, 0), requests = strtoul(argv[3], NULL, 0);
    rng_state = argc > 4 ? strtoull(argv[4], NULL, 0) : 1;
    uint64_t (*request)(size_t, struct node **) = NULL;
    if (strcmp(mode, "malloc") == 0)
        request = request_malloc;
#ifndef ARENA_MALLOC_ONLY
    if (strcmp(mode, "destroy") == 0)
        request = request_destroy;
    if (strcmp(mode, "reset") == 0 || strcmp(mode, "fixed") == 0) {
        request = request_reset;
        reset_heap = mode[0] == 'r' ? new_heap() : fixed_heap(objects);
    }
#endif
    struct node **index = calloc(objects ? objects : 1, sizeof *index);
    if (!request || !index || objects == 0) {
        fprintf(stderr, "arena: unknown mode %s (or no objects)\n", mode);
        return 2;
    }
    uint64_t sum = request(objects, index); /* warm-up, not timed */
    long faults = minor_faults();
    double start = now_ns();
    for (size_t r = 0; r < requests; r++)
        sum += request(objects, index);
    double ns = (now_ns() - start) / ((double)objects * (double)requests);
    double per_request = (double)(minor_faults() - faults) / (double)(requests ? requests : 1);
    printf("arena %s %zu %zu %.2f %.1f %llu\n", mode, objects, requests, ns, per_request,
           (unsigned long long)sum);
    return 0;
}
