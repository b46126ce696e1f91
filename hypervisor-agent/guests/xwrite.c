/* xwrite: write into our own .text. The guest page tables allow it, but the
 * tender maps text read-only on the host, so it must fail in the tender
 * ("host/guest translation fault", exit 1), never modify the code. */
#include "rt.h"

DECLARE_MANIFEST(0);

int guest_main(const char *cmdline)
{
    (void)cmdline;
    volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)&guest_main;
    rt_puts("writing to text\n");
    *p = 0xcc;
    rt_puts("FAILURE: write to text succeeded\n");
    return 1;
}
