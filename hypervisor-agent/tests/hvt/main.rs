//! Integration tests: Petrel's own solo5 hvt ABI-2 guests (built from
//! `guests/` with gcc) run under `petrel-hvt`, checking exit codes and output.
//! Every test that runs a guest fails (never skips) without /dev/kvm.

mod common;

mod basic;
mod blk;
mod elf;
mod hostile;
mod net;
