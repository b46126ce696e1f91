/* Petrel test-guest runtime (see rt.h). */
#include "rt.h"

/* ABI note: target hvt, version 2; 16-byte payload needs no padding. */
__attribute__((section(".note.solo5.abi"), used, aligned(4)))
const struct {
    struct solo5_note_header h;
    struct abi1_info abi;
} solo5_abi_note = {
    .h = { sizeof(SOLO5_NOTE_NAME), sizeof(struct abi1_info), SOLO5_NOTE_ABI,
           SOLO5_NOTE_NAME },
    .abi = { HVT_ABI_TARGET, HVT_ABI_VERSION, 0, 0 },
};

/* Real solo5 binaries carry an OpenBSD ident note in the first PT_NOTE; the
 * tender has to skip notes that are not Solo5's. */
__attribute__((section(".note.openbsd.ident"), used, aligned(4)))
const struct {
    uint32_t namesz, descsz, type;
    char name[8];
    uint32_t desc;
} openbsd_ident_note = { 8, 4, 1, "OpenBSD", 0 };

/* Guests that must produce no output at all (quiet) define this as 0. */
__attribute__((weak)) int rt_banner = 1; /* not const: gcc would fold it */

struct hvt_boot_info *rt_boot_info;
volatile struct hvt_walltime rt_first_walltime;
static uint64_t tsc_mult; /* ns per cycle, 32.32 fixed point */
static uint64_t tsc_base;

/* ---- libc bits gcc may call even in freestanding mode ---- */

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return (uint8_t)a[i] < (uint8_t)b[i] ? -1 : 1;
        if (!a[i])
            return 0;
    }
    return 0;
}

int strcmp(const char *a, const char *b)
{
    return strncmp(a, b, (size_t)-1);
}

/* ---- console ---- */

void rt_write(const char *s, size_t len)
{
    volatile struct hvt_puts p = { (uint64_t)(uintptr_t)s, len };
    hvt_hypercall(HVT_HYPERCALL_PUTS, &p);
}

void rt_puts(const char *s)
{
    rt_write(s, strlen(s));
}

struct outbuf {
    char *p;
    size_t n, size;
};

static void out_c(struct outbuf *o, char c)
{
    if (o->n + 1 < o->size)
        o->p[o->n++] = c;
}

static void out_u(struct outbuf *o, uint64_t v, unsigned base, int width, char pad)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (width-- > i)
        out_c(o, pad);
    while (i)
        out_c(o, tmp[--i]);
}

static int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct outbuf o = { buf, 0, size };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_c(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, lng = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') {
            lng = 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            while (*s)
                out_c(&o, *s++);
            break;
        }
        case 'c':
            out_c(&o, (char)va_arg(ap, int));
            break;
        case 'd': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                out_c(&o, '-');
                v = -v;
            }
            out_u(&o, (uint64_t)v, 10, width, pad);
            break;
        }
        case 'u':
            out_u(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad);
            break;
        case 'x':
            out_u(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad);
            break;
        case '%':
            out_c(&o, '%');
            break;
        default:
            out_c(&o, '?');
            break;
        }
    }
    if (size)
        buf[o.n] = 0;
    return (int)o.n;
}

int rt_printf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = rt_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One PUTS per line keeps the (slow, emulated) hypercall count down. */
    rt_write(buf, (size_t)n);
    return n;
}

/* ---- exit paths ---- */

static void __attribute__((noreturn)) halt(int status, void *cookie)
{
    volatile struct hvt_halt h = { (uint64_t)(uintptr_t)cookie, status };
    hvt_hypercall(HVT_HYPERCALL_HALT, &h);
    for (;;)
        __asm__ __volatile__("hlt");
}

void rt_exit(int status)
{
    halt(status, NULL);
}

void rt_abort(const char *why)
{
    rt_printf("Solo5: ABORT: %s\n", why);
    halt(255, NULL);
}

/* ---- CPU setup: own GDT (the tender's at 0x1000 is unmapped) and an IDT ---- */

struct rt_trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t ist, type_attr;
    uint16_t off_mid;
    uint32_t off_hi, zero;
};
_Static_assert(sizeof(struct idt_gate) == 16, "idt gate");

static uint64_t gdt[3] __attribute__((aligned(16))) = {
    0,
    0x00AF9A000000FFFFull, /* 0x08: 64-bit code, DPL 0 */
    0x00CF92000000FFFFull, /* 0x10: data, DPL 0 */
};
static struct idt_gate idt[32] __attribute__((aligned(16)));
extern const uint64_t rt_trap_stubs[32];
/* Trap frame copy handed to the tender as HALT cookie (it checks 512 bytes). */
static uint8_t trap_cookie[HVT_HALT_COOKIE_MAX] __attribute__((aligned(16)));

struct __attribute__((packed)) desc_ptr {
    uint16_t limit;
    uint64_t base;
};

static void cpu_init(void)
{
    /* Exception delivery reads descriptors through the guest page tables,
     * which hide 0x0-0xffff, so the tender's GDT cannot be used. */
    struct desc_ptr g = { sizeof gdt - 1, (uint64_t)(uintptr_t)gdt };
    __asm__ __volatile__("lgdt %0\n\t"
                         "pushq $0x08\n\t"
                         "leaq 1f(%%rip), %%rax\n\t"
                         "pushq %%rax\n\t"
                         "lretq\n"
                         "1:\n\t"
                         "movl $0x10, %%eax\n\t"
                         "movl %%eax, %%ds\n\t"
                         "movl %%eax, %%es\n\t"
                         "movl %%eax, %%ss\n\t"
                         :
                         : "m"(g)
                         : "rax", "memory");
    for (int i = 0; i < 32; i++) {
        uint64_t a = rt_trap_stubs[i];
        idt[i] = (struct idt_gate){
            .off_lo = (uint16_t)a,
            .sel = 0x08,
            .ist = 0,
            .type_attr = 0x8E, /* present, DPL 0, 64-bit interrupt gate */
            .off_mid = (uint16_t)(a >> 16),
            .off_hi = (uint32_t)(a >> 32),
        };
    }
    struct desc_ptr i = { sizeof idt - 1, (uint64_t)(uintptr_t)idt };
    __asm__ __volatile__("lidt %0" : : "m"(i) : "memory");
}

static const char *const trap_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void __attribute__((noreturn)) rt_trap(struct rt_trap_frame *f)
{
    const char *name = f->vector < 32 && trap_names[f->vector] ? trap_names[f->vector] : "#??";
    rt_printf("Solo5: trap: type=%s ec=0x%lx rip=0x%lx rsp=0x%lx rflags=0x%lx\n", name,
              f->error, f->rip, f->rsp, f->rflags);
    if (f->vector == 14) {
        uint64_t cr2;
        __asm__ __volatile__("mov %%cr2, %0" : "=r"(cr2));
        rt_printf("Solo5: trap: cr2=0x%lx\n", cr2);
    }
    rt_puts("Solo5: ABORT: Fatal trap\n");
    memcpy(trap_cookie, f, sizeof *f);
    halt(255, trap_cookie);
}

/* ---- time ---- */

uint64_t rt_walltime(void)
{
    volatile struct hvt_walltime w = { 0 };
    hvt_hypercall(HVT_HYPERCALL_WALLTIME, &w);
    return w.nsecs;
}

uint64_t rt_monotonic_ns(void)
{
    uint64_t d = rt_rdtsc() - tsc_base;
    return (uint64_t)(((unsigned __int128)d * tsc_mult) >> 32);
}

int rt_poll(uint64_t timeout_ns, uint64_t *ready_set)
{
    volatile struct hvt_poll p = { timeout_ns, 0, 0 };
    hvt_hypercall(HVT_HYPERCALL_POLL, &p);
    if (ready_set)
        *ready_set = p.ready_set;
    return p.ret;
}

/* ---- manifest and devices ---- */

const struct mft_header *rt_manifest(void)
{
    return (const struct mft_header *)(uintptr_t)rt_boot_info->mft;
}

const struct mft_entry *rt_mft_entry(unsigned handle)
{
    const struct mft_header *m = rt_manifest();
    if (handle >= m->entries)
        return NULL;
    return (const struct mft_entry *)(m + 1) + handle;
}

int rt_mft_find(const char *name, uint32_t type)
{
    const struct mft_header *m = rt_manifest();
    for (unsigned i = 1; i < m->entries; i++) {
        const struct mft_entry *e = rt_mft_entry(i);
        if (e->type == type && e->attached && strcmp(e->name, name) == 0)
            return (int)i;
    }
    return -1;
}

static bool block_req_ok(unsigned handle, uint64_t offset, size_t len)
{
    const struct mft_entry *e = rt_mft_entry(handle);
    if (!e || e->type != MFT_DEV_BLOCK_BASIC || !e->attached)
        return false;
    uint64_t bs = e->u.block_basic.block_size;
    return bs && len == bs && offset % bs == 0;
}

int rt_raw_block_write(uint64_t handle, uint64_t offset, uint64_t data, uint64_t len)
{
    volatile struct hvt_blkio b = { handle, offset, data, len, -1 };
    hvt_hypercall(HVT_HYPERCALL_BLOCK_WRITE, &b);
    return b.ret;
}

int rt_raw_block_read(uint64_t handle, uint64_t offset, uint64_t data, uint64_t len)
{
    volatile struct hvt_blkio b = { handle, offset, data, len, -1 };
    hvt_hypercall(HVT_HYPERCALL_BLOCK_READ, &b);
    return b.ret;
}

int rt_block_write(unsigned handle, uint64_t offset, const void *buf, size_t len)
{
    if (!block_req_ok(handle, offset, len))
        return HVT_EINVAL;
    return rt_raw_block_write(handle, offset, (uintptr_t)buf, len);
}

int rt_block_read(unsigned handle, uint64_t offset, void *buf, size_t len)
{
    if (!block_req_ok(handle, offset, len))
        return HVT_EINVAL;
    return rt_raw_block_read(handle, offset, (uintptr_t)buf, len);
}

int rt_net_write(unsigned handle, const void *buf, size_t len)
{
    volatile struct hvt_netio n = { handle, (uintptr_t)buf, len, -1 };
    hvt_hypercall(HVT_HYPERCALL_NET_WRITE, &n);
    return n.ret;
}

int rt_net_read(unsigned handle, void *buf, size_t size, size_t *len)
{
    volatile struct hvt_netio n = { handle, (uintptr_t)buf, size, -1 };
    hvt_hypercall(HVT_HYPERCALL_NET_READ, &n);
    *len = n.len;
    return n.ret;
}

/* ---- command line ---- */

static const char *next_token(const char *s, size_t *len)
{
    while (*s == ' ')
        s++;
    size_t n = 0;
    while (s[n] && s[n] != ' ')
        n++;
    *len = n;
    return s;
}

bool rt_arg_has(const char *cmdline, const char *token)
{
    size_t tl = strlen(token), n;
    for (const char *s = next_token(cmdline, &n); n; s = next_token(s + n, &n))
        if (n == tl && strncmp(s, token, n) == 0)
            return true;
    return false;
}

bool rt_arg_value(const char *cmdline, const char *key, char *out, size_t size)
{
    size_t kl = strlen(key), n;
    for (const char *s = next_token(cmdline, &n); n; s = next_token(s + n, &n)) {
        if (n > kl && s[kl] == '=' && strncmp(s, key, kl) == 0) {
            size_t vl = n - kl - 1;
            if (vl >= size)
                vl = size - 1;
            memcpy(out, s + kl + 1, vl);
            out[vl] = 0;
            return true;
        }
    }
    return false;
}

uint64_t rt_parse_u64(const char *s, bool *ok)
{
    uint64_t v = 0;
    *ok = *s != 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            *ok = false;
            return 0;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    return v;
}

/* ---- entry from start.S ---- */

void __attribute__((noreturn)) rt_start(struct hvt_boot_info *bi)
{
    rt_boot_info = bi;
    cpu_init();
    tsc_base = rt_rdtsc();
    if (bi->cpu_cycle_freq)
        tsc_mult = (1000000000ull << 32) / bi->cpu_cycle_freq;

    /* Like solo5, leading --solo5:<level> tokens belong to the runtime. */
    const char *cmd = (const char *)(uintptr_t)bi->cmdline;
    bool quiet = false;
    for (;;) {
        size_t n;
        const char *t = next_token(cmd, &n);
        if (n < 8 || strncmp(t, "--solo5:", 8) != 0)
            break;
        if ((n == 13 && strncmp(t, "--solo5:quiet", 13) == 0) ||
            (n == 13 && strncmp(t, "--solo5:error", 13) == 0) ||
            (n == 12 && strncmp(t, "--solo5:warn", 12) == 0))
            quiet = true;
        else if (!((n == 12 && strncmp(t, "--solo5:info", 12) == 0) ||
                   (n == 13 && strncmp(t, "--solo5:debug", 13) == 0)))
            break; /* unknown --solo5: token stays in the application cmdline */
        cmd = t + n;
    }
    while (*cmd == ' ')
        cmd++;
    if (rt_banner && !quiet)
        rt_printf("Solo5: Petrel test guest: mem_size=0x%lx kernel_end=0x%lx tsc_hz=%lu\n",
                  bi->mem_size, bi->kernel_end, bi->cpu_cycle_freq);
    rt_exit(guest_main(cmd));
}
