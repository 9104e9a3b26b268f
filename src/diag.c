/* diag.c - fatal errors, warnings and the formatter behind every message.
 *
 * Nothing here allocates: messages are built in a fixed buffer on the stack
 * and written with write(2), because they are printed when the heap may be
 * corrupt or while an allocator lock is held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* A full buffer is written out, and the message goes on: a long one (an
 * option's value) comes in pieces but whole, its newline included. */
static void put(ma_buf_t *b, char c) {
    if (b->len == sizeof b->data) ma_buf_flush(b);
    b->data[b->len++] = c;
}

void ma_buf_str(ma_buf_t *b, const char *s) {
    while (*s) put(b, *s++);
}

void ma_buf_u64(ma_buf_t *b, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0) put(b, tmp[--n]);
}

/* As glibc's printf("%p"): 0x and lowercase hex without padding. */
void ma_buf_hex(ma_buf_t *b, uintptr_t v) {
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    ma_buf_str(b, "0x");
    while (n > 0) put(b, tmp[--n]);
}

void ma_buf_flush(ma_buf_t *b) {
    int saved = errno;
    ma_os_write_err(b->data, b->len);
    b->len = 0;
    errno = saved;
}

/* Every message is one line, "mapalloc: " + what + ...: begin empties b
 * and writes the start, end the newline, and writes the line out. */
void ma_buf_begin(ma_buf_t *b, const char *what) {
    b->len = 0;
    ma_buf_str(b, "mapalloc: ");
    ma_buf_str(b, what);
}

void ma_buf_end(ma_buf_t *b) {
    ma_buf_str(b, "\n");
    ma_buf_flush(b);
}

/* "mapalloc: double free of 0x... (size class 3)" then abort(); a `what`
 * that ends in " at" takes no " of" ("corrupted free list at 0x..."). */
void ma_diag_fatal_ptr(const char *what, const void *p, int sclass) {
    ma_buf_t b;
    size_t n = strlen(what);
    ma_buf_begin(&b, what);
    ma_buf_str(&b, n >= 3 && strcmp(what + n - 3, " at") == 0 ? " " : " of ");
    ma_buf_hex(&b, (uintptr_t)p);
    if (sclass > 0) {
        ma_buf_str(&b, " (size class ");
        ma_buf_u64(&b, (uint64_t)sclass);
        ma_buf_str(&b, ")");
    } else if (sclass < 0) {
        ma_buf_str(&b, " (large block)");
    }
    ma_buf_end(&b);
    abort();
}

/* "mapalloc: <before>0x...<after>" then abort(). */
void ma_diag_fatal_around(const char *before, const void *p, const char *after) {
    ma_buf_t b;
    ma_buf_begin(&b, before);
    ma_buf_hex(&b, (uintptr_t)p);
    ma_buf_str(&b, after);
    ma_buf_end(&b);
    abort();
}

void ma_diag_fatal(const char *msg) {
    ma_buf_t b;
    ma_buf_begin(&b, msg);
    ma_buf_end(&b);
    abort();
}

void ma_diag_assert_fail(const char *cond, const char *file, int line) {
    ma_buf_t b;
    ma_buf_begin(&b, "internal assertion failed: ");
    ma_buf_str(&b, cond);
    ma_buf_str(&b, " at ");
    ma_buf_str(&b, file);
    ma_buf_str(&b, ":");
    ma_buf_u64(&b, (uint64_t)line);
    ma_buf_end(&b);
    abort();
}

void ma_diag_warn(const char *msg, const char *detail) {
    ma_buf_t b;
    ma_buf_begin(&b, "warning: ");
    ma_buf_str(&b, msg);
    if (detail) ma_buf_str(&b, detail);
    ma_buf_end(&b);
}

/* A few errno names for warnings: strerror may allocate (translations). */
const char *ma_diag_errno_name(int err) {
    static const struct {
        int err;
        const char *name;
    } names[] = {{EACCES, "permission denied (EACCES)"}, {ENOENT, "no such file or directory (ENOENT)"},
                 {EROFS, "read-only file system (EROFS)"}, {ENOSPC, "no space left on device (ENOSPC)"},
                 {EISDIR, "is a directory (EISDIR)"}, {ENOTDIR, "not a directory (ENOTDIR)"},
                 {ENAMETOOLONG, "file name too long (ENAMETOOLONG)"}, {ENOMEM, "out of memory (ENOMEM)"},
                 {EDQUOT, "disk quota exceeded (EDQUOT)"}, {EIO, "input/output error (EIO)"},
                 {EPERM, "operation not permitted (EPERM)"}, {EMFILE, "too many open files (EMFILE)"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].err == err) return names[i].name;
    return NULL;
}
