//! Block devices: attaching a backing file and BLOCK_WRITE / BLOCK_READ (hypercalls 4 and 5).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::memory::GuestView;

use super::{Devices, HypercallError, R_EINVAL, R_OK};

pub const DEFAULT_BLOCK_SIZE: u64 = 512;

#[derive(Debug, Error)]
pub enum BlockError {
    #[error("{path}: could not open block storage: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: could not determine size: {source}")]
    Size { path: PathBuf, source: io::Error },
    #[error("Block size must be a multiple of 2 and at least 512 (and at most 32768), got {0}")]
    BlockSize(u64),
    #[error("{0}: Backing storage size must be block aligned and at least one block")]
    Unaligned(PathBuf),
    #[error("block device {handle}: {op} failed: {source}")]
    Io { handle: u64, op: &'static str, source: io::Error },
}

#[derive(Debug)]
pub struct BlockDevice {
    file: File,
    pub capacity: u64,
    pub block_size: u16,
}

impl BlockDevice {
    /// Opens `path` read-write and checks its size against the block size (B4).
    pub fn open(path: &Path, block_size: Option<u64>) -> Result<Self, BlockError> {
        let block_size = block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
        if !block_size.is_power_of_two() || block_size < DEFAULT_BLOCK_SIZE {
            return Err(BlockError::BlockSize(block_size));
        }
        let block_size_u16 = u16::try_from(block_size).map_err(|_| BlockError::BlockSize(block_size))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| BlockError::Open { path: path.to_owned(), source })?;
        // Seeking works for regular files and block devices alike (metadata length does not).
        let capacity = file
            .seek(SeekFrom::End(0))
            .map_err(|source| BlockError::Size { path: path.to_owned(), source })?;
        if capacity < block_size || capacity % block_size != 0 {
            return Err(BlockError::Unaligned(path.to_owned()));
        }
        Ok(Self { file, capacity, block_size: block_size_u16 })
    }

    /// Whether `[offset, offset+len)` lies inside the device.
    fn in_range(&self, offset: u64, len: u64) -> bool {
        offset < self.capacity && offset.checked_add(len).is_some_and(|end| end <= self.capacity)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Write,
    Read,
}

/// `struct hvt_hc_block_{write,read} { handle; offset; data; len; int ret; }`
pub fn block_io(mem: &GuestView<'_>, arg: u64, devices: &Devices, op: Op) -> Result<(), HypercallError> {
    mem.ptr_mut(arg, 36)?;
    let handle = mem.read_u64(arg)?;
    let offset = mem.read_u64(arg + 8)?;
    let data = mem.read_u64(arg + 16)?;
    let len = mem.read_u64(arg + 24)?;
    let Some(dev) = devices.block(handle).filter(|d| d.in_range(offset, len)) else {
        mem.write_i32(arg + 32, R_EINVAL)?;
        return Ok(());
    };
    // `len` is bounded by the capacity check, and `offset < capacity <= i64::MAX` (a file size).
    let fd = dev.file.as_raw_fd();
    let n = match op {
        Op::Write => {
            let ptr = mem.ptr(data, len)?;
            // SAFETY: `ptr` is readable for `len` bytes of guest memory (checked above).
            unsafe { libc::pwrite(fd, ptr.cast(), len as usize, offset as libc::off_t) }
        }
        Op::Read => {
            let ptr = mem.ptr_mut(data, len)?;
            // SAFETY: `ptr` is writable for `len` bytes of guest memory (checked above).
            unsafe { libc::pread(fd, ptr.cast(), len as usize, offset as libc::off_t) }
        }
    };
    let (name, short) = match op {
        Op::Write => ("write", io::ErrorKind::WriteZero),
        Op::Read => ("read", io::ErrorKind::UnexpectedEof),
    };
    if n < 0 || n as u64 != len {
        let source = if n < 0 { io::Error::last_os_error() } else { short.into() };
        return Err(BlockError::Io { handle, op: name, source }.into());
    }
    if let Op::Read = op {
        mem.write_u64(arg + 24, n as u64)?;
    }
    mem.write_i32(arg + 32, R_OK)?;
    Ok(())
}
