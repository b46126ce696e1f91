/*
 * Guest entry and CPU exception stubs. The tender starts us in 64-bit mode
 * with RDI = boot info, RSP = top of guest memory - 8, no IDT.
 */
    .section .interp, "a"
    /* Makes the host kernel refuse to exec a guest binary directly. */
    .asciz "/nonexistent/solo5/"

    .text
    .globl _start
    .type _start, @function
_start:
    /* First act is a WALLTIME hypercall so the benchmark can measure the time
     * from spawning the tender to the first guest instruction. */
    movl $rt_first_walltime, %eax
    movw $0x501, %dx
    outl %eax, %dx
    andq $-16, %rsp
    call rt_start
1:  hlt
    jmp 1b
    .size _start, . - _start

/* The CPU pushes an error code only for these vectors; the rest get a 0 so
 * that every frame has one layout (struct rt_trap_frame in rt.c). */
    .macro TRAP_STUB n
    .align 16
trap_stub_\n:
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    pushq $0
    .endif
    pushq $\n
    jmp trap_common
    .endm

    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    TRAP_STUB \n
    .endr

trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    andq $-16, %rsp
    call rt_trap
2:  hlt
    jmp 2b

    .section .rodata
    .align 8
    .globl rt_trap_stubs
rt_trap_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad trap_stub_\n
    .endr

    .section .note.GNU-stack, "", @progbits
