//! The tender proper: attaching devices, building the guest (B5 start-up order) and the vCPU
//! run loop.

use std::collections::BTreeSet;
use std::sync::Arc;

use kvm_ioctls::VcpuExit;
use thiserror::Error;

use crate::cli::{DeviceSpec, NetSource};
use crate::elf::{Image, PF_R, PF_W, PF_X};
use crate::hypercall::block::{BlockDevice, BlockError};
use crate::hypercall::net::{NetError, Tap, random_mac};
use crate::hypercall::ring::Ring;
use crate::hypercall::{Device, Devices, Flow, HypercallError, Hypercalls};
use crate::manifest::{Attachment, Manifest};
use crate::memory::{GuestMemory, MemoryError};
use crate::vm::{self, BootInfo, HOST_FEATURE_NET_RING, MemoryPlan, Vm, VmError};

#[derive(Debug, Error)]
pub enum TenderError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("--net @{0} is given for more than one device")]
    DuplicateFd(i32),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("{0}")]
    Load(#[from] crate::elf::ElfError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("cannot set up poll: {0}")]
    Poll(std::io::Error),
    #[error(transparent)]
    Hypercall(#[from] HypercallError),
    #[error("KVM_RUN failed: {0}")]
    Run(kvm_ioctls::Error),
    #[error("host/guest translation fault{0}")]
    TranslationFault(String),
    #[error("guest triple fault (KVM_EXIT_SHUTDOWN)")]
    Shutdown,
    #[error("KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {0:#x}")]
    FailEntry(u64),
    #[error("KVM_EXIT_INTERNAL_ERROR (suberror {0})")]
    InternalError(u32),
    #[error("unexpected KVM exit: {0}")]
    UnexpectedExit(String),
}

/// Opens every device (B5: during option processing, before KVM) and fills the manifest.
/// Inherited tap descriptors are adopted first, so none of them can be confused with a
/// descriptor the tender opened itself.
pub fn attach(specs: &[DeviceSpec], manifest: &mut Manifest) -> Result<Devices, TenderError> {
    let mut devices = Devices::default();
    let mut seen_fds = BTreeSet::new();
    for spec in specs {
        if let DeviceSpec::Net { source: NetSource::Fd(fd), .. } = spec
            && !seen_fds.insert(*fd)
        {
            return Err(TenderError::DuplicateFd(*fd));
        }
    }
    let (inherited, own): (Vec<_>, Vec<_>) =
        specs.iter().partition(|s| matches!(s, DeviceSpec::Net { source: NetSource::Fd(_), .. }));
    for spec in inherited.into_iter().chain(own) {
        let (handle, device, attachment) = match spec {
            DeviceSpec::Block { handle, path, sector_size, .. } => {
                let dev = BlockDevice::open(path, *sector_size)?;
                let att = Attachment::Block { capacity: dev.capacity, block_size: dev.block_size };
                (*handle, Device::Block(dev), att)
            }
            DeviceSpec::Net { handle, source, mac, .. } => {
                let tap = Tap::open(source)?;
                let mac = match mac {
                    Some(mac) => *mac,
                    None => random_mac()?,
                };
                let att = Attachment::Net { mac, mtu: tap.mtu };
                (*handle, Device::Net(Arc::new(tap)), att)
            }
        };
        devices.insert(handle, device);
        // Handles come from this manifest (cli::resolve), so the entry exists.
        if let Some(index) = handle.checked_sub(1).and_then(|i| usize::try_from(i).ok())
            && let Some(entry) = manifest.devices.get_mut(index)
        {
            entry.attachment = Some(attachment);
        }
    }
    Ok(devices)
}

/// A guest ready to run.
#[derive(Debug)]
pub struct Tender {
    hypercalls: Hypercalls,
    // Declared before `memory` so the VM (and its memory slot) goes away first.
    vm: Vm,
    memory: Arc<GuestMemory>,
    guest_size: u64,
}

impl Tender {
    /// Builds the VM for `image` with attached `devices` (B5 order from memory sizing on).
    pub fn new(
        image: &Image<'_>,
        manifest: &Manifest,
        devices: Devices,
        plan: MemoryPlan,
        cmdline: &[u8],
    ) -> Result<Self, TenderError> {
        let mut memory = GuestMemory::new(plan.total as usize)?;
        let vm = Vm::new(&memory)?;
        let kernel_end = image.check_fits(plan.guest)?;
        {
            let guest = memory.view(0, plan.guest)?;
            for seg in &image.loads {
                guest.write_bytes(seg.vaddr, image.contents(seg))?;
                guest.zero(seg.vaddr + seg.filesz, seg.memsz - seg.filesz)?;
            }
        }
        // After all copies: segments may share a page, and the host must not write to a
        // page it already made read-only.
        for seg in &image.loads {
            let (start, len) = seg.pages();
            let mut prot = libc::PROT_NONE;
            if seg.flags & (PF_R | PF_X) != 0 {
                prot |= libc::PROT_READ;
            }
            if seg.flags & PF_W != 0 {
                prot |= libc::PROT_WRITE;
            }
            memory.protect(start, len, prot)?;
        }
        let memory = Arc::new(memory);

        // The ring is an optimisation: if it cannot start the guest uses the NET_* hypercalls,
        // so failures fall back silently.
        let ring = if devices.has_net() {
            Ring::start(Arc::clone(&memory), plan.guest, devices.taps()).ok()
        } else {
            None
        };

        vm::write_low_memory(&memory.view(0, plan.total)?, plan.total)?;
        vm.setup_cpu(image.entry, plan.guest)?;
        let info = BootInfo {
            mem_size: plan.guest,
            kernel_end,
            cpu_cycle_freq: vm.tsc_hz()?,
            host_features: if ring.is_some() { HOST_FEATURE_NET_RING } else { 0 },
            net_ring: ring.as_ref().map_or(0, Ring::gpa),
        };
        let hypercalls = Hypercalls::new(devices, ring).map_err(TenderError::Poll)?;
        vm::write_boot_info(&memory.view(0, plan.guest)?, &info, &manifest.to_bytes(), cmdline)?;
        Ok(Self { hypercalls, vm, memory, guest_size: plan.guest })
    }

    /// Whether the net ring is offered to the guest.
    pub fn ring_offered(&self) -> bool {
        self.hypercalls.has_ring()
    }

    /// Runs the guest until it halts; returns its exit status.
    pub fn run(&mut self) -> Result<i32, TenderError> {
        let guest = self.memory.view(0, self.guest_size)?;
        loop {
            let exit = match self.vm.vcpu.run() {
                Ok(exit) => exit,
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
                Err(e) if e.errno() == libc::EFAULT => {
                    return Err(TenderError::TranslationFault(String::new()));
                }
                Err(e) => return Err(TenderError::Run(e)),
            };
            match exit {
                VcpuExit::IoOut(port, data) => match self.hypercalls.handle(&guest, port, data)? {
                    Flow::Continue => {}
                    Flow::Halt(status) => return Ok(status),
                },
                VcpuExit::IoIn(port, _) => return Err(HypercallError::InvalidPort { port }.into()),
                // PVM reports a guest write to host-read-only memory (text) this way.
                VcpuExit::MmioWrite(gpa, _) | VcpuExit::MmioRead(gpa, _) => {
                    return Err(TenderError::TranslationFault(format!(" (MMIO exit at {gpa:#x})")));
                }
                VcpuExit::Shutdown => return Err(TenderError::Shutdown),
                VcpuExit::FailEntry(reason, _) => return Err(TenderError::FailEntry(reason)),
                VcpuExit::InternalError => {
                    // SAFETY: KVM_EXIT_INTERNAL_ERROR means the `internal` union member is valid.
                    let suberror = unsafe { self.vm.vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                    return Err(TenderError::InternalError(suberror));
                }
                other => return Err(TenderError::UnexpectedExit(format!("{other:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::elf::testing::{Load, abi_note, image, mft_note};
    use crate::elf::{LOAD_BASE, PAGE_SIZE};

    const DATA: u64 = LOAD_BASE + PAGE_SIZE;

    /// `mov edx, port; mov eax, arg; out dx, eax` for each call.
    fn calls(list: &[(u16, u32)]) -> Vec<u8> {
        let mut code = Vec::new();
        for &(port, arg) in list {
            code.push(0xba);
            code.extend_from_slice(&u32::from(port).to_le_bytes());
            code.push(0xb8);
            code.extend_from_slice(&arg.to_le_bytes());
            code.push(0xef);
        }
        code
    }

    fn data_segment(data: Vec<u8>) -> Load {
        let memsz = data.len() as u64;
        Load { vaddr: DATA, flags: PF_R | PF_W, data, memsz, align: PAGE_SIZE }
    }

    /// Runs `code` with a data page at 0x101000 and returns the exit status or error.
    fn run_guest(code: &[u8], data: Vec<u8>) -> Option<Result<i32, TenderError>> {
        if !std::path::Path::new("/dev/kvm").exists() {
            eprintln!("no /dev/kvm: skipping");
            return None;
        }
        let notes = [abi_note(1, 2), mft_note(&crate::manifest::testing::build(&[]))];
        let bytes = image(LOAD_BASE, &[Load::text(LOAD_BASE, code), data_segment(data)], &notes);
        let img = Image::parse(&bytes).unwrap();
        let plan = vm::plan_memory(4, false).unwrap();
        let mut tender = Tender::new(&img, &img.manifest, Devices::default(), plan, b"").unwrap();
        assert!(!tender.ring_offered());
        Some(tender.run())
    }

    fn halt_data(status: i32) -> Vec<u8> {
        let mut d = vec![0u8; 16];
        d[8..12].copy_from_slice(&status.to_le_bytes());
        d
    }

    #[test]
    fn halts_with_guest_status() {
        let code = calls(&[(0x508, DATA as u32)]);
        if let Some(result) = run_guest(&code, halt_data(42)) {
            assert_eq!(result.unwrap(), 42);
        }
    }

    #[test]
    fn walltime_and_puts_then_halt() {
        // 0x00: halt args; 0x10: walltime out; 0x20: puts args; 0x30: text.
        let mut d = halt_data(7);
        d.resize(0x40, 0);
        d[0x20..0x28].copy_from_slice(&(DATA + 0x30).to_le_bytes());
        d[0x28..0x30].copy_from_slice(&0u64.to_le_bytes());
        let code =
            calls(&[(0x501, (DATA + 0x10) as u32), (0x502, (DATA + 0x20) as u32), (0x508, DATA as u32)]);
        if let Some(result) = run_guest(&code, d) {
            assert_eq!(result.unwrap(), 7);
        }
    }

    #[test]
    fn invalid_port_is_fatal() {
        for port in [0x500u16, 0x509, 0x600] {
            let code = calls(&[(port, DATA as u32)]);
            if let Some(result) = run_guest(&code, halt_data(0)) {
                let rejected = match result {
                    Err(TenderError::Hypercall(HypercallError::InvalidPort { port: p })) => p == port,
                    _ => false,
                };
                assert!(rejected, "port {port:#x}");
            }
        }
        // A one-byte OUT to a valid port: `mov dx, 0x508; out dx, al`.
        let code = [0x66, 0xba, 0x08, 0x05, 0xee];
        if let Some(result) = run_guest(&code, halt_data(0)) {
            assert!(matches!(result, Err(TenderError::Hypercall(HypercallError::InvalidPort { .. }))));
        }
    }

    #[test]
    fn bad_guest_pointers_are_fatal() {
        // Argument struct beyond guest memory.
        let code = calls(&[(0x508, 0xffff_fff0)]);
        if let Some(result) = run_guest(&code, halt_data(0)) {
            assert!(matches!(result, Err(TenderError::Hypercall(HypercallError::Memory(_)))));
        }
        // PUTS whose buffer length wraps around.
        let mut d = vec![0u8; 16];
        d[0..8].copy_from_slice(&DATA.to_le_bytes());
        d[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        if let Some(result) = run_guest(&calls(&[(0x502, DATA as u32)]), d) {
            assert!(matches!(result, Err(TenderError::Hypercall(HypercallError::Memory(_)))));
        }
        // HALT with a cookie too close to the end of memory.
        let mut d = halt_data(0);
        d[0..8].copy_from_slice(&(4 * 1024 * 1024 - 8u64).to_le_bytes());
        if let Some(result) = run_guest(&calls(&[(0x508, DATA as u32)]), d) {
            assert!(matches!(result, Err(TenderError::Hypercall(HypercallError::Memory(_)))));
        }
    }

    #[test]
    fn results_into_host_read_only_text_are_refused() {
        // WALLTIME asked to store its result over the code itself.
        let code = calls(&[(0x501, LOAD_BASE as u32)]);
        if let Some(result) = run_guest(&code, halt_data(0)) {
            assert!(
                matches!(
                    result,
                    Err(TenderError::Hypercall(HypercallError::Memory(MemoryError::ReadOnly { .. })))
                ),
                "{result:?}"
            );
        }
    }

    #[test]
    fn block_hypercall_without_device_returns_einval() {
        // 0x00 halt, 0x10 block read args (handle 1: none attached), then halt with ret.
        let mut d = halt_data(0);
        d.resize(0x40, 0);
        d[0x10..0x18].copy_from_slice(&1u64.to_le_bytes());
        // mov eax, [DATA+0x30] (ret); mov [DATA+8], eax; then halt.
        let mut code = calls(&[(0x505, (DATA + 0x10) as u32)]);
        code.extend_from_slice(&[0x8b, 0x04, 0x25]);
        code.extend_from_slice(&((DATA + 0x30) as u32).to_le_bytes());
        code.extend_from_slice(&[0x89, 0x04, 0x25]);
        code.extend_from_slice(&((DATA + 8) as u32).to_le_bytes());
        code.extend(calls(&[(0x508, DATA as u32)]));
        if let Some(result) = run_guest(&code, d) {
            assert_eq!(result.unwrap(), crate::hypercall::R_EINVAL);
        }
    }

    #[test]
    fn write_to_text_is_a_translation_fault() {
        // mov dword [0x100000], eax
        let mut code = vec![0x89, 0x04, 0x25];
        code.extend_from_slice(&(LOAD_BASE as u32).to_le_bytes());
        if let Some(result) = run_guest(&code, halt_data(0)) {
            assert!(matches!(result, Err(TenderError::TranslationFault(_))), "{result:?}");
        }
    }

    /// `mov dword [addr], value`
    fn store32(code: &mut Vec<u8>, addr: u64, value: u32) {
        code.extend_from_slice(&[0xc7, 0x04, 0x25]);
        code.extend_from_slice(&(addr as u32).to_le_bytes());
        code.extend_from_slice(&value.to_le_bytes());
    }

    /// A guest that queues one frame write and one read on the net ring, kicks port 0x600,
    /// spins until the read is committed and halts with the committed length.
    #[test]
    fn net_ring_write_and_read() {
        use std::os::fd::{FromRawFd, OwnedFd};
        if !std::path::Path::new("/dev/kvm").exists() {
            return;
        }
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK, 0, fds.as_mut_ptr())
        };
        assert_eq!(rc, 0);
        // SAFETY: fresh descriptors owned by nobody else.
        let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: `ours` is open and the buffer is valid for 7 bytes.
        let written = unsafe { libc::write(ours.as_raw_fd(), b"world!!".as_ptr().cast(), 7) };
        assert_eq!(written, 7);

        let plan = vm::plan_memory(4, true).unwrap();
        let ring = plan.guest;
        let mut code = Vec::new();
        store32(&mut code, ring + 128, 1); // entry 0: write
        store32(&mut code, ring + 128 + 4, 1);
        store32(&mut code, ring + 128 + 8, (DATA + 0x100) as u32);
        store32(&mut code, ring + 128 + 16, 5);
        store32(&mut code, ring + 160, 2); // entry 1: read
        store32(&mut code, ring + 160 + 4, 1);
        store32(&mut code, ring + 160 + 8, (DATA + 0x200) as u32);
        store32(&mut code, ring + 160 + 16, 64);
        store32(&mut code, ring + 160 + 20, 9);
        code.extend_from_slice(&[0x0f, 0xae, 0xf0]); // mfence
        store32(&mut code, ring, 2); // ent_tail
        code.extend_from_slice(&[0x0f, 0xae, 0xf0]);
        code.extend(calls(&[(0x600, 0)]));
        // spin: pause; mov eax, [com_tail]; cmp eax, 1; jne spin
        code.extend_from_slice(&[0xf3, 0x90, 0x8b, 0x04, 0x25]);
        code.extend_from_slice(&((ring + 68) as u32).to_le_bytes());
        code.extend_from_slice(&[0x83, 0xf8, 0x01, 0x75, 0xf2]);
        // halt status = committed len; ids must match too (checked on the host side).
        code.extend_from_slice(&[0x8b, 0x04, 0x25]);
        code.extend_from_slice(&((ring + 32896 + 8) as u32).to_le_bytes());
        code.extend_from_slice(&[0x89, 0x04, 0x25]);
        code.extend_from_slice(&((DATA + 8) as u32).to_le_bytes());
        code.extend(calls(&[(0x508, DATA as u32)]));

        let mut data = halt_data(0);
        data.resize(0x100, 0);
        data.extend_from_slice(b"hello");
        let notes = [abi_note(1, 2), mft_note(&crate::manifest::testing::build(&[("net0", 2)]))];
        let bytes = image(LOAD_BASE, &[Load::text(LOAD_BASE, &code), data_segment(data)], &notes);
        let img = Image::parse(&bytes).unwrap();
        let mut devices = Devices::default();
        devices.insert(1, Device::Net(Arc::new(Tap::for_test(theirs))));
        let mut tender = Tender::new(&img, &img.manifest, devices, plan, b"").unwrap();
        assert!(tender.ring_offered());
        assert_eq!(tender.run().unwrap(), 7);

        let mem = tender.memory.view(0, plan.total).unwrap();
        let mut frame = [0u8; 7];
        mem.read_bytes(DATA + 0x200, &mut frame).unwrap();
        assert_eq!(&frame, b"world!!");
        assert_eq!(mem.read_u32(ring + 32896).unwrap(), 9, "commit id");
        assert_eq!(mem.read_i32(ring + 32896 + 4).unwrap(), crate::hypercall::R_OK);
        assert_eq!(mem.read_u32(ring + 64).unwrap(), 2, "ent_head");
        let mut buf = [0u8; 16];
        // SAFETY: `ours` is open and `buf` is writable.
        let n = unsafe { libc::read(ours.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..n as usize], b"hello");
    }

    #[test]
    fn triple_fault_is_fatal() {
        // ud2 with no IDT: #UD → #DF → triple fault.
        if let Some(result) = run_guest(&[0x0f, 0x0b], halt_data(0)) {
            assert!(matches!(result, Err(TenderError::Shutdown)), "{result:?}");
        }
    }
}
