//! Network devices: attaching a tap (by name or inherited descriptor), NET_WRITE / NET_READ
//! (hypercalls 6 and 7) and the frame I/O shared with the ring thread.

use crate::netif::{control_socket, if_ioctl, ifreq_for};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use thiserror::Error;

use crate::cli::NetSource;
use crate::memory::GuestView;

use super::{Devices, HypercallError, R_AGAIN, R_EINVAL, R_OK};

const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("tap interface {name}: {reason}")]
    Interface { name: String, reason: String },
    #[error("--net @{fd}: {reason}")]
    Fd { fd: RawFd, reason: String },
    #[error("could not generate a MAC address: {0}")]
    Random(io::Error),
    #[error("net device {handle}: {op} failed: {source}")]
    Io { handle: u64, op: &'static str, source: io::Error },
}

/// An attached tap: non-blocking, `IFF_TAP | IFF_NO_PI`.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    pub mtu: u16,
}

/// Result of reading one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadResult {
    Frame(usize),
    Again,
}

/// Requires the interface to be up and returns its MTU.
fn query_interface(name: &str) -> Result<u16, String> {
    let sock = control_socket().map_err(|e| format!("cannot create control socket: {e}"))?;
    let mut req = ifreq_for(name);
    if_ioctl(&sock, libc::SIOCGIFFLAGS, &mut req).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => "no such interface".to_owned(),
        _ => format!("cannot query flags: {e}"),
    })?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short == 0 {
        return Err("interface is down".to_owned());
    }
    let mut req = ifreq_for(name);
    if_ioctl(&sock, libc::SIOCGIFMTU, &mut req).map_err(|e| format!("cannot query MTU: {e}"))?;
    // SAFETY: SIOCGIFMTU filled the mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u16::try_from(mtu).map_err(|_| format!("unsupported MTU {mtu}"))
}

/// Best effort: the guest cannot handle GSO/GRO super-frames, so switch them off like upstream.
/// Without IFF_VNET_HDR the kernel segments anyway, so failure is harmless.
fn disable_offloads(name: &str) {
    let Ok(sock) = control_socket() else { return };
    for cmd in [ETHTOOL_SGSO, ETHTOOL_SGRO] {
        let mut value = [cmd, 0u32]; // struct ethtool_value { cmd, data }
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_data = value.as_mut_ptr().cast();
        let _ = if_ioctl(&sock, libc::SIOCETHTOOL, &mut req);
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller vouches for; results are checked.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Tap {
    pub fn open(source: &NetSource) -> Result<Self, NetError> {
        match source {
            NetSource::Interface(name) => Self::open_interface(name),
            NetSource::Fd(fd) => Self::from_fd(*fd),
        }
    }

    fn open_interface(name: &str) -> Result<Self, NetError> {
        let fail = |reason: String| NetError::Interface { name: name.to_owned(), reason };
        // Check first: TUNSETIFF on a missing name would silently create a new tap.
        query_interface(name).map_err(fail)?;
        // SAFETY: plain open of a constant path; the result is checked.
        let fd = unsafe {
            libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC)
        };
        if fd < 0 {
            return Err(fail(format!("cannot open /dev/net/tun: {}", io::Error::last_os_error())));
        }
        // SAFETY: fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads (and updates) the ifreq we pass.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            return Err(fail(format!("cannot attach (is it a tap in use?): {}", io::Error::last_os_error())));
        }
        // Query again: the MTU must be the attached interface's.
        let mtu = query_interface(name).map_err(fail)?;
        disable_offloads(name);
        Ok(Self { fd, mtu })
    }

    /// Adopts a tap descriptor handed over by the parent; unlike upstream this also learns the
    /// interface name (TUNGETIFF) so that the MTU can be reported to the guest.
    fn from_fd(fd: RawFd) -> Result<Self, NetError> {
        let fail = |reason: String| NetError::Fd { fd, reason };
        if fd <= libc::STDERR_FILENO {
            return Err(fail("refusing to use a standard stream".into()));
        }
        // SAFETY: F_GETFD only inspects the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(fail(format!("not an open descriptor: {}", io::Error::last_os_error())));
        }
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: TUNGETIFF writes into the ifreq we pass; other file types reject it.
        if unsafe { libc::ioctl(fd, libc::TUNGETIFF, &mut req) } < 0 {
            return Err(fail(format!("not a tap device: {}", io::Error::last_os_error())));
        }
        // SAFETY: TUNGETIFF filled the flags member of the union.
        let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
        if flags & libc::IFF_TAP == 0 || flags & libc::IFF_NO_PI == 0 {
            return Err(fail("must be a tap opened with IFF_TAP | IFF_NO_PI".into()));
        }
        // SAFETY: the kernel NUL-terminates ifr_name within IFNAMSIZ; `req` outlives `name`.
        let name = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }.to_string_lossy().into_owned();
        let mtu = query_interface(&name).map_err(|e| fail(format!("interface {name}: {e}")))?;
        set_nonblocking(fd).map_err(|e| fail(format!("cannot make non-blocking: {e}")))?;
        disable_offloads(&name);
        // SAFETY: the caller (the tender's attach step) guarantees each inherited descriptor
        // is adopted once and before the tender opens any descriptor of its own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, mtu })
    }

    /// Any frame-preserving descriptor (e.g. a SEQPACKET socket) standing in for a tap.
    #[cfg(test)]
    pub(crate) fn for_test(fd: OwnedFd) -> Self {
        Self { fd, mtu: 1500 }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Writes one frame from guest memory; anything but a full write is an error.
    pub fn write_frame(&self, ptr: *const u8, len: usize) -> io::Result<()> {
        // SAFETY: the caller obtained `ptr` from a bounds-checked guest view for `len` bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), ptr.cast(), len) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != len {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(())
    }

    /// Reads one frame into guest memory.
    pub fn read_frame(&self, ptr: *mut u8, len: usize) -> io::Result<ReadResult> {
        // SAFETY: the caller obtained `ptr` from a bounds-checked guest view for `len` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), ptr.cast(), len) };
        match n {
            0 => Ok(ReadResult::Again),
            n if n > 0 => Ok(ReadResult::Frame(n as usize)),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::WouldBlock { Ok(ReadResult::Again) } else { Err(err) }
            }
        }
    }
}

/// A random unicast, locally administered MAC address.
pub fn random_mac() -> Result<[u8; 6], NetError> {
    let mut mac = [0u8; 6];
    // SAFETY: `mac` is writable for its length.
    let n = unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), 0) };
    if n != mac.len() as isize {
        return Err(NetError::Random(io::Error::last_os_error()));
    }
    mac[0] = (mac[0] | 0x02) & !0x01;
    Ok(mac)
}

/// `struct hvt_hc_net_write { handle; data; len; int ret; }`
pub fn net_write(mem: &GuestView<'_>, arg: u64, devices: &Devices) -> Result<(), HypercallError> {
    mem.ptr_mut(arg, 28)?;
    let handle = mem.read_u64(arg)?;
    let data = mem.read_u64(arg + 8)?;
    let len = mem.read_u64(arg + 16)?;
    let Some(tap) = devices.net(handle) else {
        mem.write_i32(arg + 24, R_EINVAL)?;
        return Ok(());
    };
    let ptr = mem.ptr(data, len)?;
    tap.write_frame(ptr, len as usize).map_err(|source| NetError::Io { handle, op: "write", source })?;
    mem.write_i32(arg + 24, R_OK)?;
    Ok(())
}

/// `struct hvt_hc_net_read { handle; data; len (in/out); int ret; }`
pub fn net_read(mem: &GuestView<'_>, arg: u64, devices: &Devices) -> Result<(), HypercallError> {
    mem.ptr_mut(arg, 28)?;
    let handle = mem.read_u64(arg)?;
    let data = mem.read_u64(arg + 8)?;
    let len = mem.read_u64(arg + 16)?;
    let Some(tap) = devices.net(handle) else {
        mem.write_i32(arg + 24, R_EINVAL)?;
        return Ok(());
    };
    let ptr = mem.ptr_mut(data, len)?;
    match tap.read_frame(ptr, len as usize).map_err(|source| NetError::Io { handle, op: "read", source })? {
        ReadResult::Frame(n) => {
            mem.write_u64(arg + 16, n as u64)?;
            mem.write_i32(arg + 24, R_OK)?;
        }
        ReadResult::Again => mem.write_i32(arg + 24, R_AGAIN)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_mac_is_local_unicast() {
        for _ in 0..32 {
            let mac = random_mac().unwrap();
            assert_eq!(mac[0] & 0x03, 0x02);
        }
    }

    #[test]
    fn missing_interface_is_refused() {
        let err = Tap::open(&NetSource::Interface("petrelnope0".into())).unwrap_err();
        assert!(err.to_string().contains("no such interface"), "{err}");
    }

    #[test]
    fn non_tap_fd_is_refused() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = Tap::open(&NetSource::Fd(file.as_raw_fd())).unwrap_err();
        assert!(err.to_string().contains("not a tap device"), "{err}");
        let err = Tap::open(&NetSource::Fd(1)).unwrap_err();
        assert!(err.to_string().contains("standard stream"), "{err}");
    }
}
