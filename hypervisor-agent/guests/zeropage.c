/* zeropage: a write to address 8 must hit the unmapped zero page and end in
 * the guest's #PF handler (ABORT, exit 255), not corrupt tender state. */
#include "rt.h"

DECLARE_MANIFEST(0);

int guest_main(const char *cmdline)
{
    (void)cmdline;
    uintptr_t addr = 8;
    __asm__("" : "+r"(addr)); /* hide the constant from gcc's bounds warning */
    *(volatile uint64_t *)addr = 1;
    rt_puts("FAILURE: write to zero page succeeded\n");
    return 1;
}
