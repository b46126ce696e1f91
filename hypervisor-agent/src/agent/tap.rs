//! Tap devices for unikernels, attached to a host bridge.
//!
//! Unlike albatross (persistent `vmmtapN` made with `ip tuntap add`), a tap here is not
//! persistent: it exists while a descriptor from TUNSETIFF is open. The agent keeps that
//! descriptor and hands a copy to the tender (`--net:NAME=@FD`), so the tap disappears by
//! itself once both are closed: teardown is closing it, and an agent that crashes leaves no taps
//! behind (its tenders die with it, PR_SET_PDEATHSIG). Everything is done with ioctls on the
//! network namespace of the calling thread; no `ip` command is needed.

use crate::netif::{control_socket, if_ioctl, ifreq_for};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use thiserror::Error;

/// `<linux/sockios.h>`: add a port to a bridge (not in the libc crate).
const SIOCBRADDIF: libc::c_ulong = 0x89a2;
/// The kernel replaces `%d` with the lowest free number.
const NAME_TEMPLATE: &str = "ptap%d";

#[derive(Debug, Error)]
pub enum TapError {
    #[error("invalid bridge name {0:?}")]
    BridgeName(String),
    #[error("bridge {0} does not exist")]
    NoBridge(String),
    #[error("{0} is not a bridge")]
    NotABridge(String),
    #[error("cannot open /dev/net/tun: {0}")]
    OpenTun(io::Error),
    #[error("cannot create a tap: {0}")]
    Create(io::Error),
    #[error("tap {tap}: {op}: {source}")]
    Setup { tap: String, op: &'static str, source: io::Error },
}

/// A tap `ptap<N>`, up and a port of its bridge; removed when dropped (and no tender holds it).
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
    bridge: String,
}

/// The interface's driver name (ETHTOOL_GDRVINFO): "bridge" for a Linux bridge. Asked this
/// way rather than through /sys/class/net, which shows the namespace sysfs was mounted in.
fn driver(sock: &OwnedFd, name: &str) -> io::Result<String> {
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    // struct ethtool_drvinfo: cmd, then driver[32] and more strings and counters (196 bytes).
    let mut info = [0u32; 49];
    info[0] = ETHTOOL_GDRVINFO;
    let mut req = ifreq_for(name);
    req.ifr_ifru.ifru_data = info.as_mut_ptr().cast();
    match if_ioctl(sock, libc::SIOCETHTOOL, &mut req) {
        Ok(()) => {}
        // Interfaces without ethtool support (lo) are no bridges either.
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(String::new()),
        Err(e) => return Err(e),
    }
    let bytes: Vec<u8> = info[1..9].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && !name.contains(['/', '\0'])
        && !name.contains(char::is_whitespace)
}

impl Tap {
    /// Creates a tap with the bridge's MTU, attaches it to `bridge` and brings it up.
    pub fn create(bridge: &str) -> Result<Tap, TapError> {
        if !valid_name(bridge) {
            return Err(TapError::BridgeName(bridge.to_owned()));
        }
        let sock = control_socket().map_err(TapError::Create)?;
        // The bridge first: no tap is made for a deployment that cannot be attached.
        let mut req = ifreq_for(bridge);
        if let Err(e) = if_ioctl(&sock, libc::SIOCGIFMTU, &mut req) {
            return Err(match e.raw_os_error() {
                Some(libc::ENODEV) => TapError::NoBridge(bridge.to_owned()),
                _ => TapError::Create(e),
            });
        }
        // SAFETY: SIOCGIFMTU filled the mtu member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        if driver(&sock, bridge).map_err(TapError::Create)? != "bridge" {
            return Err(TapError::NotABridge(bridge.to_owned()));
        }

        // SAFETY: plain open of a constant path; the result is checked.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(TapError::OpenTun(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req = ifreq_for(NAME_TEMPLATE);
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads the ifreq and writes the chosen name back into it.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            return Err(TapError::Create(io::Error::last_os_error()));
        }
        // SAFETY: the kernel NUL-terminates ifr_name within IFNAMSIZ.
        let name = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }.to_string_lossy().into_owned();
        // From here on, dropping `tap` (on any error) removes the interface again.
        let tap = Tap { fd, name, bridge: bridge.to_owned() };
        let setup = |op, source| TapError::Setup { tap: tap.name.clone(), op, source };

        let mut req = ifreq_for(&tap.name);
        req.ifr_ifru.ifru_mtu = mtu;
        if_ioctl(&sock, libc::SIOCSIFMTU, &mut req).map_err(|e| setup("setting the bridge's MTU", e))?;

        let mut req = ifreq_for(&tap.name);
        if_ioctl(&sock, libc::SIOCGIFINDEX, &mut req).map_err(|e| setup("reading its index", e))?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
        let index = unsafe { req.ifr_ifru.ifru_ifindex };
        let mut req = ifreq_for(bridge);
        req.ifr_ifru.ifru_ifindex = index;
        if let Err(e) = if_ioctl(&sock, SIOCBRADDIF, &mut req) {
            return Err(match e.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::EINVAL) => TapError::NotABridge(bridge.to_owned()),
                Some(libc::ENODEV) => TapError::NoBridge(bridge.to_owned()),
                _ => setup("attaching it to the bridge", e),
            });
        }

        let mut req = ifreq_for(&tap.name);
        if_ioctl(&sock, libc::SIOCGIFFLAGS, &mut req).map_err(|e| setup("reading its flags", e))?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        if_ioctl(&sock, libc::SIOCSIFFLAGS, &mut req).map_err(|e| setup("bringing it up", e))?;
        Ok(tap)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }
}

impl AsFd for Tap {
    /// The descriptor a tender adopts with `--net:NAME=@FD`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_are_checked_before_any_ioctl() {
        for bad in ["", "a/b", "sixteen-chars-xx", "a b"] {
            assert!(matches!(Tap::create(bad), Err(TapError::BridgeName(_))), "{bad:?}");
        }
        assert!(valid_name("br0") && valid_name("fifteen-chars-x"));
    }
}
