/* pools_death.c - each misuse of a heap must kill the program with SIGABRT
 * and a fixed message on stderr.
 *
 *   pools_death CASE      runs CASE (table below) in a child process
 *
 * As test/death/death.c: the child first writes the address the message
 * must name ("%p\n") to its stdout, then commits the misuse; the parent
 * checks that the child died by SIGABRT and that its stderr holds the
 * message's first part, exactly that address (not followed by another hex
 * digit) and the message's last part.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "death_child.h"
#include "ma_test.h"

#define MSG_DESTROYED "mapalloc: use of destroyed heap "
#define MSG_TWO_THREADS "mapalloc: heap "
#define TWO_THREADS_AFTER " used by two threads at once"
#define MSG_DOUBLE_FREE "mapalloc: double free of "
#define MSG_INVALID_FREE "mapalloc: invalid free of "
#define MSG_INVALID_REALLOC "mapalloc: invalid realloc of "
#define MSG_INVALID_USABLE "mapalloc: invalid malloc_usable_size of "

#define REGION (4 * MIB)
#define TWO_THREAD_ROUNDS 50000000UL /* no abort after this many: a failure */

static void (*volatile free_fn)(void *) = ma_free;
static void (*volatile destroy_fn)(ma_heap_t *) = ma_heap_destroy;

/* Tells the parent which address the message must name. */
static void expect(const void *p)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%p\n", p);
    if (write(1, buf, (size_t)n) != n)
        _exit(3);
}

static ma_heap_t *fixed_heap(void)
{
    void *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ma_heap_t *h = m == MAP_FAILED ? NULL : ma_heap_new_in(m, REGION);
    if (!h)
        _exit(4);
    return h;
}

static ma_heap_t *user_heap(void)
{
    ma_heap_t *h = ma_heap_new();
    if (!h)
        _exit(4);
    return h;
}

static void destroy_twice(ma_heap_t *h)
{
    expect(h);
    ma_heap_destroy(h);
    destroy_fn(h);
}

static void malloc_destroyed(ma_heap_t *h)
{
    expect(h);
    ma_heap_destroy(h);
    void *p = ma_heap_malloc(h, 10);
    free_fn(p);
}

static void user_destroy_twice(void) { destroy_twice(user_heap()); }
static void fixed_destroy_twice(void) { destroy_twice(fixed_heap()); }
static void user_malloc_destroyed(void) { malloc_destroyed(user_heap()); }
static void fixed_malloc_destroyed(void) { malloc_destroyed(fixed_heap()); }

/* Two threads hammer one heap; the overlap of two calls must be caught
 * long before the loop ends. */
static ma_heap_t *shared;
static atomic_int ready;

static void *hammer(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < 2)
        ;
    for (unsigned long i = 0; i < TWO_THREAD_ROUNDS; i++)
        free_fn(ma_heap_malloc(shared, 16 + i % 200));
    return NULL;
}

static void two_threads(ma_heap_t *h)
{
    shared = h;
    expect(h);
    pthread_t t;
    pthread_create(&t, NULL, hammer, NULL);
    hammer(NULL);
    pthread_join(t, NULL);
}

/* (A fixed heap has a lock: two threads may use it at once, pools_files.) */
static void user_two_threads(void) { two_threads(user_heap()); }

/* A block alone in its heap: its free absorbs the rest of the arena. */
static void fixed_double_free(void)
{
    void *p = ma_heap_malloc(fixed_heap(), 100);
    expect(p);
    free_fn(p);
    free_fn(p);
}

/* The second free finds p inside a bigger free block (coalesced with both
 * neighbours), or reused by a later allocation. Blocks over 64 KiB: smaller
 * ones wait on the heap's lock-free stacks, uncoalesced (fixed_double_free
 * is that case). */
static void fixed_double_free_coalesced(void)
{
    ma_heap_t *h = fixed_heap();
    void *a = ma_heap_malloc(h, 100 * KIB), *p = ma_heap_malloc(h, 200 * KIB);
    void *c = ma_heap_malloc(h, 300 * KIB);
    void *d = ma_heap_malloc(h, 50); /* keeps c from merging with the rest */
    (void)d;
    free_fn(a);
    free_fn(c);
    free_fn(p);
    void *big = ma_heap_malloc(h, 600 * KIB);
    expect(p);
    if (big != a) /* p must be inside the block reusing a, p and c */
        _exit(5);
    free_fn(p);
}

static void fixed_invalid_free_interior(void)
{
    char *p = ma_heap_malloc(fixed_heap(), 100);
    expect(p + 16);
    free_fn(p + 16);
}

static void fixed_invalid_free_odd(void)
{
    char *p = ma_heap_malloc(fixed_heap(), 100);
    expect(p + 1);
    free_fn(p + 1);
}

/* The heap struct itself, at the region's base, is not a block. */
static void fixed_invalid_free_base(void)
{
    ma_heap_t *h = fixed_heap();
    expect(h);
    free_fn(h);
}

/* The rules: frees must happen before the reset. */
static void fixed_free_after_reset(void)
{
    ma_heap_t *h = fixed_heap();
    void *p = ma_heap_malloc(h, 100);
    ma_heap_reset(h);
    expect(p);
    free_fn(p);
}

static void fixed_free_after_destroy(void)
{
    ma_heap_t *h = fixed_heap();
    void *p = ma_heap_malloc(h, 100);
    ma_heap_destroy(h);
    expect(p);
    free_fn(p);
}

static void user_free_after_destroy(void)
{
    ma_heap_t *h = user_heap();
    void *p = ma_heap_malloc(h, 100);
    ma_heap_destroy(h);
    expect(p);
    free_fn(p);
}

static void fixed_realloc_interior(void)
{
    char *p = ma_heap_malloc(fixed_heap(), 100);
    expect(p + 32);
    free_fn(ma_realloc(p + 32, 200));
}

static void fixed_usable_freed(void)
{
    void *p = ma_heap_malloc(fixed_heap(), 100);
    free_fn(p);
    expect(p);
    ma_usable_size(p);
}

/* ---- Heaps in files and shared memory (ma_heap_open) ---------------------- */

static ma_heap_t *file_heap(void)
{
    ma_heap_t *h = ma_heap_open(NULL, REGION, 0);
    if (!h)
        _exit(4);
    return h;
}

static void file_double_free(void)
{
    void *p = ma_heap_malloc(file_heap(), 100);
    expect(p);
    free_fn(p);
    free_fn(p);
}

static void file_malloc_closed(void)
{
    ma_heap_t *h = file_heap();
    ma_heap_close(h);
    expect(h);
    free_fn(ma_heap_malloc(h, 10));
}

/* The heap is unmapped: the pointer is nobody's (and is not read). */
static void file_free_after_close(void)
{
    ma_heap_t *h = file_heap();
    void *p = ma_heap_malloc(h, 100);
    ma_heap_close(h);
    expect(p);
    free_fn(p);
}

static void close_not_file(void)
{
    ma_heap_t *h = fixed_heap();
    expect(h);
    ma_heap_close(h);
}

static void offset_outside(void)
{
    ma_heap_t *h = file_heap();
    static char elsewhere[16];
    expect(elsewhere);
    ma_heap_root_set(h, ma_heap_offset(h, elsewhere));
}

static void offset_user_heap(void)
{
    ma_heap_t *h = user_heap();
    expect(h);
    ma_heap_root_set(h, 0);
}

static const struct death_case {
    const char *name;
    const char *message, *after;
    void (*run)(void);
} cases[] = {
    {"user_destroy_twice", MSG_DESTROYED, "", user_destroy_twice},
    {"fixed_destroy_twice", MSG_DESTROYED, "", fixed_destroy_twice},
    {"user_malloc_destroyed", MSG_DESTROYED, "", user_malloc_destroyed},
    {"fixed_malloc_destroyed", MSG_DESTROYED, "", fixed_malloc_destroyed},
    {"user_two_threads", MSG_TWO_THREADS, TWO_THREADS_AFTER, user_two_threads},
    {"fixed_double_free", MSG_DOUBLE_FREE, "", fixed_double_free},
    {"fixed_double_free_coalesced", MSG_DOUBLE_FREE, "", fixed_double_free_coalesced},
    {"fixed_invalid_free_interior", MSG_INVALID_FREE, "", fixed_invalid_free_interior},
    {"fixed_invalid_free_odd", MSG_INVALID_FREE, "", fixed_invalid_free_odd},
    {"fixed_invalid_free_base", MSG_INVALID_FREE, "", fixed_invalid_free_base},
    {"fixed_free_after_reset", MSG_INVALID_FREE, "", fixed_free_after_reset},
    {"fixed_free_after_destroy", MSG_INVALID_FREE, "", fixed_free_after_destroy},
    {"user_free_after_destroy", MSG_INVALID_FREE, "", user_free_after_destroy},
    {"fixed_realloc_interior", MSG_INVALID_REALLOC, "", fixed_realloc_interior},
    {"fixed_usable_freed", MSG_INVALID_USABLE, "", fixed_usable_freed},
    {"file_double_free", MSG_DOUBLE_FREE, "", file_double_free},
    {"file_malloc_closed", MSG_DESTROYED, "", file_malloc_closed},
    {"file_free_after_close", MSG_INVALID_FREE, "", file_free_after_close},
    {"close_not_file", "mapalloc: ma_heap_close of heap ", ", which ma_heap_open did not make", close_not_file},
    {"offset_outside", "mapalloc: ma_heap_offset: ", " is not inside the heap", offset_outside},
    {"offset_user_heap", "mapalloc: heap ", " has no offsets (only ma_heap_open and ma_heap_new_in heaps do)",
     offset_user_heap},
};

/* Reads fd to EOF into buf (NUL-terminated, truncated at size - 1). */
/* 1 if text holds message, address, then `after`; the address not
 * followed by another hex digit. */
static int has_message(const char *text, const char *message, const char *address,
                       const char *after)
{
    char want[256];
    snprintf(want, sizeof want, "%s%s", message, address);
    for (const char *at = strstr(text, want); at; at = strstr(at + 1, want)) {
        const char *rest = at + strlen(want);
        if (!isxdigit((unsigned char)*rest) && strncmp(rest, after, strlen(after)) == 0)
            return 1;
    }
    return 0;
}

static void run_case(void *arg) { ((const struct death_case *)arg)->run(); }

static void expect_death(const struct death_case *c)
{
    char address[128], text[16384];
    int st = death_run(run_case, (void *)c, 40, address, sizeof address, text, sizeof text);
    address[strcspn(address, "\n")] = '\0';

    int by_abort = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    int said = address[0] != '\0' && has_message(text, c->message, address, c->after);
    if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", c->name, WTERMSIG(st));
    else
        printf("%s: exited with status %d\n", c->name, WEXITSTATUS(st));
    printf("expected on stderr: %s%s%s\nstderr was: %s%s", c->message, address, c->after,
           text[0] ? "\n" : "(empty)\n", text);
    CHECK(by_abort);
    CHECK(said);
}

int main(int argc, char **argv)
{
    for (size_t i = 0; argc == 2 && i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(argv[1], cases[i].name) == 0) {
            expect_death(&cases[i]);
            return check_done();
        }
    }
    fprintf(stderr, "usage: %s CASE\ncases:", argv[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        fprintf(stderr, " %s", cases[i].name);
    fprintf(stderr, "\n");
    return 2;
}
