//! PUTS (hypercall 2): guest console output to the tender's standard output.

use crate::memory::GuestView;

use super::HypercallError;

/// `struct hvt_hc_puts { uint64_t data; uint64_t len; }`
pub fn puts(mem: &GuestView<'_>, arg: u64) -> Result<(), HypercallError> {
    mem.ptr(arg, 16)?;
    let data = mem.read_u64(arg)?;
    let len = mem.read_u64(arg + 8)?;
    let mut ptr = mem.ptr(data, len)?;
    // `len` fits in the guest memory size (checked), hence in usize.
    let mut left = len as usize;
    while left > 0 {
        // SAFETY: `ptr` is valid for `left` bytes of guest memory (bounds checked above and
        // advanced only by what was written).
        let n = unsafe { libc::write(libc::STDOUT_FILENO, ptr.cast(), left) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(HypercallError::Console(err));
        }
        if n == 0 {
            return Err(HypercallError::Console(std::io::ErrorKind::WriteZero.into()));
        }
        // SAFETY: `n <= left`, so the pointer stays within the checked range.
        ptr = unsafe { ptr.add(n as usize) };
        left -= n as usize;
    }
    Ok(())
}
