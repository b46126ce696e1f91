//! WALLTIME (hypercall 1): wall clock in nanoseconds.

use crate::memory::GuestView;

use super::HypercallError;

/// `struct hvt_hc_walltime { uint64_t nsecs; }`
pub fn walltime(mem: &GuestView<'_>, arg: u64) -> Result<(), HypercallError> {
    mem.ptr_mut(arg, 8)?;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
        return Err(HypercallError::Clock(std::io::Error::last_os_error()));
    }
    // Before 1970 or past 2554 the clock is unusable anyway; saturate instead of wrapping.
    let nsecs = (ts.tv_sec.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64);
    mem.write_u64(arg, nsecs)?;
    Ok(())
}
