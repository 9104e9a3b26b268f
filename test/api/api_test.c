/* api_test.c - every allocation entry point, with glibc's semantics.
 *
 * Built three ways (see CMakeLists.txt): against the ma_ names (mapalloc_ma,
 * and mapalloc_ma_asan), and with -DUSE_STD=1 against the standard names,
 * run with LD_PRELOAD=libmapalloc.so. Built with -DUSE_STD=1 and run without
 * LD_PRELOAD it tests glibc itself, which is how the expectations below were
 * checked (glibc 2.36, Debian 12).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static int aligned_to(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* The alignment C11 requires for an object of `size` bytes, capped at 16
 * (glibc's MALLOC_ALIGNMENT on x86_64). */
static size_t required_alignment(size_t size)
{
    size_t a = 1;
    while (a < 16 && a * 2 <= size)
        a *= 2;
    return a;
}

static size_t next_pow2(size_t x)
{
    size_t a = 1;
    while (a < x)
        a *= 2;
    return a;
}

static int cmp_uintptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs fn with stderr sent to a memory file; returns the bytes it wrote. */
static long stderr_bytes_of(void (*fn)(void))
{
    fflush(stderr);
    int fd = memfd_create("ma_stderr", 0);
    int saved = dup(2);
    if (fd < 0 || saved < 0)
        return -1;
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = (long)lseek(fd, 0, SEEK_END);
    close(fd);
    return n;
}

/* ---- malloc ---------------------------------------------------------- */

static void test_malloc_zero(void)
{
    enum { N = 1000 };
    static uintptr_t ptrs[N];
    int null = 0;
    for (int i = 0; i < N; i++) {
        void *p = A_MALLOC(0);
        null += p == NULL;
        ptrs[i] = (uintptr_t)p;
    }
    CHECK(null == 0);
    qsort(ptrs, N, sizeof ptrs[0], cmp_uintptr);
    int dup = 0;
    for (int i = 1; i < N; i++)
        dup += ptrs[i] == ptrs[i - 1];
    CHECK(dup == 0);
    for (int i = 0; i < N; i++)
        A_FREE((void *)ptrs[i]);

    void *p = A_REALLOC(NULL, 0); /* glibc: malloc(0), a unique pointer */
    CHECK(p != NULL);
    A_FREE(p);
}

static void expect_enomem(void *p, const char *what, size_t size)
{
    int err = errno;
    if (p != NULL || err != ENOMEM)
        fprintf(stderr, "%s(%#zx) gave %p, errno %d\n", what, size, p, err);
    CHECK(p == NULL);
    CHECK_EQ_U(err, ENOMEM);
    A_FREE(p);
}

static void test_malloc_huge(void)
{
    static const size_t below_max[] = {0,  1,    2,    7,    8,     15,
                                       16, 17,   31,   32,   63,    64,
                                       4095, 4096, 4097, 65536, 1 << 21,
                                       (size_t)1 << 26, (size_t)1 << 32};
    for (size_t i = 0; i < sizeof below_max / sizeof below_max[0]; i++) {
        size_t n = opaque(SIZE_MAX - below_max[i]);
        errno = 0;
        expect_enomem(A_MALLOC(n), "malloc", n);
        errno = 0;
        expect_enomem(A_CALLOC(1, n), "calloc", n);
        errno = 0;
        expect_enomem(A_REALLOC(NULL, n), "realloc(NULL)", n);
    }
    size_t n = opaque((size_t)PTRDIFF_MAX + 1);
    errno = 0;
    expect_enomem(A_MALLOC(n), "malloc", n);
    errno = 0;
    expect_enomem(A_MALLOC(opaque(PTRDIFF_MAX)), "malloc", PTRDIFF_MAX);
}

/* ---- calloc ---------------------------------------------------------- */

static void test_calloc_overflow(void)
{
    size_t half = opaque(SIZE_MAX / 2 + 1);
    size_t big = opaque((size_t)1 << 32); /* big * big wraps to exactly 0 */
    errno = 0;
    expect_enomem(A_CALLOC(half, 2), "calloc(n, 2)", half);
    errno = 0;
    expect_enomem(A_CALLOC(2, half), "calloc(2, n)", half);
    errno = 0;
    expect_enomem(A_CALLOC(big, big), "calloc(n, n)", big);
    errno = 0;
    expect_enomem(A_CALLOC(opaque(SIZE_MAX), opaque(SIZE_MAX)), "calloc(n, n)",
                  SIZE_MAX);
    errno = 0;
    expect_enomem(A_CALLOC(3, opaque(SIZE_MAX / 3 + 1)), "calloc(3, n)",
                  SIZE_MAX / 3 + 1);

    /* A zero count or size is a zero-byte block: not NULL, and freeable. */
    void *p = A_CALLOC(0, opaque(SIZE_MAX));
    CHECK(p != NULL);
    A_FREE(p);
    p = A_CALLOC(0, 0);
    CHECK(p != NULL);
    A_FREE(p);
}

/* Fills `count` blocks of `size` with garbage and frees them, then callocs
 * `count` blocks of `csize` and checks they read as zero. */
static int calloc_after_dirty(size_t size, size_t csize, int count)
{
    void *blocks[16];
    int bad = 0;
    for (int i = 0; i < count; i++) {
        blocks[i] = A_MALLOC(size);
        if (blocks[i] == NULL)
            return -1;
        memset(blocks[i], 0xa5, A_USABLE(blocks[i]));
    }
    for (int i = count - 1; i >= 0; i--)
        A_FREE(blocks[i]);
    for (int i = 0; i < count; i++) {
        /* both argument orders, to catch a product computed wrongly */
        blocks[i] = i % 2 ? A_CALLOC(csize, 1) : A_CALLOC(1, csize);
        if (blocks[i] == NULL)
            return -1;
        bad += !all_zero(blocks[i], csize);
    }
    for (int i = 0; i < count; i++)
        A_FREE(blocks[i]);
    return bad;
}

static void test_calloc_zeroes(void)
{
    static const size_t sizes[] = {1,         24,        100,      1000,
                                   4096,      5000,      65536,    300 * KIB,
                                   1 * MIB,   5 * MIB,   64 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        int count = n <= 64 * KIB ? 16 : n <= 5 * MIB ? 4 : 2;

        void *fresh = A_CALLOC(n, 1);
        CHECK(fresh != NULL);
        if (fresh)
            CHECK(all_zero(fresh, n));
        A_FREE(fresh);

        int bad = calloc_after_dirty(n, n, count);
        if (bad != 0)
            fprintf(stderr, "calloc(%zu) after dirty free: %d bad\n", n, bad);
        CHECK(bad == 0);
        /* a slightly smaller request may take the same (dirty) block */
        size_t smaller = n - n / 8;
        bad = calloc_after_dirty(n, smaller ? smaller : 1, count);
        if (bad != 0)
            fprintf(stderr, "calloc(%zu) after dirty free of %zu: %d bad\n",
                    smaller, n, bad);
        CHECK(bad == 0);
    }

    /* count * size forms */
    void *p = A_CALLOC(3, 8);
    void *q = A_CALLOC(8, 3);
    CHECK(p && all_zero(p, 24));
    CHECK(q && all_zero(q, 24));
    A_FREE(p);
    A_FREE(q);
    p = A_CALLOC(1000, 1000);
    CHECK(p && all_zero(p, 1000000));
    A_FREE(p);
}

/* ---- alignment and usable size ---------------------------------------- */

/* Checks `count` blocks of `size` held together: alignment, usable size,
 * and that all their usable bytes can be written without touching the
 * others. Returns the number of problems. */
static int check_blocks_of(size_t size, int count)
{
    void *blocks[8];
    size_t usable[8];
    int bad = 0;
    for (int i = 0; i < count; i++) {
        blocks[i] = A_MALLOC(size);
        if (blocks[i] == NULL) {
            fprintf(stderr, "malloc(%zu) failed\n", size);
            return bad + 1;
        }
        usable[i] = A_USABLE(blocks[i]);
        if (!aligned_to(blocks[i], required_alignment(size))) {
            fprintf(stderr, "malloc(%zu) = %p: misaligned\n", size, blocks[i]);
            bad++;
        }
        if (usable[i] < size) {
            fprintf(stderr, "malloc(%zu): usable %zu\n", size, usable[i]);
            bad++;
        }
        pattern_fill(blocks[i], usable[i], size * 8 + (size_t)i);
    }
    for (int i = 0; i < count; i++) {
        if (!pattern_ok(blocks[i], usable[i], size * 8 + (size_t)i)) {
            fprintf(stderr, "malloc(%zu): block %d overwritten\n", size, i);
            bad++;
        }
        A_FREE(blocks[i]);
    }
    return bad;
}

static void test_alignment_and_usable(void)
{
    CHECK_EQ_U(A_USABLE(NULL), 0);
    int bad = 0;
    for (size_t n = 1; n <= 4096; n++)
        bad += check_blocks_of(n, 8);
    for (size_t n = 4096; n <= 4 * MIB; n += n / 5) {
        bad += check_blocks_of(n - 1, 3);
        bad += check_blocks_of(n + 1, 3);
    }
    for (size_t n = 8192; n <= 4 * MIB; n *= 2) {
        bad += check_blocks_of(n - 16, 3);
        bad += check_blocks_of(n, 3);
        bad += check_blocks_of(n + 16, 3);
    }
    CHECK(bad == 0);

    /* what calloc and realloc hand out is aligned too */
    for (size_t n = 16; n <= 4 * MIB; n = n * 3 + 5) {
        void *p = A_CALLOC(1, n);
        void *q = A_MALLOC(8);
        q = A_REALLOC(q, n);
        CHECK(p && aligned_to(p, 16) && A_USABLE(p) >= n);
        CHECK(q && aligned_to(q, 16) && A_USABLE(q) >= n);
        A_FREE(p);
        A_FREE(q);
    }
}

/* ---- aligned allocation ---------------------------------------------- */

static void test_posix_memalign(void)
{
    static const size_t bad_align[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4097};
    for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
        void *out = &out;
        int rc = A_POSIX_MEMALIGN(&out, opaque(bad_align[i]), 16);
        if (rc != EINVAL)
            fprintf(stderr, "posix_memalign(align %zu) = %d\n", bad_align[i],
                    rc);
        CHECK_EQ_U(rc, EINVAL);
        CHECK_EQ_PTR(out, &out);
    }

    static const size_t sizes[] = {0, 1, 100, 5000, 1 * MIB, 10 * MIB};
    int bad = 0;
    for (size_t align = sizeof(void *); align <= 64 * MIB; align *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = NULL;
            int rc = A_POSIX_MEMALIGN(&p, align, n);
            if (rc != 0 || p == NULL || !aligned_to(p, align) ||
                A_USABLE(p) < n) {
                fprintf(stderr, "posix_memalign(%zu, %zu): rc %d, %p, usable %zu\n",
                        align, n, rc, p, p ? A_USABLE(p) : 0);
                bad++;
                continue;
            }
            memset(p, 0x5a, n);
            if (n <= 5000) { /* a second one must not overlap the first */
                void *q = NULL;
                rc = A_POSIX_MEMALIGN(&q, align, n);
                uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
                if (rc != 0 || q == NULL || !aligned_to(q, align) ||
                    (a < b + A_USABLE(q) && b < a + A_USABLE(p))) {
                    fprintf(stderr, "posix_memalign(%zu, %zu) twice: %p %p\n",
                            align, n, p, q);
                    bad++;
                }
                A_FREE(q);
            }
            A_FREE(p);
        }
    }
    CHECK(bad == 0);

    /* Out of memory: ENOMEM, *out untouched (also where size + alignment
     * would wrap around). */
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 100, (size_t)PTRDIFF_MAX + 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        void *out = &out;
        CHECK_EQ_U(A_POSIX_MEMALIGN(&out, 64, opaque(huge[i])), ENOMEM);
        CHECK_EQ_PTR(out, &out);
        CHECK_EQ_U(A_POSIX_MEMALIGN(&out, MIB, opaque(huge[i])), ENOMEM);
        CHECK_EQ_PTR(out, &out);
    }
    void *out = &out;
    CHECK_EQ_U(A_POSIX_MEMALIGN(&out, opaque(SIZE_MAX / 2 + 1), 16), ENOMEM);
    CHECK_EQ_PTR(out, &out);
    /* errno too says ENOMEM, as glibc, jemalloc, mimalloc and tcmalloc
     * leave it (glibc's tst-malloc-thread-fail reads it) */
    errno = 0;
    CHECK_EQ_U(A_POSIX_MEMALIGN(&out, 64, opaque(SIZE_MAX)), ENOMEM);
    CHECK_EQ_U(errno, ENOMEM);
}

/* Alignments of 1 GiB and more (glibc, mimalloc and jemalloc give them):
 * from posix_memalign, aligned_alloc and memalign, written at both ends,
 * grown by realloc, freed. 64 GiB is more than this machine's memory:
 * only the block's pages may be committed, not the alignment's slack. */
static void test_huge_alignment(void)
{
    static const size_t sizes[] = {1, 100, 5 * MIB};
    int bad = 0;
    for (size_t align = 1 << 30; align <= ((size_t)64 << 30); align *= 4) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = NULL, *q = A_ALIGNED_ALLOC(align, n), *r = A_MEMALIGN(align, n);
            int rc = A_POSIX_MEMALIGN(&p, align, n);
            void *all[3] = {p, q, r};
            for (int k = 0; k < 3; k++) {
                if (!all[k] || !aligned_to(all[k], align) || A_USABLE(all[k]) < n) {
                    fprintf(stderr, "alignment %zu, size %zu, call %d: %p (rc %d)\n", align, n, k,
                            all[k], rc);
                    bad++;
                    continue;
                }
                memset(all[k], 0x33, 64 < n ? 64 : n);
                ((char *)all[k])[n - 1] = 0x44;
            }
            if (r) {
                void *grown = A_REALLOC(r, n + 3 * MIB);
                CHECK(grown != NULL);
                if (grown) {
                    CHECK(((char *)grown)[n - 1] == 0x44);
                    r = grown;
                }
            }
            A_FREE(p);
            A_FREE(q);
            A_FREE(r);
        }
    }
    CHECK_EQ_U(bad, 0);
}

/* memalign, as glibc 2.36 on this machine (checked with a small program
 * against glibc): an alignment that is not a power of two is rounded up to
 * the next one and the call succeeds without touching errno
 * (memalign(3, 16) gives a 4-aligned block, memalign(24, 48) a 32-aligned
 * one, alignment 0 acts as 1); only an alignment above SIZE_MAX/2+1 fails,
 * with EINVAL. aligned_alloc, as C17 (DR 460) and glibc 2.38 and later:
 * an alignment that is not a power of two (0 included) fails with EINVAL;
 * the powers of two behave as memalign's. */
typedef void *(*align_fn)(size_t, size_t);

static void check_align_fn(align_fn fn, const char *name, int strict)
{
    static const size_t aligns[] = {0,   1,    2,    3,    5,       6,   7,
                                    8,   12,   16,   24,   48,      64,  100,
                                    1000, 4096, 4097, 65536, MIB + 1, 4 * MIB};
    static const size_t sizes[] = {0, 5, 48, 5000, 300 * KIB};
    int bad = 0;
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            size_t want = next_pow2(aligns[i]);
            errno = 0;
            void *p = fn(opaque(aligns[i]), sizes[j]);
            if (strict && want != aligns[i]) {
                if (p != NULL || errno != EINVAL) {
                    fprintf(stderr, "%s(%zu, %zu) = %p, errno %d (want NULL, EINVAL)\n", name,
                            aligns[i], sizes[j], p, errno);
                    bad++;
                }
                A_FREE(p);
                continue;
            }
            if (p == NULL || errno != 0 || !aligned_to(p, want) ||
                A_USABLE(p) < sizes[j]) {
                fprintf(stderr, "%s(%zu, %zu) = %p, errno %d\n", name,
                        aligns[i], sizes[j], p, errno);
                bad++;
            }
            if (p)
                memset(p, 0x77, sizes[j]);
            A_FREE(p);
        }
    }
    CHECK(bad == 0);

    errno = 0;
    void *p = fn(opaque(SIZE_MAX / 2 + 2), 16);
    CHECK(p == NULL);
    CHECK_EQ_U(errno, EINVAL);
    errno = 0;
    p = fn(opaque(SIZE_MAX), 16);
    CHECK(p == NULL);
    CHECK_EQ_U(errno, EINVAL);
    errno = 0;
    expect_enomem(fn(opaque(SIZE_MAX / 2 + 1), 16), name, SIZE_MAX / 2 + 1);
    errno = 0;
    expect_enomem(fn(64, opaque(SIZE_MAX)), name, SIZE_MAX);
    errno = 0;
    expect_enomem(fn(MIB, opaque(SIZE_MAX - 100)), name, SIZE_MAX - 100);
    errno = 0;
    expect_enomem(fn(4096, opaque((size_t)PTRDIFF_MAX + 1)), name,
                  (size_t)PTRDIFF_MAX + 1);
}

static void *call_aligned_alloc(size_t a, size_t n)
{
    return A_ALIGNED_ALLOC(a, n);
}

static void *call_memalign(size_t a, size_t n)
{
    return A_MEMALIGN(a, n);
}

static void test_aligned_alloc_memalign(void)
{
    check_align_fn(call_aligned_alloc, "aligned_alloc", 1);
    check_align_fn(call_memalign, "memalign", 0);
    errno = 0;
    CHECK(A_ALIGNED_ALLOC(opaque(65), 64) == NULL);  /* jemalloc's test */
    CHECK_EQ_U(errno, EINVAL);
}

static void test_valloc_pvalloc(void)
{
    static const size_t sizes[] = {0,    1,    100,    4095,   4096,
                                   4097, 8191, 100000, 3 * MIB, 3 * MIB + 1};
    size_t pg = page_size();
    int bad = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *v = A_VALLOC(n);
        void *pv = A_PVALLOC(n);
        /* pvalloc rounds the size up to whole pages (0 stays 0 in glibc) */
        size_t rounded = (n + pg - 1) / pg * pg;
        if (v == NULL || !aligned_to(v, pg) || A_USABLE(v) < n) {
            fprintf(stderr, "valloc(%zu) = %p\n", n, v);
            bad++;
        }
        if (pv == NULL || !aligned_to(pv, pg) || A_USABLE(pv) < rounded) {
            fprintf(stderr, "pvalloc(%zu) = %p, usable %zu\n", n, pv,
                    pv ? A_USABLE(pv) : 0);
            bad++;
        }
        if (v)
            memset(v, 1, n);
        if (pv)
            memset(pv, 2, rounded);
        A_FREE(v);
        A_FREE(pv);
    }
    CHECK(bad == 0);

    errno = 0;
    expect_enomem(A_VALLOC(opaque(SIZE_MAX)), "valloc", SIZE_MAX);
    errno = 0;
    expect_enomem(A_VALLOC(opaque(SIZE_MAX - pg)), "valloc", SIZE_MAX - pg);
    errno = 0;
    expect_enomem(A_PVALLOC(opaque(SIZE_MAX)), "pvalloc", SIZE_MAX);
    errno = 0; /* rounding up to a page would wrap around */
    expect_enomem(A_PVALLOC(opaque(SIZE_MAX - 100)), "pvalloc", SIZE_MAX - 100);
    errno = 0;
    expect_enomem(A_PVALLOC(opaque((size_t)PTRDIFF_MAX + 1)), "pvalloc",
                  (size_t)PTRDIFF_MAX + 1);
}

/* ---- realloc --------------------------------------------------------- */

/* Reallocs p (holding `old` bytes of pattern `tag`) to `n` bytes, checks
 * the common prefix survived, refills with `tag + 1`. */
static void *realloc_step(void *p, size_t old, size_t n, uint64_t tag, int *bad)
{
    void *q = A_REALLOC(p, n);
    if (q == NULL) {
        fprintf(stderr, "realloc(%zu -> %zu) failed\n", old, n);
        (*bad)++;
        return p;
    }
    size_t keep = old < n ? old : n;
    size_t at = pattern_find_bad(q, keep, tag);
    if (at != keep) {
        fprintf(stderr, "realloc(%zu -> %zu): byte %zu lost\n", old, n, at);
        (*bad)++;
    }
    if (A_USABLE(q) < n || !aligned_to(q, required_alignment(n))) {
        fprintf(stderr, "realloc(%zu -> %zu) = %p, usable %zu\n", old, n, q,
                A_USABLE(q));
        (*bad)++;
    }
    pattern_fill(q, n, tag + 1);
    return q;
}

static void test_realloc_ladder(void)
{
    static const size_t ladder[] = {16,       1 * KIB, 100 * KIB, 300 * KIB,
                                    2 * MIB,  50 * MIB, 2 * MIB,  300 * KIB,
                                    100 * KIB, 1 * KIB, 16,       1,
                                    50 * MIB, 16};
    int bad = 0;
    uint64_t tag = 1000;
    size_t old = 0;
    void *p = NULL; /* realloc(NULL, n) is malloc(n) */
    for (size_t i = 0; i < sizeof ladder / sizeof ladder[0]; i++) {
        p = realloc_step(p, old, ladder[i], tag++, &bad);
        old = ladder[i];
    }
    A_FREE(p);

    /* small steps up and down, crossing every size class on the way */
    p = NULL;
    old = 0;
    for (size_t n = 1; n <= 3 * MIB; n += n / 8 + 1) {
        p = realloc_step(p, old, n, tag++, &bad);
        old = n;
    }
    for (size_t n = old; n > 0; n -= n / 8 + 1) {
        p = realloc_step(p, old, n, tag++, &bad);
        old = n;
    }
    A_FREE(p);

    /* an aligned block grows and keeps its contents */
    p = A_MEMALIGN(4096, 1000);
    CHECK(p != NULL);
    if (p) {
        pattern_fill(p, 1000, 77);
        p = realloc_step(p, 1000, 100000, 77, &bad);
        p = realloc_step(p, 100000, 10, 78, &bad);
        A_FREE(p);
    }
    CHECK(bad == 0);
}

static void test_realloc_zero_frees(void)
{
    /* glibc 2.36 on this machine: realloc(p, 0) frees p and returns NULL. */
    static const size_t sizes[] = {16, 1000, 100 * KIB, 5 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = A_MALLOC(sizes[i]);
        CHECK(p != NULL);
#if !USE_STD
        ma_stats_t before, after;
        ma_stats_get(&before);
#endif
        void *q = A_REALLOC(p, 0);
        CHECK(q == NULL);
#if !USE_STD
        ma_stats_get(&after);
        CHECK(after.blocks_in_use < before.blocks_in_use);
#endif
        A_FREE(q);
    }
}

static void test_realloc_failure_keeps_block(void)
{
    static const size_t sizes[] = {100, 100 * KIB, 5 * MIB};
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = A_MALLOC(n);
        CHECK(p != NULL);
        if (p == NULL)
            continue;
        pattern_fill(p, n, 500 + i);
        void *(*volatile re)(void *, size_t) = A_REALLOC; /* as above */
        for (size_t j = 0; j < sizeof huge / sizeof huge[0]; j++) {
            errno = 0;
            void *q = re(p, opaque(huge[j]));
            CHECK(q == NULL);
            CHECK_EQ_U(errno, ENOMEM);
            CHECK(pattern_ok(p, n, 500 + i));
        }
        CHECK(A_USABLE(p) >= n);
        int bad = 0;
        p = realloc_step(p, n, 2 * n, 500 + i, &bad);
        CHECK(bad == 0);
        A_FREE(p);
    }
}

static void test_reallocarray(void)
{
    void *p = A_REALLOCARRAY(NULL, 10, 10);
    CHECK(p != NULL && A_USABLE(p) >= 100);
    if (p == NULL)
        return;
    pattern_fill(p, 100, 9);
    /* through a pointer, or gcc warns that p is used after reallocarray */
    void *(*volatile ra)(void *, size_t, size_t) = A_REALLOCARRAY;
    size_t half = opaque(SIZE_MAX / 2 + 1), big = opaque((size_t)1 << 32);
    errno = 0;
    CHECK(ra(p, half, 2) == NULL);
    CHECK_EQ_U(errno, ENOMEM);
    errno = 0;
    CHECK(ra(p, big, big) == NULL);
    CHECK_EQ_U(errno, ENOMEM);
    errno = 0;
    CHECK(ra(p, 2, half) == NULL);
    CHECK_EQ_U(errno, ENOMEM);
    CHECK(pattern_ok(p, 100, 9));
    void *q = A_REALLOCARRAY(p, 50, 4);
    CHECK(q != NULL);
    if (q) {
        CHECK(pattern_ok(q, 100, 9));
        CHECK(A_USABLE(q) >= 200);
        p = q;
    }
    A_FREE(p);
}

/* ---- free ------------------------------------------------------------ */

static void test_free_keeps_errno(void)
{
    A_FREE(NULL);
    errno = 1234;
    A_FREE(NULL);
    CHECK_EQ_U(errno, 1234);

    static const size_t sizes[] = {32, 1000, 100 * KIB, 300 * KIB, 5 * MIB,
                                   64 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = A_MALLOC(sizes[i]);
        CHECK(p != NULL);
        memset(p, 3, sizes[i]);
        errno = 1234;
        A_FREE(p);
        CHECK_EQ_U(errno, 1234);
    }
    void *p = A_MEMALIGN(2 * MIB, 3 * MIB);
    CHECK(p != NULL);
    errno = 1234;
    A_FREE(p);
    CHECK_EQ_U(errno, 1234);

    /* many frees, so that pages empty and may be given back on the way */
    enum { N = 20000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = A_MALLOC((size_t)(i % 700) + 1);
    int changed = 0;
    for (int i = 0; i < N; i++) {
        errno = 1234;
        A_FREE(blocks[i]);
        changed += errno != 1234;
    }
    CHECK(changed == 0);
}

/* ---- many blocks ----------------------------------------------------- */

struct span {
    uintptr_t at;
    size_t usable;
    size_t size;
    uint64_t tag;
};

static int cmp_span(const void *a, const void *b)
{
    return cmp_uintptr(&((const struct span *)a)->at,
                       &((const struct span *)b)->at);
}

static void test_many_small_blocks(void)
{
    enum { N = 200000 };
    struct span *s = calloc(N, sizeof *s);
    rng_t rng = {20240601};
    int failed = 0;
    for (size_t i = 0; i < N; i++) {
        uint64_t r = rng_next(&rng) % 100;
        size_t n = r < 70 ? rng_range(&rng, 1, 128)
                 : r < 97 ? rng_range(&rng, 129, 1024)
                          : rng_range(&rng, 1025, 4096);
        void *p = A_MALLOC(n);
        if (p == NULL) {
            failed++;
            n = 0;
        }
        s[i] = (struct span){(uintptr_t)p, p ? A_USABLE(p) : 0, n, i + 1};
        if (p)
            pattern_fill(p, s[i].usable, s[i].tag);
    }
    CHECK(failed == 0);

    qsort(s, N, sizeof *s, cmp_span);
    int overlaps = 0, short_usable = 0, corrupt = 0;
    for (size_t i = 0; i < N; i++) {
        if (s[i].at == 0)
            continue;
        short_usable += s[i].usable < s[i].size;
        if (i + 1 < N && s[i].at + s[i].usable > s[i + 1].at) {
            if (overlaps++ < 5)
                fprintf(stderr, "blocks overlap: %#lx+%zu and %#lx\n",
                        (unsigned long)s[i].at, s[i].usable,
                        (unsigned long)s[i + 1].at);
        }
        corrupt += !pattern_ok((void *)s[i].at, s[i].usable, s[i].tag);
    }
    CHECK(overlaps == 0);
    CHECK(short_usable == 0);
    CHECK(corrupt == 0);

    for (size_t i = N - 1; i > 0; i--) { /* free in random order */
        size_t j = (size_t)(rng_next(&rng) % (i + 1));
        struct span t = s[i];
        s[i] = s[j];
        s[j] = t;
    }
    corrupt = 0;
    for (size_t i = 0; i < N; i++) {
        if (i % 7 == 0)
            corrupt += !pattern_ok((void *)s[i].at, s[i].usable, s[i].tag);
        A_FREE((void *)s[i].at);
    }
    CHECK(corrupt == 0);
    free(s);
}

static void test_large_realloc(void)
{
    /* 64 MiB grown to 256 MiB (mremap may move the pages), then shrunk. */
    size_t n = 64 * MIB, m = 256 * MIB;
    void *p = A_MALLOC(n);
    CHECK(p != NULL);
    if (p == NULL)
        return;
    pattern_fill(p, n, 64);
    void *q = A_REALLOC(p, m);
    CHECK(q != NULL);
    if (q == NULL) {
        A_FREE(p);
        return;
    }
    CHECK(A_USABLE(q) >= m);
    CHECK(pattern_ok(q, n, 64));
    pattern_fill(q, m, 256);
    p = A_REALLOC(q, MIB);
    CHECK(p != NULL);
    if (p == NULL) {
        A_FREE(q);
        return;
    }
    CHECK(pattern_ok(p, MIB, 256));
    A_FREE(p);
}

/* ---- the glibc extras (override build) and the ma_ statistics --------- */

#if USE_STD
static void call_malloc_stats(void)
{
    malloc_stats();
}

/* Under LD_PRELOAD the standard names must be mapalloc's, or this program
 * tests glibc. */
static void test_preload_active(void)
{
    const char *pre = getenv("LD_PRELOAD");
    if (pre == NULL || strstr(pre, "mapalloc") == NULL) {
        printf("no LD_PRELOAD of mapalloc: testing the C library's malloc\n");
        return;
    }
    void *(*volatile fn)(size_t) = malloc;
    Dl_info info;
    CHECK(dladdr((void *)fn, &info) != 0);
    CHECK(info.dli_fname != NULL && strstr(info.dli_fname, "mapalloc") != NULL);
    size_t (*usable)(const void *) =
        (size_t(*)(const void *))dlsym(RTLD_DEFAULT, "ma_usable_size");
    CHECK(usable != NULL);
    void *p = malloc(100);
    if (usable)
        CHECK(usable(p) >= 100); /* dies if p is not mapalloc's */
    free(p);
}

static void test_glibc_extras(void)
{
    enum { N = 4096 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = malloc(KIB);
    void *big = malloc(8 * MIB);
    struct mallinfo2 mi = mallinfo2();
    /* the figures describe the heap that holds these blocks: hblkhd the
     * bytes of mapped (large) blocks, uordblks the others */
    CHECK(mi.uordblks >= N * KIB);
    CHECK(mi.hblks >= 1);
    CHECK(mi.hblkhd >= 8 * MIB);
    CHECK(stderr_bytes_of(call_malloc_stats) > 0);
    /* malloc_info is mapalloc's: glibc's XML shape, these figures */
    char *xml = NULL;
    size_t xml_len = 0;
    FILE *f = open_memstream(&xml, &xml_len);
    CHECK(f != NULL && malloc_info(0, f) == 0);
    if (f)
        fclose(f);
    const char *mmap_total = xml ? strstr(xml, "<total type=\"mmap\" count=\"") : NULL;
    unsigned long long mmap_count = 0, mmap_size = 0;
    CHECK(xml && strncmp(xml, "<malloc version=\"1\">\n", 21) == 0);
    CHECK(xml && xml_len > 10 && strcmp(xml + xml_len - 10, "</malloc>\n") == 0);
    CHECK(mmap_total && sscanf(mmap_total, "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>",
                               &mmap_count, &mmap_size) == 2);
    CHECK(mmap_count >= 1 && mmap_size >= 8 * MIB);
    CHECK(xml && strstr(xml, "<heap nr=\"0\">\n<sizes>\n") != NULL);
    if (check_n_failed)
        fprintf(stderr, "malloc_info wrote:\n%s", xml ? xml : "(nothing)\n");
    free(xml);
    errno = 0;
    CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    free(big);

    int r = malloc_trim(0);
    CHECK(r == 0 || r == 1);
    static const int params[] = {M_MMAP_THRESHOLD, M_TRIM_THRESHOLD,
                                 M_TOP_PAD,        M_MMAP_MAX,
                                 M_ARENA_MAX,      4242};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        r = mallopt(params[i], 1 << 20);
        CHECK(r == 0 || r == 1);
    }
    void *p = malloc(100); /* still works after all that */
    CHECK(p != NULL);
    free(p);
}
#else
static void test_ma_stats(void)
{
    enum { N = 4096 };
    static void *blocks[N];
    ma_stats_t before, held, after;
    ma_stats_get(&before);
    for (int i = 0; i < N; i++)
        blocks[i] = ma_malloc(KIB);
    void *big = ma_malloc(8 * MIB);
    ma_stats_get(&held);
    CHECK(held.blocks_in_use >= before.blocks_in_use + N + 1);
    CHECK(held.bytes_in_use >= before.bytes_in_use + N * KIB + 8 * MIB);
    CHECK(held.blocks_allocated >= before.blocks_allocated + N + 1);
    CHECK(held.large_in_use >= 1);
    CHECK(held.os_mapped >= held.bytes_in_use);
    CHECK(held.os_mapped_peak >= held.os_mapped);
    CHECK(stderr_bytes_of(ma_stats_print) > 0);
    for (int i = 0; i < N; i++)
        ma_free(blocks[i]);
    ma_free(big);
    ma_stats_get(&after);
    CHECK(after.blocks_in_use + N + 1 <= held.blocks_in_use);
    CHECK(after.bytes_in_use + N * KIB + 8 * MIB <= held.bytes_in_use);
    int r = ma_trim(0);
    CHECK(r == 0 || r == 1);
    void *p = ma_malloc(100);
    CHECK(p != NULL);
    ma_free(p);
}
#endif

static const struct {
    const char *name;
    void (*run)(void);
} tests[] = {
    {"malloc_zero", test_malloc_zero},
    {"malloc_huge", test_malloc_huge},
    {"calloc_overflow", test_calloc_overflow},
    {"calloc_zeroes", test_calloc_zeroes},
    {"alignment_and_usable", test_alignment_and_usable},
    {"posix_memalign", test_posix_memalign},
    {"aligned_alloc_memalign", test_aligned_alloc_memalign},
    {"huge_alignment", test_huge_alignment},
    {"valloc_pvalloc", test_valloc_pvalloc},
    {"realloc_ladder", test_realloc_ladder},
    {"realloc_zero_frees", test_realloc_zero_frees},
    {"realloc_failure_keeps_block", test_realloc_failure_keeps_block},
    {"reallocarray", test_reallocarray},
    {"free_keeps_errno", test_free_keeps_errno},
    {"many_small_blocks", test_many_small_blocks},
    {"large_realloc", test_large_realloc},
#if USE_STD
    {"glibc_extras", test_glibc_extras},
#else
    {"ma_stats", test_ma_stats},
#endif
};

/* api_test [NAME...]: runs the named tests, in the order given (all of them,
 * in table order, without arguments). */
int main(int argc, char **argv)
{
    printf("api test, %s\n", A_FLAVOUR);
#if USE_STD
    test_preload_active();
#endif
    size_t ntests = sizeof tests / sizeof tests[0];
    for (int a = 1; a < argc; a++) {
        size_t i = 0;
        while (i < ntests && strcmp(tests[i].name, argv[a]) != 0)
            i++;
        if (i == ntests) {
            fprintf(stderr, "no test %s\n", argv[a]);
            return 2;
        }
        printf("-- %s\n", tests[i].name);
        fflush(stdout);
        tests[i].run();
    }
    for (size_t i = 0; argc == 1 && i < ntests; i++) {
        printf("-- %s\n", tests[i].name);
        fflush(stdout);
        tests[i].run();
    }
    return check_done();
}
