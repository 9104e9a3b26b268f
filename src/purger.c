/* purger.c - the background purger, and giving memory back when the OS
 * refuses more.
 *
 * Purging otherwise runs on the allocator's slow paths, so a program that
 * stops calling the allocator would keep its free memory resident. A thread
 * of ours wakes every purge delay while there is free memory that may be
 * resident (and every IDLE_MS otherwise) and runs every purge tick: each
 * heap's segment set (skipping those whose thread holds the lock: it ticks
 * them itself), the pool, the large cache, and the abandoned heaps that
 * blocks were freed into. So memory comes back within about two purge
 * delays of the last free, without a further call.
 *
 * It starts on the first slow-path call that finds free memory to watch
 * (a program that never frees never gets it), never from inside an
 * allocator lock, and only with MAPALLOC_PURGER=1 (the default); it blocks
 * every signal. It never starts in a process that has no thread but the
 * first: a thread of ours would make it multi-threaded for good, and glibc
 * then takes its fork locks even in a signal handler, where a program that
 * forks from one (allowed in a single-threaded process: glibc's
 * tst-mallocfork2) would hang. Such a program's slow paths purge. A fork child has no such thread: it starts again there the
 * same way. Its own state is one flag; it sleeps, and holds no lock of its
 * own.
 *
 * When the OS refuses a mapping (RLIMIT_AS, strict overcommit), os_linux.c
 * calls ma_purger_reclaim through a hook before it fails: every free byte
 * we can reach goes back, and the mapping is tried once more.
 */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include "internal.h"

#define IDLE_MS 500u               /* the tick when nothing is to be purged */
#define STACK_BYTES ((size_t)128 << 10)

enum { PURGER_OFF, PURGER_STARTING, PURGER_RUNNING };

static _Atomic int state;          /* PURGER_ */
/* Whether a slow path should look at starting the purger: clear once it
 * runs or cannot (the option, the delay), so that the test costs the slow
 * paths one load. */
_Atomic bool ma_purger_wanted = true;

/* Everything free that is still resident, and what the large cache holds. */
static bool something_to_purge(void) { return ma_segment_dirty() > 0 || ma_large_cached() > 0; }

/* One round of every purge tick, none forced. */
static void tick(void) {
    if (atomic_load_explicit(&ma_heap_abandoned_news, memory_order_relaxed)) ma_heap_collect_abandoned(false);
    ma_heap_purge_all(false);
    ma_segment_pool_trim(false, MA_POOL_KEEP);
    ma_large_cache_tick(false);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
    }
}

static void *purger_main(void *arg) {
    (void)arg;
    long delay = ma_option(MA_OPT_PURGE_DELAY_MS);
    for (;;) {
        sleep_ms(something_to_purge() && delay > 0 ? delay : IDLE_MS);
        tick();
    }
    return NULL;
}

static void start(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_BYTES);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  /* the thread inherits the mask */
    pthread_t t;
    int saved = errno;
    bool ok = pthread_create(&t, &attr, purger_main, NULL) == 0;
    errno = saved;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    /* no thread (out of threads or memory): the slow paths keep purging */
    atomic_store_explicit(&state, ok ? PURGER_RUNNING : PURGER_OFF, memory_order_release);
    if (ok) atomic_store_explicit(&ma_purger_wanted, false, memory_order_relaxed);
}

/* Called by the slow paths and wherever memory may have become free
 * (ma_purger_kick); does nothing while the thread holds an allocator lock
 * (pthread_create may call back into us). pthread_create may
 * allocate (glibc's thread descriptors): the call that starts the thread
 * has set the state first, so a malloc inside it comes back here and
 * returns at once. */
void ma_purger_start(void) {
    if (atomic_load_explicit(&state, memory_order_relaxed) != PURGER_OFF || ma_os_single_threaded() ||
        !ma_lock_none_held() || !something_to_purge())
        return;
    int expected = PURGER_OFF;
    if (!atomic_compare_exchange_strong(&state, &expected, PURGER_STARTING)) return;
    start();
}

/* The OS refused a mapping: give back everything free that any thread can
 * reach without another thread's help - the abandoned heaps' free pages,
 * every set's free slices and empty segments, the pool, the large cache.
 * (Live threads' retired and pinned pages stay theirs.) Called by
 * os_linux.c with no allocator lock held by the caller. */
static bool reclaim(void) {
    ma_heap_collect_abandoned(true);
    size_t released = ma_heap_purge_all(true);
    released += ma_segment_pool_trim(true, 0);
    released += ma_large_trim();
    return released > 0;
}

void ma_purger_init(void) {
    ma_os_set_reclaim(reclaim);
    if (!ma_option(MA_OPT_PURGER) || ma_option(MA_OPT_PURGE_DELAY_MS) < 0)
        atomic_store_explicit(&ma_purger_wanted, false, memory_order_relaxed);
}

/* fork: the thread is the parent's alone; a child starts its own. */
void ma_purger_fork_child(void) {
    if (atomic_load_explicit(&state, memory_order_relaxed) == PURGER_RUNNING)
        atomic_store_explicit(&ma_purger_wanted, true, memory_order_relaxed);
    atomic_store_explicit(&state, PURGER_OFF, memory_order_relaxed);
}
