/* files_api.c - heaps in files and shared memory (ma_heap_open), through
 * the public interface (and ma_fixed_repairs, an internal count).
 *
 *   pools_files [seed]          every test below
 *   pools_files reader PATH ADDR N   (run by the test itself, exec'd)
 *
 *  - create, MA_EXCL, ENOENT without MA_CREATE (no message), close, open
 *    again: a linked list built through offsets is read back through the
 *    root; two handles on one file in one process see the same heap;
 *  - a new process (exec) maps the file elsewhere - the old address is
 *    taken first - reads the list back, appends to it, and the parent reads
 *    the appended part;
 *  - bad files, each refused with NULL, the errno and one line on stderr
 *    naming the file and the problem, the file left as it was: random
 *    bytes, an empty file, a truncated heap (inside the header, and inside
 *    the blocks), every byte of the header with a bit flipped, another
 *    version, a corrupted block header, a directory, a file that is not
 *    writable (opened by a process that is not its owner);
 *  - ma_heap_open(NULL): a child made by fork shares the heap with its
 *    parent, both allocating and freeing at once;
 *  - ma_heap_new_in over MAP_SHARED memory: the same across fork (the
 *    heap's lock is process-shared; issue 14's closing note);
 *  - a process that dies holding the heap's lock (inside ma_heap_visit's
 *    callback): the next allocation repairs and goes on;
 *  - four threads allocate, hand over and free mixed sizes in one file heap
 *    at once, contents checked (also under TSan: pools_files_tsan).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"
#include "ma_test.h"

#define HEAP_SIZE (64 * MIB)

static char dir[64];
static uint64_t seed = 1234;

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* ---- A linked list kept in a heap through offsets ------------------------ */

struct node {
    uint64_t next;   /* offset of the next node, 0 at the end */
    uint64_t value;
    uint64_t text;   /* offset of a string */
};

static uint64_t list_push(ma_heap_t *h, uint64_t head, uint64_t value)
{
    struct node *n = ma_heap_malloc(h, sizeof *n);
    char buf[64];
    snprintf(buf, sizeof buf, "node %llu", (unsigned long long)value);
    char *s = ma_heap_strdup(h, buf);
    if (!n || !s)
        return head;
    *n = (struct node){head, value, ma_heap_offset(h, s)};
    return ma_heap_offset(h, n);
}

/* Counts the nodes from the root down, checking each; -1 on a bad one.
 * values: n-1 first (pushed last) down to 0. */
static long list_check(ma_heap_t *h, long expect)
{
    long count = 0;
    for (uint64_t off = ma_heap_root_get(h); off; count++) {
        struct node *n = ma_heap_pointer(h, off);
        char want[64];
        if (!n || n->value != (uint64_t)(expect - 1 - count))
            return -1;
        snprintf(want, sizeof want, "node %llu", (unsigned long long)n->value);
        const char *s = ma_heap_pointer(h, n->text);
        if (!s || strcmp(s, want) != 0)
            return -1;
        off = n->next;
    }
    return count;
}

static void test_create_reopen(void)
{
    char path[128];
    path_of(path, sizeof path, "list");
    errno = 0;
    CHECK(ma_heap_open(path, HEAP_SIZE, 0) == NULL && errno == ENOENT);
    /* arguments: EINVAL, and the file is not made */
    errno = 0;
    CHECK(ma_heap_open(path, HEAP_SIZE, MA_EXCL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ma_heap_open(path, HEAP_SIZE, 0x100) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(ma_heap_open(NULL, 1000, 0) == NULL && errno == EINVAL); /* a page: too small */
    errno = 0;
    CHECK(ma_heap_open(NULL, (size_t)1 << 43, 0) == NULL && errno == EINVAL);
    CHECK(access(path, F_OK) != 0);
    ma_heap_t *h = ma_heap_open(path, HEAP_SIZE, MA_CREATE | MA_EXCL);
    if (!CHECK(h != NULL))
        return;
    errno = 0;
    CHECK(ma_heap_open(path, HEAP_SIZE, MA_CREATE | MA_EXCL) == NULL && errno == EEXIST);
    CHECK_EQ_U(ma_heap_root_get(h), 0);
    CHECK(ma_heap_offset(h, NULL) == 0 && ma_heap_pointer(h, 0) == NULL);
    uint64_t head = 0;
    for (uint64_t i = 0; i < 1000; i++)
        head = list_push(h, head, i);
    ma_heap_root_set(h, head);
    CHECK_EQ_U(list_check(h, 1000), 1000);
    /* a second handle on the same file: another address, the same heap */
    ma_heap_t *h2 = ma_heap_open(path, 0, 0);
    if (CHECK(h2 != NULL)) {
        CHECK(ma_heap_pointer(h2, head) != ma_heap_pointer(h, head));
        CHECK_EQ_U(list_check(h2, 1000), 1000);
        head = list_push(h2, head, 1000);
        ma_heap_root_set(h2, head);
        CHECK_EQ_U(list_check(h, 1001), 1001);
        /* a block allocated through one handle, freed through the other */
        char *p = ma_heap_malloc(h, 300);
        char *q = ma_heap_pointer(h2, ma_heap_offset(h, p));
        CHECK(q != NULL && A_USABLE(q) >= 300);
        A_FREE(q);
        CHECK_EQ_U(ma_heap_close(h2), 0);
    }
    CHECK_EQ_U(ma_heap_sync(h), 0);
    CHECK_EQ_U(ma_heap_close(h), 0);
    h = ma_heap_open(path, 12345 /* ignored */, MA_CREATE);
    if (!CHECK(h != NULL))
        return;
    CHECK_EQ_U(list_check(h, 1001), 1001);
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 2 * 1001);
    CHECK(st.os_bytes >= 1 * MIB && st.os_bytes <= HEAP_SIZE);
    CHECK_EQ_U(ma_heap_close(h), 0);
}

/* ---- Another process, the file at another address -------------------------- */

/* exec'd: takes ADDR first, so the heap must go elsewhere; reads N nodes
 * back and pushes N..N+99. */
static int reader(const char *path, const char *addr_s, const char *n_s)
{
    void *old = (void *)(uintptr_t)strtoull(addr_s, NULL, 0);
    long n = strtol(n_s, NULL, 0);
    void *taken = mmap(old, HEAP_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (taken != old)
        return 10;
    ma_heap_t *h = ma_heap_open(path, 0, 0);
    if (!h)
        return 11;
    if (ma_heap_pointer(h, 64) == (char *)old + 64)
        return 12;
    if (list_check(h, n) != n)
        return 13;
    uint64_t head = ma_heap_root_get(h);
    for (long i = n; i < n + 100; i++)
        head = list_push(h, head, (uint64_t)i);
    ma_heap_root_set(h, head);
    return ma_heap_close(h) == 0 ? 0 : 14;
}

static int run_self(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_other_process(void)
{
    char path[128], addr[32], n[16];
    path_of(path, sizeof path, "moved");
    ma_heap_t *h = ma_heap_open(path, HEAP_SIZE, MA_CREATE);
    if (!CHECK(h != NULL))
        return;
    uint64_t head = 0;
    for (uint64_t i = 0; i < 500; i++)
        head = list_push(h, head, i);
    ma_heap_root_set(h, head);
    snprintf(addr, sizeof addr, "%p", ma_heap_pointer(h, 64) - 64);
    snprintf(n, sizeof n, "%d", 500);
    CHECK_EQ_U(ma_heap_close(h), 0);
    char *argv[] = {"pools_files", "reader", path, addr, n, NULL};
    CHECK_EQ_U(run_self(argv), 0);
    h = ma_heap_open(path, 0, 0);
    if (CHECK(h != NULL)) {
        CHECK_EQ_U(list_check(h, 600), 600);
        CHECK_EQ_U(ma_heap_close(h), 0);
    }
}

/* ---- Bad files ----------------------------------------------------------------- */

static int read_file(const char *path, unsigned char **out, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    *len = (size_t)st.st_size;
    *out = malloc(*len + 1);
    if (pread(fd, *out, *len, 0) != (ssize_t)*len)
        return -1;
    close(fd);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (len && pwrite(fd, data, len, 0) != (ssize_t)len)) {
        perror(path);
        exit(2);
    }
    close(fd);
}

/* ma_heap_open(path) must fail with errno `err` and print one line that
 * names path and holds `problem`, and leave the file's bytes alone. */
static void expect_refused(const char *path, int err, const char *problem)
{
    unsigned char *before = NULL, *after = NULL;
    size_t len_before = 0, len_after = 0;
    int have = read_file(path, &before, &len_before) == 0;
    char log[128];
    path_of(log, sizeof log, "stderr");
    int saved = dup(2), fd = open(log, O_RDWR | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    errno = 0;
    ma_heap_t *h = ma_heap_open(path, HEAP_SIZE, 0);
    int e = errno;
    dup2(saved, 2);
    close(saved);
    char text[1024] = {0};
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    char want[512];
    snprintf(want, sizeof want, "mapalloc: heap file %s: %s", path, problem);
    CHECK(h == NULL);
    CHECK_EQ_U(e, err);
    int said = n > 0 && strstr(text, want) != NULL;
    int one_line = n > 0 && text[n - 1] == '\n' && strchr(text, '\n') == text + n - 1;
    if (!CHECK(said && one_line))
        fprintf(stderr, "    wanted: %s\n    got: %s\n", want, text);
    if (have && CHECK(read_file(path, &after, &len_after) == 0))
        CHECK(len_after == len_before && memcmp(after, before, len_before) == 0);
    if (h)
        ma_heap_close(h);
    free(before);
    free(after);
}

/* A small heap file with a few blocks, its bytes in *data. */
static void make_heap_file(const char *path, unsigned char **data, size_t *len)
{
    unlink(path);
    ma_heap_t *h = ma_heap_open(path, HEAP_SIZE, MA_CREATE);
    if (!h)
        exit(2);
    for (int i = 0; i < 100; i++)
        memset(ma_heap_malloc(h, 1000), 'a', 1000);
    ma_heap_close(h);
    read_file(path, data, len);
}

static void test_bad_files(void)
{
    char path[128];
    path_of(path, sizeof path, "bad");
    rng_t r = {seed};
    unsigned char *junk = malloc(256 * KIB);
    for (size_t i = 0; i < 256 * KIB; i++)
        junk[i] = (unsigned char)rng_next(&r);
    write_file(path, junk, 256 * KIB);
    expect_refused(path, EINVAL, "not a mapalloc heap");
    write_file(path, junk, 3);
    expect_refused(path, EINVAL, "not a mapalloc heap");
    write_file(path, junk, 0);
    expect_refused(path, EINVAL, "empty file: not a mapalloc heap");
    free(junk);

    unsigned char *heap;
    size_t len;
    make_heap_file(path, &heap, &len);
    size_t head = ma_fixed_head_size(), arena = ma_fixed_arena_offset();
    write_file(path, heap, 20); /* inside the header */
    expect_refused(path, EINVAL, "truncated");
    write_file(path, heap, arena + 1000); /* inside the blocks */
    expect_refused(path, EINVAL, "truncated");
    for (size_t byte = 0; byte < head; byte++) { /* a bit flipped anywhere in the header */
        unsigned bit = (unsigned)(byte * 5 % 8);
        heap[byte] ^= (unsigned char)(1u << bit);
        write_file(path, heap, len);
        const char *problem = byte < 8 ? "not a mapalloc heap" : byte < 12 ? "made by a" : "corrupted header";
        expect_refused(path, byte >= 8 && byte < 12 ? ENOTSUP : EINVAL, problem);
        heap[byte] ^= (unsigned char)(1u << bit);
    }
    uint32_t version;
    memcpy(&version, heap + 8, 4);
    uint32_t newer = version + 1, older = 0;
    memcpy(heap + 8, &newer, 4);
    write_file(path, heap, len);
    expect_refused(path, ENOTSUP, "made by a newer mapalloc");
    memcpy(heap + 8, &older, 4);
    write_file(path, heap, len);
    expect_refused(path, ENOTSUP, "made by an older mapalloc");
    memcpy(heap + 8, &version, 4);
    /* the first block's header: a process opening the file alone checks
     * every block */
    heap[arena + 8] ^= 0x10;
    write_file(path, heap, len);
    expect_refused(path, EINVAL, "corrupted block header at offset");
    heap[arena + 8] ^= 0x10;
    write_file(path, heap, len); /* and whole again, it opens */
    ma_heap_t *h = ma_heap_open(path, 0, 0);
    if (CHECK(h != NULL)) {
        ma_heap_stats_t st;
        ma_heap_stats(h, &st);
        CHECK_EQ_U(st.blocks_in_use, 100);
        ma_heap_close(h);
    }
    free(heap);

    expect_refused(dir, EISDIR, "cannot open it: is a directory");

    /* not writable: opened by a process that does not own it (root, too,
     * once it is another user) */
    make_heap_file(path, &heap, &len);
    free(heap);
    chmod(path, 0444);
    chmod(dir, 0755);
    char log[128];
    path_of(log, sizeof log, "stderr");
    close(open(log, O_RDWR | O_CREAT, 0600));
    chmod(log, 0666);
    pid_t pid = fork();
    if (pid == 0) {
        unsigned long failed = check_n_failed;
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        expect_refused(path, EACCES, "cannot open it: permission denied");
        _exit(check_n_failed != failed);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    chmod(dir, 0700);
    unlink(path);
}

/* ---- Shared across fork ------------------------------------------------------ */

#define FORK_ROUNDS 20000

/* Allocates, fills, checks and frees mixed sizes; keeps `keep` blocks
 * alive at the end with their values at slots[]. Returns failures. */
static unsigned long churn(ma_heap_t *h, uint64_t s, void **slots, size_t nslots)
{
    rng_t r = {s};
    unsigned long bad = 0;
    for (unsigned i = 0; i < FORK_ROUNDS; i++) {
        size_t k = rng_next(&r) % nslots;
        if (slots[k]) {
            uint64_t *p = slots[k];
            bad += !pattern_ok(p + 1, p[0], p[0]);
            A_FREE(p);
            slots[k] = NULL;
            continue;
        }
        size_t size = rng_next(&r) % 10 == 0 ? rng_range(&r, 1000, 100 * KIB) : rng_range(&r, 8, 600);
        uint64_t *p = ma_heap_malloc(h, size + 8);
        if (!p) {
            bad++;
            continue;
        }
        p[0] = size;
        pattern_fill(p + 1, size, size);
        slots[k] = p;
    }
    for (size_t k = 0; k < nslots; k++)
        if (slots[k]) {
            uint64_t *p = slots[k];
            bad += !pattern_ok(p + 1, p[0], p[0]);
            A_FREE(p);
            slots[k] = NULL;
        }
    return bad;
}

/* Parent and child churn in h at once; the child also frees a block the
 * parent made before the fork, and leaves one for the parent. */
static void fork_both_use(ma_heap_t *h, const char *what)
{
    printf("%s across fork\n", what);
    char *before = ma_heap_strdup(h, "made before the fork");
    static void *slots[64];
    pid_t pid = fork();
    if (pid == 0) {
        unsigned long bad = churn(h, seed + 1, slots, 64);
        bad += strcmp(before, "made before the fork") != 0;
        A_FREE(before);
        ma_heap_root_set(h, ma_heap_offset(h, ma_heap_strdup(h, "left by the child")));
        _exit(bad ? 1 : 0);
    }
    CHECK_EQ_U(churn(h, seed + 2, slots, 64), 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    const char *left = ma_heap_pointer(h, ma_heap_root_get(h));
    CHECK(left && strcmp(left, "left by the child") == 0);
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 1); /* the child's string; `before` was freed by it */
}

static void test_fork(void)
{
    ma_heap_t *h = ma_heap_open(NULL, HEAP_SIZE, 0);
    if (CHECK(h != NULL)) {
        fork_both_use(h, "ma_heap_open(NULL)");
        CHECK_EQ_U(ma_heap_close(h), 0);
    }
    void *shared = mmap(NULL, 16 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    h = shared == MAP_FAILED ? NULL : ma_heap_new_in(shared, 16 * MIB);
    if (CHECK(h != NULL)) {
        fork_both_use(h, "ma_heap_new_in(MAP_SHARED)");
        ma_heap_destroy(h);
        munmap(shared, 16 * MIB);
    }
}

/* ---- A process dies holding the lock ----------------------------------------- */

static int die_inside(void *block, size_t size, void *arg)
{
    (void)block, (void)size, (void)arg;
    raise(SIGKILL);
    return 0;
}

static void test_dead_holder(void)
{
    printf("a process dies holding the heap's lock\n");
    ma_heap_t *h = ma_heap_open(NULL, HEAP_SIZE, 0);
    if (!CHECK(h != NULL))
        return;
    char *keep = ma_heap_strdup(h, "kept");
    void *big = ma_heap_malloc(h, 200 * KIB);
    pid_t pid = fork();
    if (pid == 0) {
        ma_heap_visit(h, die_inside, NULL); /* holds the lock */
        _exit(1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_EQ_U(ma_fixed_repairs(h), 0);
    void *more = ma_heap_malloc(h, 300 * KIB); /* takes the lock: repairs */
    CHECK(more != NULL);
    CHECK_EQ_U(ma_fixed_repairs(h), 1);
    CHECK(strcmp(keep, "kept") == 0);
    A_FREE(big);
    A_FREE(more);
    ma_heap_stats_t st;
    ma_heap_stats(h, &st);
    CHECK_EQ_U(st.blocks_in_use, 1);
    CHECK_EQ_U(ma_heap_close(h), 0);
}

/* ---- Threads -------------------------------------------------------------------- */

#define THREADS 4
#define RING 256
#define THREAD_ROUNDS 30000

static ma_heap_t *thread_heap;
static _Atomic(uintptr_t) ring[RING];
static atomic_ulong thread_bad;

/* Each thread allocates, puts its block in the ring, and frees what it
 * takes out of it: most frees are of another thread's block. */
static void *hammer(void *arg)
{
    rng_t r = {seed + (uintptr_t)arg};
    unsigned long bad = 0;
    for (unsigned i = 0; i < THREAD_ROUNDS; i++) {
        size_t size = rng_next(&r) % 20 == 0 ? rng_range(&r, 2000, 150 * KIB) : rng_range(&r, 0, 500);
        uint64_t *p = ma_heap_malloc(thread_heap, size + 8);
        if (!p) {
            bad++;
            continue;
        }
        p[0] = size;
        pattern_fill(p + 1, size, size ^ 0x55);
        uintptr_t old = atomic_exchange(&ring[rng_next(&r) % RING], (uintptr_t)p);
        if (old) {
            uint64_t *q = (uint64_t *)old;
            bad += !pattern_ok(q + 1, q[0], q[0] ^ 0x55);
            if (rng_next(&r) % 8 == 0)
                q = A_REALLOC(q, q[0] + 8 + 100); /* stays in the heap */
            bad += q == NULL || ma_heap_offset(thread_heap, q) == 0;
            A_FREE(q);
        }
    }
    atomic_fetch_add(&thread_bad, bad);
    return NULL;
}

static void test_threads(void)
{
    printf("%d threads in one file heap\n", THREADS);
    char path[128];
    path_of(path, sizeof path, "threads");
    thread_heap = ma_heap_open(path, HEAP_SIZE, MA_CREATE);
    if (!CHECK(thread_heap != NULL))
        return;
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_U(atomic_load(&thread_bad), 0);
    size_t left = 0;
    for (size_t i = 0; i < RING; i++) {
        uint64_t *q = (uint64_t *)atomic_exchange(&ring[i], 0);
        if (q) {
            CHECK(pattern_ok(q + 1, q[0], q[0] ^ 0x55));
            A_FREE(q);
            left++;
        }
    }
    ma_heap_stats_t st;
    ma_heap_stats(thread_heap, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    printf("    %zu blocks left in the ring at the end\n", left);
    CHECK_EQ_U(ma_heap_close(thread_heap), 0);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "reader") == 0)
        return reader(argv[2], argv[3], argv[4]);
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 0);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%.40s/pools_files.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_create_reopen();
    test_other_process();
    test_bad_files();
    test_fork();
    test_dead_holder();
    test_threads();
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_done();
}
