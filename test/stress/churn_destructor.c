/* churn_destructor.c - threads whose pthread key destructor allocates
 * after mapalloc's own thread-exit hook ran, in every destructor round.
 *
 *   churn_destructor [threads]      (default 10000, at most 4 alive at once)
 *
 * The program's key is made after mapalloc's, so in each round of
 * destructors glibc calls mapalloc's first (which gives the thread's heap
 * back) and then the program's, which allocates, frees, and sets its value
 * again, for all PTHREAD_DESTRUCTOR_ITERATIONS rounds: in the last one,
 * nothing runs after it. Whatever the thread took then must come back:
 * the heaps made (ma_stats_get's threads_seen, cumulative) and the memory
 * mapped must stay bounded, whatever the number of threads. Memory is
 * compared, never time.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "ma_test.h"

#define ALIVE 4
#define MAX_HEAPS 64
#define MAX_MAPPED (64 * MIB)

static pthread_key_t key;
static atomic_ulong bad;

static void destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    char *small = A_MALLOC(200), *medium = A_MALLOC(40000);
    if (!small || !medium)
        atomic_fetch_add(&bad, 1);
    else {
        memset(small, (int)round, 200);
        memset(medium, (int)round, 40000);
    }
    void *aligned = NULL;
    if (A_POSIX_MEMALIGN(&aligned, 4096, 5000) != 0)
        atomic_fetch_add(&bad, 1);
    A_FREE(aligned);
    A_FREE(medium);
    A_FREE(small);
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS)
        pthread_setspecific(key, (void *)(round + 1));
}

static void *thread_main(void *arg)
{
    (void)arg;
    A_FREE(A_MALLOC(64));
    pthread_setspecific(key, (void *)(uintptr_t)1);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 10000;
    A_FREE(A_MALLOC(1));   /* mapalloc started: its key comes first */
    if (pthread_key_create(&key, destructor) != 0)
        return 2;
    pthread_t t[ALIVE];
    for (unsigned i = 0; i < threads; i += ALIVE) {
        unsigned n = 0;
        for (; n < ALIVE && i + n < threads; n++)
            if (pthread_create(&t[n], NULL, thread_main, NULL) != 0)
                return 2;
        for (unsigned k = 0; k < n; k++)
            pthread_join(t[k], NULL);
    }
    A_TRIM(0);
    ma_stats_t st;
    ma_stats_get(&st);
    printf("churn_destructor (%s): %u threads, %llu heaps made, %llu MiB mapped, %lu failures\n",
           A_FLAVOUR, threads, (unsigned long long)st.threads_seen,
           (unsigned long long)(st.os_mapped / MIB), atomic_load(&bad));
    CHECK(st.threads_seen <= MAX_HEAPS);
    CHECK(st.os_mapped <= MAX_MAPPED);
    CHECK_EQ_U(atomic_load(&bad), 0);
    return check_done();
}
