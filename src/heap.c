/* heap.c - thread heaps: the pages a thread allocates from, by size class.
 *
 * A heap belongs to at most one thread at a time, which alone touches its
 * queues and its pages' owner fields. When the thread exits, the heap gives
 * its empty pages back and is "abandoned": kept whole, with its live blocks,
 * for the next new thread to adopt. So heaps are never freed, thread churn
 * reuses them, and a page's `heap` pointer stays valid for remote frees.
 *
 * Queues: heap->queue[c] holds pages of class c that may have room; only
 * its first page ever has a non-empty `free` list, and heap->direct points
 * small sizes at it. Pages with no room wait in heap->full, parked (see
 * page.c) so that the first remote free into one is pushed on
 * heap->remote_full, which the owner drains on its slow path.
 *
 * Checked mode (check.c): a thread's heap goes in ma_heap_checked_tls,
 * never in ma_heap_free_tls, which free's fast path reads: it keeps
 * missing. It goes in ma_heap_tls, malloc's, only for MAPALLOC_SECURE
 * alone (internal.h, "Modes").
 *
 * Lock order: heaps lock, then segment lock.
 */
#include <string.h>
#include "internal.h"

ma_page_t ma_page_empty;
ma_heap_t ma_heap_empty = {.direct = {[0 ... MA_DIRECT_COUNT - 1] = &ma_page_empty}};
__thread ma_heap_t *ma_heap_tls __attribute__((tls_model("initial-exec"))) = &ma_heap_empty;
__thread ma_heap_t *ma_heap_free_tls __attribute__((tls_model("initial-exec"))) = &ma_heap_empty;
__thread ma_heap_t *ma_heap_checked_tls __attribute__((tls_model("initial-exec")));

static ma_lock_t heaps_lock = MA_LOCK_INIT(MA_RANK_HEAPS);
static ma_heap_t *all_heaps;        /* every heap ever made */
static ma_heap_t *abandoned;        /* heaps with no thread */
/* A block was freed into an abandoned heap since the last collection (free.c
 * sets it on the rare path where a parked page reports to its heap). */
_Atomic bool ma_heap_abandoned_news;
static uint64_t heap_count;
static uint8_t *meta_next, *meta_end;  /* bump area for heap structs */

#define META_CHUNK ((size_t)256 << 10)

#define HEAP_STRIDE ((sizeof(ma_heap_t) + 63) & ~(size_t)63)

/* ---- Page queues ---------------------------------------------------------- */

/* The first page of a queue is pinned (it stays when it empties) if its
 * span is small: the next malloc of its class would otherwise take a new
 * page at once. Longer spans (one big block each) go back, as each may
 * hold that much RSS. The pin is a bias in page->used (MA_USED_PIN), so
 * free() needs no test of its own. */
static void pin(ma_page_t *page, bool on) {
    if (page->pinned == on) return;
    page->pinned = on;
    page->used += on ? MA_USED_PIN : -MA_USED_PIN;
}

/* Also on heap->full, whose pages are never pinned. */
static void first_changed(ma_pageq_t *q, ma_page_t *old_first) {
    if (q->first == old_first) return;
    if (old_first) pin(old_first, false);
    if (q->first) pin(q->first, !q->first->in_full && q->first->slice_count <= MA_PIN_SLICES);
}

/* A page moves to or from heap->full; page->used carries the news
 * (MA_USED_FULL), so that the next local free into it calls the heap. */
static void mark_full(ma_page_t *page, bool on) {
    page->in_full = on;
    page->used = (int32_t)((uint32_t)page->used + (uint32_t)MA_USED_FULL);
}

static void queue_remove(ma_pageq_t *q, ma_page_t *page) {
    ma_page_t *old_first = q->first;
    if (page->prev) page->prev->next = page->next;
    else q->first = page->next;
    if (page->next) page->next->prev = page->prev;
    else q->last = page->prev;
    page->next = page->prev = NULL;
    first_changed(q, old_first);
}

static void queue_push_front(ma_pageq_t *q, ma_page_t *page) {
    ma_page_t *old_first = q->first;
    page->prev = NULL;
    page->next = q->first;
    if (q->first) q->first->prev = page;
    else q->last = page;
    q->first = page;
    first_changed(q, old_first);
}

static void queue_push_back(ma_pageq_t *q, ma_page_t *page) {
    ma_page_t *old_first = q->first;
    page->next = NULL;
    page->prev = q->last;
    if (q->last) q->last->next = page;
    else q->first = page;
    q->last = page;
    first_changed(q, old_first);
}

/* Point the direct entries of class cls at the queue's first page: the
 * sizes its blocks hold that the class below does not, less the canary
 * with MAPALLOC_SECURE, where the classes below MA_SECURE_BLOCK_MIN hold
 * none (ma_sizeclass_direct). */
static void direct_update(ma_heap_t *heap, unsigned cls) {
    ma_page_t *page = heap->queue[cls].first ? heap->queue[cls].first : &ma_page_empty;
    for (unsigned i = ma_class_direct_lo[cls]; i <= ma_class_direct_hi[cls]; i++) heap->direct[i] = page;
}

/* ---- Retired pages -------------------------------------------------------- */

/* A page that empties under a free stays in its queue for a while before
 * its span goes back ("retired"): a class that empties and refills - a
 * batch freed, then the next batch - takes its pages back as they were,
 * free lists and carving intact, without giving their spans back and
 * taking them again. The delay is counted in the heap's slow-path calls
 * (one per page refill, so it stretches with the allocation rate), and the
 * ring bounds what waits: MA_RETIRE_SLOTS pages of at most MA_PIN_SLICES
 * slices; longer spans go back at once. */
#define RETIRE_DELAY 256u      /* slow-path calls a retired page waits */
#define RETIRE_SWEEP 16u       /* the ring is looked at every this many calls */

static void retire_drop(ma_heap_t *heap, ma_page_t *page) {
    for (uint32_t i = 0; i < heap->retired_count; i++)
        if (heap->retired[i] == page) {
            heap->retired[i] = heap->retired[--heap->retired_count];
            break;
        }
    page->retired = 0;
}

static void page_release(ma_heap_t *heap, ma_page_t *page) {
    if (page->retired) retire_drop(heap, page);
    heap->class_allocs[page->sclass] += page->allocs;
    ma_segment_span_free(page);
}

/* Whether a retired page is still empty and may go: it may have been
 * taken back meanwhile, or have become the pinned first of its queue. */
static bool retire_expired(const ma_page_t *page) {
    return ma_page_used(page) == 0 && !page->pinned && !page->in_full;
}

static void retire_release(ma_heap_t *heap, ma_page_t *page) {
    if (retire_expired(page)) {
        queue_remove(&heap->queue[page->sclass], page);
        direct_update(heap, page->sclass);
        page_release(heap, page);
    } else {
        retire_drop(heap, page);
    }
}

static void retire_sweep(ma_heap_t *heap) {
    for (uint32_t i = 0; i < heap->retired_count;) {
        ma_page_t *page = heap->retired[i];
        if ((int32_t)(heap->epoch - page->retire_at) >= 0 || !retire_expired(page)) retire_release(heap, page);
        else i++;
    }
}

static void retire_add(ma_heap_t *heap, ma_page_t *page) {
    page->retire_at = heap->epoch + RETIRE_DELAY;
    if (page->retired) return;
    if (heap->retired_count == MA_RETIRE_SLOTS) {
        /* the one due first makes room */
        uint32_t oldest = 0;
        for (uint32_t i = 1; i < MA_RETIRE_SLOTS; i++)
            if ((int32_t)(heap->retired[i]->retire_at - heap->retired[oldest]->retire_at) < 0) oldest = i;
        retire_release(heap, heap->retired[oldest]);
    }
    page->retired = 1;
    heap->retired[heap->retired_count++] = page;
}

/* A span from the heap's segments or the pool; before a new segment is
 * mapped, the abandoned heaps that blocks were freed into give back what
 * became free (a worker's memory, freed by the main thread, serves it). */
static ma_page_t *page_new(ma_heap_t *heap, unsigned cls) {
    unsigned slices = ma_sizeclass_slices(cls);
    ma_page_t *page = ma_segment_span_alloc(&heap->segs, slices, false);
    if (!page && atomic_load_explicit(&ma_heap_abandoned_news, memory_order_relaxed)) {
        ma_heap_collect_abandoned(false);
        page = ma_segment_span_alloc(&heap->segs, slices, false);
    }
    if (!page) page = ma_segment_span_alloc(&heap->segs, slices, true);
    if (!page) return NULL;
    ma_page_setup(page, heap, cls);
    return page;
}

/* ---- Finding room --------------------------------------------------------- */

/* A page of class cls with a non-empty free list, first in its queue. Pages
 * found full on the way are parked, so each is looked at once. */
ma_page_t *ma_heap_find_page(ma_heap_t *heap, unsigned cls) {
    if (++heap->epoch % RETIRE_SWEEP == 0) {
        ma_free_flush(heap);  /* what this thread holds of others' blocks (free.c) */
        if (heap->retired_count) retire_sweep(heap);
    }
    ma_pageq_t *q = &heap->queue[cls];
    ma_page_t *page = q->first;
    while (page) {
        ma_page_collect(page);
        if (page->free) break;
        if (page->capacity < page->reserved) {
            ma_page_extend(page);
            break;
        }
        if (ma_page_park(page)) {
            ma_page_t *next = page->next;
            queue_remove(q, page);
            mark_full(page, true);
            queue_push_back(&heap->full, page);
            page = next;
        }
        /* else a remote free just arrived: collect it on the next turn */
    }
    if (!page) {
        page = page_new(heap, cls);
        if (!page) {
            direct_update(heap, cls);
            return NULL;
        }
        if (!page->free) ma_page_extend(page);
        queue_push_front(q, page);
    } else if (page != q->first) {
        queue_remove(q, page);
        queue_push_front(q, page);
    }
    direct_update(heap, cls);
    return page;
}

/* A local free made a parked page usable again, or emptied a page. */
void ma_heap_page_event(ma_heap_t *heap, ma_page_t *page) {
    unsigned cls = page->sclass;
    ma_pageq_t *q = &heap->queue[cls];
    if (page->in_full) {
        queue_remove(&heap->full, page);
        mark_full(page, false);
        ma_page_unpark(page);
        queue_push_back(q, page);
        if (q->first == page) direct_update(heap, cls);
    }
    if (ma_page_used(page) == 0 && !page->pinned) {
        if (page->slice_count <= MA_PIN_SLICES) {
            retire_add(heap, page);
        } else {
            queue_remove(q, page);
            page_release(heap, page);
        }
    }
}

/* Free the blocks that remote threads pushed on heap->remote_full, onto
 * their pages' lists without free's double-free test: their first words
 * are the chain's links, which that test takes for a free block's (a
 * search of the page's lists for each: sh8bench spent 8% of its
 * instructions there), so it could tell nothing here. */
void ma_heap_drain_remote(ma_heap_t *heap) {
    uintptr_t list = atomic_exchange_explicit(&heap->remote_full, 0, memory_order_acquire);
    while (list) {
        ma_block_t *b = (ma_block_t *)list;
        list = (uintptr_t)ma_block_decode(b->next);
        ma_page_t *page = ma_segment_page_of(ma_segment_small_of(b), b);
        if (page->heap == heap) ma_free_local(heap, page, b);
        else ma_free_remote(page, b);
    }
}

/* Collect every page; give back the empty ones (with release_all, also the
 * first page of each queue). */
void ma_heap_collect(ma_heap_t *heap, bool release_all) {
    ma_heap_drain_remote(heap);
    for (unsigned cls = 1; cls < MA_CLASS_COUNT; cls++) {
        ma_pageq_t *q = &heap->queue[cls];
        ma_page_t *next;
        for (ma_page_t *page = q->first; page; page = next) {
            next = page->next;
            ma_page_collect(page);
            if (ma_page_used(page) == 0 && (release_all || page != q->first)) {
                queue_remove(q, page);
                page_release(heap, page);
            }
        }
        direct_update(heap, cls);
    }
}

/* ---- Thread start and exit -------------------------------------------------- */

/* Room for more heap structs, mapped outside the heaps lock; false if
 * the mapping fails. (A chunk mapped by two threads at once leaves the
 * rest of one unused: rare, and harmless.) */
static bool meta_refill(void) {
    uint8_t *chunk = ma_os_map(META_CHUNK);
    if (!chunk) return false;
    ma_lock(&heaps_lock);
    meta_next = chunk;
    meta_end = chunk + META_CHUNK;
    ma_unlock(&heaps_lock);
    return true;
}

/* A new heap struct from the metadata chunk (heaps lock held; the caller
 * made sure there is room). */
static ma_heap_t *heap_new_locked(void) {
    ma_heap_t *heap = (ma_heap_t *)meta_next;
    meta_next += HEAP_STRIDE;
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) heap->direct[i] = &ma_page_empty;
    ma_segment_set_init(&heap->segs);
    heap->next_all = all_heaps;
    all_heaps = heap;
    heap_count++;
    return heap;
}

/* An abandoned heap's pages are all parked (park_all): a new owner takes
 * back those with room now, and hears of the others through remote frees. */
static void unpark_with_room(ma_heap_t *heap) {
    ma_heap_drain_remote(heap);
    ma_page_t *next;
    for (ma_page_t *page = heap->full.first; page; page = next) {
        next = page->next;
        ma_page_collect(page);
        if (page->free || page->capacity < page->reserved) ma_heap_page_event(heap, page);
    }
}

ma_heap_t *ma_heap_thread_init(void) {
    ma_process_init();
    ma_heap_t *heap = NULL;
    for (;;) {
        ma_lock(&heaps_lock);
        heap = abandoned;
        if (heap) abandoned = heap->next_abandoned;
        else if (meta_end - meta_next >= (ptrdiff_t)HEAP_STRIDE) heap = heap_new_locked();
        if (heap) {
            heap->owned = true;
            atomic_store_explicit(&heap->is_abandoned, false, memory_order_relaxed);
        }
        ma_unlock(&heaps_lock);
        /* a new metadata chunk is mapped outside the lock: a failed mmap
         * may release memory, which takes it (ma_heap_collect_abandoned) */
        if (heap || !meta_refill()) break;
    }
    if (!heap) return NULL;
    unpark_with_room(heap);
    if (ma_checked) ma_heap_checked_tls = heap;  /* free's fast path must keep missing */
    else ma_heap_free_tls = heap;
    if (!ma_checked || ma_secure_only) ma_heap_tls = heap;
    /* May allocate (glibc's second-level key array): the heap is set up. */
    pthread_setspecific(ma_thread_key, heap);
    return heap;
}

/* Every page that still holds blocks goes to heap->full, parked, so that
 * the first free into each reaches heap->remote_full: how a collector
 * learns that an abandoned heap has frees to take. */
static void park_all(ma_heap_t *heap) {
    for (unsigned cls = 1; cls < MA_CLASS_COUNT; cls++) {
        ma_pageq_t *q = &heap->queue[cls];
        while (q->first) {
            ma_page_t *page = q->first;
            queue_remove(q, page);
            while (!ma_page_park(page)) ma_page_collect(page);  /* a remote free came in */
            if (ma_page_used(page) == 0) {
                ma_page_unpark(page);
                page_release(heap, page);
                continue;
            }
            mark_full(page, true);
            queue_push_back(&heap->full, page);
        }
        direct_update(heap, cls);
    }
}

/* Gives back what an abandoned heap (or one being abandoned) holds free:
 * its empty pages to its segments, its empty segments to the pool. */
static void abandon(ma_heap_t *heap) {
    ma_heap_collect(heap, true);
    park_all(heap);
    ma_segment_set_shed(&heap->segs);
}

/* pthread key destructor: the thread is exiting. All its empty pages go
 * back to its segments, its empty segments to the pool, where any thread
 * can use them, and the pages that still hold blocks are parked. (Keeping
 * the first page of each class for the next thread was measured: with
 * threads that use many classes it let RSS climb with every generation.)
 * Later frees by this thread take the remote path; a later malloc adopts a
 * heap again. */
void ma_heap_thread_done(void *arg) {
    ma_heap_t *heap = arg;
    if (heap == NULL || heap == &ma_heap_empty) return;
    ma_free_flush(heap);
    abandon(heap);
    if (ma_heap_tls == heap) ma_heap_tls = &ma_heap_empty;
    if (ma_heap_free_tls == heap) ma_heap_free_tls = &ma_heap_empty;
    if (ma_heap_checked_tls == heap) ma_heap_checked_tls = NULL;
    ma_lock(&heaps_lock);
    heap->owned = false;
    atomic_store_explicit(&heap->is_abandoned, true, memory_order_relaxed);
    heap->next_abandoned = abandoned;
    abandoned = heap;
    ma_unlock(&heaps_lock);
}

ma_heap_t *ma_heap_current(void) {
    ma_heap_t *heap = ma_checked ? ma_heap_checked_tls : ma_heap_tls;
    return heap == &ma_heap_empty ? NULL : heap;
}

/* The abandoned heaps that blocks were freed into (every one with all):
 * their frees taken and what became free given back, so that memory a
 * thread left behind serves the others and can be purged, without waiting
 * for a new thread to adopt its heap. Any thread; under the heaps lock,
 * so no thread adopts a heap meanwhile. */
void ma_heap_collect_abandoned(bool all) {
    ma_lock(&heaps_lock);
    atomic_store_explicit(&ma_heap_abandoned_news, false, memory_order_relaxed);
    for (ma_heap_t *heap = abandoned; heap; heap = heap->next_abandoned)
        if (all || atomic_load_explicit(&heap->remote_full, memory_order_relaxed)) abandon(heap);
    ma_unlock(&heaps_lock);
}

/* The purge tick of every heap's segments (force: all that is free, now);
 * the sets busy with their own thread are left for the next tick, unless
 * force. */
size_t ma_heap_purge_all(bool force) {
    size_t released = 0;
    ma_lock(&heaps_lock);
    for (ma_heap_t *heap = all_heaps; heap; heap = heap->next_all)
        released += ma_segment_set_trim(&heap->segs, force, !force);
    ma_unlock(&heaps_lock);
    return released;
}

/* ---- User heaps ------------------------------------------------------------ */

/* Destroyed heap structs are reused only after QUARANTINE others, so that
 * using a destroyed heap is caught for a while rather than hitting a new
 * heap in the same place. */
#define QUARANTINE 16
static ma_heap_t *dead_first, *dead_last;
static unsigned dead_count;

/* The queues and lists of a heap, emptied (its pages are gone or unused). */
static void heap_clear(ma_heap_t *heap) {
    heap->retired_count = 0;  /* in the heap's own segments: gone with them */
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) heap->direct[i] = &ma_page_empty;
    memset(heap->queue, 0, sizeof heap->queue);
    memset(&heap->full, 0, sizeof heap->full);
    atomic_store_explicit(&heap->remote_full, 0, memory_order_relaxed);
}

ma_heap_t *ma_heap_user_new(void) {
    ma_process_init();
    ma_heap_t *heap = NULL;
    for (;;) {
        ma_lock(&heaps_lock);
        if (dead_count > QUARANTINE) {
            heap = dead_first;
            dead_first = heap->next_abandoned;
            if (!dead_first) dead_last = NULL;
            dead_count--;
        } else if (meta_end - meta_next >= (ptrdiff_t)HEAP_STRIDE) {
            heap = heap_new_locked();
        }
        ma_unlock(&heaps_lock);
        if (heap || !meta_refill()) break;
    }
    if (!heap) return NULL;
    heap_clear(heap);
    heap->large_list = NULL;
    heap->fixed = NULL;
    atomic_store_explicit(&heap->busy, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->kind, MA_HEAP_USER, memory_order_release);
    return heap;
}

/* Every page and large block of a user heap back to the OS; the heap is
 * empty afterwards. Time: its segments and large blocks, not its blocks. */
void ma_heap_user_release(ma_heap_t *heap) {
    for (unsigned cls = 1; cls < MA_CLASS_COUNT; cls++)
        for (ma_page_t *page = heap->queue[cls].first; page; page = page->next)
            heap->class_allocs[cls] += page->allocs;
    for (ma_page_t *page = heap->full.first; page; page = page->next) heap->class_allocs[page->sclass] += page->allocs;
    ma_large_release_owner(heap);
    ma_segment_set_release(&heap->segs);
    heap_clear(heap);
}

void ma_heap_user_retire(ma_heap_t *heap) {
    atomic_store_explicit(&heap->kind, MA_HEAP_DEAD, memory_order_release);
    ma_lock(&heaps_lock);
    heap->next_abandoned = NULL;
    if (dead_last) dead_last->next_abandoned = heap;
    else dead_first = heap;
    dead_last = heap;
    dead_count++;
    ma_unlock(&heaps_lock);
}

/* ---- fork ------------------------------------------------------------------ */

/* The child of a process with other threads, its locks reset (lock.c).
 * Only the forking thread lives on in it. The other threads' heaps may
 * have been in the middle of a lock-free fast path, so they are orphaned,
 * never adopted: their blocks stay valid, and freeing one takes the
 * atomic remote path; their free memory is lost to the child. */
void ma_heap_fork_child(void) {
    ma_heap_t *mine = ma_heap_current();
    for (ma_heap_t *heap = all_heaps; heap; heap = heap->next_all)
        if (heap != mine) heap->owned = false;
}

/* ---- Statistics -------------------------------------------------------------- */

void ma_heap_sum_class_allocs(uint64_t *out) {
    ma_lock(&heaps_lock);
    for (ma_heap_t *heap = all_heaps; heap; heap = heap->next_all)
        for (unsigned c = 0; c < MA_CLASS_COUNT; c++) out[c] += heap->class_allocs[c];
    ma_unlock(&heaps_lock);
}

/* audit.c walks every heap (ma_check, the leak report) under the lock:
 * no heap is adopted or abandoned meanwhile. */
void ma_heap_lock(void) { ma_lock(&heaps_lock); }
void ma_heap_unlock(void) { ma_unlock(&heaps_lock); }
ma_heap_t *ma_heap_first(void) { return all_heaps; }

/* fn on every page of every heap; heaps lock held. */
void ma_heap_visit_pages_locked(ma_page_visit_fn *fn, void *arg) {
    for (ma_heap_t *heap = all_heaps; heap; heap = heap->next_all) ma_segment_visit_pages(&heap->segs, fn, arg);
}

uint64_t ma_heap_count(void) {
    ma_lock(&heaps_lock);
    uint64_t n = heap_count;
    ma_unlock(&heaps_lock);
    return n;
}
