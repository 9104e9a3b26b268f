/* fuzz_alloc.c - libFuzzer target: the input is a program of allocator
 * operations on 64 slots and 2 user heaps (run.sh builds it with clang
 * -fsanitize=fuzzer,address against the ma_ sources and runs it).
 *
 * Each operation is one byte (op % OPS) followed by its arguments. Every
 * block is filled with a pattern made of its slot, its generation and the
 * offset; the pattern is checked before the block is freed or reallocated
 * (what realloc keeps must be intact), blocks must never overlap (the live
 * slots are the interval set), and must have their alignment. After each
 * input everything is freed and ma_check() must find nothing wrong. Any
 * failure aborts, which libFuzzer reports with the input.
 *
 * FUZZ_ALLOC_MUST_CRASH=1 in the environment aborts on the first input:
 * run.sh checks with it that a crash makes the test fail.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapalloc.h"

#define SLOTS 64
#define HEAPS 2

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_MEMALIGN, OP_FREE, OP_USABLE,
       OP_HEAP_NEW, OP_HEAP_MALLOC, OP_HEAP_CALLOC, OP_HEAP_REALLOC, OP_HEAP_DESTROY, OP_TRIM, OPS };

struct slot {
    unsigned char *p;  /* NULL: empty */
    size_t size;       /* bytes asked for (and filled) */
    size_t usable;     /* ma_usable_size(p) when allocated */
    size_t align;
    uint32_t gen;
    int heap;          /* -1: thread heap; else the user heap it is in */
};

static struct slot slots[SLOTS];
static ma_heap_t *heaps[HEAPS];
static uint32_t generation;

struct input {
    const uint8_t *data;
    size_t left;
};

static unsigned take(struct input *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->data++;
}

/* Mostly small, some medium, a few large (up to 4 MiB). */
static size_t take_size(struct input *in)
{
    unsigned kind = take(in), lo = take(in), hi = take(in);
    size_t v = (size_t)hi << 8 | lo;
    if (kind < 192)
        return v % 1100;
    if (kind < 250)
        return v * 5 % (300 << 10);
    return (v << 6) % (4u << 20);
}

static void fail(const char *what, int i)
{
    fprintf(stderr, "fuzz_alloc: %s (slot %d)\n", what, i);
    abort();
}

/* The pattern: byte off of a block of slot i, generation gen. Big blocks
 * get it in their first and last EDGE bytes and one byte in each 4 KiB
 * between (the byte loops, instrumented, would dominate the run time).
 * No coverage instrumentation in here: nothing to learn from its branches. */
#define EDGE ((size_t)16 << 10)
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))

NO_COVERAGE static unsigned char pattern(int i, uint32_t gen, size_t off)
{
    return (unsigned char)(i * 31 + gen * 131 + off * 7 + (off >> 9));
}

NO_COVERAGE static int sampled(size_t off, size_t size)
{
    return size <= 2 * EDGE || off < EDGE || off >= size - EDGE || off % 4096 == 0;
}

/* The first offset at or after off that carries the pattern. */
NO_COVERAGE static size_t next_off(size_t off, size_t size)
{
    if (sampled(off, size))
        return off;
    size_t page = (off + 4095) & ~(size_t)4095;
    return page < size - EDGE ? page : size - EDGE;
}

NO_COVERAGE static void fill_with(unsigned char *p, size_t size, int i, uint32_t gen)
{
    for (size_t off = 0; off < size; off = next_off(off + 1, size))
        p[off] = pattern(i, gen, off);
}

/* 1 if the first n bytes of p (a block of size bytes) hold the pattern. */
NO_COVERAGE static int holds(const unsigned char *p, size_t size, size_t n, int i, uint32_t gen)
{
    int ok = 1;
    for (size_t off = 0; off < n && off < size; off = next_off(off + 1, size))
        ok &= p[off] == pattern(i, gen, off);
    return ok;
}

NO_COVERAGE static int all_zero(const unsigned char *p, size_t size)
{
    unsigned char any = 0;
    for (size_t off = 0; off < size; off = next_off(off + 1, size))
        any |= p[off];
    return any == 0;
}

static void fill(int i)
{
    fill_with(slots[i].p, slots[i].size, i, slots[i].gen);
}

static void verify(int i, size_t n)
{
    if (!holds(slots[i].p, slots[i].size, n, i, slots[i].gen))
        fail("block contents changed", i);
}

/* A new block in slot i: aligned, usable enough, overlapping no other. */
static void placed(int i, void *p, size_t size, size_t align, int heap, int zeroed)
{
    struct slot *s = &slots[i];
    if (p == NULL)
        fail("allocation failed", i);
    if ((uintptr_t)p % align != 0)
        fail("misaligned block", i);
    size_t usable = ma_usable_size(p);
    if (usable < size)
        fail("usable size below the size asked for", i);
    if (zeroed && !all_zero(p, size))
        fail("calloc block not zeroed", i);
    uintptr_t a = (uintptr_t)p, b = a + (usable ? usable : 1);
    for (int j = 0; j < SLOTS; j++) {
        if (j == i || !slots[j].p)
            continue;
        uintptr_t c = (uintptr_t)slots[j].p, d = c + (slots[j].usable ? slots[j].usable : 1);
        if (a < d && c < b)
            fail("blocks overlap", i);
    }
    *s = (struct slot){p, size, usable, align, ++generation, heap};
    fill(i);
}

static void drop(int i)
{
    verify(i, SIZE_MAX);
    ma_free(slots[i].p);
    slots[i].p = NULL;
}

static void heap_destroy(int h)
{
    if (!heaps[h])
        return;
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p && slots[i].heap == h) {
            verify(i, SIZE_MAX);
            slots[i].p = NULL; /* gone with the heap */
        }
    ma_heap_destroy(heaps[h]);
    heaps[h] = NULL;
}

static void run_op(struct input *in)
{
    unsigned op = take(in) % OPS;
    int i = (int)(take(in) % SLOTS);
    int h = (int)(take(in) % HEAPS);
    struct slot *s = &slots[i];
    switch (op) {
    case OP_MALLOC:
    case OP_CALLOC: {
        size_t n = take_size(in);
        if (s->p)
            drop(i);
        placed(i, op == OP_MALLOC ? ma_malloc(n) : ma_calloc(1, n), n, 16, -1, op == OP_CALLOC);
        break;
    }
    case OP_ALIGNED:
    case OP_MEMALIGN: {
        size_t align = (size_t)1 << (take(in) % 21); /* up to 1 MiB */
        size_t n = take_size(in);
        if (s->p)
            drop(i);
        void *p = NULL;
        if (op == OP_ALIGNED)
            p = ma_aligned_alloc(align, n);
        else if (ma_posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, n) != 0)
            p = NULL;
        placed(i, p, n, align, -1, 0);
        break;
    }
    case OP_REALLOC:
    case OP_HEAP_REALLOC: {
        size_t n = take_size(in) + 1;
        if (!s->p || (op == OP_HEAP_REALLOC && !heaps[h]))
            break;
        verify(i, SIZE_MAX);
        struct slot old = *s;
        unsigned char *p = op == OP_REALLOC ? ma_realloc(s->p, n) : ma_heap_realloc(heaps[h], s->p, n);
        if (p == NULL)
            fail("realloc failed", i);
        if (!holds(p, old.size, n, i, old.gen))
            fail("realloc lost the contents", i);
        s->p = NULL;
        int heap = op == OP_HEAP_REALLOC ? h : p == old.p ? old.heap : -1;
        placed(i, p, n, 16, heap, 0);
        break;
    }
    case OP_FREE:
        if (s->p)
            drop(i);
        break;
    case OP_USABLE:
        if (s->p && ma_usable_size(s->p) != s->usable)
            fail("usable size changed", i);
        break;
    case OP_HEAP_NEW:
        if (!heaps[h] && !(heaps[h] = ma_heap_new()))
            fail("ma_heap_new failed", h);
        break;
    case OP_HEAP_MALLOC:
    case OP_HEAP_CALLOC: {
        size_t n = take_size(in);
        if (!heaps[h])
            break;
        if (s->p)
            drop(i);
        placed(i, op == OP_HEAP_MALLOC ? ma_heap_malloc(heaps[h], n) : ma_heap_calloc(heaps[h], 1, n), n,
               16, h, op == OP_HEAP_CALLOC);
        break;
    }
    case OP_HEAP_DESTROY:
        heap_destroy(h);
        break;
    case OP_TRIM:
        ma_trim(0);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int must_crash = -1;
    if (must_crash < 0) {
        const char *e = getenv("FUZZ_ALLOC_MUST_CRASH");
        must_crash = e && strcmp(e, "1") == 0;
    }
    if (must_crash)
        fail("FUZZ_ALLOC_MUST_CRASH=1", -1);
    struct input in = {data, size};
    while (in.left > 0)
        run_op(&in);
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p && slots[i].heap < 0)
            drop(i);
    for (int h = 0; h < HEAPS; h++)
        heap_destroy(h);
    if (ma_check() != 0)
        fail("ma_check found problems", -1);
    return 0;
}
