/*
 * hostile: performs the one hostile action named by the first argument. Every
 * action must make the tender exit 1 with a message (or, for spin/sleep, be
 * ended by a signal): never hang, crash, or report a guest status.
 * It declares a block device "storage" for the block-I/O actions, so it must
 * be run with --block:storage=FILE.
 */
#include "rt.h"

DECLARE_MANIFEST(1, MFT_BLOCK("storage"));

static char blkbuf[512] __attribute__((aligned(512)));

static void out32(uint16_t port, uint32_t v)
{
    __asm__ __volatile__("outl %0, %1" : : "a"(v), "d"(port) : "memory");
}

static void puts_raw(uint64_t data, uint64_t len)
{
    volatile struct hvt_puts p = { data, len };
    hvt_hypercall(HVT_HYPERCALL_PUTS, &p);
}

static void halt_raw(uint64_t cookie)
{
    volatile struct hvt_halt h = { cookie, 0 };
    hvt_hypercall(HVT_HYPERCALL_HALT, &h);
}

#define IS(s) (strcmp(cmd, s) == 0)

int guest_main(const char *cmdline)
{
    char cmd[32];
    size_t n = 0;
    while (cmdline[n] && cmdline[n] != ' ' && n < sizeof cmd - 1) {
        cmd[n] = cmdline[n];
        n++;
    }
    cmd[n] = 0;
    uint64_t mem = rt_boot_info->mem_size;
    uint64_t text = (uintptr_t)&guest_main;
    rt_printf("hostile action: %s\n", cmd);

    if (IS("puts-beyond")) {
        puts_raw(mem, 16);
    } else if (IS("puts-top")) {
        puts_raw(mem - 8, 16);
    } else if (IS("puts-huge")) {
        puts_raw(text, mem);
    } else if (IS("puts-wrap")) {
        puts_raw(text, ~0ull - text + 17); /* data + len wraps to 16 */
    } else if (IS("puts-4g")) {
        puts_raw(1ull << 32, 16);
    } else if (IS("arg-beyond")) {
        /* EAX is only 32 bits, so "beyond" means above mem_size, below 4 GiB. */
        out32(HVT_HYPERCALL_PIO_BASE + HVT_HYPERCALL_PUTS, 0xffffff00u);
    } else if (IS("arg-top")) {
        /* A PUTS struct whose second half would lie past the end of memory. */
        *(volatile uint64_t *)(uintptr_t)(mem - 8) = text;
        out32(HVT_HYPERCALL_PIO_BASE + HVT_HYPERCALL_PUTS, (uint32_t)(mem - 8));
    } else if (IS("walltime-top")) {
        out32(HVT_HYPERCALL_PIO_BASE + HVT_HYPERCALL_WALLTIME, (uint32_t)(mem - 4));
    } else if (IS("poll-top")) {
        out32(HVT_HYPERCALL_PIO_BASE + HVT_HYPERCALL_POLL, (uint32_t)(mem - 8));
    } else if (IS("blkread-beyond")) {
        (void)rt_raw_block_read(1, 0, mem - 256, 512);
    } else if (IS("blkwrite-beyond")) {
        (void)rt_raw_block_write(1, 0, mem + 4096, 512);
    } else if (IS("blkread-wrap")) {
        (void)rt_raw_block_read(1, 0, ~0ull - 255, 512);
    } else if (IS("netwrite-beyond")) {
        /* handle 1 is a block device; a tender may refuse it either way */
        volatile struct hvt_netio io = { 1, mem - 8, 64, -1 };
        hvt_hypercall(HVT_HYPERCALL_NET_WRITE, &io);
        rt_printf("NET_WRITE on a block handle returned %d\n", io.ret);
        return 3;
    } else if (IS("halt-cookie")) {
        halt_raw(mem - 100); /* the tender checks 512 bytes of cookie */
    } else if (IS("halt-cookie-wrap")) {
        halt_raw(~0ull - 15);
    } else if (IS("port-0x500")) {
        out32(0x500, (uint32_t)(uintptr_t)blkbuf);
    } else if (IS("port-0x509")) {
        out32(0x509, (uint32_t)(uintptr_t)blkbuf);
    } else if (IS("port-0x4ff")) {
        out32(0x4ff, (uint32_t)(uintptr_t)blkbuf);
    } else if (IS("port-0x600")) {
        /* the ring kick port, without a NET device (no ioeventfd) */
        out32(0x600, 0);
    } else if (IS("out8")) {
        __asm__ __volatile__("outb %0, %1" : : "a"((uint8_t)0), "d"((uint16_t)0x502));
    } else if (IS("out16")) {
        __asm__ __volatile__("outw %0, %1" : : "a"((uint16_t)0), "d"((uint16_t)0x502));
    } else if (IS("in32")) {
        uint32_t v;
        __asm__ __volatile__("inl %1, %0" : "=a"(v) : "d"((uint16_t)0x502));
        rt_printf("in returned 0x%x\n", v);
    } else if (IS("hlt")) {
        /* interrupts are off: a real CPU would stop forever */
        __asm__ __volatile__("cli; hlt");
    } else if (IS("triple-fault")) {
        /* an empty IDT turns int3 into #GP, #DF and then a shutdown */
        struct __attribute__((packed)) {
            uint16_t limit;
            uint64_t base;
        } z = { 0, 0 };
        __asm__ __volatile__("lidt %0; int3" : : "m"(z) : "memory");
    } else if (IS("spin")) {
        rt_puts("SPINNING\n");
        for (;;)
            __asm__ __volatile__("pause");
    } else if (IS("sleep")) {
        rt_puts("SLEEPING\n");
        for (;;)
            rt_poll(60ull * 1000000000ull, NULL);
    } else {
        rt_abort("unknown hostile action");
    }
    rt_puts("FAILURE: the tender let the guest continue\n");
    return 3;
}
