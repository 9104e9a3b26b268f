/* glibc-malloc - a preload library that puts glibc's own malloc back.
 *
 * Debian's redis-server is linked against libjemalloc, so running it
 * "without a preload" measures jemalloc, not glibc. Preloading this library
 * routes the standard entry points to glibc's __libc_* functions, which is
 * what the "glibc" column means for every other workload. The jemalloc-only
 * calls redis makes (mallctl, nallocx, ...) still reach jemalloc; they
 * only read statistics and size classes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

EXPORT void *malloc(size_t n) { return __libc_malloc(n); }
EXPORT void free(void *p) { __libc_free(p); }
EXPORT void *calloc(size_t k, size_t n) { return __libc_calloc(k, n); }
EXPORT void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
EXPORT void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
EXPORT void *valloc(size_t n) { return __libc_valloc(n); }
EXPORT void *pvalloc(size_t n) { return __libc_pvalloc(n); }
EXPORT void cfree(void *p) { __libc_free(p); }

EXPORT void *aligned_alloc(size_t a, size_t n)
{
    return __libc_memalign(a, n);
}

EXPORT int posix_memalign(void **out, size_t a, size_t n)
{
    if (a < sizeof(void *) || (a & (a - 1)) != 0) return EINVAL;
    int saved = errno;
    void *p = __libc_memalign(a, n);
    errno = saved;
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

/* glibc's malloc_usable_size, found in libc itself (RTLD_NEXT could find
 * jemalloc's first) */
EXPORT size_t malloc_usable_size(void *p)
{
    static size_t (*real)(void *);
    if (!real) {
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        if (libc) real = (size_t (*)(void *))dlsym(libc, "malloc_usable_size");
        if (!real) return 0;
    }
    return real(p);
}
