/* fileheap.c - bench/fileheap, mapalloc's side: the workload of workload.h
 * in P processes, on
 *   malloc   mapalloc's own malloc/free (ma_malloc, ma_free), each process
 *            its own heap: the ceiling
 *   file     one heap file (ma_heap_open(PATH)) that every process opens
 *   shared   one anonymous shared heap (ma_heap_open(NULL)), inherited
 *   fixed    ma_heap_new_in over 1 GiB of private memory, one per process
 *            (built with -DFIXED_ONLY it runs only this one, and links
 *            against any mapalloc that has ma_heap_new_in: the old engine)
 * Blocks are freed with ma_free, as a program would with free().
 *
 *   fileheap MODE PROCS OPS MIX(small|mixed) [PATH]
 * prints one line: mode procs mix ns_per_op mops_total
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mapalloc.h>
#include "workload.h"

#define CAPACITY ((size_t)1 << 30)

struct ctx {
    const char *mode, *path;
    unsigned long ops;
    int mixed;
    ma_heap_t *shared;
};

static void *slots[SLOTS];
static ma_heap_t *heap;

static void *heap_alloc(size_t n) { return ma_heap_malloc(heap, n); }

static double one(int proc, void *arg)
{
    struct ctx *c = arg;
    uint64_t seed = 1000 + (uint64_t)proc;
    int is_malloc = strcmp(c->mode, "malloc") == 0;
#ifndef FIXED_ONLY
    if (strcmp(c->mode, "file") == 0)
        heap = ma_heap_open(c->path, 0, 0);
    else if (strcmp(c->mode, "shared") == 0)
        heap = c->shared;
    else
#endif
        if (!is_malloc) {
        void *m = mmap(NULL, CAPACITY, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        heap = m == MAP_FAILED ? NULL : ma_heap_new_in(m, CAPACITY);
    }
    if (!is_malloc && !heap)
        _exit(4);
    /* a warm-up tenth, then the measured run */
    if (is_malloc)
        WL_RUN(slots, seed + 77, c->ops / 10, c->mixed, ma_malloc, ma_free);
    else
        WL_RUN(slots, seed + 77, c->ops / 10, c->mixed, heap_alloc, ma_free);
    wl_ready();
    double t0 = wl_now();
    if (is_malloc)
        WL_RUN(slots, seed, c->ops, c->mixed, ma_malloc, ma_free);
    else
        WL_RUN(slots, seed, c->ops, c->mixed, heap_alloc, ma_free);
    return wl_now() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: fileheap MODE PROCS OPS small|mixed [PATH]\n");
        return 2;
    }
    struct ctx c = {argv[1], argc > 5 ? argv[5] : "/tmp/fileheap.bench", strtoul(argv[3], NULL, 0),
                    strcmp(argv[4], "mixed") == 0, NULL};
    int procs = atoi(argv[2]);
#ifndef FIXED_ONLY
    if (strcmp(c.mode, "file") == 0) {
        unlink(c.path);
        ma_heap_t *h = ma_heap_open(c.path, CAPACITY, MA_CREATE | MA_EXCL);
        if (!h)
            return 1;
        ma_heap_close(h);
    } else if (strcmp(c.mode, "shared") == 0) {
        c.shared = ma_heap_open(NULL, CAPACITY, 0);
        if (!c.shared)
            return 1;
    }
#endif
    double t = wl_processes(procs, one, &c);
    if (t < 0)
        return 1;
#ifndef FIXED_ONLY
    if (strcmp(c.mode, "file") == 0)
        unlink(c.path);
#endif
    printf("%s %d %s %.1f %.2f\n", c.mode, procs, argv[4], t * 1e9 / (double)c.ops,
           (double)c.ops * procs / t / 1e6);
    return 0;
}
