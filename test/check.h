/* check.h - the tests' tiny harness, header only.
 *
 *   CHECK(cond)           counts a failure, and prints file:line and the
 *                         expression to stderr, if cond is false; carries on
 *   CHECK_EQ_U(a, b)      a == b as uint64_t; prints both values on failure
 *   CHECK_EQ_PTR(a, b)    a == b as pointers; prints both on failure
 *   check_done()          prints "N checks passed, N failed" to stdout and
 *                         returns the exit status: 0 iff nothing failed
 *
 *   int main(void) { CHECK(ma_malloc(0) != NULL); return check_done(); }
 *
 * The counters are weak definitions, so a program made of several .c files
 * that each include check.h shares one pair of counters. Each argument is
 * evaluated exactly once. Printing uses stdio, so it allocates: in a test of
 * the drop-in build that means the allocator under test. */
#ifndef MA_CHECK_H
#define MA_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

__attribute__((weak)) unsigned long check_n_passed;
__attribute__((weak)) unsigned long check_n_failed;

static inline int check_report(int ok, const char *file, int line,
                               const char *expr)
{
    if (ok) {
        check_n_passed++;
        return 1;
    }
    check_n_failed++;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
    return 0;
}

static inline void check_eq_u(uint64_t a, uint64_t b, const char *file,
                              int line, const char *ea, const char *eb)
{
    if (a == b) {
        check_n_passed++;
        return;
    }
    check_n_failed++;
    fprintf(stderr,
            "%s:%d: CHECK failed: %s == %s\n"
            "    %s = %" PRIu64 " (0x%" PRIx64 ")\n"
            "    %s = %" PRIu64 " (0x%" PRIx64 ")\n",
            file, line, ea, eb, ea, a, a, eb, b, b);
}

static inline void check_eq_ptr(const void *a, const void *b, const char *file,
                                int line, const char *ea, const char *eb)
{
    if (a == b) {
        check_n_passed++;
        return;
    }
    check_n_failed++;
    fprintf(stderr, "%s:%d: CHECK failed: %s == %s\n    %s = %p\n    %s = %p\n",
            file, line, ea, eb, ea, a, eb, b);
}

static inline int check_done(void)
{
    printf("%lu checks passed, %lu failed\n", check_n_passed, check_n_failed);
    fflush(stdout);
    return check_n_failed == 0 ? 0 : 1;
}

/* CHECK is an expression worth 1 if cond held, so a test can stop early:
 * if (!CHECK(p != NULL)) return check_done(); */
#define CHECK(cond) check_report(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ_U(a, b) \
    check_eq_u((uint64_t)(a), (uint64_t)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_EQ_PTR(a, b) \
    check_eq_ptr((const void *)(a), (const void *)(b), __FILE__, __LINE__, \
                 #a, #b)

#endif /* MA_CHECK_H */
