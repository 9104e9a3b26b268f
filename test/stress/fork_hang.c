/* fork_hang.c - fork must never hang, whatever the other threads (or the
 * forking thread itself) were doing inside the allocator.
 *
 *   fork_hang CASE [ROUNDS]        ROUNDS (default 50) rounds of CASE
 *
 * Each round runs in a process of its own, which the runner kills if it
 * has not finished after ROUND_LIMIT seconds: a hang fails the test
 * ("round N hung") instead of blocking ctest. Children of fork report by
 * exit status and never use stdio (another thread may hold its locks).
 * Cases:
 *   visit       a thread runs ma_heap_visit over a heap's large blocks, its
 *               fn sleeping a little (the heap's large-block lock held);
 *               the main thread forks; the child frees one of those blocks
 *   mremap      a thread grows and shrinks a heap's large block with
 *               realloc (mremap, under the same lock); fork; the child
 *               frees another large block of the heap
 *   stdio       glibc's tst-malloc-fork-deadlock pattern: threads fork,
 *               threads read a 50000-byte line with getline (realloc
 *               while holding the FILE's lock), a thread calls fflush(NULL)
 *               (holding stdio's list lock, waiting for FILE locks)
 *   signal      single-threaded: another process sends SIGUSR1 over and
 *               over, and the handler forks, while the program mallocs,
 *               frees and forks (glibc's tst-mallocfork2 pattern)
 *   signal_threads  the same with two more threads allocating (the
 *               program's own forks then block the signal: glibc's fork is
 *               async-signal-safe only in a single-threaded process)
 *   visit_fork  ma_heap_visit's fn forks (its thread holds the lock)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define ROUND_LIMIT 20      /* seconds a round may take */
#define CHILD_LIMIT 10      /* seconds a forked child may take */

static atomic_int stop;
static atomic_int child_failures;

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Forks; the child runs body (if any) under an alarm and _exits with its
 * result; the parent waits and counts a child that failed. */
static void fork_and_wait(int (*body)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid < 0) {
        atomic_fetch_add(&child_failures, 1);
        return;
    }
    if (pid == 0) {
        alarm(CHILD_LIMIT);
        _exit(body ? body(arg) : 0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            atomic_fetch_add(&child_failures, 1);
            return;
        }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        atomic_fetch_add(&child_failures, 1);
}

/* ---- visit, mremap, visit_fork: a heap's large-block lock ------------ */

#define LARGE_BLOCKS 8
static ma_heap_t *heap;
static void *large[LARGE_BLOCKS];

static int visit_slowly(void *block, size_t size, void *arg)
{
    (void)block, (void)size, (void)arg;
    sleep_us(100);
    return atomic_load(&stop);
}

static void *visitor(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        ma_heap_visit(heap, visit_slowly, NULL);
    return NULL;
}

static void *resizer(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        size_t size = (i % 2 ? 24 : 2) * MIB;
        void *p = realloc(large[0], size);
        if (p)
            large[0] = p;
    }
    return NULL;
}

/* In the child: a block of the heap freed (its lock), plus some traffic. */
static int child_free_large(void *arg)
{
    (void)arg;
    free(large[LARGE_BLOCKS - 1]);
    void *p = malloc(3 * MIB), *q = malloc(100);
    free(p);
    free(q);
    return p && q ? 0 : 1;
}

static int round_heap_lock(void *(*thread_main)(void *), unsigned forks)
{
    heap = ma_heap_new();
    if (!heap)
        return 1;
    for (int i = 0; i < LARGE_BLOCKS; i++) {
        large[i] = ma_heap_malloc(heap, (size_t)(1 + i) * MIB);
        if (!large[i])
            return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0)
        return 1;
    for (unsigned i = 0; i < forks; i++) {
        sleep_us(300);
        fork_and_wait(child_free_large, NULL);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    return atomic_load(&child_failures) != 0;
}

/* In a child forked from visit's fn, which still runs there: fn's rules
 * hold (nothing freed into the heap), the rest of malloc works. */
static int child_alloc(void *arg)
{
    (void)arg;
    void *p = malloc(3 * MIB), *q = malloc(100);
    free(p);
    free(q);
    return p && q ? 0 : 1;
}

static int visit_and_fork(void *block, size_t size, void *arg)
{
    (void)block, (void)size;
    fork_and_wait(child_alloc, NULL);
    return ++*(int *)arg >= 3;
}

static void *signal_allocator(void *arg);

static int round_visit_fork(void)
{
    pthread_t t;
    heap = ma_heap_new();
    if (!heap || pthread_create(&t, NULL, signal_allocator, NULL) != 0)
        return 1;
    for (int i = 0; i < LARGE_BLOCKS; i++)
        large[i] = ma_heap_malloc(heap, (size_t)(1 + i) * MIB);
    int n = 0;
    ma_heap_visit(heap, visit_and_fork, &n);
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    return atomic_load(&child_failures) != 0 || n != 3;
}

/* ---- stdio ----------------------------------------------------------- */

static char line_file[] = "/tmp/fork_hang_XXXXXX";

static void *stdio_forker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        fork_and_wait(NULL, NULL);
    return NULL;
}

static void *stdio_reader(void *arg)
{
    (void)arg;
    FILE *f = fopen(line_file, "r");
    if (!f) {
        atomic_fetch_add(&child_failures, 1);
        return NULL;
    }
    while (!atomic_load(&stop)) {
        rewind(f);
        char *line = NULL;
        size_t n = 0;
        if (getline(&line, &n, f) < 0)
            atomic_fetch_add(&child_failures, 1);
        free(line);
    }
    fclose(f);
    return NULL;
}

static void *stdio_flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        fflush(NULL);
    return NULL;
}

static int round_stdio(void)
{
    enum { FORKERS = 4, READERS = 8 };
    pthread_t t[FORKERS + READERS + 1];
    int n = 0;
    for (int i = 0; i < FORKERS; i++)
        n += pthread_create(&t[i], NULL, stdio_forker, NULL) == 0;
    for (int i = 0; i < READERS; i++)
        n += pthread_create(&t[FORKERS + i], NULL, stdio_reader, NULL) == 0;
    n += pthread_create(&t[FORKERS + READERS], NULL, stdio_flusher, NULL) == 0;
    if (n != FORKERS + READERS + 1)
        return 1;
    sleep_us(200 * 1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return atomic_load(&child_failures) != 0;
}

/* ---- signal, signal_threads ------------------------------------------ */

static volatile sig_atomic_t handler_failed;

static void fork_in_handler(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || st != 0)
        handler_failed = 1;
    errno = saved;
}

static void *signal_allocator(void *arg)
{
    rng_t r = {(uintptr_t)arg};
    void *slot[64] = {0};
    while (!atomic_load(&stop)) {
        size_t k = rng_next(&r) % 64;
        free(slot[k]);
        slot[k] = malloc(rng_range(&r, 1, 70000));
    }
    for (int k = 0; k < 64; k++)
        free(slot[k]);
    return NULL;
}

static int round_signal(unsigned round, int threads)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fork_in_handler;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return 1;
    pid_t me = getpid();
    pid_t sender = fork();
    if (sender == 0) {
        alarm(ROUND_LIMIT);
        for (rng_t r = {round};;) {
            if (kill(me, SIGUSR1) != 0)
                _exit(0);
            sleep_us((long)rng_range(&r, 10000, 30000));
        }
    }
    pthread_t t[2];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, signal_allocator, (void *)(uintptr_t)(round * 7 + i)) != 0)
            return 1;
    void *slot[1009] = {0};
    rng_t r = {round};
    for (int i = 0; i < 600; i++) {
        size_t k = rng_next(&r) % 1009;
        if (rng_next(&r) % 25 == 0) {
            /* With other threads, glibc's own fork is not safe to
             * interrupt with another fork (its malloc's arena locks):
             * only the allocator's code is, so the signal waits. */
            sigset_t usr1, old;
            sigemptyset(&usr1);
            sigaddset(&usr1, SIGUSR1);
            pthread_sigmask(threads ? SIG_BLOCK : SIG_UNBLOCK, &usr1, &old);
            fork_and_wait(NULL, NULL);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        free(slot[k]);
        slot[k] = malloc(rng_range(&r, 0, 70000));
        if (!slot[k] && !handler_failed)
            handler_failed = 2;
    }
    kill(sender, SIGKILL);
    waitpid(sender, NULL, 0);
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < 1009; k++)
        free(slot[k]);
    return handler_failed != 0 || atomic_load(&child_failures) != 0;
}

/* ---- the runner ------------------------------------------------------ */

static int run_round(const char *name, unsigned round)
{
    if (!strcmp(name, "visit"))
        return round_heap_lock(visitor, 20);
    if (!strcmp(name, "mremap"))
        return round_heap_lock(resizer, 20);
    if (!strcmp(name, "visit_fork"))
        return round_visit_fork();
    if (!strcmp(name, "stdio"))
        return round_stdio();
    if (!strcmp(name, "signal"))
        return round_signal(round, 0);
    if (!strcmp(name, "signal_threads"))
        return round_signal(round, 2);
    return 2;
}

/* 0: done, 1: failed, 2: hung (killed). */
static int supervise(pid_t pid)
{
    for (int waited_ms = 0;; waited_ms += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
        if (r < 0)
            return 1;
        if (waited_ms >= ROUND_LIMIT * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 2;
        }
        sleep_us(10 * 1000);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s visit|mremap|visit_fork|stdio|signal|signal_threads [rounds]\n",
                argv[0]);
        return 2;
    }
    unsigned rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 50;
    int fd = mkstemp(line_file);
    if (fd < 0)
        return 2;
    static char line[50001];
    memset(line, 'x', 50000);
    line[50000] = '\n';
    if (write(fd, line, sizeof line) != (ssize_t)sizeof line)
        return 2;
    close(fd);

    unsigned hung = 0, failed = 0;
    for (unsigned i = 0; i < rounds; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(run_round(argv[1], i));
        int r = pid < 0 ? 1 : supervise(pid);
        if (r == 2 && hung++ == 0)
            fprintf(stderr, "fork_hang %s: round %u hung (killed after %d s)\n", argv[1], i,
                    ROUND_LIMIT);
        if (r == 1 && failed++ == 0)
            fprintf(stderr, "fork_hang %s: round %u failed\n", argv[1], i);
        if (hung)
            break;
    }
    unlink(line_file);
    printf("fork_hang %s (%s): %u rounds, %u hung, %u failed\n", argv[1], A_FLAVOUR, rounds, hung,
           failed);
    CHECK_EQ_U(hung, 0);
    CHECK_EQ_U(failed, 0);
    return check_done();
}
