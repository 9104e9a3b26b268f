/* pools_fork.c - fork while other threads allocate from and free into a
 * fixed heap and a shared one.
 *
 *   pools_fork [forks]
 *
 * A worker thread allocates from its own fixed heap (ma_heap_new_in) and
 * frees all the time, so a fork often happens while it holds that heap's
 * lock or the registry's. The child must find both heaps whole and usable:
 * it frees the worker's last block, allocates from and frees into main's
 * heap, checks a block main wrote, and exits 0. A second thread does the
 * same in a heap of shared memory (ma_heap_open(NULL)), which the child
 * shares: a fork while the parent's thread holds that heap's lock must not
 * leave the child waiting (the parent's thread lets go of it for both);
 * the child allocates and frees there too. A child that hangs is
 * killed by alarm() and counts as a failure, as does one that dies or exits
 * otherwise.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define REGION (16 * MIB)

static ma_heap_t *heap, *worker_heap, *shared_heap;
static atomic_bool stop;
static _Atomic(uintptr_t) slot, shared_slot; /* the workers' latest blocks */

/* Sizes up to 100 KiB, so that the heap's lock is taken too. */
static void *worker(void *arg)
{
    ma_heap_t *h = arg;
    _Atomic(uintptr_t) *s = h == worker_heap ? &slot : &shared_slot;
    for (size_t n = 0; !atomic_load(&stop); n++) {
        uint64_t *p = ma_heap_malloc(h, n % 64 == 0 ? 70000 + n % 30000 : 16 + n % 500);
        if (!p)
            abort();
        *p = 0x600d;
        uintptr_t old = atomic_exchange(s, (uintptr_t)p);
        if (old)
            A_FREE((void *)old);
    }
    return NULL;
}

static void child(const unsigned char *kept)
{
    alarm(5);
    uint64_t *last = (uint64_t *)atomic_load(&slot);
    if (last && *last != 0x600d)
        _exit(5);
    if (last)
        A_FREE(last);
    for (int k = 0; k < 200; k++) {
        void *p = ma_heap_malloc(heap, 16 + (size_t)k * 7);
        if (!p)
            _exit(3);
        A_FREE(p);
    }
    if (!pattern_ok(kept, 1000, 42))
        _exit(4);
    for (int k = 0; k < 200; k++) {
        void *p = ma_heap_malloc(shared_heap, k % 50 == 0 ? 80000 : 16 + (size_t)k * 7);
        if (!p)
            _exit(6);
        A_FREE(p);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 300;
    unsigned char *m = mmap(NULL, 2 * REGION, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    heap = m == MAP_FAILED ? NULL : ma_heap_new_in(m, REGION);
    worker_heap = m == MAP_FAILED ? NULL : ma_heap_new_in(m + REGION, REGION);
    if (!CHECK(heap != NULL && worker_heap != NULL))
        return check_done();
    shared_heap = ma_heap_open(NULL, REGION, 0);
    if (!CHECK(shared_heap != NULL))
        return check_done();
    unsigned char *kept = ma_heap_malloc(heap, 1000);
    pattern_fill(kept, 1000, 42);
    pthread_t t, t2;
    pthread_create(&t, NULL, worker, worker_heap);
    pthread_create(&t2, NULL, worker, shared_heap);
    int bad = 0;
    for (int i = 0; i < forks; i++) {
        usleep(100); /* let the worker run between forks */
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            child(kept);
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (bad++ < 5)
                printf("fork %d: child %s %d\n", i, WIFEXITED(st) ? "exited with" : "killed by signal",
                       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            if (bad == 2)
                break; /* each hang costs the alarm's 5 s */
        }
    }
    atomic_store(&stop, true);
    pthread_join(t, NULL);
    pthread_join(t2, NULL);
    A_FREE((void *)atomic_load(&shared_slot));
    ma_heap_stats_t st;
    ma_heap_stats(shared_heap, &st);
    CHECK_EQ_U(st.blocks_in_use, 0);
    CHECK_EQ_U(ma_heap_close(shared_heap), 0);
    CHECK_EQ_U(bad, 0);
    CHECK(pattern_ok(kept, 1000, 42));
    A_FREE((void *)atomic_load(&slot));
    ma_heap_destroy(heap);
    ma_heap_destroy(worker_heap);
    munmap(m, 2 * REGION);
    return check_done();
}
