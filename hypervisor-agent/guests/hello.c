/* hello: console output and command-line passing (upstream test_hello). */
#include "rt.h"

DECLARE_MANIFEST(0);

int guest_main(const char *cmdline)
{
    rt_puts("\n**** Solo5 standalone test_hello ****\n\n");
    rt_puts("Hello, World\n");
    rt_printf("Command line is: '%s'\n", cmdline);
    rt_puts("SUCCESS\n");
    return 0;
}
