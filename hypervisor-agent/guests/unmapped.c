/* unmapped: write past guest memory. "16g" writes to 2^34 (no PDPT entry),
 * the default writes 2 MiB past mem_size (no PD entry); both must trap (255). */
#include "rt.h"

DECLARE_MANIFEST(0);

int guest_main(const char *cmdline)
{
    uint64_t addr = rt_arg_has(cmdline, "16g") ? (1ull << 34)
                                               : rt_boot_info->mem_size + 0x200000;
    rt_printf("writing to 0x%lx\n", addr);
    *(volatile uint64_t *)(uintptr_t)addr = 1;
    rt_puts("FAILURE: write beyond memory succeeded\n");
    return 1;
}
