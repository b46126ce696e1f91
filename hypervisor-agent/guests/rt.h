/* Petrel test-guest runtime: the small part of a solo5 binding the test guests need. */
#ifndef PETREL_RT_H
#define PETREL_RT_H

#include "hvt_abi.h"

#include <stdarg.h>

extern struct hvt_boot_info *rt_boot_info;
/* WALLTIME taken by start.S before any other guest code (startup benchmark). */
extern volatile struct hvt_walltime rt_first_walltime;

/* Entry point of each guest; cmdline has the --solo5: tokens stripped. */
int guest_main(const char *cmdline);

static inline void hvt_hypercall(int nr, volatile void *arg)
{
    /* The tender takes the low 32 bits of the argument's guest-physical
     * (= identity-mapped virtual) address from EAX. */
    __asm__ __volatile__("outl %0, %1"
                         :
                         : "a"((uint32_t)(uintptr_t)arg),
                           "d"((uint16_t)(HVT_HYPERCALL_PIO_BASE + nr))
                         : "memory");
}

static inline uint64_t rt_rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

void rt_write(const char *s, size_t len);
void rt_puts(const char *s);
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_exit(int status) __attribute__((noreturn));
void rt_abort(const char *why) __attribute__((noreturn));
#define RT_ASSERT(e)                                                         \
    do {                                                                     \
        if (!(e))                                                            \
            rt_abort("assertion failed: " #e);                              \
    } while (0)

uint64_t rt_walltime(void);
uint64_t rt_monotonic_ns(void); /* TSC scaled by boot info cpu_cycle_freq */
/* POLL for timeout_ns; returns ret, fills *ready_set if non-NULL. */
int rt_poll(uint64_t timeout_ns, uint64_t *ready_set);

/* Manifest (the tender's filled-in copy from boot info). */
const struct mft_header *rt_manifest(void);
const struct mft_entry *rt_mft_entry(unsigned handle);
/* Returns the handle of the attached device with this name and type, or -1. */
int rt_mft_find(const char *name, uint32_t type);

/* Block I/O as a solo5 binding does it: exactly one block at an aligned offset. */
int rt_block_write(unsigned handle, uint64_t offset, const void *buf, size_t len);
int rt_block_read(unsigned handle, uint64_t offset, void *buf, size_t len);
/* The raw hypercalls, without the binding checks (to test the tender's). */
int rt_raw_block_write(uint64_t handle, uint64_t offset, uint64_t data, uint64_t len);
int rt_raw_block_read(uint64_t handle, uint64_t offset, uint64_t data, uint64_t len);

int rt_net_write(unsigned handle, const void *buf, size_t len);
/* Returns HVT_OK with *len set, or HVT_AGAIN when nothing is queued. */
int rt_net_read(unsigned handle, void *buf, size_t size, size_t *len);

/* Command-line helpers: tokens are separated by single spaces. */
bool rt_arg_has(const char *cmdline, const char *token);
/* Value of "key=value", copied to out (NUL-terminated); false if absent. */
bool rt_arg_value(const char *cmdline, const char *key, char *out, size_t size);
uint64_t rt_parse_u64(const char *s, bool *ok);

#endif
