/* os_linux.c - the OS contract on Linux: the only file that calls mmap,
 * munmap, madvise, mremap, mprotect, mincore, getenv (and reads environ),
 * getrandom and futex, that talks to valgrind, and that knows glibc's
 * internals we lean on (its stdio list lock, whether the process is
 * single-threaded); the only one that opens, reads and writes files (the
 * heap profile, the statistics file, /proc/self/maps) and, for heaps in
 * files (fixed.c, fileheap.c), locks, grows, maps MAP_SHARED, syncs and
 * closes them.
 *
 * ENOMEM from the kernel is an ordinary failure (NULL back to the caller);
 * any other error on unmap or purge means our bookkeeping is wrong, which is
 * fatal. Every figure the statistics show about OS memory is counted here.
 *
 * The mapping limit (vm.max_map_count, 65530 by default): at it, the
 * kernel refuses a new mapping (ENOMEM: NULL), and also an munmap that
 * would split one in two, which trimming an over-sized mapping to its
 * alignment or unmapping a segment between two others may need. Such an
 * unmap is not an error: the range is purged (its memory goes back) and
 * kept on a short list of ranges to unmap later, tried again after each
 * unmap that succeeds; a range that finds no room on the list stays
 * mapped, purged, for good (address space, no memory).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/futex.h>
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

static ma_os_reclaim_fn *reclaim_fn;
static __thread bool reclaiming;  /* a mapping inside the hook: no second round */

void ma_os_set_reclaim(ma_os_reclaim_fn *fn) { reclaim_fn = fn; }

static void *raw_map(size_t size, int prot, int extra) {
    count(&ma_os_stats.mmap_calls, 1);
    void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
    if (p == MAP_FAILED && errno == ENOMEM && reclaim_fn && !reclaiming) {
        /* the address space or the commit limit is full: whatever we
         * hold free goes back, then one more try */
        reclaiming = true;
        bool released = reclaim_fn();
        reclaiming = false;
        if (released) {
            count(&ma_os_stats.mmap_calls, 1);
            p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
        }
        errno = ENOMEM;
    }
    return p == MAP_FAILED ? NULL : p;
}

/* false: ENOMEM, the mapping limit (see above); anything else is fatal. */
static bool raw_unmap(void *p, size_t size) {
    count(&ma_os_stats.munmap_calls, 1);
    int saved = errno;
    int rc = munmap(p, size);
    if (rc != 0 && errno != ENOMEM) ma_diag_fatal("munmap failed (corrupted allocator state?)");
    errno = saved;
    return rc == 0;
}

/* ---- Ranges to unmap later (the mapping limit) ---- */
#define LATER_SLOTS 64
static struct {
    _Atomic uintptr_t addr;   /* 0: a free slot; taken by compare-and-swap */
    size_t size;              /* written by whoever took the slot */
    bool counted;             /* still in ma_os_stats.mapped */
} later[LATER_SLOTS];
static _Atomic uint32_t later_count;

static void later_add(void *p, size_t size, bool counted) {
    for (unsigned i = 0; i < LATER_SLOTS; i++) {
        uintptr_t expected = 0;
        if (atomic_load_explicit(&later[i].addr, memory_order_relaxed) != 0 ||
            !atomic_compare_exchange_strong(&later[i].addr, &expected, 1))
            continue;
        later[i].size = size;
        later[i].counted = counted;
        atomic_store(&later[i].addr, (uintptr_t)p);
        atomic_fetch_add(&later_count, 1);
        return;
    }
    if (counted) atomic_fetch_sub_explicit(&ma_os_stats.mapped, size, memory_order_relaxed);
}

/* An unmap just succeeded: the process has room for the splits the
 * ranges on the list need. Each is taken off the list to be tried. */
static void later_retry(void) {
    if (MA_LIKELY(atomic_load_explicit(&later_count, memory_order_relaxed) == 0)) return;
    for (unsigned i = 0; i < LATER_SLOTS; i++) {
        uintptr_t a = atomic_load_explicit(&later[i].addr, memory_order_relaxed);
        if (a <= 1 || !atomic_compare_exchange_strong(&later[i].addr, &a, 1)) continue;
        size_t size = later[i].size;
        bool counted = later[i].counted;
        atomic_store(&later[i].addr, 0);
        atomic_fetch_sub(&later_count, 1);
        if (!raw_unmap((void *)a, size)) {
            later_add((void *)a, size, counted);
            return;
        }
        if (counted) atomic_fetch_sub_explicit(&ma_os_stats.mapped, size, memory_order_relaxed);
    }
}

/* Untouched address space we do not want (never resident). */
static void unmap_spare(void *p, size_t size) {
    if (raw_unmap(p, size)) later_retry();
    else later_add(p, size, false);
}

void *ma_os_map(size_t size) {
    void *p = raw_map(size, PROT_READ | PROT_WRITE, 0);
    if (p) mapped_add(size);
    return p;
}

/* A mapping p of size bytes with p + offset aligned to align (offset <
 * align, both multiples of the page). Over-map by the alignment and cut
 * off the ends: one mmap, at most two munmaps (which the mapping limit may
 * refuse: the ends then wait on the list above, and the aligned part is
 * ours all the same). The kernel hands out addresses top-down, so trying
 * the exact size first rarely lands aligned; we do not bother. */
static void *map_aligned(size_t size, size_t align, size_t offset, int prot) {
    if (size + align < size) return NULL;
    uint8_t *raw = raw_map(size + align, prot, 0);
    if (!raw) return NULL;
    uintptr_t start = (((uintptr_t)raw + offset + align - 1) & ~(uintptr_t)(align - 1)) - offset;
    size_t head = start - (uintptr_t)raw;
    size_t tail = align - head;
    if (head) unmap_spare(raw, head);
    if (tail) unmap_spare((uint8_t *)start + size, tail);
    return (void *)start;
}

/* Alignments above this are reserved without access and opened after the
 * trim: the over-map then costs address space only, never commit charge
 * (a 64 GiB alignment on a machine with less memory). */
#define RESERVE_ALIGN ((size_t)64 << 20)

void *ma_os_map_aligned_at(size_t size, size_t align, size_t offset) {
    if (align <= RESERVE_ALIGN) {
        void *p = map_aligned(size, align, offset, PROT_READ | PROT_WRITE);
        if (p) mapped_add(size);
        return p;
    }
    void *p = map_aligned(size, align, offset, PROT_NONE);
    if (!p) return NULL;
    int saved = errno;
    bool open = mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
    errno = saved;
    if (!open) {
        unmap_spare(p, size);
        return NULL;
    }
    mapped_add(size);
    return p;
}

void *ma_os_map_aligned(size_t size, size_t align) { return ma_os_map_aligned_at(size, align, 0); }

/* Never fails: at the mapping limit the range is purged instead and put
 * on the list of ranges to unmap later (it stays in "mapped" until then). */
/* Address space no one may touch: not counted as mapped (no memory, no
 * commit charge). */
void *ma_os_reserve(size_t size) {
    void *p = raw_map(size, PROT_NONE, MAP_NORESERVE);
    return p;
}

void ma_os_unmap(void *p, size_t size) {
    if (raw_unmap(p, size)) {
        atomic_fetch_sub_explicit(&ma_os_stats.mapped, size, memory_order_relaxed);
        later_retry();
    } else {
        int saved = errno;
        (void)madvise(p, size, MADV_DONTNEED);
        errno = saved;
        later_add(p, size, true);
    }
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
        void *window = map_aligned(new_size, align, 0, PROT_NONE);
        if (!window) return NULL;
        count(&ma_os_stats.mremap_calls, 1);
        q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, window);
        if (q == MAP_FAILED) {
            errno = saved;
            unmap_spare(window, new_size);
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
        v = (uintptr_t)ts.tv_nsec * MA_GOLDEN64 ^ (uintptr_t)&v ^ (uintptr_t)getpid();
    }
    return v;
}

const char *ma_os_getenv(const char *name) { return getenv(name); }

/* The i-th "NAME=value" of the environment, or NULL past its end. */
const char *ma_os_env_at(size_t i) {
    extern char **environ;
    char **env = environ;
    if (!env) return NULL;
    for (size_t k = 0; k < i; k++)
        if (!env[k]) return NULL;
    return env[i];
}

/* The program's name as glibc took it from argv[0] at start-up (a pointer
 * into argv: nothing is allocated); "" if unknown. */
const char *ma_os_program_name(void) {
    return program_invocation_short_name ? program_invocation_short_name : "";
}

/* For the statistics report: a file opened for appending, or -1 (errno). */
int ma_os_file_append(const char *path) {
    int fd;
    do {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

/* All of s to fd, or as much as the kernel takes (errors are dropped). */
void ma_os_write_fd(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

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

/* ---- Files and shared memory (heaps in files: fileheap.c, fixed.c) ------
 * Each returns 0 (or a descriptor, a mapping) on success and leaves the
 * kernel's errno on failure; none of them allocates. */

int ma_os_file_open(const char *path, bool create, bool excl) {
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0) | (create && excl ? O_EXCL : 0);
    int fd;
    do {
        fd = open(path, flags, 0666);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

/* Close-on-exec: a child made by fork keeps it (with the mapping), a
 * program started by exec could not use it. */
int ma_os_memfd(void) { return memfd_create("mapalloc-heap", MFD_CLOEXEC); }

void ma_os_file_close(int fd) {
    int saved = errno;
    (void)close(fd);
    errno = saved;
}

/* Open-file-description locks on the whole file: they belong to this open
 * of the file (inherited across fork, released by the kernel when the last
 * descriptor of it closes, whatever way the process ends), and changing
 * one kind for the other is a single atomic step. MA_OS_LOCK_ALONE does
 * not wait; MA_OS_LOCK_SHARED waits for an exclusive holder to finish. */
int ma_os_file_lock(int fd, ma_os_lock_t how) {
    struct flock fl = {.l_whence = SEEK_SET, .l_start = 0, .l_len = 0, .l_pid = 0};
    fl.l_type = how == MA_OS_LOCK_ALONE ? F_WRLCK : how == MA_OS_LOCK_NONE ? F_UNLCK : F_RDLCK;
    int cmd = how == MA_OS_LOCK_SHARED ? F_OFD_SETLKW : F_OFD_SETLK;
    int rc;
    do {
        rc = fcntl(fd, cmd, &fl);
    } while (rc != 0 && errno == EINTR);
    return rc;
}

int64_t ma_os_file_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;   /* a device, a pipe: not a file to keep a heap in */
        return -1;
    }
    return (int64_t)st.st_size;
}

ssize_t ma_os_file_read(int fd, void *buf, size_t n, uint64_t off) {
    ssize_t r;
    do {
        r = pread(fd, buf, n, (off_t)off);
    } while (r < 0 && errno == EINTR);
    return r;
}

/* The file's blocks are allocated, not only its length set, so that a full
 * disk is an error here rather than a SIGBUS when a page is first written.
 * File systems without fallocate get a plain (sparse) length. */
int ma_os_file_grow(int fd, uint64_t from, uint64_t to) {
    if (to <= from) return 0;
    int rc;
    do {
        rc = fallocate(fd, 0, (off_t)from, (off_t)(to - from));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) rc = ftruncate(fd, (off_t)to);
    return rc;
}

/* The whole size is mapped at once, beyond the file's end: pages past it
 * may not be touched until the file grows (SIGBUS), which the caller
 * ensures. Not counted in os_mapped: these are the file's pages. */
void *ma_os_map_shared(int fd, size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

void ma_os_unmap_shared(void *p, size_t size) {
    if (munmap(p, size) != 0) ma_diag_fatal("munmap of a heap file failed");
}

/* Durable: the pages (msync) and the file's length and blocks (fdatasync,
 * for a file that grew since). fd < 0: the pages only. */
int ma_os_sync(void *p, size_t size, int fd) {
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(MA_OS_PAGE - 1);
    size += (uintptr_t)p - a;
    if (msync((void *)a, size, MS_SYNC) != 0) return -1;
    if (fd >= 0 && fdatasync(fd) != 0) return -1;
    return 0;
}

/* Whether any of [p, p + size) is mapped MAP_SHARED, from /proc/self/maps
 * (read in pieces into the stack, parsed as it comes: no allocation).
 * Lines are "start-end perms ...", perms[3] is 's' or 'p'. Without /proc,
 * the answer is "no". */
bool ma_os_is_shared(const void *p, size_t size) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    uintptr_t lo = (uintptr_t)p, hi = lo + size, start = 0, end = 0;
    int field = 0, perm = 0;   /* 0 start, 1 end, 2 perms, 3 rest of the line */
    bool shared = false;
    char buf[4096];
    ssize_t n;
    while (!shared && (n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n && !shared; i++) {
            char c = buf[i];
            if (c == '\n') {
                field = perm = 0;
                start = end = 0;
            } else if (field < 2) {
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d >= 0 && field == 0) start = start * 16 + (uintptr_t)d;
                else if (d >= 0) end = end * 16 + (uintptr_t)d;
                else field++;   /* '-' then ' ' */
            } else if (field == 2) {
                if (c == ' ') field++;
                else if (perm++ == 3) shared = c == 's' && start < hi && lo < end;
            }
        }
    }
    ma_os_file_close(fd);
    return shared;
}
/* ---- Locks and fork (lock.c) ------------------------------------------- */

/* Sleeps while *word == expected (or until a wake); a raw system call, so
 * not a cancellation point, and safe in a signal handler. */
void ma_os_futex_wait(_Atomic uint32_t *word, uint32_t expected) {
    int saved = errno;
    (void)syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
    errno = saved;
}

void ma_os_futex_wake(_Atomic uint32_t *word, int count) {
    int saved = errno;
    (void)syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
    errno = saved;
}

/* A pause between two tries at something another thread holds: a yield
 * at first, then 50 us naps (raw nanosleep: not a cancellation point). */
void ma_os_pause(unsigned round) {
    int saved = errno;
    if (round < 16) {
        sched_yield();
    } else {
        struct timespec ts = {0, 50 * 1000};
        (void)syscall(SYS_nanosleep, &ts, NULL);
    }
    errno = saved;
}

/* glibc's stdio list lock (recursive; glibc 2.36's fork takes it after the
 * atfork prepare handlers and before its own malloc's locks, resets it in
 * the child). Weak: a static program without stdio has none. */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));
/* glibc 2.32 and later: true until the process makes its first thread. */
extern char __libc_single_threaded __attribute__((weak));

void ma_os_stdio_lock(void) {
    if (_IO_list_lock && _IO_list_unlock && _IO_list_resetlock) _IO_list_lock();
}

void ma_os_stdio_unlock(void) {
    if (_IO_list_lock && _IO_list_unlock && _IO_list_resetlock) _IO_list_unlock();
}

void ma_os_stdio_reset(void) {
    if (_IO_list_lock && _IO_list_unlock && _IO_list_resetlock) _IO_list_resetlock();
}

bool ma_os_single_threaded(void) { return &__libc_single_threaded != NULL && __libc_single_threaded; }
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
