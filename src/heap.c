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

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static ma_heap_t *all_heaps;        /* every heap ever made */
static ma_heap_t *abandoned;        /* heaps with no thread */
static uint64_t heap_count;
static uint8_t *meta_next, *meta_end;  /* bump area for heap structs */

#define META_CHUNK ((size_t)256 << 10)
#define KEEP_EMPTY_SLICES 4u
#define HEAP_STRIDE ((sizeof(ma_heap_t) + 63) & ~(size_t)63)

/* ---- Page queues ---------------------------------------------------------- */

/* The first page of a queue stays when it empties, if its span is small:
 * the next malloc of its class would otherwise take a new page at once.
 * Spans of 1-2 MiB (blocks over 32 KiB) go back, as each may hold that
 * much RSS. free() reads the answer from page->keep_empty. */
static void first_changed(ma_pageq_t *q, ma_page_t *old_first) {
    if (q->first == old_first) return;
    if (old_first) old_first->keep_empty = 0;
    if (q->first) q->first->keep_empty = q->first->slice_count <= KEEP_EMPTY_SLICES;
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
    size_t tail = ma_block_tail(), min = ma_secure ? MA_SECURE_BLOCK_MIN : 0;
    size_t size = ma_sizeclass_size(cls), below = cls == 1 ? 0 : ma_sizeclass_size(cls - 1);
    if (size < min) return;
    size_t lo = cls == 1 || below < min ? 0 : ((below - tail) >> 4) + 1;
    size_t hi = (size - tail) >> 4;
    if (lo >= MA_DIRECT_COUNT) return;
    if (hi >= MA_DIRECT_COUNT) hi = MA_DIRECT_COUNT - 1;
    ma_page_t *page = heap->queue[cls].first ? heap->queue[cls].first : &ma_page_empty;
    for (size_t i = lo; i <= hi; i++) heap->direct[i] = page;
}

/* An emptied page's span is kept as a spare (up to MA_SPARE_MAX spans,
 * MA_SPARE_SLICES slices) for the heap's next page of any class with the
 * same span length: no lock, no purge and no page faults when a program
 * keeps emptying and refilling pages. A spare keeps its blocks carved
 * (ma_page_retire): a page of the same class takes it back as it was. */
static void page_release(ma_heap_t *heap, ma_page_t *page) {
    heap->class_allocs[page->sclass] += page->allocs;
    if (heap->spare_count < MA_SPARE_MAX && heap->spare_slices + page->slice_count <= MA_SPARE_SLICES) {
        ma_page_retire(page);
        heap->spare[heap->spare_count++] = page;
        heap->spare_slices += page->slice_count;
        return;
    }
    ma_segment_span_free(page);
}

/* A spare span of this length, preferably one that held class cls. */
static ma_page_t *spare_take(ma_heap_t *heap, unsigned slices, unsigned cls) {
    uint32_t found = UINT32_MAX;
    for (uint32_t i = heap->spare_count; i-- > 0;) {
        ma_page_t *page = heap->spare[i];
        if (page->slice_count != slices) continue;
        found = i;
        if (page->sclass == cls) break;
    }
    if (found == UINT32_MAX) return NULL;
    ma_page_t *page = heap->spare[found];
    heap->spare[found] = heap->spare[--heap->spare_count];
    heap->spare_slices -= slices;
    return page;
}

/* Spares back to their segments (thread exit, trim). */
static void spare_flush(ma_heap_t *heap) {
    while (heap->spare_count > 0) {
        ma_page_t *page = heap->spare[--heap->spare_count];
        ma_segment_span_free(page);
    }
    heap->spare_slices = 0;
}

static ma_page_t *page_new(ma_heap_t *heap, unsigned cls) {
    bool zero;
    unsigned slices = ma_sizeclass_slices(cls);
    ma_page_t *page = spare_take(heap, slices, cls);
    if (page && page->sclass == cls) {
        ma_page_revive(page);
        return page;
    }
    if (!page) {
        ma_heap_t *owner = atomic_load_explicit(&heap->kind, memory_order_relaxed) == MA_HEAP_USER ? heap : NULL;
        page = ma_segment_span_alloc(slices, &zero, owner);
        if (!page) return NULL;
    }
    ma_page_setup(page, heap, cls);
    return page;
}

/* ---- Finding room --------------------------------------------------------- */

/* A page of class cls with a non-empty free list, first in its queue. Pages
 * found full on the way are parked, so each is looked at once. */
ma_page_t *ma_heap_find_page(ma_heap_t *heap, unsigned cls) {
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
            page->in_full = 1;
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
        page->in_full = 0;
        ma_page_unpark(page);
        queue_push_back(q, page);
        if (q->first == page) direct_update(heap, cls);
    }
    if (ma_page_used(page) == 0 && !page->keep_empty) {
        queue_remove(q, page);
        page_release(heap, page);
    }
}

/* Free the blocks that remote threads pushed on heap->remote_full. */
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
    if (release_all) spare_flush(heap);
}

/* ---- Thread start and exit -------------------------------------------------- */

static ma_heap_t *heap_new_locked(void) {
    if ((size_t)(meta_end - meta_next) < HEAP_STRIDE) {
        meta_next = ma_os_map(META_CHUNK);
        if (!meta_next) return NULL;
        meta_end = meta_next + META_CHUNK;
    }
    ma_heap_t *heap = (ma_heap_t *)meta_next;
    meta_next += HEAP_STRIDE;
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) heap->direct[i] = &ma_page_empty;
    heap->next_all = all_heaps;
    all_heaps = heap;
    heap_count++;
    return heap;
}

ma_heap_t *ma_heap_thread_init(void) {
    ma_process_init();
    ma_lock(&heaps_lock);
    ma_heap_t *heap = abandoned;
    if (heap) abandoned = heap->next_abandoned;
    else heap = heap_new_locked();
    if (heap) heap->owned = true;
    ma_unlock(&heaps_lock);
    if (!heap) return NULL;
    if (ma_checked) ma_heap_checked_tls = heap;  /* free's fast path must keep missing */
    else ma_heap_free_tls = heap;
    if (!ma_checked || ma_secure_only) ma_heap_tls = heap;
    /* May allocate (glibc's second-level key array): the heap is set up. */
    pthread_setspecific(ma_thread_key, heap);
    return heap;
}

/* pthread key destructor: the thread is exiting. All its empty pages and
 * spares go back to the segments, where any thread can use them. (Keeping
 * the first page of each class for the next thread was measured: with
 * threads that use many classes it let RSS climb with every generation.)
 * Later frees by this thread take the remote path; a later malloc adopts a
 * heap again. */
void ma_heap_thread_done(void *arg) {
    ma_heap_t *heap = arg;
    if (heap == NULL || heap == &ma_heap_empty) return;
    ma_heap_collect(heap, true);
    if (ma_heap_tls == heap) ma_heap_tls = &ma_heap_empty;
    if (ma_heap_free_tls == heap) ma_heap_free_tls = &ma_heap_empty;
    if (ma_heap_checked_tls == heap) ma_heap_checked_tls = NULL;
    ma_lock(&heaps_lock);
    heap->owned = false;
    heap->next_abandoned = abandoned;
    abandoned = heap;
    ma_unlock(&heaps_lock);
}

ma_heap_t *ma_heap_current(void) {
    ma_heap_t *heap = ma_checked ? ma_heap_checked_tls : ma_heap_tls;
    return heap == &ma_heap_empty ? NULL : heap;
}

void ma_heap_collect_abandoned(void) {
    ma_lock(&heaps_lock);
    for (ma_heap_t *heap = abandoned; heap; heap = heap->next_abandoned) ma_heap_collect(heap, true);
    ma_unlock(&heaps_lock);
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
    heap->spare_count = 0;  /* in the heap's own segments: gone with them */
    heap->spare_slices = 0;
    for (unsigned i = 0; i < MA_DIRECT_COUNT; i++) heap->direct[i] = &ma_page_empty;
    memset(heap->queue, 0, sizeof heap->queue);
    memset(&heap->full, 0, sizeof heap->full);
    atomic_store_explicit(&heap->remote_full, 0, memory_order_relaxed);
}

ma_heap_t *ma_heap_user_new(void) {
    ma_process_init();
    ma_lock(&heaps_lock);
    ma_heap_t *heap;
    if (dead_count > QUARANTINE) {
        heap = dead_first;
        dead_first = heap->next_abandoned;
        if (!dead_first) dead_last = NULL;
        dead_count--;
    } else {
        heap = heap_new_locked();
    }
    ma_unlock(&heaps_lock);
    if (!heap) return NULL;
    heap_clear(heap);
    heap->large_list = NULL;
    heap->segment_count = 0;
    heap->fixed = NULL;
    pthread_mutex_init(&heap->large_lock, NULL);
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
    ma_large_release_owner(heap);
    ma_segment_release_owner(heap);
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

void ma_heap_fork_prepare(void) {
    ma_fixed_fork_prepare();
    ma_lock(&heaps_lock);
    ma_segment_lock();
}

void ma_heap_fork_parent(void) {
    ma_segment_unlock();
    ma_unlock(&heaps_lock);
    ma_fixed_fork_parent();
}

/* Only the forking thread lives on in the child. The other threads' heaps
 * may have been in the middle of a fast path (which takes no lock), so they
 * are orphaned, never adopted: their blocks stay valid, and freeing one
 * takes the atomic remote path; their free memory is lost to the child. */
void ma_heap_fork_child(void) {
    ma_segment_fork_child();
    pthread_mutex_init(&heaps_lock, NULL);
    ma_fixed_fork_child();
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

/* check.c walks every heap (ma_check, the leak report) under the lock:
 * no heap is adopted or abandoned meanwhile. */
void ma_heap_lock(void) { ma_lock(&heaps_lock); }
void ma_heap_unlock(void) { ma_unlock(&heaps_lock); }
ma_heap_t *ma_heap_first(void) { return all_heaps; }

uint64_t ma_heap_count(void) {
    ma_lock(&heaps_lock);
    uint64_t n = heap_count;
    ma_unlock(&heaps_lock);
    return n;
}
