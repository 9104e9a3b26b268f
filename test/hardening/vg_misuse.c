/* vg_misuse.c - a leak and a read after free, for memcheck
 * (valgrind_check.sh). Linked with libmapalloc.so, run under
 * valgrind --soname-synonyms=somalloc=NONE so that memcheck leaves
 * mapalloc's malloc in place and learns of its blocks from mapalloc's
 * client requests. Built with -O0 -fno-builtin: the misuses stay. */
#include <stdlib.h>
#include <string.h>

static void *(*volatile malloc_fn)(size_t) = malloc;
static void (*volatile free_fn)(void *) = free;

int main(void)
{
    char *keep = malloc_fn(100);
    char *leak = malloc_fn(100); /* definitely lost */
    memset(leak, 1, 100);
    leak = NULL;
    char *p = malloc_fn(64);
    memset(p, 2, 64);
    free_fn(p);
    volatile char c = p[32]; /* read after free */
    free_fn(keep);
    return c == 3;
}
