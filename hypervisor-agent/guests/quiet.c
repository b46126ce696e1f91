/* quiet: exits 0 at once without any output; the start-up benchmark runs it. */
#include "rt.h"

DECLARE_MANIFEST(0);
int rt_banner = 0;

int guest_main(const char *cmdline)
{
    (void)cmdline;
    return 0;
}
