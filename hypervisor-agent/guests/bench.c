/*
 * bench: measurements for benches/tender.rs.
 *   first        print the WALLTIME start.S took as the first guest act
 *   calls=N      N WALLTIME hypercalls timed with the TSC
 *   poll0=N      N POLL(0) hypercalls timed with the TSC
 *   idle         print IDLE and sleep in POLL until killed (RSS sampling)
 */
#include "rt.h"

DECLARE_MANIFEST(0);

static void timed(const char *what, uint64_t n, int nr)
{
    uint64_t hz = rt_boot_info->cpu_cycle_freq;
    uint64_t t0 = rt_rdtsc();
    for (uint64_t i = 0; i < n; i++) {
        if (nr == HVT_HYPERCALL_WALLTIME)
            (void)rt_walltime();
        else
            (void)rt_poll(0, NULL);
    }
    uint64_t cycles = rt_rdtsc() - t0;
    /* Split so the product fits 64 bits (no libgcc 128-bit division). */
    uint64_t ns = cycles / hz * 1000000000ull + cycles % hz * 1000000000ull / hz;
    rt_printf("%s calls=%lu total_ns=%lu ns_per_call=%lu\n", what, n, ns, ns / n);
}

int guest_main(const char *cmdline)
{
    char v[24];
    bool ok = true;
    if (rt_arg_has(cmdline, "first"))
        rt_printf("first_walltime_ns=%lu\n", rt_first_walltime.nsecs);
    if (rt_arg_value(cmdline, "calls", v, sizeof v)) {
        uint64_t n = rt_parse_u64(v, &ok);
        if (ok && n)
            timed("walltime", n, HVT_HYPERCALL_WALLTIME);
    }
    if (rt_arg_value(cmdline, "poll0", v, sizeof v)) {
        uint64_t n = rt_parse_u64(v, &ok);
        if (ok && n)
            timed("poll0", n, HVT_HYPERCALL_POLL);
    }
    if (!ok)
        rt_abort("bad count");
    if (rt_arg_has(cmdline, "idle")) {
        rt_puts("IDLE\n");
        for (;;)
            rt_poll(10ull * 1000000000ull, NULL);
    }
    return 0;
}
