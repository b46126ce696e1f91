/*
 * blk: BLOCK_BASIC device "storage". Writes a pattern to every step-th block
 * and the last block, reads it back, checks an unwritten block reads as zero,
 * and checks that bad requests get EINVAL: misaligned/short/long ones from the
 * binding checks (as solo5's bindings do), out-of-range, overflowing and bad
 * handles from the tender itself (raw hypercalls). The host test then checks
 * the backing file holds the pattern. First it prints the text at the start of
 * block 0 (what an upload put there). Args: [step=N].
 */
#include "rt.h"

DECLARE_MANIFEST(1, MFT_BLOCK("storage"));

static uint64_t buf[4096 / 8] __attribute__((aligned(4096)));
static uint64_t rbuf[4096 / 8 + 2] __attribute__((aligned(4096)));

/* Keep in sync with the host-side check in tests/hvt/blk.rs. */
static uint64_t pattern(uint64_t block, uint64_t word)
{
    return (block << 32) | (word ^ 0x5a5a);
}

static int failures;
#define CHECK(e)                                                   \
    do {                                                           \
        if (!(e)) {                                                \
            rt_printf("FAILURE: line %d: %s\n", __LINE__, #e);     \
            failures++;                                            \
        }                                                          \
    } while (0)

static int write_block(unsigned h, uint64_t bs, uint64_t b)
{
    for (uint64_t i = 0; i < bs / 8; i++)
        buf[i] = pattern(b, i);
    return rt_block_write(h, b * bs, buf, bs);
}

static bool verify_block(unsigned h, uint64_t bs, uint64_t b)
{
    if (rt_block_read(h, b * bs, rbuf, bs) != HVT_OK)
        return false;
    for (uint64_t i = 0; i < bs / 8; i++)
        if (rbuf[i] != pattern(b, i))
            return false;
    return true;
}

int guest_main(const char *cmdline)
{
    int h = rt_mft_find("storage", MFT_DEV_BLOCK_BASIC);
    if (h < 0)
        rt_abort("no attached block device 'storage'");
    const struct mft_entry *e = rt_mft_entry((unsigned)h);
    uint64_t cap = e->u.block_basic.capacity, bs = e->u.block_basic.block_size;
    rt_printf("Block size is %lu, capacity %lu\n", bs, cap);
    if (bs < 512 || bs > 4096 || (bs & (bs - 1)) || cap % bs || cap < bs)
        rt_abort("bad block geometry in manifest");
    uint64_t nblocks = cap / bs;

    /* What the device held before this run: printable text up to NUL or newline. */
    char first[65];
    size_t n = 0;
    if (rt_block_read((unsigned)h, 0, rbuf, bs) == HVT_OK) {
        const char *text = (const char *)rbuf;
        while (n < 64 && text[n] >= ' ' && text[n] <= '~') {
            first[n] = text[n];
            n++;
        }
    }
    first[n] = 0;
    rt_printf("Block 0 holds: %s\n", first);

    char sv[24];
    bool ok = true;
    uint64_t step = nblocks / 8 ? nblocks / 8 : 1;
    if (rt_arg_value(cmdline, "step", sv, sizeof sv))
        step = rt_parse_u64(sv, &ok);
    if (!ok || !step)
        rt_abort("bad step=");

    for (uint64_t b = 0; b < nblocks; b += step)
        CHECK(write_block((unsigned)h, bs, b) == HVT_OK);
    CHECK(write_block((unsigned)h, bs, nblocks - 1) == HVT_OK);
    for (uint64_t b = 0; b < nblocks; b += step)
        CHECK(verify_block((unsigned)h, bs, b));
    CHECK(verify_block((unsigned)h, bs, nblocks - 1));
    if (step > 1 && nblocks > 2) {
        CHECK(rt_block_read((unsigned)h, bs, rbuf, bs) == HVT_OK);
        for (uint64_t i = 0; i < bs / 8; i++)
            CHECK(rbuf[i] == 0);
    }

    /* Binding-side refusals. */
    CHECK(rt_block_write((unsigned)h, 1, buf, bs) == HVT_EINVAL);
    CHECK(rt_block_read((unsigned)h, bs / 2, rbuf, bs) == HVT_EINVAL);
    CHECK(rt_block_write((unsigned)h, 0, buf, bs - 1) == HVT_EINVAL);
    CHECK(rt_block_read((unsigned)h, 0, rbuf, bs + 1) == HVT_EINVAL);
    CHECK(rt_block_write(0, 0, buf, bs) == HVT_EINVAL);

    /* Tender-side refusals (raw hypercalls). */
    uint64_t d = (uintptr_t)buf, rd = (uintptr_t)rbuf;
    CHECK(rt_raw_block_write((unsigned)h, cap, d, bs) == HVT_EINVAL);
    CHECK(rt_raw_block_read((unsigned)h, cap, rd, bs) == HVT_EINVAL);
    CHECK(rt_raw_block_write((unsigned)h, cap - bs, d, 2 * bs) == HVT_EINVAL);
    CHECK(rt_raw_block_read((unsigned)h, cap - bs + 8, rd, bs) == HVT_EINVAL);
    CHECK(rt_raw_block_write((unsigned)h, ~0ull - 100, d, bs) == HVT_EINVAL);
    CHECK(rt_raw_block_read((unsigned)h, 8, rd, ~0ull - 4) == HVT_EINVAL);
    CHECK(rt_raw_block_write(0, 0, d, bs) == HVT_EINVAL);
    CHECK(rt_raw_block_read(2, 0, rd, bs) == HVT_EINVAL);
    CHECK(rt_raw_block_read(1ull << 40, 0, rd, bs) == HVT_EINVAL);
    /* A refused write must not have touched the last block. */
    CHECK(verify_block((unsigned)h, bs, nblocks - 1));

    if (failures)
        return 1;
    rt_puts("SUCCESS\n");
    return 0;
}
