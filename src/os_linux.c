/* os_linux.c - the OS contract on Linux: the only file that calls mmap,
 * munmap, madvise, mremap, mprotect, mincore, getenv and getrandom, that
 * talks to valgrind, and that opens, reads and writes files (the heap
 * profile, /proc/self/maps).
 *
 * ENOMEM from the kernel is an ordinary failure (NULL back to the caller);
 * any other error on unmap or purge means our bookkeeping is wrong, which is
 * fatal. Every figure the statistics show about OS memory is counted here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#if MA_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

ma_os_stats_t ma_os_stats;
static int purge_advice = MADV_DONTNEED;

static void count(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void mapped_add(size_t size) {
    uint64_t now = atomic_fetch_add_explicit(&ma_os_stats.mapped, size, memory_order_relaxed) + size;
    uint64_t peak = atomic_load_explicit(&ma_os_stats.mapped_peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&ma_os_stats.mapped_peak, &peak, now,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
    count(&ma_os_stats.committed, size);
}

static void *raw_map(size_t size, int prot, int extra) {
    count(&ma_os_stats.mmap_calls, 1);
    void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void raw_unmap(void *p, size_t size) {
    count(&ma_os_stats.munmap_calls, 1);
    if (munmap(p, size) != 0) ma_diag_fatal("munmap failed (corrupted allocator state?)");
}

void *ma_os_map(size_t size) {
    void *p = raw_map(size, PROT_READ | PROT_WRITE, 0);
    if (p) mapped_add(size);
    return p;
}

/* Over-map by the alignment and cut off the ends: one mmap, at most two
 * munmaps. The kernel hands out addresses top-down, so trying the exact size
 * first rarely lands aligned; we do not bother. */
static void *map_aligned(size_t size, size_t align, int prot) {
    if (size + align < size) return NULL;
    uint8_t *raw = raw_map(size + align, prot, 0);
    if (!raw) return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = align - head;
    if (head) raw_unmap(raw, head);
    if (tail) raw_unmap((uint8_t *)start + size, tail);
    return (void *)start;
}

void *ma_os_map_aligned(size_t size, size_t align) {
    void *p = map_aligned(size, align, PROT_READ | PROT_WRITE);
    if (p) mapped_add(size);
    return p;
}

void ma_os_unmap(void *p, size_t size) {
    raw_unmap(p, size);
    atomic_fetch_sub_explicit(&ma_os_stats.mapped, size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ma_os_stats.committed, size, memory_order_relaxed);
    count(&ma_os_stats.released, size);
}

/* The caller tracks which ranges are purged; committed counts resident-able
 * bytes, so the segment layer adds them back when it reuses a purged span. */
void ma_os_purge(void *p, size_t size) {
    count(&ma_os_stats.madvise_calls, 1);
    int saved = errno;
    if (madvise(p, size, purge_advice) != 0) {
        if (purge_advice == MADV_FREE && errno == EINVAL) {
            purge_advice = MADV_DONTNEED;  /* kernel before 4.5 */
            (void)madvise(p, size, purge_advice);
        }
    }
    errno = saved;
    atomic_fetch_sub_explicit(&ma_os_stats.committed, size, memory_order_relaxed);
    count(&ma_os_stats.released, size);
}

void ma_os_purge_mode(bool use_free) { purge_advice = use_free ? MADV_FREE : MADV_DONTNEED; }

/* Guard pages (MAPALLOC_SECURE). Fails only with ENOMEM, when the process
 * has too many mappings (vm.max_map_count): the caller goes on unguarded. */
bool ma_os_protect(void *p, size_t size, bool access) {
    int saved = errno;
    bool ok = mprotect(p, size, access ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
    errno = saved;
    return ok;
}

/* ---- valgrind's memcheck: which of our bytes the program may touch ----
 * Client requests, compiled in only when CMake found <valgrind/memcheck.h>;
 * each is a few instructions that do nothing outside valgrind, and check.c
 * and page.c call them only when ma_valgrind is set. */
/* Memcheck only (valgrind's default tool; its preload is in LD_PRELOAD):
 * under callgrind or cachegrind the allocator must run as it always does. */
bool ma_os_under_memcheck(void) {
#if MA_HAVE_VALGRIND
    const char *preload = getenv("LD_PRELOAD");
    return RUNNING_ON_VALGRIND != 0 && preload && strstr(preload, "/vgpreload_memcheck-");
#else
    return false;
#endif
}

void ma_os_vg_malloclike(void *p, size_t size, bool zeroed) {
#if MA_HAVE_VALGRIND
    VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, zeroed);
#else
    (void)p, (void)size, (void)zeroed;
#endif
}

void ma_os_vg_freelike(void *p) {
#if MA_HAVE_VALGRIND
    VALGRIND_FREELIKE_BLOCK(p, 0);
#else
    (void)p;
#endif
}

void ma_os_vg_mark(void *p, size_t size, ma_vg_state_t state) {
#if MA_HAVE_VALGRIND
    if (state == MA_VG_NOACCESS) (void)VALGRIND_MAKE_MEM_NOACCESS(p, size);
    else if (state == MA_VG_UNDEFINED) (void)VALGRIND_MAKE_MEM_UNDEFINED(p, size);
    else (void)VALGRIND_MAKE_MEM_DEFINED(p, size);
#else
    (void)p, (void)size, (void)state;
#endif
}

/* Grow a mapping, keeping its alignment: in place when the address space
 * after it is free, else the pages move (no copy) into an aligned window
 * reserved beforehand. Returns NULL, with the old mapping intact, on failure. */
void *ma_os_remap_aligned(void *p, size_t old_size, size_t new_size, size_t align) {
    count(&ma_os_stats.mremap_calls, 1);
    int saved = errno;  /* failing in place is expected, not an error */
    void *q = mremap(p, old_size, new_size, 0);
    errno = saved;
    if (q == MAP_FAILED) {
        void *window = map_aligned(new_size, align, PROT_NONE);
        if (!window) return NULL;
        count(&ma_os_stats.mremap_calls, 1);
        q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, window);
        if (q == MAP_FAILED) {
            raw_unmap(window, new_size);
            return NULL;
        }
    }
    mapped_add(new_size - old_size);
    return q;
}

bool ma_os_shrink(void *p, size_t old_size, size_t new_size) {
    if (new_size >= old_size) return false;
    ma_os_unmap((uint8_t *)p + new_size, old_size - new_size);
    return true;
}

uint64_t ma_os_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uintptr_t ma_os_random(void) {
    uintptr_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = (uintptr_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uintptr_t)&v ^ (uintptr_t)getpid();
    }
    return v;
}

const char *ma_os_getenv(const char *name) { return getenv(name); }

/* A copy of stderr taken at start-up, for the report at exit: programs
 * such as coreutils close fd 2 before the library's destructor runs. */
static int saved_err_fd = -1;

void ma_os_keep_stderr(void) {
    if (saved_err_fd < 0) saved_err_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
}

void ma_os_write_err(const char *s, size_t n) {
    int fd = STDERR_FILENO;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno == EBADF && fd != saved_err_fd && saved_err_fd >= 0) {
                fd = saved_err_fd;
                continue;
            }
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* ---- Files and process facts (the heap profiler) ---------------------------- */

int ma_os_open_write(const char *path) {
    int fd;
    do fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    return fd;
}

int ma_os_open_read(const char *path) {
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    return fd;
}

long ma_os_read(int fd, void *buf, size_t n) {
    ssize_t r;
    do r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    return (long)r;
}

int ma_os_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* close(2) is not retried on EINTR: on Linux the descriptor is gone. */
int ma_os_close(int fd) { return close(fd) == 0 || errno == EINTR ? 0 : -1; }

long ma_os_getpid(void) { return (long)getpid(); }

size_t ma_os_exe_path(char *buf, size_t n) {
    int saved = errno;
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    errno = saved;
    if (len <= 0) return 0;
    buf[len] = '\0';
    return (size_t)len;
}

/* glibc's getcwd allocates only when given no buffer. */
bool ma_os_getcwd(char *buf, size_t n) { return getcwd(buf, n) != NULL; }

uint64_t ma_os_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uintptr_t parse_hex(const char **s, const char *end) {
    uintptr_t v = 0;
    for (; *s < end; (*s)++) {
        char c = **s;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
        if (d == 16) break;
        v = v << 4 | d;
    }
    return v;
}

#define STACK_PROBE_MAX ((size_t)1 << 20)

/* A range of memory, from sp up, that may be read: for a thread glibc
 * made, up to its descriptor (pthread_self(), at the top of its stack
 * block, above the stack), when mincore says every page of the way is
 * mapped (one system call: the used part of a stack is short); else the
 * mapping that holds sp, from /proc/self/maps (the main thread), read in
 * pieces into a buffer on the stack (pthread_getattr_np would allocate).
 * A line of it is "start-end perms ...": only its first two fields are
 * read. */
bool ma_os_stack_bounds(uintptr_t sp, uintptr_t *lo, uintptr_t *hi) {
    int saved = errno;
    uintptr_t top = (uintptr_t)pthread_self(), base = sp & ~(uintptr_t)(MA_OS_PAGE - 1);
    if (top > sp && top - base <= STACK_PROBE_MAX) {
        unsigned char pages[STACK_PROBE_MAX / MA_OS_PAGE];
        if (mincore((void *)base, top - base, pages) == 0) {
            *lo = sp;
            *hi = top;
            errno = saved;
            return true;
        }
    }
    int fd = ma_os_open_read("/proc/self/maps");
    bool found = false;
    if (fd >= 0) {
        char buf[2048];
        size_t have = 0;
        bool tail = false;   /* the buffer starts in the middle of a line */
        for (;;) {
            long n = ma_os_read(fd, buf + have, sizeof buf - have);
            if (n <= 0) break;
            have += (size_t)n;
            char *line = buf, *end = buf + have, *nl;
            while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
                const char *s = line;
                uintptr_t start = parse_hex(&s, nl);
                uintptr_t stop = s < nl && *s == '-' ? (s++, parse_hex(&s, nl)) : 0;
                if (!tail && sp >= start && sp < stop) {
                    *lo = start;
                    *hi = stop;
                    found = true;
                    break;
                }
                tail = false;
                line = nl + 1;
            }
            if (found) break;
            have = (size_t)(end - line);
            if (have == sizeof buf) {   /* a line longer than the buffer (a long path, not a stack): skipped */
                have = 0;
                tail = true;
            }
            memmove(buf, line, have);
        }
        close(fd);
    }
    errno = saved;
    return found;
}
