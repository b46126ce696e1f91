/*
 * net: NET_BASIC device "service0". Sends a gratuitous ARP, then answers ARP
 * requests and ICMP echo requests for its IPv4 address, waiting in POLL with a
 * timeout and using the NET_READ/NET_WRITE hypercalls.
 * Args: [ip=A.B.C.D] (default 10.0.0.2) [limit=N] (exit 0 after N echo
 * replies) [verbose] [ring] (use the shared-memory ring of B10 instead of the
 * NET_READ/NET_WRITE hypercalls, as solo5 >= 0.11 guests do when offered)
 * [puts-ring] (hostile: PUTS from the ring area above mem_size, which the
 * tender must refuse) [ring-hostile=ACTION] (hostile ring entries, see
 * ring_hostile()).
 */
#include "rt.h"

DECLARE_MANIFEST(1, MFT_NET("service0"));

static uint8_t frame[9216 + 64] __attribute__((aligned(8)));
static uint8_t mac[6];
static uint8_t ip[4] = { 10, 0, 0, 2 };
static bool verbose;

/* ---- ring I/O (fact sheet B10) ---- */

#define RING_SLOTS 1024u
#define RING_OP_WRITE 1u
#define RING_OP_READ 2u
#define RING_KICK_PORT 0x600
#define RING_WBUFS 16u /* write buffers in flight; fewer than solo5's 1024 */

struct ring_entry {
    uint32_t operation, handle;
    uint64_t data;
    uint32_t len, id;
    uint64_t reserved;
};
struct ring_commit {
    uint32_t id;
    int32_t ret;
    uint32_t len, reserved;
};
struct ring {
    volatile uint32_t ent_tail, com_head; /* guest-written line */
    uint8_t pad0[56];
    volatile uint32_t ent_head, com_tail, needs_kick; /* host-written line */
    uint8_t pad1[52];
    volatile struct ring_entry entries[RING_SLOTS];
    volatile struct ring_commit commits[RING_SLOTS];
};
_Static_assert(offsetof(struct ring, ent_head) == 64, "ring host line");
_Static_assert(offsetof(struct ring, entries) == 128, "ring entries");
_Static_assert(offsetof(struct ring, commits) == 32896, "ring commits");
_Static_assert(sizeof(struct ring) == 49280, "ring size");

static struct ring *ring;
static uint32_t ring_id;
static uint8_t ring_wbuf[RING_WBUFS][2048] __attribute__((aligned(64)));

static void ring_submit(uint32_t op, unsigned h, uint64_t data, uint32_t len)
{
    uint32_t t = ring->ent_tail;
    volatile struct ring_entry *e = &ring->entries[t % RING_SLOTS];
    e->operation = op;
    e->handle = h;
    e->data = data;
    e->len = len;
    e->id = ring_id++;
    /* Entry contents must be visible before the tail moves (x86 keeps store
     * order; this stops the compiler reordering). */
    __asm__ __volatile__("" ::: "memory");
    ring->ent_tail = t + 1;
    /* The host sets needs_kick then re-checks ent_tail; the full fence pairs
     * with that so one side always sees the other. */
    __asm__ __volatile__("mfence" ::: "memory");
    if (ring->needs_kick)
        __asm__ __volatile__("outl %0, %1" : : "a"(0u), "d"((uint16_t)RING_KICK_PORT));
}

static int ring_write(unsigned h, const void *buf, size_t len)
{
    if (len > sizeof ring_wbuf[0])
        return rt_net_write(h, buf, len);
    uint32_t t = ring->ent_tail;
    /* Reuse a write buffer only once the host has consumed its entry. */
    while (t - ring->ent_head >= RING_WBUFS)
        __asm__ __volatile__("pause");
    uint8_t *b = ring_wbuf[t % RING_WBUFS];
    memcpy(b, buf, len);
    ring_submit(RING_OP_WRITE, h, (uintptr_t)b, (uint32_t)len);
    return HVT_OK;
}

static int ring_read(unsigned h, void *buf, size_t size, size_t *len)
{
    uint32_t c = ring->com_head;
    ring_submit(RING_OP_READ, h, (uintptr_t)buf, (uint32_t)size);
    while (ring->com_tail == c)
        __asm__ __volatile__("pause");
    __asm__ __volatile__("" ::: "memory");
    volatile struct ring_commit *cm = &ring->commits[c % RING_SLOTS];
    int ret = cm->ret;
    *len = cm->len;
    ring->com_head = c + 1;
    return ret;
}

/*
 * Submits one bad ring entry, then reports whether the host committed
 * anything. Actions: write-beyond (write from a buffer crossing the end of
 * memory), read-beyond (read into one), bad-op (operation 7), bad-handle
 * (write on handle 9), tail-jump (ent_tail 5000 ahead: zeroed entries).
 */
static int ring_hostile(const char *action)
{
    uint64_t mem = rt_boot_info->mem_size;
    uint32_t c = ring->com_head;
    rt_printf("ring hostile action: %s\n", action);
    if (strcmp(action, "write-beyond") == 0) {
        ring_submit(RING_OP_WRITE, 1, mem - 10, 100);
    } else if (strcmp(action, "read-beyond") == 0) {
        ring_submit(RING_OP_READ, 1, mem - 10, 2048);
    } else if (strcmp(action, "bad-op") == 0) {
        ring_submit(7, 1, (uintptr_t)frame, 64);
    } else if (strcmp(action, "bad-handle") == 0) {
        ring_submit(RING_OP_WRITE, 9, (uintptr_t)frame, 64);
    } else if (strcmp(action, "tail-jump") == 0) {
        ring->ent_tail = ring->ent_head + 5000;
        __asm__ __volatile__("mfence" ::: "memory");
        __asm__ __volatile__("outl %0, %1" : : "a"(0u), "d"((uint16_t)RING_KICK_PORT));
    } else {
        rt_abort("unknown ring-hostile action");
    }
    /* Give the host's I/O thread 2 s to act. POLL sleeps the vCPU but returns
     * early whenever the tap has traffic, so the bound is measured time. */
    uint64_t until = rt_monotonic_ns() + 2000000000ull;
    while (ring->com_tail == c && rt_monotonic_ns() < until)
        rt_poll(100000000ull, NULL);
    if (ring->com_tail != c)
        rt_printf("commit ret=%d\n", ring->commits[c % RING_SLOTS].ret);
    else
        rt_puts("no commit\n");
    return 3;
}

static int net_write(unsigned h, const void *buf, size_t len)
{
    return ring ? ring_write(h, buf, len) : rt_net_write(h, buf, len);
}

static int net_read(unsigned h, void *buf, size_t size, size_t *len)
{
    return ring ? ring_read(h, buf, size, len) : rt_net_read(h, buf, size, len);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t checksum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += get16(p + i);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static bool parse_ip(const char *s, uint8_t out[4])
{
    for (int i = 0; i < 4; i++) {
        unsigned v = 0, digits = 0;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (!digits || v > 255 || *s != (i == 3 ? 0 : '.'))
            return false;
        out[i] = (uint8_t)v;
        s++;
    }
    return true;
}

static void send(unsigned h, const uint8_t *p, size_t len)
{
    int r = net_write(h, p, len);
    if (r != HVT_OK)
        rt_printf("net write failed: %d\n", r);
}

/* ARP packet (after the Ethernet header) with the given opcode. */
static size_t build_arp(uint8_t *f, const uint8_t *dst_mac, uint16_t op, const uint8_t *tha,
                        const uint8_t *tpa)
{
    static const uint8_t arp_hdr[6] = { 0, 1, 8, 0, 6, 4 };
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, mac, 6);
    put16(f + 12, 0x0806);
    memcpy(f + 14, arp_hdr, 6);
    put16(f + 20, op);
    memcpy(f + 22, mac, 6);
    memcpy(f + 28, ip, 4);
    memcpy(f + 32, tha, 6);
    memcpy(f + 38, tpa, 4);
    memset(f + 42, 0, 18); /* pad to the 60-byte Ethernet minimum */
    return 60;
}

/* Returns true if the frame was an echo request we answered. */
static bool handle_frame(unsigned h, uint8_t *f, size_t len)
{
    if (len < 14)
        return false;
    uint16_t type = get16(f + 12);
    if (type == 0x0806 && len >= 42) {
        if (get16(f + 20) == 1 && memcmp(f + 38, ip, 4) == 0) {
            uint8_t sha[6], spa[4];
            memcpy(sha, f + 22, 6);
            memcpy(spa, f + 28, 4);
            if (verbose)
                rt_puts("ARP request -> reply\n");
            send(h, f, build_arp(f, sha, 2, sha, spa));
        }
        return false;
    }
    if (type != 0x0800 || len < 14 + 20)
        return false;
    uint8_t *iph = f + 14;
    size_t ihl = (size_t)(iph[0] & 0xf) * 4;
    size_t tot = get16(iph + 2);
    if ((iph[0] >> 4) != 4 || ihl < 20 || tot < ihl + 8 || 14 + tot > len)
        return false;
    if (iph[9] != 1 || memcmp(iph + 16, ip, 4) != 0)
        return false;
    uint8_t *icmp = iph + ihl;
    if (icmp[0] != 8 || checksum(icmp, tot - ihl) != 0)
        return false;

    uint8_t tmp[6];
    memcpy(tmp, f, 6);
    memcpy(f, f + 6, 6);
    memcpy(f + 6, tmp, 6);
    memcpy(tmp, iph + 12, 4);
    memcpy(iph + 12, iph + 16, 4);
    memcpy(iph + 16, tmp, 4);
    iph[8] = 64;
    put16(iph + 10, 0);
    put16(iph + 10, checksum(iph, ihl));
    icmp[0] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 2, checksum(icmp, tot - ihl));
    if (verbose)
        rt_printf("ICMP echo seq %u -> reply\n", get16(icmp + 6));
    send(h, f, 14 + tot);
    return true;
}

int guest_main(const char *cmdline)
{
    char v[24];
    if (rt_arg_value(cmdline, "ip", v, sizeof v) && !parse_ip(v, ip))
        rt_abort("bad ip=");
    uint64_t limit = 0;
    bool ok = true;
    if (rt_arg_value(cmdline, "limit", v, sizeof v))
        limit = rt_parse_u64(v, &ok);
    if (!ok)
        rt_abort("bad limit=");
    verbose = rt_arg_has(cmdline, "verbose");

    int hi = rt_mft_find("service0", MFT_DEV_NET_BASIC);
    if (hi < 0)
        rt_abort("no attached net device 'service0'");
    unsigned h = (unsigned)hi;
    const struct mft_entry *e = rt_mft_entry(h);
    memcpy(mac, e->u.net_basic.mac, 6);
    unsigned mtu = e->u.net_basic.mtu;
    rt_printf("MTU is %u\n", mtu);
    if (mtu < 68 || mtu > 9216)
        rt_abort("bad MTU in manifest");

    if (rt_arg_has(cmdline, "puts-ring")) {
        uint64_t top = rt_boot_info->mem_size;
        rt_printf("PUTS from 0x%lx (ring 0x%lx)\n", top, rt_boot_info->net_ring);
        volatile struct hvt_puts p = { top, 64 };
        hvt_hypercall(HVT_HYPERCALL_PUTS, &p);
        rt_puts("FAILURE: PUTS from the ring area was accepted\n");
        return 1;
    }

    rt_printf("ring: host_features=0x%x net_ring=0x%lx mem_size=0x%lx\n",
              rt_boot_info->host_features, rt_boot_info->net_ring, rt_boot_info->mem_size);
    if (rt_arg_has(cmdline, "ring")) {
        if (!(rt_boot_info->host_features & 1) || !rt_boot_info->net_ring)
            rt_abort("ring I/O requested but not offered by the tender");
        ring = (struct ring *)(uintptr_t)rt_boot_info->net_ring;
        rt_puts("using ring I/O\n");
    }
    if (rt_arg_value(cmdline, "ring-hostile", v, sizeof v)) {
        if (!(rt_boot_info->host_features & 1) || !rt_boot_info->net_ring)
            rt_abort("ring I/O not offered by the tender");
        ring = (struct ring *)(uintptr_t)rt_boot_info->net_ring;
        return ring_hostile(v);
    }

    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t zero[6];
    send(h, frame, build_arp(frame, bcast, 1, zero, ip));
    rt_printf("Serving %u.%u.%u.%u on %02x:%02x:%02x:%02x:%02x:%02x\n", ip[0], ip[1], ip[2],
              ip[3], mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);

    uint64_t replies = 0;
    for (;;) {
        uint64_t ready = 0;
        int n = rt_poll(1000000000ull, &ready);
        if (n <= 0 || !(ready & (1ull << h)))
            continue;
        for (;;) {
            size_t len = 0;
            int r = net_read(h, frame, sizeof frame, &len);
            if (r == HVT_AGAIN)
                break;
            if (r != HVT_OK) {
                rt_printf("net read failed: %d\n", r);
                return 1;
            }
            if (handle_frame(h, frame, len) && limit && ++replies >= limit) {
                rt_printf("%lu echo replies sent\n", replies);
                rt_puts("SUCCESS\n");
                return 0;
            }
        }
    }
}
