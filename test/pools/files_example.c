#include <stdio.h>
#include <mapalloc.h>

/* A list kept in a file: its nodes find each other by offsets. */
struct node { uint64_t next; char word[16]; };

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "words.heap";
    ma_heap_t *h = ma_heap_open(path, 1 << 20, MA_CREATE);
    if (!h) return 1;            /* errno, and a line on stderr, say why */
    uint64_t head = ma_heap_root_get(h);
    if (head == 0) {             /* the first run: build the list */
        const char *words[] = {"one", "two", "three"};
        for (int i = 0; i < 3; i++) {
            struct node *n = ma_heap_malloc(h, sizeof *n);
            if (!n) return 1;
            n->next = head;
            snprintf(n->word, sizeof n->word, "%s", words[i]);
            head = ma_heap_offset(h, n);
        }
        ma_heap_root_set(h, head);
        printf("stored 3 words in %s\n", path);
    } else {                     /* a later run, mapped elsewhere: read it back */
        for (struct node *n = ma_heap_pointer(h, head); n; n = ma_heap_pointer(h, n->next))
            printf("%s\n", n->word);
    }
    return ma_heap_close(h) == 0 ? 0 : 1;   /* synced: the list is on disk */
}
