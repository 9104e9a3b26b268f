/* lock.c - the allocator's lock (ma_lock_t), its registry, and fork.
 *
 * The lock. Its word is its holder: 0 when free, else the holder's
 * ma_lock_self(), the address of a thread-local byte (unique among live
 * threads, and in a fork child the same as in the thread that forked). So
 * a lock knows who holds it with no window between taking it and saying
 * so: a fork in a signal handler that interrupted the holder can tell.
 * Taking it is one compare-and-swap; a taker that finds it held spins a
 * little, then sleeps on a futex word (`seq`) that an unlock bumps when it
 * finds sleepers. Waiting on it is not a cancellation point.
 *
 * The registry. A lock joins it the first time it is taken (before it is
 * held, so a lock is never held and unknown to fork), in rank order; one
 * in memory that goes away leaves it with ma_lock_forget. The registry
 * lock guards the list; it is a leaf (held only to link or unlink, or by
 * a fork in progress) and never joins. Each link is one store, so a fork
 * in a signal handler that interrupted a join still walks a whole list.
 *
 * fork (init.c calls the three handlers). The aim: never hang, and hand
 * the child every lock free and everything they guard whole.
 *  - A single-threaded process takes nothing (glibc's malloc does the
 *    same): no other thread can hold a lock, and a fork in a signal
 *    handler must not wait for the code it interrupted. The child is then
 *    a faithful copy of the one thread, interrupted frames included.
 *  - Otherwise prepare first takes glibc's stdio list lock, holding
 *    nothing of ours: glibc's fork takes it after every prepare handler
 *    and before its own malloc's locks, and threads hold it (fflush(NULL))
 *    while they wait for a FILE lock whose holder may wait in malloc for
 *    one of ours. Taking it first gives glibc's order, list before malloc.
 *  - Then the registry lock, then every lock of the registry with a
 *    try-lock. Callbacks run by ma_heap_visit hold a heap's lock while the
 *    program's code runs, and that code may take any other lock (or the
 *    stdio list lock): no fixed order of blocking waits is safe. So when a
 *    try fails, prepare lets go of everything it took (the stdio lock
 *    too), pauses, and starts again: it never waits while holding.
 *  - So that it is not starved by a thread that takes such an outer lock
 *    again the moment it lets go (a loop of ma_heap_visit), a fork that
 *    wants the locks raises a gate: a thread that holds none of our locks
 *    waits there before it takes a lock of rank MA_RANK_OUTER. Threads in
 *    the middle of an operation (holding a lock) go on and finish it; no
 *    new long hold begins. The gate is only on outer locks: malloc's own
 *    locks are taken by threads that hold stdio's locks (getline), which
 *    must never wait for a fork.
 *  - A lock the forking thread holds itself (a signal interrupted it, or
 *    ma_heap_visit's fn called fork) is left as it is, in parent and
 *    child: the frame that holds it lets it go when it resumes. Such a
 *    thread must not wait for ever for the others, who may wait for that
 *    very lock: after GIVE_UP_ROUNDS it forks without the locks it could
 *    not get, and the child resets them (a child of a fork in a signal
 *    handler may only call async-signal-safe functions anyway).
 *  - Nested prepares (a signal during a fork) are told apart by level:
 *    each lock records the level of the prepare that took it.
 */
#include "internal.h"

#define SPINS 64            /* tries before sleeping */
#define GIVE_UP_ROUNDS 200  /* about 10 ms of pauses (ma_os_pause) */
#define MAX_LEVEL 31        /* nested prepares tracked in fork_took */

static __thread char self_tag;
static ma_lock_t registry;                 /* guards reg_first and every `next` */
static ma_lock_t *_Atomic reg_first;       /* registry lock: every joined lock, by rank */
static __thread uint32_t fork_level;       /* prepares in progress in this thread */
static __thread uint32_t held;             /* locks this thread took with ma_lock(_try) */
static _Atomic uint32_t fork_gate;         /* forks wanting or holding the locks (see above) */
static __thread uint32_t fork_took;        /* bit n: the prepare at level n took the locks */

static inline uintptr_t self(void) { return (uintptr_t)&self_tag; }

static inline uintptr_t holder(const ma_lock_t *l) {
    return atomic_load_explicit(&l->holder, memory_order_relaxed);
}

static inline bool try_acquire(ma_lock_t *l, uintptr_t me) {
    uintptr_t expected = 0;
    return atomic_compare_exchange_strong_explicit(&l->holder, &expected, me, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* A sleeper announces itself before it looks at the holder one last
 * time, and an unlock clears the holder before it looks for sleepers
 * (both sequentially consistent): one of the two sees the other. */
static MA_NOINLINE void acquire_slow(ma_lock_t *l, uintptr_t me) {
    for (unsigned i = 0; i < SPINS; i++) {
        cpu_relax();
        if (holder(l) == 0 && try_acquire(l, me)) return;
    }
    for (;;) {
        uint32_t seq = atomic_load(&l->seq);
        atomic_fetch_add(&l->sleepers, 1);
        if (atomic_load(&l->holder) != 0) ma_os_futex_wait(&l->seq, seq);
        atomic_fetch_sub(&l->sleepers, 1);
        if (try_acquire(l, me)) return;
    }
}

static inline void acquire(ma_lock_t *l) {
    uintptr_t me = self();
    if (MA_LIKELY(try_acquire(l, me))) return;
    acquire_slow(l, me);
}

static MA_NOINLINE void wake(ma_lock_t *l) {
    atomic_fetch_add(&l->seq, 1);
    ma_os_futex_wake(&l->seq, 1);
}

static inline void release(ma_lock_t *l) {
    MA_ASSERT(holder(l) == self());
    atomic_exchange(&l->holder, 0);
    if (atomic_load(&l->sleepers) != 0) wake(l);
}

/* ---- The registry ---------------------------------------------------- */

static MA_NOINLINE void join(ma_lock_t *l) {
    acquire(&registry);
    if (!atomic_load_explicit(&l->joined, memory_order_relaxed)) {
        ma_lock_t *_Atomic *link = &reg_first;
        ma_lock_t *next;
        while ((next = atomic_load_explicit(link, memory_order_relaxed)) != NULL && next->rank <= l->rank)
            link = &next->next;
        atomic_store_explicit(&l->next, next, memory_order_relaxed);
        atomic_store_explicit(link, l, memory_order_release);
        atomic_store_explicit(&l->joined, 1, memory_order_release);
    }
    release(&registry);
}

void ma_lock_forget(ma_lock_t *l) {
    if (!atomic_load_explicit(&l->joined, memory_order_acquire)) return;
    acquire(&registry);
    MA_ASSERT(holder(l) == 0);  /* a fork holds the registry while it holds l */
    ma_lock_t *_Atomic *link = &reg_first;
    ma_lock_t *at;
    while ((at = atomic_load_explicit(link, memory_order_relaxed)) != NULL && at != l) link = &at->next;
    if (at) atomic_store_explicit(link, atomic_load_explicit(&l->next, memory_order_relaxed), memory_order_release);
    atomic_store_explicit(&l->joined, 0, memory_order_relaxed);
    release(&registry);
}

/* ---- The lock -------------------------------------------------------- */

static MA_NOINLINE void gate_wait(void) {
    uint32_t forks;
    while ((forks = atomic_load(&fork_gate)) != 0) ma_os_futex_wait(&fork_gate, forks);
}

void ma_lock(ma_lock_t *l) {
    if (MA_UNLIKELY(!atomic_load_explicit(&l->joined, memory_order_acquire))) join(l);
    if (l->rank == MA_RANK_OUTER && held == 0 &&
        MA_UNLIKELY(atomic_load_explicit(&fork_gate, memory_order_relaxed) != 0))
        gate_wait();
    acquire(l);
    held++;
}

bool ma_lock_try(ma_lock_t *l) {
    if (MA_UNLIKELY(!atomic_load_explicit(&l->joined, memory_order_acquire))) join(l);
    if (!try_acquire(l, self())) return false;
    held++;
    return true;
}

void ma_unlock(ma_lock_t *l) {
    held--;
    release(l);
}

bool ma_lock_held(const ma_lock_t *l) { return holder(l) == self(); }

bool ma_lock_none_held(void) { return held == 0; }

/* ---- fork ------------------------------------------------------------ */

static inline ma_lock_t *first(void) { return atomic_load_explicit(&reg_first, memory_order_acquire); }
static inline ma_lock_t *next_of(const ma_lock_t *l) {
    return atomic_load_explicit(&l->next, memory_order_acquire);
}

/* Takes what prepare may take at level; returns the first lock another
 * thread holds (NULL: all taken, or with give_up all that could be). */
static ma_lock_t *take_all(uintptr_t me, uint32_t level, bool give_up) {
    for (ma_lock_t *l = first(); l; l = next_of(l)) {
        if (holder(l) == me) continue;
        if (try_acquire(l, me)) {
            l->fork_level = level;
            continue;
        }
        if (!give_up) return l;
    }
    return NULL;
}

static void drop_level(uint32_t level) {
    uintptr_t me = self();
    for (ma_lock_t *l = first(); l; l = next_of(l)) {
        if (holder(l) != me || l->fork_level != level) continue;
        l->fork_level = 0;
        release(l);
    }
    if (holder(&registry) == me && registry.fork_level == level) {
        registry.fork_level = 0;
        release(&registry);
    }
}

static bool holds_any(uintptr_t me) {
    for (ma_lock_t *l = first(); l; l = next_of(l))
        if (holder(l) == me) return true;
    return false;
}

bool ma_lock_fork_prepare(void) {
    uint32_t level = ++fork_level;
    if (level > MAX_LEVEL || ma_os_single_threaded()) return false;
    uintptr_t me = self();
    atomic_fetch_add(&fork_gate, 1);
    for (unsigned round = 0;; round++) {
        ma_os_stdio_lock();
        if (holder(&registry) != me) {
            acquire(&registry);
            registry.fork_level = level;
        }
        bool give_up = round >= GIVE_UP_ROUNDS && holds_any(me);
        if (take_all(me, level, give_up) == NULL) break;
        drop_level(level);
        ma_os_stdio_unlock();
        ma_os_pause(round);
    }
    fork_took |= (uint32_t)1 << level;
    return true;
}

void ma_lock_fork_parent(void) {
    uint32_t level = fork_level--;
    if (level > MAX_LEVEL || !(fork_took & ((uint32_t)1 << level))) return;
    fork_took &= ~((uint32_t)1 << level);
    drop_level(level);
    ma_os_stdio_unlock();
    if (atomic_fetch_sub(&fork_gate, 1) == 1) ma_os_futex_wake(&fork_gate, INT32_MAX);
}

/* Every lock free again, but those an interrupted frame of this thread
 * holds (not taken by this prepare): that frame still runs in the child. */
static void reset(ma_lock_t *l, uintptr_t me, uint32_t level) {
    atomic_store_explicit(&l->sleepers, 0, memory_order_relaxed);
    if (holder(l) == me && l->fork_level != level) return;
    l->fork_level = 0;
    atomic_store_explicit(&l->holder, 0, memory_order_relaxed);
}

bool ma_lock_fork_child(void) {
    uint32_t level = fork_level--;
    if (level > MAX_LEVEL || !(fork_took & ((uint32_t)1 << level))) return false;
    fork_took &= ~((uint32_t)1 << level);
    uintptr_t me = self();
    for (ma_lock_t *l = first(); l; l = next_of(l)) reset(l, me, level);
    reset(&registry, me, level);
    atomic_store(&fork_gate, 0);
    ma_os_stdio_reset();
    return true;
}
