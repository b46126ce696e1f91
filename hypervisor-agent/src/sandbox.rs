//! Privilege dropping after setup (ABI B13): a seccomp allow-list applied to every thread,
//! killing the process on anything else.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("cannot query personality: {0}")]
    Personality(std::io::Error),
    #[error("refusing to run with READ_IMPLIES_EXEC personality (guest memory would be executable)")]
    ReadImpliesExec,
    #[error("cannot build seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("cannot install seccomp filter: {0}")]
    Apply(#[from] seccompiler::Error),
}

/// System calls of the run loop (vCPU thread, net ring thread, signal handler), found by
/// tracing every test guest. Upstream also allows mmap, mprotect, munmap, madvise,
/// rt_sigprocmask, rt_sigreturn, exit and close; we never need them because nothing is freed
/// or closed after setup (the tender is not dropped and exits with `exit_group`), the signal
/// handler never returns and the ring thread never exits.
pub const ALLOWED: &[(i64, &str)] = &[
    (libc::SYS_ioctl, "ioctl"),                     // KVM_RUN
    (libc::SYS_read, "read"),                       // NET_READ, ring eventfd
    (libc::SYS_write, "write"),                     // PUTS, NET_WRITE, stderr messages
    (libc::SYS_pread64, "pread64"),                 // BLOCK_READ
    (libc::SYS_pwrite64, "pwrite64"),               // BLOCK_WRITE
    (libc::SYS_epoll_pwait, "epoll_pwait"),         // POLL
    (libc::SYS_timerfd_settime, "timerfd_settime"), // POLL timeout
    (libc::SYS_clock_gettime, "clock_gettime"),     // WALLTIME when the vDSO falls back
    (libc::SYS_futex, "futex"),                     // ring consumer lock, ring thread's sleep
    (libc::SYS_exit_group, "exit_group"),           // exit, including from the signal handler
];

/// Refuses READ_IMPLIES_EXEC, then installs the filter on all threads (TSYNC).
pub fn apply() -> Result<(), SandboxError> {
    // SAFETY: 0xffffffff only queries the current personality.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    if persona < 0 {
        return Err(SandboxError::Personality(std::io::Error::last_os_error()));
    }
    if persona & libc::READ_IMPLIES_EXEC != 0 {
        return Err(SandboxError::ReadImpliesExec);
    }
    let rules = ALLOWED.iter().map(|&(nr, _)| (nr, Vec::new())).collect::<BTreeMap<_, _>>();
    let filter =
        SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, TargetArch::x86_64)?;
    let program: BpfProgram = filter.try_into()?;
    seccompiler::apply_filter_all_threads(&program)?;
    Ok(())
}
