//! Network interface ioctls shared by the tender (checking a tap) and the agent (creating taps
//! and attaching them to bridges).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An `ifreq` naming `name` (callers pass names shorter than IFNAMSIZ).
pub(crate) fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // The NUL terminator stays: at most IFNAMSIZ - 1 bytes are copied.
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    req
}

/// A socket for interface ioctls, in the calling thread's network namespace.
pub(crate) fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An interface ioctl on `sock` by the name in `req`.
pub(crate) fn if_ioctl(sock: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `req` is a valid ifreq; these SIOC* requests read and write only it (and, for
    // SIOCETHTOOL, the buffer its data pointer names, which the caller keeps alive).
    if unsafe { libc::ioctl(sock.as_raw_fd(), request as _, req as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// The agent's inventory only (the tender needs none of what follows).
#[cfg(feature = "agent")]
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// `struct ethtool_drvinfo` (linux/ethtool.h).
#[cfg(feature = "agent")]
#[repr(C)]
struct DriverInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// The driver of interface `name` (`bridge`, `tun`, `veth` ...) in the calling thread's
/// network namespace.
#[cfg(feature = "agent")]
pub(crate) fn driver(name: &str) -> io::Result<String> {
    let sock = control_socket()?;
    // SAFETY: DriverInfo is plain old data; all-zero is a valid value.
    let mut info: DriverInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = ifreq_for(name);
    req.ifr_ifru.ifru_data = (&mut info as *mut DriverInfo).cast();
    if_ioctl(&sock, libc::SIOCETHTOOL, &mut req)?;
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Interface names in the calling thread's network namespace (sysfs would show those of the
/// namespace it was mounted in).
#[cfg(feature = "agent")]
pub(crate) fn interfaces() -> io::Result<Vec<String>> {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    // Two header lines, then `  name: counters...`.
    Ok(dev.lines().skip(2).filter_map(|l| Some(l.split_once(':')?.0.trim().to_string())).collect())
}
