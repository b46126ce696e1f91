/*
 * time: WALLTIME is sane (after 2020), the TSC-based monotonic clock advances,
 * POLL honours timeouts of 0, 1 ms and 200 ms, and TSC and wall clock agree on
 * how long the 200 ms sleeps took (which also checks cpu_cycle_freq).
 */
#include "rt.h"

DECLARE_MANIFEST(0);

#define MS 1000000ull
static int failures;
#define CHECK(e)                                                   \
    do {                                                           \
        if (!(e)) {                                                \
            rt_printf("FAILURE: line %d: %s\n", __LINE__, #e);     \
            failures++;                                            \
        }                                                          \
    } while (0)

int guest_main(const char *cmdline)
{
    (void)cmdline;
    uint64_t hz = rt_boot_info->cpu_cycle_freq;
    uint64_t wall = rt_walltime();
    rt_printf("walltime=%lu tsc_hz=%lu\n", wall, hz);
    CHECK(wall > 1577836800ull * 1000000000ull);   /* 2020-01-01 */
    CHECK(wall < 4102444800ull * 1000000000ull);   /* 2100-01-01 */
    CHECK(hz >= 100000000ull && hz <= 10000000000ull);

    uint64_t t0 = rt_monotonic_ns();
    uint64_t t1 = rt_monotonic_ns();
    CHECK(t1 > t0);

    uint64_t s = rt_monotonic_ns();
    int r = rt_poll(0, NULL);
    uint64_t d = rt_monotonic_ns() - s;
    rt_printf("poll(0): ret=%d took %lu us\n", r, d / 1000);
    CHECK(r == 0);
    CHECK(d < 1000 * MS);

    s = rt_monotonic_ns();
    r = rt_poll(1 * MS, NULL);
    d = rt_monotonic_ns() - s;
    rt_printf("poll(1ms): ret=%d took %lu us\n", r, d / 1000);
    CHECK(r == 0);
    CHECK(d >= 1 * MS - MS / 10);
    CHECK(d < 1000 * MS);

    for (int i = 0; i < 3; i++) {
        uint64_t w0 = rt_walltime();
        s = rt_monotonic_ns();
        r = rt_poll(200 * MS, NULL);
        d = rt_monotonic_ns() - s;
        uint64_t wd = rt_walltime() - w0;
        rt_printf("poll(200ms): ret=%d tsc %lu us wall %lu us\n", r, d / 1000, wd / 1000);
        CHECK(r == 0);
        CHECK(d >= 190 * MS && d < 2000 * MS);
        CHECK(wd >= 190 * MS && wd < 2000 * MS);
        uint64_t diff = d > wd ? d - wd : wd - d;
        /* Loose: the vCPU thread can be preempted between the two clock
         * reads on a loaded host; a wrong cpu_cycle_freq is still caught. */
        CHECK(diff < 100 * MS + wd / 4);
    }
    CHECK(rt_walltime() > wall);

    if (failures)
        return 1;
    rt_puts("SUCCESS\n");
    return 0;
}
