/*
 * solo5 hvt ABI version 2 as seen from the guest: hypercall numbers, argument
 * structs, boot info and manifest layout. Written from the Petrel ABI fact
 * sheet (shared/docs/solo5-hvt-abi.md, B3-B9); field offsets are checked with
 * _Static_assert so a layout slip fails the build, not a test.
 */
#ifndef PETREL_HVT_ABI_H
#define PETREL_HVT_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HVT_ABI_TARGET 1
#define HVT_ABI_VERSION 2

#define HVT_HYPERCALL_PIO_BASE 0x500
enum hvt_hypercall {
    HVT_HYPERCALL_WALLTIME = 1,
    HVT_HYPERCALL_PUTS = 2,
    HVT_HYPERCALL_POLL = 3,
    HVT_HYPERCALL_BLOCK_WRITE = 4,
    HVT_HYPERCALL_BLOCK_READ = 5,
    HVT_HYPERCALL_NET_WRITE = 6,
    HVT_HYPERCALL_NET_READ = 7,
    HVT_HYPERCALL_HALT = 8,
};

enum hvt_result { HVT_OK = 0, HVT_AGAIN = 1, HVT_EINVAL = 2, HVT_EUNSPEC = 3 };

struct hvt_walltime {
    uint64_t nsecs;
};
struct hvt_puts {
    uint64_t data;
    uint64_t len;
};
struct hvt_poll {
    uint64_t timeout_nsecs;
    uint64_t ready_set;
    int32_t ret;
};
struct hvt_blkio {
    uint64_t handle;
    uint64_t offset;
    uint64_t data;
    uint64_t len;
    int32_t ret;
};
struct hvt_netio {
    uint64_t handle;
    uint64_t data;
    uint64_t len;
    int32_t ret;
};
struct hvt_halt {
    uint64_t cookie;
    int32_t exit_status;
};
#define HVT_HALT_COOKIE_MAX 512

struct hvt_boot_info {
    uint64_t mem_size;
    uint64_t kernel_end;
    uint64_t cpu_cycle_freq;
    uint64_t cmdline;
    uint64_t mft;
    uint32_t host_features;
    uint32_t guest_features;
    uint64_t net_ring;
};
_Static_assert(sizeof(struct hvt_boot_info) == 56, "boot info size");
_Static_assert(offsetof(struct hvt_boot_info, net_ring) == 48, "boot info net_ring");
_Static_assert(offsetof(struct hvt_blkio, ret) == 32, "blkio ret");
_Static_assert(offsetof(struct hvt_netio, ret) == 24, "netio ret");
_Static_assert(offsetof(struct hvt_poll, ret) == 16, "poll ret");
_Static_assert(offsetof(struct hvt_halt, exit_status) == 8, "halt status");

/* Manifest (MFT version 1). */
#define MFT_VERSION 1
#define MFT_MAX_ENTRIES 64
#define MFT_NAME_SIZE 68
enum mft_type {
    MFT_DEV_BLOCK_BASIC = 1,
    MFT_DEV_NET_BASIC = 2,
    MFT_RESERVED_FIRST = 0x40000000,
};

struct mft_entry {
    char name[MFT_NAME_SIZE];
    uint32_t type;
    union {
        struct {
            uint64_t capacity;
            uint16_t block_size;
        } block_basic;
        struct {
            uint8_t mac[6];
            uint16_t mtu;
        } net_basic;
    } u;
    uint64_t host_private;
    bool attached;
};
_Static_assert(sizeof(struct mft_entry) == 104, "manifest entry size");
_Static_assert(offsetof(struct mft_entry, type) == 68, "entry type");
_Static_assert(offsetof(struct mft_entry, u) == 72, "entry union");
_Static_assert(offsetof(struct mft_entry, attached) == 96, "entry attached");

struct mft_header {
    uint32_t version;
    uint32_t entries;
};

/* ELF note framing shared by the ABI and manifest notes (B3). */
#define SOLO5_NOTE_NAME "Solo5"
#define SOLO5_NOTE_ABI 0x31494241u      /* "ABI1" */
#define SOLO5_NOTE_MANIFEST 0x3154464du /* "MFT1" */

struct solo5_note_header {
    uint32_t namesz;
    uint32_t descsz;
    uint32_t type;
    char name[8];
};
_Static_assert(sizeof(struct solo5_note_header) == 20, "note header");

struct abi1_info {
    uint32_t abi_target;
    uint32_t abi_version;
    uint32_t reserved0;
    uint32_t reserved1;
};

/*
 * The manifest payload needs 8-byte alignment, so 4 pad bytes follow the
 * 20-byte header and are counted in descsz.
 */
#define DECLARE_MANIFEST(N, ...)                                                \
    __attribute__((section(".note.solo5.manifest"), used, aligned(8)))           \
    const struct {                                                              \
        struct solo5_note_header h;                                             \
        uint32_t pad;                                                           \
        struct mft_header m;                                                    \
        struct mft_entry e[(N) + 1];                                            \
    } solo5_manifest_note = {                                                   \
        .h = { sizeof(SOLO5_NOTE_NAME),                                         \
               4 + sizeof(struct mft_header) + ((N) + 1) * sizeof(struct mft_entry), \
               SOLO5_NOTE_MANIFEST, SOLO5_NOTE_NAME },                          \
        .pad = 0,                                                               \
        .m = { MFT_VERSION, (N) + 1 },                                          \
        .e = { { .name = "", .type = MFT_RESERVED_FIRST }, __VA_ARGS__ },       \
    }

#define MFT_BLOCK(n) { .name = n, .type = MFT_DEV_BLOCK_BASIC }
#define MFT_NET(n) { .name = n, .type = MFT_DEV_NET_BASIC }

#endif
