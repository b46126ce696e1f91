//! POLL (hypercall 3): wait until a network device is readable or a timeout expires.
//!
//! An epoll set holds every tap (event data = manifest handle) and a timerfd armed with the
//! guest's relative timeout on each call, as upstream does on Linux.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::memory::GuestView;

use super::HypercallError;

/// epoll data of the timer; handles are below 64.
const TIMER_TOKEN: u64 = u64::MAX;

#[derive(Debug)]
pub struct Poller {
    epoll: OwnedFd,
    timer: OwnedFd,
    events: Vec<libc::epoll_event>,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

impl Poller {
    /// `taps` are `(handle, fd)` pairs of the attached network devices.
    pub fn new(taps: &[(u64, RawFd)]) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epoll` is a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: plain syscall; the result is checked before use.
        let timer = cvt(unsafe {
            libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        })?;
        // SAFETY: `timer` is a fresh descriptor that nothing else owns.
        let timer = unsafe { OwnedFd::from_raw_fd(timer) };
        let add = |fd: RawFd, token: u64| {
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
            // SAFETY: both descriptors are open and `ev` is a valid event.
            cvt(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
        };
        add(timer.as_raw_fd(), TIMER_TOKEN)?;
        for &(handle, fd) in taps {
            add(fd, handle)?;
        }
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; taps.len() + 1];
        Ok(Self { epoll, timer, events })
    }

    /// Blocks until a tap is readable or `timeout_ns` passed; returns the ready set.
    fn wait(&mut self, timeout_ns: u64) -> io::Result<u64> {
        // `| 1` so that a zero timeout still arms (a zero it_value would disarm the timer).
        let ns = timeout_ns | 1;
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: the timer is open and `spec` is valid; the old value is not requested.
        cvt(unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })?;
        let n = loop {
            // SAFETY: `events` has room for `len` entries; no signal mask is passed.
            let rc = unsafe {
                libc::epoll_pwait(
                    self.epoll.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    -1,
                    std::ptr::null(),
                )
            };
            match cvt(rc) {
                Ok(n) => break n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(self.events[..n]
            .iter()
            .map(|ev| ev.u64)
            .filter(|&token| token != TIMER_TOKEN)
            .fold(0, |set, handle| set | 1u64 << handle))
    }
}

/// `struct hvt_hc_poll { uint64_t timeout_nsecs; uint64_t ready_set; int ret; }`
pub fn poll(mem: &GuestView<'_>, arg: u64, poller: &mut Poller) -> Result<(), HypercallError> {
    mem.ptr_mut(arg, 20)?;
    let timeout = mem.read_u64(arg)?;
    let ready = poller.wait(timeout).map_err(HypercallError::Poll)?;
    mem.write_u64(arg + 8, ready)?;
    mem.write_i32(arg + 16, ready.count_ones() as i32)?;
    Ok(())
}
