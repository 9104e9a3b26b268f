#include <stdio.h>
#include <string.h>
#include <mapalloc.h>

struct word { struct word *next; char *text; };

/* Splits a line into a list of words; every byte of it lives in heap h. */
static struct word *split(ma_heap_t *h, const char *line)
{
    struct word *head = NULL, **tail = &head;
    char *copy = ma_heap_strdup(h, line), *save = NULL;
    if (!copy) return NULL;
    for (char *s = strtok_r(copy, " ", &save); s; s = strtok_r(NULL, " ", &save)) {
        struct word *w = ma_heap_malloc(h, sizeof *w);
        if (!w) break;
        *w = (struct word){NULL, s};
        *tail = w;
        tail = &w->next;
    }
    return head;
}

int main(void)
{
    ma_heap_t *h = ma_heap_new();
    if (!h) return 1;
    for (struct word *w = split(h, "one call frees them all"); w; w = w->next)
        printf("%s\n", w->text);
    ma_heap_destroy(h);   /* every block of h at once: no free() per word */

    static _Alignas(16) char buf[1 << 20];   /* or a file mapped with mmap */
    ma_heap_t *in = ma_heap_new_in(buf, sizeof buf);
    if (!in) return 1;
    char *s = ma_heap_strdup(in, "inside buf");
    printf("%s: %s\n", s, s >= buf && s < buf + sizeof buf ? "yes" : "no");
    ma_heap_destroy(in);  /* buf is the caller's again */
    return 0;
}
