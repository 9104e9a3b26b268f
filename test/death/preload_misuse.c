/* preload_misuse.c - a plain program that misuses malloc, for the death
 * tests of the drop-in library (run by `death exec KIND ...` with
 * LD_PRELOAD=libmapalloc.so).
 *
 *   preload_misuse double_free | invalid_free
 *
 * It prints the address the message must name, then commits the misuse.
 * Built with -fno-builtin, and the calls go through volatile pointers, so
 * the compiler keeps them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*volatile malloc_fn)(size_t) = malloc;
static void (*volatile free_fn)(void *) = free;

static void expect(const void *p)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%p\n", p);
    if (write(1, buf, (size_t)n) != n)
        _exit(3);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "double_free") == 0) {
        void *p = malloc_fn(32);
        expect(p);
        free_fn(p);
        free_fn(p);
    } else if (argc == 2 && strcmp(argv[1], "invalid_free") == 0) {
        _Alignas(16) char x[64];
        memset(x, 0, sizeof x);
        expect(x);
        free_fn(x);
    } else {
        fprintf(stderr, "usage: %s double_free | invalid_free\n", argv[0]);
        return 2;
    }
    return 0; /* the allocator let it pass */
}
