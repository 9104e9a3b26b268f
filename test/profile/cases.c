/* cases.c - the heap profiler's cases, one per run:
 *
 *   cases exact      (MAPALLOC_PROFILE_RATE=1) known blocks from named
 *                    functions - malloc, realloc, calloc, aligned, from
 *                    threads that exit and whose blocks the main thread
 *                    frees, from a thread that adopts their heap - and
 *                    prints what the profile must hold, exactly (at rate 1
 *                    a sample of s >= 64 bytes stands for s bytes):
 *                      EXPECT <function> <sample index> <value>
 *   cases small      1000 blocks of 1000 bytes, kept (a huge rate: none
 *                    is sampled)
 *   cases dump DIR   ma_profile_dump: NULL (the MAPALLOC_PROFILE file),
 *                    DIR/api.pb.gz, DIR/api.heap (legacy text), a file
 *                    that cannot be written (-1, ENOENT, the program goes
 *                    on); prints DUMPED lines
 *   cases off        ma_profile_dump without MAPALLOC_PROFILE: -1, ENOTSUP
 *   cases fork       threads allocate while the main thread forks 20
 *                    children that free the parent's blocks, allocate in
 *                    child_site and exit() (each writes its own profile)
 *   cases grow       64 MiB kept in 64 KiB blocks (interval dumps)
 *   cases churn      blocks over 32 KiB, each freed at once (their pages
 *                    are given back when they empty); prints the bytes
 *   cases threads FILE [ROUNDS]
 *                    four threads allocate and free each other's blocks
 *                    while one dumps the profile to FILE again and again
 *                    (TSan: fewer rounds)
 * Every case prints "done" last. Checked by check_cases.sh. Built with the
 * standard names (run with LD_PRELOAD); `threads` also with the ma_ names
 * (the ma_ build under TSan).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ma_test.h"

#define NOIPA __attribute__((noipa))

/* ma_profile_dump: the preloaded library's (the program is not linked
 * with it), or the ma_ build's. */
static int dump(const char *path) {
#if USE_STD
    int (*fn)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "ma_profile_dump");
    if (!fn) {
        fprintf(stderr, "ma_profile_dump not found: is libmapalloc.so preloaded?\n");
        exit(3);
    }
    return fn(path);
#else
    return ma_profile_dump(path);
#endif
}

static void expect(const char *fn, const char *index, unsigned long long v) {
    printf("EXPECT %s %s %llu\n", fn, index, v);
}

static void *must(void *p) {
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- exact ------------------------------------------------------------------ */

NOIPA void *site_malloc(size_t n) { return must(A_MALLOC(n)); }

NOIPA void *site_realloc(void *p, size_t n) { return must(A_REALLOC(p, n)); }

NOIPA void *site_calloc(size_t n) {
    unsigned char *p = must(A_CALLOC(1, n));
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != 0) exit(4);
    return p;
}

NOIPA void *site_aligned(size_t align, size_t n) {
    void *p = NULL;
    if (A_POSIX_MEMALIGN(&p, align, n) != 0 || ((uintptr_t)p & (align - 1)) != 0) exit(5);
    return p;
}

enum { THREADS = 3, PER_THREAD = 500, THREAD_SIZE = 256, ADOPT = 100, ADOPT_SIZE = 512 };
static void *thread_blocks[THREADS][PER_THREAD];

NOIPA void *site_thread(size_t n) { return must(A_MALLOC(n)); }

static void *thread_run(void *arg) {
    void **mine = arg;
    for (int i = 0; i < PER_THREAD; i++) mine[i] = site_thread(THREAD_SIZE);
    return NULL;
}

NOIPA void *site_adopt(size_t n) { return must(A_MALLOC(n)); }

static void *adopt_run(void *arg) {
    (void)arg;
    void *p[ADOPT];
    for (int i = 0; i < ADOPT; i++) p[i] = site_adopt(ADOPT_SIZE);
    for (int i = 0; i < ADOPT; i++) A_FREE(p[i]);
    return NULL;
}

static void case_exact(void) {
    /* malloc: 1000 blocks of 100..1099 bytes, the odd ones freed */
    static void *a[1000];
    unsigned long long all = 0, live = 0;
    for (int i = 0; i < 1000; i++) {
        a[i] = site_malloc(100 + (size_t)i);
        all += 100 + (size_t)i;
        if (i % 2 == 0) live += 100 + (size_t)i;
    }
    for (int i = 1; i < 1000; i += 2) A_FREE(a[i]);
    expect("site_malloc", "alloc_objects", 1000);
    expect("site_malloc", "alloc_space", all);
    expect("site_malloc", "inuse_objects", 500);
    expect("site_malloc", "inuse_space", live);

    /* realloc: a step that moves a small block allocates anew; a large
     * block (beyond the medium classes, 1 MiB) grows in place, counted
     * for the bytes beyond its usable size */
    void *r = site_realloc(NULL, 64);
    r = site_realloc(r, 5000);
    r = site_realloc(r, 1500000);
    size_t usable = A_USABLE(r);
    r = site_realloc(r, 3000000);
    expect("site_realloc", "alloc_objects", 3);
    expect("site_realloc", "alloc_space", 64 + 5000 + 1500000 + (3000000 - usable));
    expect("site_realloc", "inuse_space", 3000000);
    expect("site_realloc", "inuse_objects", 1);

    /* calloc, small and large; aligned, small and beyond a slice */
    void *c1 = site_calloc(3000), *c2 = site_calloc(2 << 20);
    void *al1 = site_aligned(64, 1000), *al2 = site_aligned(4096, 8192), *al3 = site_aligned(1 << 20, 100000);
    expect("site_calloc", "inuse_space", 3000 + (2 << 20));
    expect("site_aligned", "inuse_space", 1000 + 8192 + 100000);
    expect("site_aligned", "inuse_objects", 3);

    /* threads that exit; the main thread frees half of their blocks */
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, thread_run, thread_blocks[i]) != 0) exit(2);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < PER_THREAD; k += 2) A_FREE(thread_blocks[i][k]);
    expect("site_thread", "alloc_objects", THREADS * PER_THREAD);
    expect("site_thread", "inuse_objects", THREADS * PER_THREAD / 2);
    expect("site_thread", "inuse_space", THREADS * PER_THREAD / 2 * THREAD_SIZE);

    /* a new thread adopts an abandoned heap, allocates, frees it all */
    pthread_t u;
    if (pthread_create(&u, NULL, adopt_run, NULL) != 0) exit(2);
    pthread_join(u, NULL);
    expect("site_adopt", "alloc_objects", ADOPT);
    expect("site_adopt", "alloc_space", ADOPT * ADOPT_SIZE);
    expect("site_adopt", "inuse_space", 0);
    (void)c1, (void)c2, (void)al1, (void)al2, (void)al3, (void)r;
}

/* ---- small, dump, off ---------------------------------------------------------- */

static void *volatile kept[1024];   /* blocks the cases keep to the end */

static void case_small(void) {
    for (int i = 0; i < 1000; i++) kept[i] = site_malloc(1000);
}

static void try_dump(const char *path) {
    errno = 0;
    int rc = dump(path);
    printf("DUMPED %s rc=%d errno=%d\n", path ? path : "(null)", rc, rc ? errno : 0);
}

static void case_dump(const char *dir) {
    static void *p[2000];
    for (int i = 0; i < 2000; i++) p[i] = site_malloc(1000 + (size_t)i);
    char path[4096];
    try_dump(NULL);
    snprintf(path, sizeof path, "%s/api.pb.gz", dir);
    try_dump(path);
    snprintf(path, sizeof path, "%s/api.heap", dir);
    try_dump(path);
    try_dump("/nonexistent-dir/api.pb.gz");
    for (int i = 0; i < 2000; i++) A_FREE(p[i]);   /* the program goes on */
}

static void case_off(void) {
    errno = 0;
    int rc = dump("/tmp/never-written.pb.gz");
    printf("OFF rc=%d enotsup=%d\n", rc, errno == ENOTSUP);
}

/* ---- fork ---------------------------------------------------------------------- */

static atomic_bool stop;

static void *churn(void *arg) {
    (void)arg;
    void *p[64] = {0};
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        A_FREE(p[i % 64]);
        p[i % 64] = A_MALLOC(16 + i % 5000);
    }
    for (int i = 0; i < 64; i++) A_FREE(p[i]);
    return NULL;
}

NOIPA void *child_site(size_t n) { return must(A_MALLOC(n)); }

static void case_fork(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, churn, NULL) != 0) exit(2);
    void *parent[100];
    for (int i = 0; i < 100; i++) parent[i] = site_malloc(4000);
    int failed = 0;
    for (int k = 0; k < 20; k++) {
        pid_t pid = fork();
        if (pid < 0) exit(2);
        if (pid == 0) {
            alarm(20);   /* a lock inherited held would hang the child */
            for (int i = 0; i < 100; i += 2) A_FREE(parent[i]);
            void *mine[200];
            for (int i = 0; i < 200; i++) mine[i] = child_site(5000);
            (void)mine;
            exit(0);     /* exit(), not _exit(): the child writes its profile */
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    printf("FORKS failed=%d\n", failed);
}

/* ---- churn ---------------------------------------------------------------------------- */

/* Blocks of a class whose pages are given back when they empty (over 32
 * KiB), each freed at once: a page is taken and left for every block. */
NOIPA void *site_churn(size_t n) { return must(A_MALLOC(n)); }

static void case_churn(void) {
    unsigned long long all = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = 36000 + (size_t)(i % 7) * 1000;
        char *p = site_churn(n);
        p[0] = 1;
        all += n;
        A_FREE(p);
    }
    printf("TOTAL site_churn alloc_space %llu\n", all);
}

/* ---- grow, threads ----------------------------------------------------------------- */

static void case_grow(void) {
    for (int i = 0; i < 1024; i++) kept[i] = site_malloc(64 << 10);
}

static void *volatile *shared;   /* blocks handed between threads */
enum { SHARED = 4096 };

static long mixer_rounds = 200000;

static void *mixer(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg;
    for (long i = 0; i < mixer_rounds; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t slot = (size_t)(s >> 33) % SHARED;
        void *p = __atomic_exchange_n(&shared[slot], NULL, __ATOMIC_ACQ_REL);
        A_FREE(p);
        p = A_MALLOC(16 + (size_t)(s >> 40) % 20000);
        p = __atomic_exchange_n(&shared[slot], p, __ATOMIC_ACQ_REL);
        A_FREE(p);
    }
    return NULL;
}

static void *dumper(void *arg) {
    const char *path = arg;
    for (int i = 0; i < 20 && !atomic_load(&stop); i++)
        if (dump(path) != 0) exit(6);
    return NULL;
}

static void case_threads(const char *path) {
    shared = calloc(SHARED, sizeof *shared);
    if (!shared) exit(2);
    pthread_t t[5];
    for (uintptr_t i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, mixer, (void *)(i * 7919 + 1)) != 0) exit(2);
    if (pthread_create(&t[4], NULL, dumper, (void *)path) != 0) exit(2);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    atomic_store(&stop, true);
    pthread_join(t[4], NULL);
    for (int i = 0; i < SHARED; i++) A_FREE(shared[i]);
    free((void *)shared);
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);   /* lines reach the pipe before a fork */
    if (strcmp(c, "exact") == 0) case_exact();
    else if (strcmp(c, "small") == 0) case_small();
    else if (strcmp(c, "dump") == 0 && argc > 2) case_dump(argv[2]);
    else if (strcmp(c, "off") == 0) case_off();
    else if (strcmp(c, "fork") == 0) case_fork();
    else if (strcmp(c, "grow") == 0) case_grow();
    else if (strcmp(c, "churn") == 0) case_churn();
    else if (strcmp(c, "threads") == 0 && argc > 2) {
        if (argc > 3) mixer_rounds = atol(argv[3]);
        case_threads(argv[2]);
    }
    else {
        fprintf(stderr, "usage: cases exact|small|dump DIR|off|fork|grow|churn|threads FILE [ROUNDS]\n");
        return 2;
    }
    printf("done\n");
    return 0;
}
