//! Guest memory: the one host mapping of guest-physical memory and every bounds check on
//! guest-supplied addresses.
//!
//! Nothing outside this module turns a guest-physical address into a host pointer. Accesses go
//! through raw-pointer copies instead of Rust references because the guest (and the net ring
//! thread) may change the bytes at any moment; a `&[u8]` over such memory would be unsound.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use thiserror::Error;

/// Errors of guest memory handling.
#[derive(Debug, Error)]
pub enum MemoryError {
    /// A guest-supplied address range is outside the memory the guest may name.
    #[error("Invalid guest access: address {gpa:#x}, length {len:#x}")]
    OutOfBounds { gpa: u64, len: u64 },
    /// A guest-supplied range the host would have to write overlaps host-read-only memory
    /// (the image's text or rodata); writing would crash the tender instead.
    #[error("Invalid guest access: address {gpa:#x}, length {len:#x} is read-only")]
    ReadOnly { gpa: u64, len: u64 },
    /// An atomic ring field is not naturally aligned.
    #[error("Invalid guest access: unaligned address {0:#x}")]
    Unaligned(u64),
    #[error("cannot map {size} bytes of guest memory: {source}")]
    Map { size: usize, source: std::io::Error },
    #[error("cannot protect guest memory at {gpa:#x}: {source}")]
    Protect { gpa: u64, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, MemoryError>;

/// Checks that `[gpa, gpa+len)` lies inside `[start, end)` and returns the offset of `gpa`.
/// Pure so that the overflow edge cases can be tested without a mapping.
pub fn check_range(start: u64, end: u64, gpa: u64, len: u64) -> Result<usize> {
    let fail = || MemoryError::OutOfBounds { gpa, len };
    let last = gpa.checked_add(len).ok_or_else(fail)?;
    if gpa < start || last > end {
        return Err(fail());
    }
    usize::try_from(gpa).map_err(|_| fail())
}

/// Anonymous shared, zero-filled mapping that backs all of guest-physical memory (GPA 0 up).
#[derive(Debug)]
pub struct GuestMemory {
    base: NonNull<u8>,
    size: usize,
    /// Ranges `(start, end)` made read-only on the host by [`GuestMemory::protect`].
    read_only: Vec<(u64, u64)>,
}

// SAFETY: the mapping is plain memory owned by this value; all access goes through raw pointer
// copies or atomics (never references), so sharing it between threads cannot create a data race
// that Rust's aliasing rules forbid.
unsafe impl Send for GuestMemory {}
// SAFETY: see `Send` above.
unsafe impl Sync for GuestMemory {}

impl GuestMemory {
    /// Maps `size` bytes of zeroed memory.
    pub fn new(size: usize) -> Result<Self> {
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MemoryError::Map { size, source: std::io::Error::last_os_error() });
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| MemoryError::Map {
            size,
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        })?;
        Ok(Self { base, size, read_only: Vec::new() })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Host address of GPA 0, for the KVM memory slot.
    pub fn host_address(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// A window `[start, start+len)` of guest-physical memory; every access through it is
    /// bounds checked against the window.
    pub fn view(&self, start: u64, len: u64) -> Result<GuestView<'_>> {
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.size as u64)
            .ok_or(MemoryError::OutOfBounds { gpa: start, len })?;
        Ok(GuestView { base: self.base, start, end, read_only: &self.read_only, _memory: PhantomData })
    }

    /// Changes the host protection of the page-aligned range `[gpa, gpa+len)`. Ranges
    /// without `PROT_WRITE` are remembered so that views refuse host writes into them.
    pub fn protect(&mut self, gpa: u64, len: u64, prot: libc::c_int) -> Result<()> {
        let offset = check_range(0, self.size as u64, gpa, len)?;
        // SAFETY: the range lies inside our own mapping (checked above); changing protection
        // does not invalidate any Rust reference because none exist into guest memory.
        let rc = unsafe { libc::mprotect(self.base.as_ptr().add(offset).cast(), len as usize, prot) };
        if rc != 0 {
            return Err(MemoryError::Protect { gpa, source: std::io::Error::last_os_error() });
        }
        // Later calls override earlier ones on overlap, as mprotect does.
        self.read_only.retain(|&(s, e)| e <= gpa || s >= gpa + len);
        if prot & libc::PROT_WRITE == 0 {
            self.read_only.push((gpa, gpa + len));
        }
        Ok(())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and no pointer derived from it outlives `self` (views
        // borrow `self`).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.size);
        }
    }
}

/// Bounds-checked window of guest memory, addressed by absolute guest-physical address.
#[derive(Debug, Clone, Copy)]
pub struct GuestView<'a> {
    base: NonNull<u8>,
    start: u64,
    end: u64,
    read_only: &'a [(u64, u64)],
    _memory: PhantomData<&'a GuestMemory>,
}

impl GuestView<'_> {
    /// Host pointer to `[gpa, gpa+len)` for reading, e.g. by a system call.
    pub fn ptr(&self, gpa: u64, len: u64) -> Result<*const u8> {
        let offset = check_range(self.start, self.end, gpa, len)?;
        // SAFETY: `offset + len <= end <= mapping size`, so the result stays inside the mapping.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    /// Host pointer to `[gpa, gpa+len)` for writing; refuses host-read-only ranges.
    pub fn ptr_mut(&self, gpa: u64, len: u64) -> Result<*mut u8> {
        let offset = check_range(self.start, self.end, gpa, len)?;
        // `check_range` ruled out overflow of `gpa + len`.
        let end = gpa + len;
        if len > 0 && self.read_only.iter().any(|&(s, e)| gpa < e && end > s) {
            return Err(MemoryError::ReadOnly { gpa, len });
        }
        // SAFETY: `offset + len <= end <= mapping size`, so the result stays inside the mapping.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    pub fn read_bytes(&self, gpa: u64, out: &mut [u8]) -> Result<()> {
        let src = self.ptr(gpa, out.len() as u64)?;
        // SAFETY: `src` is valid for `out.len()` bytes (checked) and cannot overlap `out`,
        // which is host memory outside the guest mapping.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    pub fn write_bytes(&self, gpa: u64, data: &[u8]) -> Result<()> {
        let dst = self.ptr_mut(gpa, data.len() as u64)?;
        // SAFETY: `dst` is valid for `data.len()` bytes (checked) and cannot overlap `data`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    pub fn zero(&self, gpa: u64, len: u64) -> Result<()> {
        let dst = self.ptr_mut(gpa, len)?;
        // SAFETY: `dst` is valid for `len` bytes (checked).
        unsafe { std::ptr::write_bytes(dst, 0, len as usize) };
        Ok(())
    }

    pub fn read_u64(&self, gpa: u64) -> Result<u64> {
        let mut b = [0; 8];
        self.read_bytes(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn read_u32(&self, gpa: u64) -> Result<u32> {
        let mut b = [0; 4];
        self.read_bytes(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_i32(&self, gpa: u64) -> Result<i32> {
        self.read_u32(gpa).map(|v| v as i32)
    }

    pub fn write_u64(&self, gpa: u64, value: u64) -> Result<()> {
        self.write_bytes(gpa, &value.to_le_bytes())
    }

    pub fn write_u32(&self, gpa: u64, value: u32) -> Result<()> {
        self.write_bytes(gpa, &value.to_le_bytes())
    }

    pub fn write_i32(&self, gpa: u64, value: i32) -> Result<()> {
        self.write_bytes(gpa, &value.to_le_bytes())
    }

    /// A ring index shared with the running guest, accessed atomically.
    pub fn atomic_u32(&self, gpa: u64) -> Result<&AtomicU32> {
        if !gpa.is_multiple_of(4) {
            return Err(MemoryError::Unaligned(gpa));
        }
        let ptr = self.ptr_mut(gpa, 4)?;
        // SAFETY: `ptr` is inside the mapping, 4-byte aligned (the mapping is page aligned and
        // `gpa` is a multiple of 4) and the mapping outlives the borrow of `self`. Concurrent
        // guest accesses are plain 32-bit loads/stores, which atomics tolerate.
        Ok(unsafe { AtomicU32::from_ptr(ptr.cast()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_inside_and_at_edges() {
        assert_eq!(check_range(0, 100, 0, 100).unwrap(), 0);
        assert_eq!(check_range(0, 100, 99, 1).unwrap(), 99);
        assert_eq!(check_range(0, 100, 100, 0).unwrap(), 100);
        assert!(check_range(0, 100, 100, 1).is_err());
        assert!(check_range(0, 100, 101, 0).is_err());
        assert!(check_range(10, 100, 9, 1).is_err());
    }

    #[test]
    fn range_overflow() {
        assert!(check_range(0, u64::MAX, u64::MAX, 1).is_err());
        assert!(check_range(0, 100, u64::MAX - 1, 2).is_err());
        assert!(check_range(0, 100, 1, u64::MAX).is_err());
        assert!(check_range(0, u64::MAX, 1, u64::MAX).is_err());
    }

    #[test]
    fn view_accessors_are_bounded() {
        let mem = GuestMemory::new(8192).unwrap();
        let view = mem.view(0, 4096).unwrap();
        view.write_u64(4088, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(view.read_u64(4088).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(view.read_u32(4092).unwrap(), 0x1122_3344);
        assert!(view.read_u64(4089).is_err());
        assert!(view.write_u32(4096, 1).is_err());
        assert!(view.ptr(u64::MAX, 2).is_err());
        let high = mem.view(4096, 4096).unwrap();
        assert!(high.read_u32(4092).is_err());
        assert!(high.atomic_u32(4097).is_err());
        high.atomic_u32(8188).unwrap().store(7, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(high.read_u32(8188).unwrap(), 7);
        assert!(mem.view(4096, 4097).is_err());
        assert!(mem.view(u64::MAX, 2).is_err());
    }

    #[test]
    fn host_read_only_ranges_refuse_writes() {
        let mut mem = GuestMemory::new(4 * 4096).unwrap();
        mem.protect(4096, 8192, libc::PROT_READ).unwrap();
        let view = mem.view(0, 4 * 4096).unwrap();
        assert!(view.ptr(4096, 8192).is_ok(), "reads stay allowed");
        assert!(matches!(view.write_u32(4096, 1), Err(MemoryError::ReadOnly { .. })));
        assert!(matches!(view.ptr_mut(4092, 8), Err(MemoryError::ReadOnly { .. })));
        assert!(matches!(view.zero(3 * 4096 - 1, 1), Err(MemoryError::ReadOnly { .. })));
        view.write_u32(4092, 1).unwrap();
        view.write_u32(3 * 4096, 1).unwrap();
        assert!(view.ptr_mut(4096, 0).is_ok(), "empty ranges touch nothing");
        // Making a part writable again lifts the restriction there.
        mem.protect(2 * 4096, 4096, libc::PROT_READ | libc::PROT_WRITE).unwrap();
        let view = mem.view(0, 4 * 4096).unwrap();
        view.write_u32(2 * 4096, 1).unwrap();
    }
}
