//! `petrel-hvt`: solo5-hvt compatible tender. All logic lives in the library.
//!
//! `no_main`: std's runtime start-up is skipped because it costs about 300 kB of resident
//! memory for nothing the tender needs. To find the main thread's stack guard it calls
//! `pthread_getattr_np`, which makes glibc parse /proc/self/maps with stdio and scanf, and it
//! installs a stack overflow handler with its own signal stack. What the tender does rely on
//! is done here instead: standard descriptors 0-2 are kept open (or else the first opened
//! file, e.g. /dev/kvm, could become stdout and receive console output) and SIGPIPE is
//! ignored, so a closed console pipe is a write error, not a silent death. Arguments still
//! work: on Linux/glibc std captures them from `.init_array`.
#![deny(clippy::undocumented_unsafe_blocks)]
#![no_main]

/// Opens /dev/null on whichever of descriptors 0-2 is closed, as std's start-up does.
fn sanitize_standard_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        {
            // SAFETY: NUL-terminated path; open returns the lowest free descriptor, `fd`.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
                // As std does: running with a stray descriptor in 0-2 is worse than not running.
                // SAFETY: plain C abort.
                unsafe { libc::abort() };
            }
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    sanitize_standard_fds();
    // SAFETY: setting a signal disposition before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let status = petrel_hypervisor::run_command(std::env::args_os().skip(1));
    // Not `std::process::exit`: its runtime cleanup may tear down a signal stack (sigaltstack
    // + munmap), which the seccomp sandbox does not allow. Nothing here writes through Rust's
    // buffered stdout, so there is nothing for that cleanup to flush.
    // SAFETY: plain C exit; no Rust destructors are pending that must run.
    unsafe { libc::exit(status) }
}
