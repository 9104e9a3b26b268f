/* Built against an installed mapalloc (pkg-config or find_package): calls
 * the ma_ API once and the standard malloc, which mapalloc replaces. */
#include <mapalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = ma_malloc(100);
    if (p == NULL)
        return 1;
    memset(p, 'x', 100);
    if (ma_usable_size(p) < 100)
        return 2;
    ma_free(p);

    char *q = malloc(64);
    if (q == NULL)
        return 3;
    strcpy(q, "consumer");
    free(q);
    printf("consumer ok (mapalloc %d.%d.%d)\n", MAPALLOC_VERSION_MAJOR,
           MAPALLOC_VERSION_MINOR, MAPALLOC_VERSION_PATCH);
    return 0;
}
