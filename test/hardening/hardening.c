/* hardening.c - what the checked modes do to blocks, ma_check(), and the
 * leak report (test/death has the misuses that end the program).
 *
 *   hardening          the checks for the mode in the environment
 *                      (MAPALLOC_SECURE, MAPALLOC_DEBUG: ctest runs it in
 *                      each combination)
 *   hardening leak     leaks a few blocks and exits (the leak report test
 *                      runs itself this way, with MAPALLOC_DEBUG=1)
 *   hardening waf      writes to a freed block and exits (likewise)
 *
 * It runs on the ma_ build: the C library's malloc (stdio, the harness)
 * stays out of mapalloc's figures.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "mapalloc.h"

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)

static int secure, debug;

static int env_on(const char *name)
{
    const char *s = getenv(name);
    return s && strcmp(s, "1") == 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* MAPALLOC_SECURE keeps the last 8 bytes of each block for its canary. */
static void test_usable(void)
{
    puts("-- usable sizes");
    void *p = ma_malloc(24);
    CHECK_EQ_U(ma_usable_size(p), secure ? 24 : 32);
    ma_free(p);
    for (size_t n = 0; n <= 4096; n += 7) {
        p = ma_malloc(n);
        size_t u = ma_usable_size(p);
        CHECK(u >= n);
        if (secure && n > 0) /* malloc(0): test_zero_size */
            CHECK_EQ_U((u + 8) % 16, 0);
        memset(p, 1, u); /* all of it is the program's */
        ma_free(p);
    }
    p = ma_malloc(1 * MIB);
    CHECK(ma_usable_size(p) >= 1 * MIB);
    ma_free(p);
    /* One size, one class, whether malloc's fast path or its slow path
     * (when a page runs dry) hands the block out: in SECURE the slow path
     * once took a smaller class for 24 bytes, and the fast path's page was
     * then never refilled. */
    enum { MANY = 5000 };
    static void *many[MANY];
    static const size_t sizes[] = {24, 40, 100, 1000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t first = 0, odd = 0;
        for (size_t i = 0; i < MANY; i++) {
            many[i] = ma_malloc(sizes[s]);
            size_t u = ma_usable_size(many[i]);
            if (i == 0) first = u;
            else odd += u != first;
        }
        CHECK_EQ_U(odd, 0);
        for (size_t i = 0; i < MANY; i++)
            ma_free(many[i]);
    }
}

/* MAPALLOC_SECURE gives no block under 32 bytes (a link, 16 bytes of
 * fill, the canary): its free writes 16 bytes past the link without
 * looking at the size. Tiny requests through every entry, packed side by
 * side and freed: a block of 16 would have the fill land on its neighbour's
 * canary, which the frees and ma_check() would then report. */
static void test_tiny(void)
{
    puts("-- tiny blocks");
    enum { N = 600 };
    static void *v[N];
    ma_heap_t *h = ma_heap_new();
    CHECK(h != NULL);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            switch (i % 5) {
            case 0: v[i] = ma_malloc(0); break;
            case 1: v[i] = ma_calloc(1, 1); break;
            case 2: v[i] = ma_aligned_alloc(16, 8); break;
            case 3: CHECK_EQ_U(ma_posix_memalign(&v[i], 16, 4), 0); break;
            default: v[i] = ma_heap_malloc(h, 1); break;
            }
            CHECK(v[i] != NULL);
            if (secure) /* malloc(0): a block of no bytes (test_zero_size) */
                CHECK(ma_usable_size(v[i]) >= (i % 5 == 0 ? 0u : 24u));
            memset(v[i], 0x5A, ma_usable_size(v[i]));
        }
        for (int i = 0; i < N; i++)
            ma_free(v[i]);
        CHECK_EQ_U(ma_check(), 0);
    }
    ma_heap_destroy(h);
}

/* MAPALLOC_SECURE: malloc(0) gives a block of no bytes, which faults on
 * any access (test/death: zero_size_read, zero_size_write); the pointers
 * are unique while live, and every call takes them as it takes others. */
static void test_zero_size(void)
{
    puts("-- zero-size blocks");
    enum { N = 3000 };
    static void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = i % 3 == 0 ? ma_calloc(0, 5) : i % 3 == 1 ? ma_realloc(NULL, 0) : ma_malloc(0);
        CHECK(v[i] != NULL && ((uintptr_t)v[i] & 15) == 0);
        if (secure && !debug)
            CHECK_EQ_U(ma_usable_size(v[i]), 0);
        if (i % 2 == 0) { /* half come back at once: reused pointers stay unique */
            ma_free(v[i]);
            v[i] = ma_malloc(0);
        }
    }
    int dup = 0;
    for (int i = 0; i < N; i++)
        for (int k = i + 1; k < N && k < i + 64; k++)
            dup += v[i] == v[k];
    CHECK_EQ_U(dup, 0);
    char *p = ma_realloc(v[0], 100);   /* grows like any block */
    CHECK(p != NULL && ma_usable_size(p) >= 100);
    memset(p, 1, 100);
    v[0] = ma_realloc(p, 0) == NULL ? NULL : p;  /* realloc(p, 0) frees */
    for (int i = 1; i < N; i++)
        ma_free(v[i]);
    CHECK_EQ_U(ma_check(), 0);
}

static void test_fills(void)
{
    puts("-- fills");
    unsigned char *p = ma_malloc(100);
    size_t u = ma_usable_size(p);
    if (debug)
        CHECK(all_bytes(p, u, 0xAA));
    memset(p, 0x33, u);
    ma_free(p);
    /* Reading a freed block is what the test is about: the first word is
     * a link or a tag, the rest up to the usable size the free fill: all
     * of it in DEBUG; in SECURE bytes 8 to 24 and the last 16, the middle
     * left as the program wrote it; in the default mode nothing but the
     * link is written. The canary beyond stays (it is never the fill). */
    if (debug)
        CHECK(all_bytes(p + 8, u - 8, 0xDD));
    else if (secure)
        CHECK(all_bytes(p + 8, 16, 0xDD) && all_bytes(p + 24, u - 40, 0x33) &&
              all_bytes(p + u - 16, 16, 0xDD));
    else
        CHECK(all_bytes(p + 8, u - 8, 0x33));
    if (secure)
        CHECK(p[u] != 0xDD);
    unsigned char *z = ma_calloc(1, 100);
    CHECK(all_bytes(z, 100, 0));
    ma_free(z);
    unsigned char *big = ma_malloc(2 * MIB);
    if (debug)
        CHECK(all_bytes(big, 4096, 0xAA) &&
              all_bytes(big + ma_usable_size(big) - 4096, 4096, 0xAA));
    ma_free(big);
}

/* MAPALLOC_SECURE shuffles the blocks of each page; the other modes carve
 * them in address order (but for the few blocks earlier tests freed, which
 * come first), which shows that the count below can tell the two apart. */
static void test_shuffle(void)
{
    puts("-- shuffle");
    enum { N = 64 };
    char *b[N];
    int ascending = 0;
    for (int i = 0; i < N; i++) {
        b[i] = ma_malloc(200);
        if (i > 0 && b[i] > b[i - 1])
            ascending++;
    }
    printf("%d of %d in ascending order\n", ascending, N - 1);
    if (secure)
        CHECK(ascending < N - 8);
    else
        CHECK(ascending >= N - 8);
    for (int i = 0; i < N; i++)
        ma_free(b[i]);
}

/* MAPALLOC_SECURE holds a freed block back for the thread's next 64
 * frees: with no free in between, no malloc hands it out again, however
 * many pages of its class run dry meanwhile. Without the quarantine (the
 * other modes) it waits only until its page's free list runs dry: its
 * page is full, so it comes back within one page's worth of mallocs. */
static void test_quarantine(void)
{
    puts("-- quarantine");
    enum { N = 3000, SIZE = 100 };
    static void *v[N], *w[N];
    for (int i = 0; i < N; i++)
        v[i] = ma_malloc(SIZE);
    void *x = v[N / 2];
    ma_free(x);
    int back = 0;
    for (int i = 0; i < N; i++) {
        w[i] = ma_malloc(SIZE);
        back += w[i] == x;
    }
    printf("freed block handed out again %d time(s) in %d mallocs\n", back, N);
    if (secure)
        CHECK_EQ_U(back, 0);
    else
        CHECK_EQ_U(back, 1);
    for (int i = 0; i < N; i++) {
        if (i != N / 2)
            ma_free(v[i]);
        ma_free(w[i]);
    }
}

static void *malloc_in_thread(void *arg)
{
    return ma_malloc(*(size_t *)arg);
}

/* glibc's tst-tcfree3: a freed block's first bytes copied into live blocks
 * (data that happens to look like the allocator's), which are then freed:
 * no mode may call that a double free. Blocks of many sizes, fresh and
 * recycled (a recycled block still holds the free fill where the program
 * did not write), of this thread's pages and of another thread's. */
static void test_copied_free_words(void)
{
    puts("-- a freed block's first bytes copied into live blocks (tst-tcfree3)");
    static const size_t sizes[] = {24, 32, 40, 100, 1000, 20000, 127 * KIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (int round = 0; round < 3; round++) {
            if (round == 1) { /* recycle: blocks freed long ago, handed out again */
                void *v[200];
                for (int k = 0; k < 200; k++)
                    v[k] = ma_malloc(n);
                for (int k = 0; k < 200; k++)
                    ma_free(v[k]);
            }
            void *a = ma_malloc(n), *b, *c = ma_malloc(127 * KIB);
            pthread_t t;
            if (round == 2) /* b on a page of another (finished) thread */
                CHECK(pthread_create(&t, NULL, malloc_in_thread, &n) == 0 &&
                      pthread_join(t, &b) == 0);
            else
                b = ma_malloc(n);
            memset(c, 0xff, 127 * KIB);
            size_t copy = 32;
            if (ma_usable_size(a) < copy)
                copy = ma_usable_size(a);
            if (ma_usable_size(b) < copy)
                copy = ma_usable_size(b);
            ma_free(a);
            memcpy(b, a, copy);
            memcpy(c, a, copy);
            ma_free(b);
            ma_free(c);
        }
    }
    CHECK_EQ_U(ma_check(), 0);
}

static void *free_all(void *arg)
{
    void **v = arg;
    for (int i = 0; v[i]; i++)
        ma_free(v[i]);
    return NULL;
}

/* Blocks of many sizes, freed here and by another thread, reallocated, in
 * a user heap; ma_check must find nothing wrong. */
static void test_check_clean(void)
{
    puts("-- ma_check on a busy heap");
    enum { N = 4000 };
    static void *slot[N];
    static void *other[N + 1];
    for (int round = 0; round < 20000; round++) {
        int i = (int)(rng() % N);
        if (slot[i]) {
            if (rng() % 4 == 0) {
                slot[i] = ma_realloc(slot[i], rng() % 3000 + 1);
                continue;
            }
            ma_free(slot[i]);
            slot[i] = NULL;
        } else {
            uint64_t r = rng();
            size_t n = r % 100 == 0 ? (size_t)(r >> 8) % (600 * KIB) : (size_t)(r >> 8) % 2048;
            slot[i] = ma_malloc(n);
            memset(slot[i], 7, n);
        }
    }
    int n = 0;
    for (int i = 0; i < N; i += 2)
        if (slot[i]) {
            other[n++] = slot[i];
            slot[i] = NULL;
        }
    other[n] = NULL;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_all, other) == 0 && pthread_join(t, NULL) == 0);
    ma_heap_t *h = ma_heap_new();
    for (int i = 0; i < 500; i++)
        CHECK(ma_heap_malloc(h, (size_t)(rng() % 5000)) != NULL);
    CHECK(ma_heap_malloc(h, 1 * MIB) != NULL);
    CHECK_EQ_U(ma_check(), 0);
    ma_heap_destroy(h);
    for (int i = 0; i < N; i++) {
        ma_free(slot[i]);
        slot[i] = NULL;
    }
    CHECK_EQ_U(ma_check(), 0);
    ma_trim(0);
    CHECK_EQ_U(ma_check(), 0);
}

/* A corruption per mode that ma_check must report, without ending the
 * program; repaired afterwards. */
static void test_check_finds(void)
{
    puts("-- ma_check finds (expect mapalloc: check: lines)");
    uint64_t *p = ma_malloc(32);
    uint64_t *q = ma_malloc(32);
    if (secure) {
        unsigned char *c = (unsigned char *)p + ma_usable_size(p);
        *c ^= 1; /* the canary */
        CHECK(ma_check() >= 1);
        *c ^= 1;
    }
    ma_free(p);
    ma_free(q);
    if (secure || debug) {
        ((unsigned char *)p)[20] ^= 1; /* write after free */
        CHECK(ma_check() >= 1);
        ((unsigned char *)p)[20] ^= 1;
    } else {
        /* Local frees: q's link leads to p; give p the same link, a loop. */
        uint64_t saved = *p;
        *p = *q;
        CHECK(ma_check() >= 1);
        *p = saved;
    }
    CHECK_EQ_U(ma_check(), 0);
}

static void leak_child(void)
{
    void *keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = ma_malloc(40);
    void *big = ma_malloc(1 * MIB);
    for (int i = 0; i < 5; i++)
        ma_free(ma_malloc(40));
    printf("%p %p %p %p\n", keep[0], keep[1], keep[2], big);
    exit(0);
}

/* MAPALLOC_DEBUG: a write after free of a block that nothing hands out
 * again is reported at exit by ma_check(), on a line of its own, and the
 * program's exit status stays its own (README's misuse table). */
static void waf_child(void)
{
    unsigned char *p = ma_malloc(48);
    ma_free(p);
    p[30] = 'B';
    exit(0);
}

/* Runs this program again as `self mode` with MAPALLOC_DEBUG=1 alone; its
 * stderr goes into text (NUL-terminated); returns its wait status. */
static int run_child(const char *self, const char *mode, char *text, size_t size)
{
    int err[2];
    if (!CHECK(pipe(err) == 0))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(err[1], 2);
        close(err[0]);
        close(err[1]);
        setenv("MAPALLOC_DEBUG", "1", 1);
        setenv("MAPALLOC_SECURE", "0", 1);
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(err[0], text + len, size - 1 - len)) > 0)
        len += (size_t)r;
    text[len] = '\0';
    close(err[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

/* MAPALLOC_DEBUG=1 prints what is still allocated at exit. */
static void test_leak_report(const char *self)
{
    puts("-- leak report");
    char text[8192];
    int st = run_child(self, "leak", text, sizeof text);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("child's stderr:\n%s", text);
    CHECK(strstr(text, "mapalloc: leak report: 4 blocks (1052752 bytes) in use at exit\n") != NULL);
    CHECK(strstr(text, "mapalloc: leaked: 3 blocks of 48 bytes (size class 3): 144 bytes\n") != NULL);
    CHECK(strstr(text, "mapalloc: leaked: 1 large blocks of up to 2097151 bytes: 1052608 bytes\n") !=
          NULL);
    CHECK(strstr(text, "mapalloc: check:") == NULL);
    puts("-- write after free found at exit");
    st = run_child(self, "waf", text, sizeof text);
    printf("child's stderr:\n%s", text);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(text, "mapalloc: check: write after free of 0x") != NULL);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "leak") == 0)
        leak_child();
    if (argc == 2 && strcmp(argv[1], "waf") == 0)
        waf_child();
    secure = env_on("MAPALLOC_SECURE");
    debug = env_on("MAPALLOC_DEBUG");
    printf("hardening: MAPALLOC_SECURE=%d MAPALLOC_DEBUG=%d\n", secure, debug);
    test_usable();
    test_tiny();
    test_zero_size();
    test_fills();
    test_shuffle();
    test_quarantine();
    test_copied_free_words();
    test_check_clean();
    test_check_finds();
    if (!secure && !debug)
        test_leak_report(argv[0]);
    return check_done();
}
