//! `petrel-hvt`: solo5-hvt compatible tender. All logic lives in the library.
#![deny(clippy::undocumented_unsafe_blocks)]

fn main() {
    let status = petrel_hypervisor::run_command(std::env::args_os().skip(1));
    // Not `std::process::exit`: its runtime cleanup tears down the main thread's signal stack
    // (sigaltstack + munmap), which the seccomp sandbox does not allow. Nothing here writes
    // through Rust's buffered stdout, so there is nothing for that cleanup to flush.
    // SAFETY: plain C exit; no Rust destructors are pending that must run.
    unsafe { libc::exit(status) }
}
