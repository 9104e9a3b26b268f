/* init.c - process start, thread exit and fork hooks.
 *
 * The allocator starts on the first call that needs it (or from the library
 * constructor, whichever comes first). Nothing called before `ready` is set
 * may allocate: getenv, getrandom and pthread_key_create do not.
 * pthread_atfork may allocate, so it runs after. A second thread arriving
 * while the first initialises waits for it.
 */
#include <sched.h>
#include "internal.h"

enum { INIT_NONE, INIT_RUNNING, INIT_READY };

uintptr_t ma_key, ma_canary_key;
pthread_key_t ma_thread_key;
static _Atomic int init_state;

/* The pthread key's destructor: the thread exits. Its quarantine goes
 * first, so that the heap it abandons holds no block freed long ago. What
 * the thread allocates from now on (other keys' destructors) comes from
 * alloc.c's shared heap for late allocations. */
static void thread_done(void *heap) {
    ma_thread_exited = true;
    if (ma_checked && heap) ma_check_thread_done(heap);
    ma_heap_thread_done(heap);
}

/* fork: every lock of the allocator is in lock.c's registry, which takes
 * them all (or, in a single-threaded process, none), the profiler's first
 * (its rank); then the locks of fixed heaps in private memory, which are
 * not lock.c's (fixed.c). A child that got them from a process with other
 * threads orphans those threads' heaps; a child never has the parent's
 * purger thread. */
static void fork_prepare(void) {
    (void)ma_lock_fork_prepare();
    ma_fixed_fork_prepare();
}

static void fork_parent(void) {
    ma_fixed_fork_parent();
    ma_lock_fork_parent();
}

static void fork_child(void) {
    ma_fixed_fork_child();
    if (ma_lock_fork_child()) ma_heap_fork_child();
    ma_purger_fork_child();
}

static MA_COLD void process_init_slow(void) {
    int expected = INIT_NONE;
    if (!atomic_compare_exchange_strong(&init_state, &expected, INIT_RUNNING)) {
        while (atomic_load_explicit(&init_state, memory_order_acquire) != INIT_READY) sched_yield();
        return;
    }
    ma_options_init();
    ma_sizeclass_init();
    ma_key = ma_os_random();
    /* One more secret, under a multiplier that makes it unrelated to the
     * key by anything simpler than knowing it. */
    ma_canary_key = ma_key * MA_GOLDEN64;
    ma_purger_init();
    if (pthread_key_create(&ma_thread_key, thread_done) != 0)
        ma_diag_fatal("cannot create the thread key");
    atomic_store_explicit(&init_state, INIT_READY, memory_order_release);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void ma_process_init(void) {
    if (MA_LIKELY(atomic_load_explicit(&init_state, memory_order_acquire) == INIT_READY)) return;
    process_init_slow();
}

/* Early, so that the key is among the first ones (no allocation in
 * pthread_setspecific) and the fork handlers are in place before threads. */
__attribute__((constructor(101))) static void init_at_load(void) { ma_process_init(); }

__attribute__((destructor(101))) static void done_at_exit(void) {
    if (atomic_load(&init_state) != INIT_READY) return;
    if (ma_checked) ma_audit_at_exit();
    if (ma_option(MA_OPT_SHOW_STATS)) ma_stats_at_exit();
    if (ma_profiling) ma_profile_at_exit();
}
