/* abort: solo5_abort() path, HALT 255 (SOLO5_EXIT_ABORT). */
#include "rt.h"

DECLARE_MANIFEST(0);

int guest_main(const char *cmdline)
{
    (void)cmdline;
    rt_abort("solo5_abort() called");
}
