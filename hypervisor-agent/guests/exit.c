/* exit: HALT with the status given as the first command-line token, to prove
 * the tender passes the guest's status through as its own exit code. */
#include "rt.h"

DECLARE_MANIFEST(0);

int guest_main(const char *cmdline)
{
    char tok[24];
    size_t n = 0;
    while (cmdline[n] && cmdline[n] != ' ' && n < sizeof tok - 1) {
        tok[n] = cmdline[n];
        n++;
    }
    tok[n] = 0;
    bool ok;
    uint64_t status = rt_parse_u64(tok, &ok);
    if (!ok)
        rt_abort("usage: exit.hvt STATUS");
    rt_printf("exiting with status %lu\n", status);
    return (int)status;
}
