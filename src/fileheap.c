/* fileheap.c - heaps in files and in anonymous shared memory (ma_heap_open):
 * the files around them. The heap inside is fixed.c's; this file opens,
 * locks, checks, creates, maps, syncs and closes its file, and writes the
 * one-line message that names a file it refuses.
 *
 * Opening:
 *  1. the file is opened read-write (MA_CREATE: created if missing,
 *     MA_EXCL: it must not exist);
 *  2. an exclusive lock is tried without waiting. Whoever gets it is alone
 *     with the file: it may format an empty file, and it checks every block
 *     of an existing heap and takes back what crashed processes left
 *     (ma_fixed_recover). Whoever does not waits for a shared lock (so for
 *     the one that is alone to finish) and checks the header and sizes;
 *  3. the heap's whole capacity is mapped MAP_SHARED and attached
 *     (fixed.c); the exclusive lock becomes shared, in one step.
 * The shared lock is held until the file is closed: it is how a later
 * opener learns it is not alone. It is the kernel's (an open-file-
 * description lock), so a process that dies gives it back with its files.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include "internal.h"

#define INITIAL_BYTES ((uint64_t)1 << 20)  /* a new file's first length, past the state */
#define NAME_MAX_SHOWN 300u                /* longer paths are cut in messages */
#define EMPTY_RETRIES 100u                 /* an empty file while another opener is at work */

/* "mapalloc: heap file PATH: PROBLEM[: DETAIL]" on one line, no allocation. */
static void say(const char *path, const char *problem, const char *detail) {
    ma_buf_t b;
    ma_buf_begin(&b, "");
    if (path) {
        ma_buf_str(&b, "heap file ");
        size_t n = strlen(path);
        if (n > NAME_MAX_SHOWN) {
            ma_buf_str(&b, "...");
            path += n - NAME_MAX_SHOWN;
        }
        ma_buf_str(&b, path);
    } else {
        ma_buf_str(&b, "anonymous heap");
    }
    ma_buf_str(&b, ": ");
    ma_buf_str(&b, problem);
    if (detail) {
        ma_buf_str(&b, ": ");
        ma_buf_str(&b, detail);
    }
    ma_buf_end(&b);
}

/* strerror may allocate (translations): the few that matter, by hand. */
static const char *errno_text(int e) {
    switch (e) {
    case EACCES: return "permission denied (a heap file must be readable and writable)";
    case EROFS: return "read-only file system (a heap file must be writable)";
    case EPERM: return "operation not permitted";
    case EISDIR: return "is a directory";
    case ENOENT: return "no such file or directory";
    case EEXIST: return "exists already";
    case ENOSPC: return "no space left on device";
    case EDQUOT: return "disk quota exceeded";
    case EFBIG: return "file too large";
    case ENOMEM: return "out of memory (or address space)";
    case EMFILE:
    case ENFILE: return "too many open files";
    case EINVAL: return "not a regular file";
    case ETXTBSY: return "text file busy";
    default: return "system error";
    }
}

/* NULL with errno = err, after the message (none when quiet). */
static ma_heap_t *refuse(const char *path, int err, const char *problem, const char *detail, bool quiet) {
    if (!quiet) say(path, problem, detail);
    errno = err;
    return NULL;
}

static bool capacity_ok(uint64_t capacity) {
    return capacity >= MA_HEAP_OPEN_MIN && capacity <= ma_fixed_capacity_max();
}

/* A new heap in the empty file fd: mapped first (nothing changes if that
 * fails), then given its first length, then formatted. */
static ma_heap_t *create(const char *path, int fd, size_t size) {
    uint64_t capacity = ((uint64_t)size + MA_OS_PAGE - 1) & ~(uint64_t)(MA_OS_PAGE - 1);
    if (size == 0 || !capacity_ok(capacity)) return refuse(path, EINVAL, "", NULL, true);
    uint64_t committed = (ma_fixed_arena_offset() + INITIAL_BYTES + INITIAL_BYTES - 1) & ~(INITIAL_BYTES - 1);
    if (committed > capacity) committed = capacity;
    void *map = ma_os_map_shared(fd, (size_t)capacity);
    if (!map) return refuse(path, errno, "cannot map it", errno_text(errno), path == NULL);
    if (ma_os_file_grow(fd, 0, committed) != 0) {
        int e = errno;
        ma_os_unmap_shared(map, (size_t)capacity);
        return refuse(path, e, "cannot give it its first length", errno_text(e), path == NULL);
    }
    ma_fixed_format(map, capacity, committed);
    ma_heap_t *h = ma_fixed_attach(map, (size_t)capacity, fd);
    if (!h) ma_os_unmap_shared(map, (size_t)capacity);
    return h;
}

/* An existing heap: its header, then (mapped) its sizes; alone, every
 * block too. */
static ma_heap_t *open_existing(const char *path, int fd, uint64_t len, bool alone) {
    uint64_t head[16] = {0};
    _Static_assert(sizeof head >= 64, "room for the header");
    size_t want = ma_fixed_head_size();
    if (ma_os_file_read(fd, head, want <= sizeof head ? want : sizeof head, 0) < 0)
        return refuse(path, errno, "cannot read it", errno_text(errno), false);
    int err;
    uint64_t capacity;
    const char *problem = ma_fixed_check_head(head, len, &err, &capacity);
    if (problem) return refuse(path, err, problem, NULL, false);
    void *map = ma_os_map_shared(fd, (size_t)capacity);
    if (!map) return refuse(path, errno, "cannot map it", errno_text(errno), false);
    problem = ma_fixed_check_state(map, fd, &err);
    uint64_t bad = problem || !alone ? 0 : ma_fixed_recover(map);
    if (problem || bad) {
        ma_os_unmap_shared(map, (size_t)capacity);
        if (problem) return refuse(path, err, problem, NULL, false);
        ma_buf_t b = {.len = 0};
        ma_buf_str(&b, "corrupted block header at offset ");
        ma_buf_u64(&b, bad);
        b.data[b.len < sizeof b.data ? b.len : sizeof b.data - 1] = '\0';
        return refuse(path, EINVAL, b.data, NULL, false);
    }
    ma_heap_t *h = ma_fixed_attach(map, (size_t)capacity, fd);
    if (!h) ma_os_unmap_shared(map, (size_t)capacity);
    return h;
}

/* Locked (alone, or shared), sized, and then created or opened. */
static ma_heap_t *open_locked(const char *path, int fd, size_t size, bool may_create) {
    for (unsigned tries = 0;; tries++) {
        bool alone = ma_os_file_lock(fd, MA_OS_LOCK_ALONE) == 0;
        if (!alone && ma_os_file_lock(fd, MA_OS_LOCK_SHARED) != 0)
            return refuse(path, errno, "cannot lock it", errno_text(errno), false);
        int64_t len = ma_os_file_size(fd);
        if (len < 0) return refuse(path, errno, "cannot use it", errno_text(errno), false);
        ma_heap_t *h;
        if (len > 0) {
            h = open_existing(path, fd, (uint64_t)len, alone);
        } else if (alone && may_create) {
            h = create(path, fd, size);
        } else if (alone || tries >= EMPTY_RETRIES) {
            return refuse(path, EINVAL, "empty file: not a mapalloc heap", NULL, false);
        } else {   /* another opener is about to format it, or died doing so */
            ma_os_file_lock(fd, MA_OS_LOCK_NONE);
            sched_yield();
            continue;
        }
        if (h && alone) ma_os_file_lock(fd, MA_OS_LOCK_SHARED);
        return h;
    }
}

/* Shared memory that cannot be had is ENOMEM, as for any heap. */
static ma_heap_t *open_anonymous(size_t size) {
    int fd = ma_os_memfd();
    ma_heap_t *h = fd < 0 ? NULL : create(NULL, fd, size);
    if (h) return h;
    int e = errno == EINVAL ? EINVAL : ENOMEM;
    if (fd >= 0) ma_os_file_close(fd);
    errno = e;
    return NULL;
}

ma_heap_t *ma_fileheap_open(const char *path, size_t size, int flags) {
    bool create_ = (flags & MA_CREATE) != 0, excl = (flags & MA_EXCL) != 0;
    if ((flags & ~(MA_CREATE | MA_EXCL)) || (excl && !create_)) return refuse(path, EINVAL, "", NULL, true);
    if (!path) return open_anonymous(size);
    int fd = ma_os_file_open(path, create_, excl);
    if (fd < 0) {
        int e = errno;   /* the two answers the flags ask for are not problems */
        return refuse(path, e, "cannot open it", errno_text(e), (e == ENOENT && !create_) || (e == EEXIST && excl));
    }
    ma_heap_t *h = open_locked(path, fd, size, create_);
    if (!h) ma_os_file_close(fd);
    return h;
}

/* Synced, then off the registry, unmapped and closed (which drops the
 * shared lock). Returns the sync's result: the heap is closed either way. */
int ma_fileheap_close(ma_heap_t *h) {
    void *origin;
    size_t map_size;
    int fd;
    ma_fixed_file_of(h, &origin, &map_size, &fd);
    int rc = ma_fixed_sync(h), e = errno;
    ma_fixed_destroy(h);
    ma_os_unmap_shared(origin, map_size);
    ma_os_file_close(fd);
    errno = e;
    return rc;
}
