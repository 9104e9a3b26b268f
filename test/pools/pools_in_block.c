/* pools_in_block.c - a heap made with ma_heap_new_in inside a block of
 * ours (issue 14, item 2): free, malloc_usable_size and realloc of its
 * blocks must reach the fixed heap, though the pointers lie inside one of
 * our segments (or large mappings), where they start no block.
 *
 * The buffers: malloc'd (64, 128 and 200 KiB: medium blocks in a segment;
 * 1 MiB: a mapping of its own), from ma_heap_malloc of a ma_heap_new heap,
 * and from another fixed heap (nested). In each: a small block and a block
 * over 64 KiB (the fixed heap's two free paths), their usable sizes, a
 * realloc that grows one (it stays in the fixed heap, contents kept), and
 * frees through the standard entry points; the heap must then be empty.
 *
 * Built with the ma_ names and, for the drop-in build, with the standard
 * ones (-DUSE_STD=1), also run with MAPALLOC_SECURE=1 (check.c's paths).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "ma_test.h"

static int inside(const void *p, const void *buf, size_t size)
{
    return (const char *)p >= (const char *)buf && (const char *)p < (const char *)buf + size;
}

static void exercise(const char *what, void *buf, size_t size)
{
    printf("%s: %zu bytes\n", what, size);
    ma_heap_t *h = ma_heap_new_in(buf, size);
    if (!CHECK(h != NULL))
        return;
    char *s = ma_heap_strdup(h, "x");
    void *big = ma_heap_malloc(h, size / 2 > 70 * KIB ? 70 * KIB : size / 4);
    if (!CHECK(s != NULL && big != NULL))
        return;
    CHECK(inside(s, buf, size) && inside(big, buf, size));
    CHECK(A_USABLE(s) >= 2);
    CHECK(A_USABLE(big) >= (size / 2 > 70 * KIB ? 70 * KIB : size / 4));
    char *t = A_REALLOC(s, 3000); /* grows: stays in h */
    if (CHECK(t != NULL)) {
        CHECK(inside(t, buf, size));
        CHECK(strcmp(t, "x") == 0);
        CHECK(A_USABLE(t) >= 3000);
    }
    A_FREE(t);
    A_FREE(big);
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    ma_heap_destroy(h);
}

int main(void)
{
    printf("pools_in_block: %s\n", A_FLAVOUR);
    static const size_t sizes[] = {64 * KIB, 128 * KIB, 200 * KIB, 1 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *buf = A_MALLOC(sizes[i]);
        if (!CHECK(buf != NULL))
            return check_done();
        exercise("malloc'd buffer", buf, sizes[i]);
        A_FREE(buf);
    }
    ma_heap_t *user = ma_heap_new();
    void *ubuf = user ? ma_heap_malloc(user, 128 * KIB) : NULL;
    if (CHECK(ubuf != NULL))
        exercise("block of ma_heap_new's heap", ubuf, 128 * KIB);
    if (user)
        ma_heap_destroy(user);
    void *outer_buf = A_MALLOC(1 * MIB);
    ma_heap_t *outer = outer_buf ? ma_heap_new_in(outer_buf, 1 * MIB) : NULL;
    void *obuf = outer ? ma_heap_malloc(outer, 256 * KIB) : NULL;
    if (CHECK(obuf != NULL)) {
        exercise("block of another fixed heap", obuf, 256 * KIB);
        A_FREE(obuf); /* the outer heap's block, found as such */
        ma_heap_destroy(outer);
    }
    A_FREE(outer_buf);
    return check_done();
}
