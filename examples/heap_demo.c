/* heap_demo.c - a toy server, to show what the heap profiler answers.
 *
 *   cc -O2 -g examples/heap_demo.c -o heap_demo
 *   build/mapalloc --profile heap.pb.gz ./heap_demo
 *   go tool pprof -top heap.pb.gz                          # who holds memory
 *   go tool pprof -top -sample_index=alloc_space heap.pb.gz  # who allocates
 *
 * Each request gets a buffer and a few tokens, all freed when it is done;
 * half of the requests add an entry to a cache that is never trimmed
 * (200000 entries of 256 + 11 bytes: 51 MiB); the log forgets one line in
 * fifty (8000 lines of 200 bytes: 1.5 MiB). At exit the cache and the forgotten lines hold
 * the memory, while the requests did most of the allocating.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    char *name;
    double values[30];
} entry_t;

static entry_t *cache[4096];
static unsigned long long seed = 42;
static size_t cache_bytes, lost_bytes, request_bytes;   /* the truth, to compare */

static unsigned long long next_random(void) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return seed >> 33;
}

/* Keeps every entry: the cache grows without bound. */
__attribute__((noinline)) static void cache_insert(unsigned long key) {
    entry_t *e = malloc(sizeof *e);
    if (!e) exit(1);
    char name[32];
    snprintf(name, sizeof name, "key-%lu", key);
    e->name = strdup(name);
    if (!e->name) exit(1);
    cache_bytes += sizeof *e + strlen(name) + 1;
    e->next = cache[key % 4096];
    cache[key % 4096] = e;
}

/* Forgets to free one line in fifty. */
__attribute__((noinline)) static void log_line(unsigned long id, size_t bytes) {
    char *line = malloc(200);
    if (!line) exit(1);
    snprintf(line, 200, "request %lu: %zu bytes", id, bytes);
    if (id % 50 != 0) free(line);
    else lost_bytes += 200;
}

/* A buffer and its tokens, all freed before returning. */
__attribute__((noinline)) static void handle_request(unsigned long id) {
    size_t size = 4096 + next_random() % 60000;
    char *buf = malloc(size);
    request_bytes += size;
    if (!buf) exit(1);
    memset(buf, 'x', 64);
    char *tokens[16];
    for (int i = 0; i < 16; i++) {
        size_t n = 32 + next_random() % 200;
        tokens[i] = malloc(n);
        if (!tokens[i]) exit(1);
        request_bytes += n;
        tokens[i][0] = buf[i];
    }
    for (int i = 0; i < 16; i++) free(tokens[i]);
    free(buf);
    if (next_random() % 2 == 0) cache_insert(id);
    log_line(id, size);
}

int main(void) {
    for (unsigned long id = 0; id < 400000; id++) handle_request(id);
    printf("400000 requests: %.1f MiB allocated for them; %.1f MiB in the cache, %.1f MiB of lost log lines\n",
           request_bytes / 1048576.0, cache_bytes / 1048576.0, lost_bytes / 1048576.0);
    return 0;
}
