/* ma_test.h - what the api, stress and death tests share.
 *
 *  - The A_ names: the ma_ functions by default, the standard ones when built
 *    with -DUSE_STD=1 (those programs run with LD_PRELOAD=libmapalloc.so), so
 *    one source tests both flavours.
 *  - A seeded generator (splitmix64) and content patterns that depend on a
 *    tag and an offset only, never on an address, so a block can be checked
 *    by any thread, after a realloc moved it, or after a fork.
 *
 * The tests that include it define _GNU_SOURCE before any header.
 */
#ifndef MA_TEST_H
#define MA_TEST_H

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mapalloc.h"

#ifndef USE_STD
#define USE_STD 0
#endif

#if USE_STD
#define A_MALLOC malloc
#define A_CALLOC calloc
#define A_REALLOC realloc
#define A_REALLOCARRAY reallocarray
#define A_FREE free
#define A_POSIX_MEMALIGN posix_memalign
#define A_ALIGNED_ALLOC aligned_alloc
#define A_MEMALIGN memalign
#define A_VALLOC valloc
#define A_PVALLOC pvalloc
#define A_USABLE(p) malloc_usable_size((void *)(p))
#define A_TRIM(pad) malloc_trim(pad)
#define A_FLAVOUR "standard names (LD_PRELOAD)"
#else
#define A_MALLOC ma_malloc
#define A_CALLOC ma_calloc
#define A_REALLOC ma_realloc
#define A_REALLOCARRAY ma_reallocarray
#define A_FREE ma_free
#define A_POSIX_MEMALIGN ma_posix_memalign
#define A_ALIGNED_ALLOC ma_aligned_alloc
#define A_MEMALIGN ma_memalign
#define A_VALLOC ma_valloc
#define A_PVALLOC ma_pvalloc
#define A_USABLE ma_usable_size
#define A_TRIM ma_trim
#define A_FLAVOUR "ma_ names"
#endif

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)

/* Hides a constant from the compiler, so that malloc(SIZE_MAX) neither
 * warns (-Walloc-size-larger-than) nor gets folded away. */
static inline size_t opaque(size_t x)
{
    __asm__ volatile("" : "+r"(x));
    return x;
}

/* ---- Seeded generator ---------------------------------------------------- */

typedef struct { uint64_t s; } rng_t;

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rng_next(rng_t *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

/* Uniform enough in [lo, hi] for tests. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(r) % (hi - lo + 1));
}

/* ---- Content patterns ---------------------------------------------------- */

/* Byte k of the pattern `tag` is byte k%8 (little-endian) of
 * pattern_word(tag, k/8), so a prefix of a block checks the same whatever
 * length the block was filled with. */
static inline uint64_t pattern_word(uint64_t tag, size_t i)
{
    return mix64(tag * 0x9e3779b97f4a7c15ULL + i);
}

static inline void pattern_fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = pattern_word(tag, i);
        memcpy(b + 8 * i, &w, 8);
    }
    uint64_t last = pattern_word(tag, words);
    for (size_t j = 0; j < n % 8; j++)
        b[8 * words + j] = (unsigned char)(last >> (8 * j));
}

/* Returns the offset of the first byte that differs, or n if none does. */
static inline size_t pattern_find_bad(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, b + 8 * i, 8);
        if (w != pattern_word(tag, i)) {
            uint64_t want = pattern_word(tag, i);
            size_t j = 0;
            while (((w >> (8 * j)) & 0xff) == ((want >> (8 * j)) & 0xff))
                j++;
            return 8 * i + j;
        }
    }
    uint64_t last = pattern_word(tag, words);
    for (size_t j = 0; j < n % 8; j++)
        if (b[8 * words + j] != (unsigned char)(last >> (8 * j)))
            return 8 * words + j;
    return n;
}

static inline int pattern_ok(const void *p, size_t n, uint64_t tag)
{
    return pattern_find_bad(p, n, tag) == n;
}

/* 1 if the n bytes at p are all zero. */
static inline int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w != 0)
            return 0;
    }
    for (; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

#endif /* MA_TEST_H */
