//! Hypercall dispatch (ABI B9): a 4-byte `OUT` to port 0x500 + nr carries the guest-physical
//! address of the argument struct. Every argument is bounds checked through [`GuestView`];
//! a bad access ends the guest with exit status 1, never the host.

pub mod block;
pub mod console;
pub mod net;
pub mod poll;
pub mod ring;
pub mod time;

use std::io;
use std::sync::Arc;

use thiserror::Error;

use crate::memory::{GuestView, MemoryError};

use self::block::{BlockDevice, BlockError, Op};
use self::net::{NetError, Tap};
use self::poll::Poller;
use self::ring::{Ring, RingError};

pub const PORT_BASE: u16 = 0x500;
const NR_WALLTIME: u16 = 1;
const NR_PUTS: u16 = 2;
const NR_POLL: u16 = 3;
const NR_BLOCK_WRITE: u16 = 4;
const NR_BLOCK_READ: u16 = 5;
const NR_NET_WRITE: u16 = 6;
const NR_NET_READ: u16 = 7;
const NR_HALT: u16 = 8;
/// Bytes of the HALT cookie (trap frame) that must be addressable, as upstream.
const HALT_COOKIE_SIZE: u64 = 512;

pub const R_OK: i32 = 0;
pub const R_AGAIN: i32 = 1;
pub const R_EINVAL: i32 = 2;

#[derive(Debug, Error)]
pub enum HypercallError {
    #[error("Invalid guest port access: port {port:#x}")]
    InvalidPort { port: u16 },
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("clock_gettime failed: {0}")]
    Clock(io::Error),
    #[error("console write failed: {0}")]
    Console(io::Error),
    #[error("poll failed: {0}")]
    Poll(io::Error),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// An attached device.
#[derive(Debug)]
pub enum Device {
    Block(BlockDevice),
    Net(Arc<Tap>),
}

/// Attached devices indexed by manifest handle (index 0 is the reserved entry).
#[derive(Debug, Default)]
pub struct Devices {
    slots: Vec<Option<Device>>,
}

impl Devices {
    pub fn insert(&mut self, handle: u64, device: Device) {
        let index = handle as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(device);
    }

    fn get(&self, handle: u64) -> Option<&Device> {
        self.slots.get(usize::try_from(handle).ok()?)?.as_ref()
    }

    pub fn block(&self, handle: u64) -> Option<&BlockDevice> {
        match self.get(handle)? {
            Device::Block(b) => Some(b),
            Device::Net(_) => None,
        }
    }

    pub fn net(&self, handle: u64) -> Option<&Tap> {
        match self.get(handle)? {
            Device::Net(t) => Some(t),
            Device::Block(_) => None,
        }
    }

    /// Taps by handle, for the ring thread.
    pub fn taps(&self) -> Vec<Option<Arc<Tap>>> {
        self.slots
            .iter()
            .map(|slot| match slot {
                Some(Device::Net(t)) => Some(Arc::clone(t)),
                _ => None,
            })
            .collect()
    }

    pub fn has_net(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Some(Device::Net(_))))
    }
}

/// What the vCPU loop does after a hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Halt(i32),
}

/// Host side of all hypercalls.
#[derive(Debug)]
pub struct Hypercalls {
    devices: Devices,
    poller: Poller,
    ring: Option<Ring>,
}

impl Hypercalls {
    pub fn new(devices: Devices, ring: Option<Ring>) -> io::Result<Self> {
        let taps: Vec<_> = devices
            .slots
            .iter()
            .enumerate()
            .filter_map(|(h, s)| match s {
                Some(Device::Net(t)) => Some((h as u64, t.raw_fd())),
                _ => None,
            })
            .collect();
        Ok(Self { poller: Poller::new(&taps)?, devices, ring })
    }

    pub fn has_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Handles one `OUT` exit. `data` is what the guest wrote.
    pub fn handle(&mut self, mem: &GuestView<'_>, port: u16, data: &[u8]) -> Result<Flow, HypercallError> {
        // Only 4-byte OUTs carry a hypercall; anything else is an invalid port access.
        let (Ok(bytes), Some(nr)) = (<[u8; 4]>::try_from(data), port.checked_sub(PORT_BASE)) else {
            return Err(HypercallError::InvalidPort { port });
        };
        if port == ring::KICK_PORT
            && let Some(ring) = &self.ring
        {
            ring.kick()?;
            return Ok(Flow::Continue);
        }
        let arg = u64::from(u32::from_le_bytes(bytes));
        match nr {
            NR_WALLTIME => time::walltime(mem, arg)?,
            NR_PUTS => console::puts(mem, arg)?,
            NR_POLL => poll::poll(mem, arg, &mut self.poller)?,
            NR_BLOCK_WRITE => block::block_io(mem, arg, &self.devices, Op::Write)?,
            NR_BLOCK_READ => block::block_io(mem, arg, &self.devices, Op::Read)?,
            NR_NET_WRITE => net::net_write(mem, arg, &self.devices)?,
            NR_NET_READ => net::net_read(mem, arg, &self.devices)?,
            NR_HALT => return self.halt(mem, arg),
            _ => return Err(HypercallError::InvalidPort { port }),
        }
        Ok(Flow::Continue)
    }

    /// `struct hvt_hc_halt { uint64_t cookie; int exit_status; }`
    fn halt(&mut self, mem: &GuestView<'_>, arg: u64) -> Result<Flow, HypercallError> {
        mem.ptr(arg, 12)?;
        let cookie = mem.read_u64(arg)?;
        let status = mem.read_i32(arg + 8)?;
        if cookie != 0 {
            mem.ptr(cookie, HALT_COOKIE_SIZE)?;
        }
        if let Some(ring) = &self.ring {
            ring.flush()?;
        }
        Ok(Flow::Halt(status))
    }
}
