/* death.c - each misuse must kill the program with SIGABRT and a fixed
 * message on stderr.
 *
 *   death CASE                     runs CASE (table below) in a child
 *   death exec KIND PROG LIB       runs PROG KIND with LD_PRELOAD=LIB, KIND
 *                                  double_free or invalid_free (a program
 *                                  like preload_misuse.c)
 *
 * The child first writes the address the message must name ("%p\n") to its
 * stdout, then commits the misuse. The parent reads both pipes and checks
 * that the child died by SIGABRT and that its stderr holds the message
 * followed by exactly that address: lowercase hex, 0x prefix, no padding,
 * not followed by another hex digit (some messages go on, e.g.
 * " (size class N)").
 *
 * The misuses go through volatile function pointers, so the compiler
 * neither warns about them nor optimises them away.
 *
 * Some misuses are caught only in a checked mode (MAPALLOC_SECURE=1 or
 * MAPALLOC_DEBUG=1, set by CMakeLists.txt in the test's environment): the
 * case table says nothing about modes, CMakeLists.txt runs each case in
 * the modes that must catch it. A case with a signal other than SIGABRT
 * (a guard page: SIGSEGV) checks the signal only: the kernel says nothing.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "death_child.h"
#include "ma_test.h"

#define MSG_INVALID_FREE "mapalloc: invalid free of "
#define MSG_DOUBLE_FREE "mapalloc: double free of "
#define MSG_INVALID_REALLOC "mapalloc: invalid realloc of "
#define MSG_INVALID_USABLE "mapalloc: invalid malloc_usable_size of "
#define MSG_OVERFLOW "mapalloc: heap overflow of "
#define MSG_WRITE_AFTER_FREE "mapalloc: write after free of "
#define MSG_CORRUPTED_LIST "mapalloc: corrupted free list at "

extern void *__libc_malloc(size_t size); /* glibc's, whatever malloc is */

static void (*volatile free_fn)(void *) = A_FREE;
static void *(*volatile realloc_fn)(void *, size_t) = A_REALLOC;
static size_t (*volatile usable_fn)(const void *) = ma_usable_size;
static void *(*volatile malloc_fn)(size_t) = A_MALLOC;

static _Alignas(64) char global_buf[256];

/* Tells the parent which address the message must name. Not a const
 * pointer: gcc 12 at -O0 reads that as a read of the fresh block from
 * malloc and warns (-Wmaybe-uninitialized). */
static void expect(void *p)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%p\n", p);
    if (write(1, buf, (size_t)n) != n)
        _exit(3);
}

static void invalid_free_stack(void)
{
    _Alignas(16) char x[64];
    memset(x, 0, sizeof x);
    expect(x);
    free_fn(x);
}

static void invalid_free_global(void)
{
    expect(global_buf);
    free_fn(global_buf);
}

static void invalid_free_libc_small(void)
{
    void *p = malloc(64); /* glibc's: this program uses the ma_ build */
    expect(p);
    free_fn(p);
}

static void invalid_free_libc_large(void)
{
    void *p = __libc_malloc(4 * MIB); /* a chunk glibc maps on its own */
    expect(p);
    free_fn(p);
}

static void invalid_free_interior(void)
{
    char *p = malloc_fn(64);
    expect(p + 16); /* 16-aligned, like a block start of a smaller class */
    free_fn(p + 16);
}

static void invalid_free_interior_odd(void)
{
    char *p = malloc_fn(100);
    expect(p + 1);
    free_fn(p + 1);
}

static void double_free_32(void)
{
    void *p = malloc_fn(32);
    expect(p);
    free_fn(p);
    free_fn(p);
}

static void double_free_1000(void)
{
    void *p = malloc_fn(1000);
    expect(p);
    free_fn(p);
    free_fn(p);
}

static void double_free_interleaved(void)
{
    void *p = malloc_fn(32);
    void *q = malloc_fn(32);
    expect(p);
    free_fn(p);
    free_fn(q);
    free_fn(p);
}

/* A medium block (a page of 8 to 32 slices): another block keeps the page
 * alive, or the first free would give the whole page back. */
static void double_free_medium(void)
{
    void *keep = malloc_fn(100 * KIB);
    void *p = malloc_fn(100 * KIB);
    expect(p);
    free_fn(p);
    free_fn(p);
    free_fn(keep);
}

/* 40 KB blocks: a page of them goes back when it empties (it is not
 * kept as its class's first page), so the second free finds a span with
 * no blocks: still a double free, as the README says. */
static void double_free_40k(void)
{
    void *p = malloc_fn(40 * 1000);
    expect(p);
    free_fn(p);
    free_fn(p);
}

/* A freed large block waits in the cache, mapped: realloc must not hand
 * it back (the next malloc of that size would own it too). */
static void realloc_freed_large(void)
{
    void *p = malloc_fn(1 * MIB);
    expect(p);
    free_fn(p);
    void *q = realloc_fn(p, 2 * MIB);
    free_fn(q);
}

/* malloc_usable_size of a freed block (in SECURE's quarantine, or on its
 * page's lists): the same check as realloc's. */
static void usable_freed(void)
{
    void *keep = malloc_fn(48);
    void *p = malloc_fn(48);
    expect(p);
    free_fn(p);
    usable_fn(p);
    free_fn(keep);
}

/* Exactly 256 KiB: with its canary too big for a page under SECURE, a
 * mapping of its own, which the large cache keeps mapped when freed. */
static void write_after_free_256k(void)
{
    char *p = malloc_fn(256 * KIB);
    expect(p);
    free_fn(p);
    p[8] = 'x';
    free_fn(malloc_fn(256 * KIB));
}

/* A write after free followed by no free at all: caught when malloc next
 * takes a slow path (here: pages of 48-byte blocks run dry)... */
static void write_after_free_then_malloc(void)
{
    char *p = malloc_fn(48);
    expect(p);
    free_fn(p);
    memset(p, 'B', 48);
    for (int i = 0; i < 10000; i++)
        malloc_fn(48);
}

/* ... or at exit (a normal one: the library's destructor runs), when
 * nothing else happened. */
static void write_after_free_at_exit(void)
{
    char *p = malloc_fn(48);
    expect(p);
    free_fn(p);
    memset(p, 'B', 48);
    exit(0);
}

static void write_after_free_large_at_exit(void)
{
    char *p = malloc_fn(1 * MIB);
    size_t n = usable_fn(p);
    expect(p);
    free_fn(p);
    p[n - 1] = 'x';
    exit(0);
}

/* MAPALLOC_SECURE: a block of no bytes has no bytes to touch. */
static void zero_size_write(void)
{
    char *p = malloc_fn(0);
    expect(p);
    p[0] = 'x';
    free_fn(p);
}

static void zero_size_read(void)
{
    volatile char *p = malloc_fn(0);
    expect((void *)p);
    char c = p[0];
    (void)c;
    free_fn((void *)p);
}

static void double_free_zero_size(void)
{
    void *p = malloc_fn(0);
    expect(p);
    free_fn(p);
    free_fn(p);
}

static void double_free_large(void)
{
    void *p = malloc_fn(1 * MIB);
    expect(p);
    free_fn(p);
    free_fn(p);
}

static void *free_in_thread(void *p)
{
    free_fn(p);
    return NULL;
}

static void free_elsewhere(void *p)
{
    pthread_t t;
    if (pthread_create(&t, NULL, free_in_thread, p) != 0 ||
        pthread_join(t, NULL) != 0)
        _exit(5);
}

/* Freed by its thread, then again by another: the second free takes the
 * remote path, which the default mode does not check. */
static void double_free_remote(void)
{
    void *keep = malloc_fn(48);
    void *p = malloc_fn(48);
    expect(p);
    free_fn(p);
    free_elsewhere(p);
    free_fn(keep);
}

static void overflow_one(void)
{
    char *p = malloc_fn(24);
    size_t n = usable_fn(p);
    memset(p, 'a', n);
    expect(p);
    p[n] = 'x';
    free_fn(p);
}

static void overflow_many(void)
{
    char *p = malloc_fn(100);
    memset(p, 'a', usable_fn(p) + 40);
    expect(p);
    free_fn(p);
}

/* A string one byte too long for its block: the canary's first byte is
 * never 0, so even the terminator is caught. */
static void overflow_nul(void)
{
    char *p = malloc_fn(40);
    size_t n = usable_fn(p);
    memset(p, 'a', n);
    expect(p);
    p[n] = '\0';
    free_fn(p);
}

/* The byte written after free is found when the block comes back: through
 * the quarantine (MAPALLOC_SECURE) or straight from the free lists. */
static void write_after_free(void)
{
    char *p = malloc_fn(64);
    expect(p);
    free_fn(p);
    p[20] = 'x';
    for (int i = 0; i < 10000; i++)
        free_fn(malloc_fn(64));
}

/* A write in the middle of a freed 1000-byte block: MAPALLOC_DEBUG fills
 * and checks the whole block; SECURE only its first 24 and last 16 bytes. */
static void write_after_free_deep(void)
{
    char *p = malloc_fn(1000);
    expect(p);
    free_fn(p);
    p[500] = 'x';
    for (int i = 0; i < 10000; i++)
        free_fn(malloc_fn(1000));
}

/* The first word of a quarantined block is its tag: checked when the
 * block leaves the quarantine. */
static void write_after_free_first_word(void)
{
    char *p = malloc_fn(64);
    expect(p);
    free_fn(p);
    memset(p, 'x', 8);
    for (int i = 0; i < 10000; i++)
        free_fn(malloc_fn(64));
}

/* A block too big for the quarantine (20 KiB): its fill is checked when
 * malloc hands it out again. */
static void write_after_free_medium(void)
{
    void *keep = malloc_fn(20 * KIB);
    char *p = malloc_fn(20 * KIB);
    expect(p);
    free_fn(p);
    p[20] = 'x';
    for (int i = 0; i < 1000; i++)
        free_fn(malloc_fn(20 * KIB));
    free_fn(keep);
}

/* A user heap's blocks skip the quarantine too. */
static void write_after_free_heap(void)
{
    ma_heap_t *h = ma_heap_new();
    void *keep = h ? ma_heap_malloc(h, 64) : NULL;
    char *p = h ? ma_heap_malloc(h, 64) : NULL;
    if (!keep || !p)
        _exit(5);
    expect(p);
    free_fn(p);
    p[20] = 'x';
    for (int i = 0; i < 10000; i++)
        free_fn(ma_heap_malloc(h, 64));
    ma_heap_destroy(h);
}

static void invalid_free_destroyed_heap(void)
{
    ma_heap_t *h = ma_heap_new();
    void *p = h ? ma_heap_malloc(h, 64) : NULL;
    if (!p)
        _exit(5);
    ma_heap_destroy(h);
    expect(p);
    free_fn(p);
}

/* Garbage in the link of a block another thread freed: the owner follows
 * that list when its page runs dry, and names the block holding the bad
 * link (the key makes it decode to an address outside the page). */
static void corrupted_free_list(void)
{
    void *keep = malloc_fn(32);
    uint64_t *p = malloc_fn(32);
    free_elsewhere(p);
    expect(p);
    *p = 0x4141414141414141ull;
    for (int i = 0; i < 100000; i++)
        malloc_fn(32);
    free_fn(keep);
}

/* MAPALLOC_SECURE: the end of a large mapping and the space around a
 * segment header are PROT_NONE. */
static void guard_large(void)
{
    char *p = malloc_fn(1 * MIB);
    size_t n = usable_fn(p);
    expect(p + n);
    ((volatile char *)p)[n] = 'x';
}

static void guard_segment_header(void)
{
    char *p = malloc_fn(32);
    char *seg = (char *)((uintptr_t)p & ~(uintptr_t)(4 * MIB - 1));
    expect(seg + 64 * KIB - 1);
    ((volatile char *)seg)[64 * KIB - 1] = 'x';
}

static void guard_segment_end(void)
{
    char *p = malloc_fn(32);
    char *seg = (char *)((uintptr_t)p & ~(uintptr_t)(4 * MIB - 1));
    expect(seg + 4 * MIB - 1);
    ((volatile char *)seg)[4 * MIB - 1] = 'x';
}

static void invalid_realloc_stack(void)
{
    _Alignas(16) char x[64];
    memset(x, 0, sizeof x);
    expect(x);
    realloc_fn(x, 100);
}

static void invalid_usable_size_stack(void)
{
    _Alignas(16) char x[64];
    memset(x, 0, sizeof x);
    expect(x);
    usable_fn(x);
}

static const struct death_case {
    const char *name;
    const char *message;
    void (*run)(void);
    int sig; /* 0: SIGABRT and the message */
} cases[] = {
    {"invalid_free_stack", MSG_INVALID_FREE, invalid_free_stack, 0},
    {"invalid_free_global", MSG_INVALID_FREE, invalid_free_global, 0},
    {"invalid_free_libc_small", MSG_INVALID_FREE, invalid_free_libc_small, 0},
    {"invalid_free_libc_large", MSG_INVALID_FREE, invalid_free_libc_large, 0},
    {"invalid_free_interior", MSG_INVALID_FREE, invalid_free_interior, 0},
    {"invalid_free_interior_odd", MSG_INVALID_FREE, invalid_free_interior_odd, 0},
    {"double_free_32", MSG_DOUBLE_FREE, double_free_32, 0},
    {"double_free_1000", MSG_DOUBLE_FREE, double_free_1000, 0},
    {"double_free_interleaved", MSG_DOUBLE_FREE, double_free_interleaved, 0},
    {"invalid_realloc_stack", MSG_INVALID_REALLOC, invalid_realloc_stack, 0},
    {"invalid_usable_size_stack", MSG_INVALID_USABLE, invalid_usable_size_stack, 0},
    {"double_free_medium", MSG_DOUBLE_FREE, double_free_medium, 0},
    {"double_free_large", MSG_DOUBLE_FREE, double_free_large, 0},
    {"double_free_40k", MSG_DOUBLE_FREE, double_free_40k, 0},
    {"realloc_freed_large", MSG_INVALID_REALLOC, realloc_freed_large, 0},
    {"usable_freed", MSG_INVALID_USABLE, usable_freed, 0},
    {"zero_size_write", NULL, zero_size_write, SIGSEGV},
    {"zero_size_read", NULL, zero_size_read, SIGSEGV},
    {"double_free_zero_size", MSG_DOUBLE_FREE, double_free_zero_size, 0},
    {"write_after_free_256k", MSG_WRITE_AFTER_FREE, write_after_free_256k, 0},
    {"write_after_free_then_malloc", MSG_WRITE_AFTER_FREE, write_after_free_then_malloc, 0},
    {"write_after_free_at_exit", MSG_WRITE_AFTER_FREE, write_after_free_at_exit, 0},
    {"write_after_free_large_at_exit", MSG_WRITE_AFTER_FREE, write_after_free_large_at_exit, 0},
    {"double_free_remote", MSG_DOUBLE_FREE, double_free_remote, 0},
    {"overflow_one", MSG_OVERFLOW, overflow_one, 0},
    {"overflow_many", MSG_OVERFLOW, overflow_many, 0},
    {"overflow_nul", MSG_OVERFLOW, overflow_nul, 0},
    {"write_after_free", MSG_WRITE_AFTER_FREE, write_after_free, 0},
    {"write_after_free_first_word", MSG_WRITE_AFTER_FREE, write_after_free_first_word, 0},
    {"write_after_free_deep", MSG_WRITE_AFTER_FREE, write_after_free_deep, 0},
    {"write_after_free_medium", MSG_WRITE_AFTER_FREE, write_after_free_medium, 0},
    {"write_after_free_heap", MSG_WRITE_AFTER_FREE, write_after_free_heap, 0},
    {"invalid_free_destroyed_heap", MSG_INVALID_FREE, invalid_free_destroyed_heap, 0},
    {"corrupted_free_list", MSG_CORRUPTED_LIST, corrupted_free_list, 0},
    {"guard_large", NULL, guard_large, SIGSEGV},
    {"guard_segment_header", NULL, guard_segment_header, SIGSEGV},
    {"guard_segment_end", NULL, guard_segment_end, SIGSEGV},
};

/* Reads fd to EOF into buf (NUL-terminated, truncated at size - 1). */
/* 1 if text holds message immediately followed by address, and no more
 * hex digits after the address. */
static int has_message(const char *text, const char *message,
                       const char *address)
{
    char want[256];
    snprintf(want, sizeof want, "%s%s", message, address);
    for (const char *at = strstr(text, want); at; at = strstr(at + 1, want))
        if (!isxdigit((unsigned char)at[strlen(want)]))
            return 1;
    return 0;
}

/* Runs child() in a child process and checks how it died: by sig, and for
 * SIGABRT with message and the address. */
static void expect_death(const char *name, const char *message, int sig,
                         void (*child)(void *), void *arg)
{
    char address[128], text[16384];
    int st = death_run(child, arg, 20, address, sizeof address, text, sizeof text);
    address[strcspn(address, "\n")] = '\0';

    int by_abort = WIFSIGNALED(st) && WTERMSIG(st) == sig;
    int said = address[0] != '\0' &&
               (sig != SIGABRT || has_message(text, message, address));
    if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", name, WTERMSIG(st));
    else
        printf("%s: exited with status %d\n", name, WEXITSTATUS(st));
    printf("expected: signal %d, on stderr: %s%s\nstderr was: %s%s", sig,
           message ? message : "(nothing)", address, text[0] ? "\n" : "(empty)\n",
           text);
    CHECK(by_abort);
    CHECK(said);
}

static void run_case(void *arg)
{
    ((const struct death_case *)arg)->run();
}

struct exec_args {
    char *prog, *arg, *lib;
};

static void run_exec(void *arg)
{
    struct exec_args *e = arg;
    setenv("LD_PRELOAD", e->lib, 1);
    char *argv[] = {e->prog, e->arg, NULL};
    execv(e->prog, argv);
    _exit(4);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "exec") == 0) {
        const char *message = strcmp(argv[2], "double_free") == 0
                                  ? MSG_DOUBLE_FREE
                                  : MSG_INVALID_FREE;
        struct exec_args e = {argv[3], argv[2], argv[4]};
        expect_death(argv[2], message, SIGABRT, run_exec, &e);
        return check_done();
    }
    for (size_t i = 0; argc == 2 && i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(argv[1], cases[i].name) == 0) {
            expect_death(cases[i].name, cases[i].message,
                         cases[i].sig ? cases[i].sig : SIGABRT, run_case,
                         (void *)&cases[i]);
            return check_done();
        }
    }
    fprintf(stderr, "usage: %s CASE | exec KIND PROG LIB\ncases:",
            argv[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        fprintf(stderr, " %s", cases[i].name);
    fprintf(stderr, "\n");
    return 2;
}
