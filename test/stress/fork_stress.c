/* fork_stress.c - fork while other threads allocate.
 *
 *   fork_stress [seed]
 *
 * Four threads allocate, check and free without pause while the main thread
 * forks 200 times and a fifth thread forks 50 times. Each child checks and
 * frees a block its parent allocated before the fork, allocates and frees
 * blocks of several sizes (1 MiB included), runs a thread that allocates,
 * joins it and _exit()s. An allocator lock held across fork would deadlock
 * the child: the child gives itself 20 s (alarm), the parent 60 s for the
 * whole run, so a deadlock fails the test by SIGALRM instead of hanging.
 *
 * The child reports what went wrong in its exit status (a bit per step): it
 * must not use stdio, whose locks another thread may have held at the fork.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define WORKERS 4
#define MAIN_FORKS 200
#define THREAD_FORKS 50
#define WORKER_SLOTS 64

/* Exit status bits of a child. */
enum {
    CHILD_INHERITED_BAD = 1,
    CHILD_ALLOC_BAD = 2,
    CHILD_REALLOC_BAD = 4,
    CHILD_THREAD_BAD = 8,
};

static atomic_int stop;
static atomic_ulong failures;
static atomic_ulong worker_ops;
static uint64_t seed = 4242;

static void fail(const char *what, long detail)
{
    if (atomic_fetch_add(&failures, 1) < 10)
        fprintf(stderr, "fork_stress: %s (%ld)\n", what, detail);
}

static size_t random_size(rng_t *r)
{
    uint64_t x = rng_next(r) % 1000;
    if (x < 900)
        return rng_range(r, 1, 512);
    if (x < 990)
        return rng_range(r, 513, 300 * KIB);
    return rng_range(r, 1 * MIB, 2 * MIB);
}

static void *worker_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    rng_t r = {seed * 31 + id};
    void *p[WORKER_SLOTS] = {0};
    /* Lowest priority (Linux: per thread), so that on a small machine the
     * children, which do not inherit it, are not starved by the workers. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0)
        fail("setpriority failed", 0);
    size_t n[WORKER_SLOTS];
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        size_t k = (size_t)(rng_next(&r) % WORKER_SLOTS);
        if (p[k] != NULL) {
            if (!pattern_ok(p[k], n[k], n[k] + id))
                fail("worker block changed", (long)n[k]);
            A_FREE(p[k]);
            p[k] = NULL;
        } else {
            n[k] = random_size(&r);
            p[k] = A_MALLOC(n[k]);
            if (p[k] == NULL)
                fail("worker malloc failed", (long)n[k]);
            else
                pattern_fill(p[k], n[k], n[k] + id);
        }
        atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
    }
    for (size_t k = 0; k < WORKER_SLOTS; k++)
        A_FREE(p[k]);
    return NULL;
}

/* ---- in the child ----------------------------------------------------- */

static void *child_thread_main(void *arg)
{
    (void)arg;
    void *p[100];
    int bad = 0;
    for (int i = 0; i < 100; i++) {
        p[i] = A_MALLOC((size_t)(i * 37 % 2000) + 1);
        if (p[i] == NULL)
            bad = 1;
        else
            pattern_fill(p[i], (size_t)(i * 37 % 2000) + 1, (uint64_t)i);
    }
    for (int i = 0; i < 100; i++) {
        if (p[i] && !pattern_ok(p[i], (size_t)(i * 37 % 2000) + 1, (uint64_t)i))
            bad = 1;
        A_FREE(p[i]);
    }
    return bad ? (void *)1 : NULL;
}

static int child_allocs(void)
{
    static const size_t sizes[] = {1, 16, 100, 1000, 4096, 100 * KIB, 1 * MIB,
                                   3 * MIB};
    enum { N = sizeof sizes / sizeof sizes[0] };
    void *p[N];
    int bad = 0;
    for (size_t i = 0; i < N; i++) {
        p[i] = A_MALLOC(sizes[i]);
        if (p[i] == NULL)
            bad = 1;
        else
            pattern_fill(p[i], sizes[i], 90 + i);
    }
    for (size_t i = 0; i < N; i++) {
        if (p[i] && !pattern_ok(p[i], sizes[i], 90 + i))
            bad = 1;
        A_FREE(p[i]);
    }
    return bad ? CHILD_ALLOC_BAD : 0;
}

static int child_realloc(void)
{
    void *p = A_MALLOC(100);
    if (p == NULL)
        return CHILD_REALLOC_BAD;
    pattern_fill(p, 100, 5);
    void *q = A_REALLOC(p, 2 * MIB);
    if (q == NULL) {
        A_FREE(p);
        return CHILD_REALLOC_BAD;
    }
    int bad = !pattern_ok(q, 100, 5);
    A_FREE(q);
    return bad ? CHILD_REALLOC_BAD : 0;
}

static void child_main(void *inherited, size_t inherited_size)
{
    alarm(20);
    int status = 0;
    if (!pattern_ok(inherited, inherited_size, 1))
        status |= CHILD_INHERITED_BAD;
    A_FREE(inherited);
    status |= child_allocs();
    status |= child_realloc();
    pthread_t t;
    void *ret = (void *)1;
    if (pthread_create(&t, NULL, child_thread_main, NULL) != 0 ||
        pthread_join(t, &ret) != 0 || ret != NULL)
        status |= CHILD_THREAD_BAD;
    _exit(status);
}

/* ---- in the parent ---------------------------------------------------- */

static void fork_one(unsigned i)
{
    size_t n = 1 + (i * 997u) % (256 * KIB);
    void *inherited = A_MALLOC(n);
    if (inherited == NULL) {
        fail("malloc failed", (long)n);
        return;
    }
    pattern_fill(inherited, n, 1);
    pid_t pid = fork();
    if (pid == 0)
        child_main(inherited, n);
    A_FREE(inherited);
    if (pid < 0) {
        fail("fork failed", (long)i);
        return;
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        fail("waitpid failed", (long)pid);
    else if (WIFSIGNALED(st))
        fail("child killed by signal", WTERMSIG(st));
    else if (WEXITSTATUS(st) != 0)
        fail("child failed, status bits", WEXITSTATUS(st));
}

static void *forker_main(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < THREAD_FORKS; i++)
        fork_one(10000 + i);
    return NULL;
}

static void on_alarm(int sig)
{
    static const char msg[] =
        "fork_stress: still running after 60 s: deadlock after fork?\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 0);
    signal(SIGALRM, on_alarm);
    alarm(60);

    pthread_t workers[WORKERS], forker;
    for (unsigned i = 0; i < WORKERS; i++)
        if (pthread_create(&workers[i], NULL, worker_main,
                           (void *)(uintptr_t)i) != 0)
            return 2;
    if (pthread_create(&forker, NULL, forker_main, NULL) != 0)
        return 2;
    for (unsigned i = 0; i < MAIN_FORKS; i++)
        fork_one(i);
    pthread_join(forker, NULL);
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(workers[i], NULL);
    alarm(0);

    printf("fork_stress (%s): %d forks, %lu operations by the workers\n",
           A_FLAVOUR, MAIN_FORKS + THREAD_FORKS, atomic_load(&worker_ops));
    CHECK(atomic_load(&worker_ops) > 0);
    CHECK_EQ_U(atomic_load(&failures), 0);
    return check_done();
}
