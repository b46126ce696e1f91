/* manydev: the maximum 63 BLOCK_BASIC devices storage0..storage62. Each must be
 * attached with handle i+1; block 0 of each gets a tag with its index that the
 * host test checks in the right backing file. */
#include "rt.h"

#define B(n) MFT_BLOCK("storage" #n)
DECLARE_MANIFEST(63, B(0), B(1), B(2), B(3), B(4), B(5), B(6), B(7), B(8), B(9), B(10),
                 B(11), B(12), B(13), B(14), B(15), B(16), B(17), B(18), B(19), B(20),
                 B(21), B(22), B(23), B(24), B(25), B(26), B(27), B(28), B(29), B(30),
                 B(31), B(32), B(33), B(34), B(35), B(36), B(37), B(38), B(39), B(40),
                 B(41), B(42), B(43), B(44), B(45), B(46), B(47), B(48), B(49), B(50),
                 B(51), B(52), B(53), B(54), B(55), B(56), B(57), B(58), B(59), B(60),
                 B(61), B(62));

static char blk[512] __attribute__((aligned(512)));
static char rblk[512] __attribute__((aligned(512)));

int guest_main(const char *cmdline)
{
    (void)cmdline;
    const struct mft_header *m = rt_manifest();
    if (m->entries != 64)
        rt_abort("manifest copy does not have 64 entries");
    for (unsigned i = 0; i < 63; i++) {
        char name[16];
        memcpy(name, "storage", 7);
        unsigned n = 7;
        if (i >= 10)
            name[n++] = (char)('0' + i / 10);
        name[n++] = (char)('0' + i % 10);
        name[n] = 0;
        int h = rt_mft_find(name, MFT_DEV_BLOCK_BASIC);
        if (h != (int)i + 1) {
            rt_printf("FAILURE: %s has handle %d\n", name, h);
            return 1;
        }
        memset(blk, 0, sizeof blk);
        memcpy(blk, "petrel-dev-", 11);
        memcpy(blk + 11, name + 7, n - 7 + 1);
        if (rt_block_write((unsigned)h, 0, blk, 512) != HVT_OK ||
            rt_block_read((unsigned)h, 0, rblk, 512) != HVT_OK || memcmp(blk, rblk, 512)) {
            rt_printf("FAILURE: I/O on %s\n", name);
            return 1;
        }
    }
    rt_puts("SUCCESS\n");
    return 0;
}
