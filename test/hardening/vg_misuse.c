/* vg_misuse.c - a leak and a read after free, for memcheck
 * (valgrind_check.sh), and reallocs of uninitialised blocks that must
 * raise nothing. Linked with libmapalloc.so, run under
 * valgrind --soname-synonyms=somalloc=NONE so that memcheck leaves
 * mapalloc's malloc in place and learns of its blocks from mapalloc's
 * client requests. Built with -O0 -fno-builtin: the misuses stay. */
#include <stdlib.h>
#include <string.h>

static void *(*volatile malloc_fn)(size_t) = malloc;
static void (*volatile free_fn)(void *) = free;
static void *(*volatile realloc_fn)(void *, size_t) = realloc;

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
    /* correct: growing blocks whose bytes were never written must not
     * make mapalloc's own checks read undefined memory */
    char *r = realloc_fn(malloc_fn(40), 200);
    r = realloc_fn(r, 400);
    r = realloc_fn(r, 100);
    free_fn(r);
    free_fn(keep);
    return c == 3;
}
