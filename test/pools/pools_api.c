/* pools_api.c - every ma_heap_ function, on five kinds of heap:
 *
 *   user       ma_heap_new()
 *   anon       ma_heap_new_in() over 64 MiB of an anonymous mapping
 *   file       ma_heap_new_in() over 64 MiB of a file mapped MAP_SHARED in a
 *              fresh temporary directory
 *   open       ma_heap_open() of a new 64 MiB heap file in such a directory
 *   open-anon  ma_heap_open(NULL): 64 MiB of anonymous shared memory
 *
 * The regions of anon and file sit between guard bytes, checked after each
 * test: nothing outside [base, base + size) may be written. For each kind:
 * malloc, calloc (zeroed), realloc (grow, shrink, NULL, size 0, moving a
 * block of another heap or of ma_malloc in), aligned_alloc (16 B..64 KiB;
 * 1 MiB on ma_heap_new), strdup, free and usable size of heap blocks, visit
 * (exactly the live blocks; early stop), stats, reset, destroy; then, on the
 * fixed kinds, fill to ENOMEM, free all and fill again; then 100 heaps at
 * once with interleaved blocks; and ma_heap_new_in's EINVAL cases; and
 * that ma_stats_get's cumulative figures never go back when a heap is reset
 * or destroyed.
 *
 * Built with the ma_ names (A_FREE = ma_free) and, for the drop-in build,
 * with the standard ones (-DUSE_STD=1: free, malloc_usable_size).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define REGION (64 * MIB)
#define GUARD (256 * KIB)
#define GUARD_BYTE 0xa5
#define MAX_LIVE 4096

enum kind { USER, ANON, FILE_MAP, OPEN_FILE, OPEN_ANON, KIND_COUNT };
static const char *const kind_names[] = {"ma_heap_new", "ma_heap_new_in (anonymous)",
                                         "ma_heap_new_in (file)", "ma_heap_open (file)",
                                         "ma_heap_open (anonymous)"};
#define FIXED_KIND(k) ((k) == ANON || (k) == FILE_MAP)

/* Where a fixed heap lives: `region` inside `map`, between two guards. */
struct arena {
    unsigned char *map, *region;
    size_t map_size;
    int fd;
    char dir[64], path[96];
};

/* The blocks a test believes live in the heap under test. */
struct live {
    void *p;
    size_t size;
    uint64_t tag;
    int seen;
};

static struct live live[MAX_LIVE];
static size_t nlive;
static uint64_t next_tag = 1;

/* ---- Regions ------------------------------------------------------------ */

static void arena_open(struct arena *a, enum kind kind)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->map_size = REGION + 2 * GUARD;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if (kind == FILE_MAP || kind == OPEN_FILE) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(a->dir, sizeof a->dir, "%.40s/pools_api.XXXXXX", tmp);
        if (!mkdtemp(a->dir)) {
            perror("mkdtemp");
            exit(2);
        }
        snprintf(a->path, sizeof a->path, "%s/heap", a->dir);
    }
    if (kind == OPEN_FILE || kind == OPEN_ANON)
        return; /* the heap is mapalloc's to map */
    if (kind == FILE_MAP) {
        a->fd = open(a->path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (a->fd < 0 || ftruncate(a->fd, (off_t)a->map_size) != 0) {
            perror(a->path);
            exit(2);
        }
        flags = MAP_SHARED;
    }
    a->map = mmap(NULL, a->map_size, PROT_READ | PROT_WRITE, flags, a->fd, 0);
    if (a->map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    memset(a->map, GUARD_BYTE, a->map_size);
    a->region = a->map + GUARD;
}

static int guards_intact(const struct arena *a)
{
    if (!a->map)
        return 1;
    for (size_t i = 0; i < GUARD; i++)
        if (a->map[i] != GUARD_BYTE || a->region[REGION + i] != GUARD_BYTE)
            return 0;
    return 1;
}

static void arena_close(struct arena *a)
{
    CHECK(guards_intact(a));
    if (a->map)
        munmap(a->map, a->map_size);
    if (a->fd >= 0)
        close(a->fd);
    if (a->dir[0]) {
        unlink(a->path);
        rmdir(a->dir);
    }
}

static ma_heap_t *heap_make(enum kind kind, struct arena *a)
{
    if (kind == USER)
        return ma_heap_new();
    if (kind == OPEN_FILE)
        return ma_heap_open(a->path, REGION, MA_CREATE);
    if (kind == OPEN_ANON)
        return ma_heap_open(NULL, REGION, 0);
    return ma_heap_new_in(a->region, REGION);
}

/* ---- The live set --------------------------------------------------------- */

static void *track(void *p, size_t size)
{
    if (!p || nlive == MAX_LIVE)
        return p;
    live[nlive] = (struct live){p, size, next_tag++, 0};
    pattern_fill(p, size, live[nlive].tag);
    nlive++;
    return p;
}

static struct live *find_live(const void *p)
{
    for (size_t i = 0; i < nlive; i++)
        if (live[i].p == p)
            return &live[i];
    return NULL;
}

static void untrack(void *p)
{
    struct live *l = find_live(p);
    if (l)
        *l = live[--nlive];
}

/* Checks the contents of a tracked block, then frees it. */
static void drop(void *p)
{
    struct live *l = find_live(p);
    if (CHECK(l != NULL))
        CHECK(pattern_ok(p, l->size, l->tag));
    untrack(p);
    A_FREE(p);
}

static void drop_all(void)
{
    while (nlive)
        drop(live[nlive - 1].p);
}

/* ---- visit and stats ----------------------------------------------------- */

struct visit_tally {
    size_t calls, unknown, twice, short_size, bad_size, stop_after;
    size_t bytes;
};

static int visit_check(void *block, size_t size, void *arg)
{
    struct visit_tally *t = arg;
    t->calls++;
    t->bytes += size;
    struct live *l = find_live(block);
    if (!l) {
        t->unknown++;
    } else {
        t->twice += l->seen++ != 0;
        t->short_size += size < l->size;
        t->bad_size += size != A_USABLE(block);
    }
    return t->stop_after && t->calls == t->stop_after ? 7 : 0;
}

/* visit sees exactly the tracked blocks, stats agree with them. */
static void check_visit_and_stats(ma_heap_t *h)
{
    struct visit_tally t = {0};
    for (size_t i = 0; i < nlive; i++)
        live[i].seen = 0;
    CHECK_EQ_U(ma_heap_visit(h, visit_check, &t), 0);
    CHECK_EQ_U(t.calls, nlive);
    CHECK_EQ_U(t.unknown, 0);
    CHECK_EQ_U(t.twice, 0);
    CHECK_EQ_U(t.short_size, 0);
    CHECK_EQ_U(t.bad_size, 0);
    size_t usable = 0;
    for (size_t i = 0; i < nlive; i++)
        usable += A_USABLE(live[i].p);
    ma_heap_stats_t st;
    memset(&st, 0xff, sizeof st);
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, nlive);
    CHECK_EQ_U(st.bytes_in_use, usable);
    CHECK(st.os_bytes >= st.bytes_in_use);
    if (nlive >= 3) {
        struct visit_tally stop = {.stop_after = 3};
        CHECK_EQ_U(ma_heap_visit(h, visit_check, &stop), 7);
        CHECK_EQ_U(stop.calls, 3);
    }
}

/* ---- The tests of one heap ---------------------------------------------- */

static const size_t sizes[] = {0,    1,     15,      16,       17,       100,      255,
                               1000, 1024,  4000,    8 * KIB,  65 * KIB, 200 * KIB,
                               300 * KIB, 1 * MIB, 3 * MIB + 5};

static void test_malloc(ma_heap_t *h)
{
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = track(ma_heap_malloc(h, sizes[i]), sizes[i]);
        if (!CHECK(p != NULL))
            continue;
        CHECK(((uintptr_t)p & 15) == 0);
        CHECK(A_USABLE(p) >= sizes[i]);
    }
    check_visit_and_stats(h);
    /* free every other one, then check what is left */
    void *half[sizeof sizes / sizeof sizes[0]];
    size_t n = 0;
    for (size_t i = 0; i < nlive; i += 2)
        half[n++] = live[i].p;
    for (size_t i = 0; i < n; i++)
        drop(half[i]);
    check_visit_and_stats(h);
    errno = 0;
    CHECK(ma_heap_malloc(h, opaque(SIZE_MAX)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(ma_heap_malloc(h, opaque(SIZE_MAX / 2)) == NULL && errno == ENOMEM);
}

static void test_calloc(ma_heap_t *h)
{
    /* dirty memory first, so that a zero cannot be luck */
    for (size_t i = 0; i < 64; i++) {
        void *p = ma_heap_malloc(h, 4000);
        if (p) {
            memset(p, 0xee, 4000);
            A_FREE(p);
        }
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = ma_heap_calloc(h, 1, sizes[i]);
        if (!CHECK(p != NULL))
            continue;
        CHECK(all_zero(p, sizes[i]));
        track(p, sizes[i]);
    }
    unsigned char *p = ma_heap_calloc(h, 100, 40);
    CHECK(p != NULL && all_zero(p, 4000));
    track(p, 4000);
    errno = 0;
    CHECK(ma_heap_calloc(h, opaque(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
    check_visit_and_stats(h);
}

static void *realloc_tracked(ma_heap_t *h, void *p, size_t size)
{
    struct live *l = find_live(p);
    size_t keep = l ? (l->size < size ? l->size : size) : 0;
    uint64_t tag = l ? l->tag : 0;
    void *q = ma_heap_realloc(h, p, size);
    if (!CHECK(q != NULL))
        return NULL;
    CHECK(A_USABLE(q) >= size);
    CHECK(pattern_find_bad(q, keep, tag) == keep);
    untrack(p);
    return track(q, size);
}

static void test_realloc(ma_heap_t *h, ma_heap_t *other)
{
    void *p = track(ma_heap_realloc(h, NULL, 50), 50); /* as malloc */
    CHECK(p != NULL);
    static const size_t steps[] = {100, 1000, 70, 16, 20000, 300 * KIB, 2 * MIB, 500, 8};
    for (size_t i = 0; p && i < sizeof steps / sizeof steps[0]; i++)
        p = realloc_tracked(h, p, steps[i]);
    /* a block of another heap, then one of ma_malloc, moved into h */
    void *q = ma_heap_malloc(other, 3000);
    pattern_fill(q, 3000, 99);
    void *q2 = ma_heap_realloc(h, q, 5000);
    if (CHECK(q2 != NULL)) {
        CHECK(pattern_ok(q2, 3000, 99));
        track(q2, 3000);
    }
    void *m = ma_malloc(200);
    pattern_fill(m, 200, 98);
    void *m2 = ma_heap_realloc(h, m, 100);
    if (CHECK(m2 != NULL)) {
        CHECK(pattern_ok(m2, 100, 98));
        track(m2, 100);
    }
    ma_heap_stats_t st;
    ma_heap_stats(other, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    /* size 0 frees, as glibc's realloc */
    void *z = ma_heap_malloc(h, 64);
    CHECK(ma_heap_realloc(h, z, 0) == NULL);
    errno = 0;
    CHECK(p && ma_heap_realloc(h, p, opaque(SIZE_MAX)) == NULL && errno == ENOMEM);
    check_visit_and_stats(h); /* p unchanged: still tracked */
}

static void test_aligned(ma_heap_t *h, enum kind kind)
{
    size_t max = kind == USER ? 1 * MIB : 64 * KIB;
    for (size_t align = 16; align <= max; align *= 2) {
        for (size_t size = 1; size <= 3 * align; size += align + 7) {
            void *p = track(ma_heap_aligned_alloc(h, align, size), size);
            if (!CHECK(p != NULL))
                continue;
            CHECK(((uintptr_t)p & (align - 1)) == 0);
            CHECK(A_USABLE(p) >= size);
        }
    }
    check_visit_and_stats(h);
}

static void test_strdup(ma_heap_t *h, struct arena *a, enum kind kind)
{
    static const char *const words[] = {"", "a", "pools", "a somewhat longer string, past 16"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        char *s = ma_heap_strdup(h, words[i]);
        if (!CHECK(s != NULL))
            continue;
        CHECK(strcmp(s, words[i]) == 0);
        if (kind == FILE_MAP || kind == OPEN_FILE) { /* the bytes are in the file */
            char back[64] = {0};
            int fd = kind == FILE_MAP ? a->fd : open(a->path, O_RDONLY);
            off_t at = kind == FILE_MAP ? (off_t)((unsigned char *)s - a->map)
                                        : (off_t)ma_heap_offset(h, s);
            CHECK(pread(fd, back, strlen(words[i]) + 1, at) == (ssize_t)strlen(words[i]) + 1);
            CHECK(strcmp(back, words[i]) == 0);
            if (fd != a->fd)
                close(fd);
        }
        track(s, strlen(s) + 1);
    }
    check_visit_and_stats(h);
}

static void test_reset(ma_heap_t *h)
{
    for (size_t i = 0; i < 500; i++)
        track(ma_heap_malloc(h, 10 + i * 37 % 3000), 10 + i * 37 % 3000);
    check_visit_and_stats(h);
    ma_heap_reset(h);
    nlive = 0;
    check_visit_and_stats(h);
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    CHECK_EQ_U(st.bytes_in_use, 0);
    for (size_t i = 0; i < 500; i++)
        CHECK(track(ma_heap_malloc(h, 10 + i * 13 % 5000), 10 + i * 13 % 5000) != NULL);
    check_visit_and_stats(h);
    drop_all();
    check_visit_and_stats(h);
}

/* Blocks of 64..1024 bytes until ENOMEM; returns how many. */
static size_t fill(ma_heap_t *h, void ***out, size_t *cap, uint64_t seed)
{
    rng_t r = {seed};
    size_t n = 0;
    for (;;) {
        errno = 0;
        size_t size = rng_range(&r, 64, 1024);
        void *p = ma_heap_malloc(h, size);
        if (!p)
            break;
        memset(p, 0x3c, size);
        if (n == *cap) {
            *cap = *cap ? 2 * *cap : 4096;
            *out = realloc(*out, *cap * sizeof **out);
        }
        (*out)[n++] = p;
    }
    CHECK_EQ_U(errno, ENOMEM);
    return n;
}

static void test_fill(ma_heap_t *h, struct arena *a)
{
    void **blocks = NULL;
    size_t cap = 0;
    size_t first = fill(h, &blocks, &cap, 5);
    CHECK(first > REGION / 1100);
    CHECK(guards_intact(a));
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK(st.os_bytes <= REGION && st.os_bytes > REGION - 64 * KIB);
    CHECK(st.bytes_in_use > REGION / 10 * 9); /* low overhead */
    for (size_t i = 0; i < first; i += 3)
        A_FREE(blocks[i]);
    for (size_t i = 0; i < first; i++)
        if (i % 3)
            A_FREE(blocks[i]);
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    size_t second = fill(h, &blocks, &cap, 5);
    CHECK(second + second / 100 >= first && first + first / 100 >= second);
    for (size_t i = 0; i < second; i++)
        A_FREE(blocks[i]);
    size_t third = fill(h, &blocks, &cap, 6); /* other sizes: no worse */
    CHECK(third + third / 50 >= first);
    printf("    fill: %zu blocks, after freeing all %zu, other sizes %zu\n", first, second, third);
    ma_heap_reset(h);
    CHECK(guards_intact(a));
    free(blocks);
}

static void test_kind(enum kind kind)
{
    printf("%s\n", kind_names[kind]);
    struct arena a;
    arena_open(&a, kind);
    ma_heap_t *h = heap_make(kind, &a);
    ma_heap_t *other = ma_heap_new();
    if (!CHECK(h != NULL) || !CHECK(other != NULL))
        exit(check_done());
    if (FIXED_KIND(kind))
        CHECK((unsigned char *)h >= a.region && (unsigned char *)h < a.region + REGION);
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    CHECK_EQ_U(st.bytes_in_use, 0);
    CHECK(kind == USER || st.os_bytes <= REGION);
    check_visit_and_stats(h);

    test_malloc(h);
    test_calloc(h);
    test_realloc(h, other);
    test_aligned(h, kind);
    test_strdup(h, &a, kind);
    drop_all();
    check_visit_and_stats(h);
    test_reset(h);
    if (kind != USER)
        test_fill(h, &a);

    /* destroy with live blocks: no need to free them one by one */
    for (size_t i = 0; i < 100; i++)
        CHECK(ma_heap_malloc(h, 100 + i) != NULL);
    ma_heap_destroy(h);
    ma_heap_destroy(other);
    nlive = 0;
    if (FIXED_KIND(kind)) { /* the region is the caller's again: a new heap fits */
        h = ma_heap_new_in(a.region, REGION);
        CHECK(h != NULL);
        ma_heap_destroy(h);
    }
    if (kind == OPEN_FILE) { /* destroy closed the file: its blocks are still there */
        h = ma_heap_open(a.path, 0, 0);
        if (CHECK(h != NULL)) {
            ma_heap_stats(h, &st);
            CHECK_EQ_U(st.blocks_in_use, 100);
            CHECK_EQ_U(ma_heap_close(h), 0);
        }
    }
    arena_close(&a);
}

/* ---- ma_heap_new_in's arguments ----------------------------------------- */

static void test_new_in_errors(void)
{
    struct arena a;
    arena_open(&a, ANON);
    errno = 0;
    CHECK(ma_heap_new_in(a.region + 8, REGION - 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ma_heap_new_in(a.region + 1, REGION - 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ma_heap_new_in(a.region, MA_HEAP_IN_MIN - 1) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ma_heap_new_in(a.region, 0) == NULL && errno == EINVAL);
    ma_heap_t *h = ma_heap_new_in(a.region + 16, MA_HEAP_IN_MIN);
    if (CHECK(h != NULL)) { /* the smallest region works */
        void *p = ma_heap_malloc(h, 1000);
        CHECK(p != NULL);
        A_FREE(p);
        ma_heap_destroy(h);
    }
    arena_close(&a);
}

/* ---- 100 heaps at once -------------------------------------------------- */

#define NHEAPS 100
#define PER_HEAP 40
#define SMALL_REGION (1 * MIB)

struct many_tally {
    int heap;
    size_t calls, foreign;
};

static void *many_blocks[NHEAPS][PER_HEAP];

static int visit_many(void *block, size_t size, void *arg)
{
    struct many_tally *t = arg;
    t->calls++;
    int mine = 0;
    for (size_t j = 0; j < PER_HEAP; j++)
        mine |= many_blocks[t->heap][j] == block;
    t->foreign += !mine || size < 8;
    return 0;
}

static void test_many_heaps(void)
{
    struct arena a;
    arena_open(&a, ANON);
    ma_heap_t *heaps[NHEAPS];
    for (int i = 0; i < NHEAPS; i++) {
        heaps[i] = i % 2 ? ma_heap_new() : ma_heap_new_in(a.region + (size_t)i / 2 * SMALL_REGION, SMALL_REGION);
        if (!CHECK(heaps[i] != NULL))
            exit(check_done());
    }
    /* interleaved: block j of every heap, then block j + 1 */
    for (size_t j = 0; j < PER_HEAP; j++) {
        for (int i = 0; i < NHEAPS; i++) {
            size_t size = 8 + (j * 97 + (size_t)i * 31) % 2000;
            uint64_t *p = ma_heap_malloc(heaps[i], size);
            if (!CHECK(p != NULL))
                exit(check_done());
            p[0] = (uint64_t)i * 1000 + j;
            many_blocks[i][j] = p;
        }
    }
    size_t wrong = 0;
    for (int i = 0; i < NHEAPS; i++) {
        for (size_t j = 0; j < PER_HEAP; j++)
            wrong += *(uint64_t *)many_blocks[i][j] != (uint64_t)i * 1000 + j;
        struct many_tally t = {i, 0, 0};
        ma_heap_visit(heaps[i], visit_many, &t);
        CHECK_EQ_U(t.calls, PER_HEAP);
        CHECK_EQ_U(t.foreign, 0);
    }
    CHECK_EQ_U(wrong, 0);
    /* free the even blocks of every heap through ma_free, destroy the rest */
    for (int i = 0; i < NHEAPS; i++)
        for (size_t j = 0; j < PER_HEAP; j += 2)
            A_FREE(many_blocks[i][j]);
    for (int i = 0; i < NHEAPS; i++) {
        ma_heap_stats_t st;
        ma_heap_stats(heaps[i], &st);
        CHECK_EQ_U(st.blocks_in_use, PER_HEAP / 2);
        ma_heap_destroy(heaps[i]);
    }
    arena_close(&a);
}

/* Process figures that are cumulative (blocks and bytes allocated) may
 * only grow, whatever happens to the heap whose blocks they counted: pages
 * with room, full pages, pages emptied by frees, large blocks. */
static void check_cumulative(const ma_stats_t *before, const char *what)
{
    ma_stats_t now;
    ma_stats_get(&now);
    if (!CHECK(now.blocks_allocated >= before->blocks_allocated &&
               now.bytes_allocated >= before->bytes_allocated))
        printf("  %s: blocks allocated %llu -> %llu, bytes allocated %llu -> %llu\n", what,
               (unsigned long long)before->blocks_allocated,
               (unsigned long long)now.blocks_allocated,
               (unsigned long long)before->bytes_allocated,
               (unsigned long long)now.bytes_allocated);
}

static void test_stats_cumulative(void)
{
    puts("-- cumulative statistics across ma_heap_reset and ma_heap_destroy");
    /* 1000-byte blocks: 64 to a page, so 100 fill one page (then in the
     * heap's full list) and start another; 4000 freed leave empty pages. */
    static const size_t sizes[] = {1000, 48, 100 * KIB, 5 * MIB};
    static const int counts[] = {100, 4000, 30, 3};
    for (int reset = 0; reset < 2; reset++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (int free_some = 0; free_some < 2; free_some++) {
                ma_heap_t *h = ma_heap_new();
                CHECK(h != NULL);
                ma_stats_t before, held;
                ma_stats_get(&before);
                static void *v[4000];
                for (int i = 0; i < counts[s]; i++)
                    CHECK((v[i] = ma_heap_malloc(h, sizes[s])) != NULL);
                if (free_some)
                    for (int i = 0; i < counts[s]; i += 2)
                        A_FREE(v[i]);
                ma_stats_get(&held);
                CHECK(held.blocks_allocated >= before.blocks_allocated + (uint64_t)counts[s]);
                CHECK(held.bytes_allocated >= before.bytes_allocated + counts[s] * sizes[s]);
                if (reset) {
                    ma_heap_reset(h);
                    check_cumulative(&held, "ma_heap_reset");
                }
                ma_heap_destroy(h);
                check_cumulative(&held, "ma_heap_destroy");
            }
        }
    }
}

int main(void)
{
    printf("pools_api: %s\n", A_FLAVOUR);
    for (int k = 0; k < KIND_COUNT; k++)
        test_kind((enum kind)k);
    test_new_in_errors();
    test_many_heaps();
    test_stats_cumulative();
    return check_done();
}
