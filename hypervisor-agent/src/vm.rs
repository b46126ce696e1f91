//! KVM virtual machine setup (ABI B6–B8, B11): memory sizing, the memory slot, GDT and identity
//! page tables, initial CPU state, CPUID, TSC frequency and the boot info page.

use kvm_bindings::{kvm_segment, kvm_userspace_memory_region};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use thiserror::Error;

use crate::memory::{GuestMemory, GuestView, MemoryError};

const MIB: u64 = 1 << 20;
/// Granularity of guest memory (one large page).
pub const MEM_ALIGN: u64 = 2 * MIB;
pub const MAX_MEM: u64 = 4 << 30;
pub const DEFAULT_MEM_MIB: u64 = 512;
/// The net ring (49280 bytes) rounded up to a large page.
pub const RING_RESERVATION: u64 = 2 * MIB;

const GDT_GPA: u64 = 0x1000;
const PML4_GPA: u64 = 0x2000;
const PDPT_GPA: u64 = 0x3000;
const PD_GPA: u64 = 0x4000;
const PD_PAGES: u64 = 4;
const PT0_GPA: u64 = 0x8000;
/// First guest-visible byte; below it the page tables hide the zero page, GDT and tables.
const LOW_HIDDEN: u64 = 0x10000;
pub const BOOT_INFO_GPA: u64 = 0x10000;
const BOOT_INFO_SIZE: u64 = 56;
/// Command-line area size; the line itself is at most one byte less (the NUL).
pub const CMDLINE_SIZE: usize = 8192;

const PTE_PRESENT: u64 = 1;
const PTE_WRITE: u64 = 1 << 1;
const PTE_LARGE: u64 = 1 << 7;

const GDT_CODE: u64 = 0x00AF_9900_0000_FFFF;
const GDT_DATA: u64 = 0x00CF_9300_0000_FFFF;
const CS_SELECTOR: u16 = 0x08;
const DS_SELECTOR: u16 = 0x10;
const CR0_INIT: u64 = 0x8001_0021; // PE | NE | WP | PG
const CR4_INIT: u64 = 0x620; // PAE | OSFXSR | OSXMMEXCPT
const EFER_INIT: u64 = 0x500; // LME | LMA

/// Host feature bit in boot info: the net ring is offered.
pub const HOST_FEATURE_NET_RING: u32 = 1;

/// KVM API version every stable kernel reports.
const KVM_API_VERSION: i32 = 12;
const CPUID_ENTRIES: usize = 100;

#[derive(Debug, Error)]
pub enum VmError {
    #[error("guest memory must be at least 2 MB")]
    MemoryTooSmall,
    #[error("guest memory must be at most 4096 MB")]
    MemoryTooLarge,
    #[error("cannot open /dev/kvm: {0}")]
    Open(kvm_ioctls::Error),
    #[error("unsupported KVM API version {0}")]
    ApiVersion(i32),
    #[error("KVM lacks a required capability: {0}")]
    MissingCapability(&'static str),
    #[error("{what} failed: {source}")]
    Kvm { what: &'static str, source: kvm_ioctls::Error },
    #[error("KVM_GET_TSC_KHZ: host TSC is unstable")]
    UnstableTsc,
    #[error("Guest command line too long (max={} characters)", CMDLINE_SIZE - 1)]
    CmdlineTooLong,
    #[error("boot information does not fit below the kernel")]
    BootInfoTooLarge,
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

type Result<T> = std::result::Result<T, VmError>;

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// Sizes of the guest memory mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Whole mapping and memory slot, including the ring reservation.
    pub total: u64,
    /// Guest-visible memory (boot info `mem_size`); the ring, if any, starts here.
    pub guest: u64,
    /// Set when `--mem` was not a multiple of 2 MB: the requested byte count.
    pub adjusted_from: Option<u64>,
}

/// Applies B6: round down to 2 MB, limits, plus a 2 MB ring reservation when a NIC exists.
pub fn plan_memory(mem_mib: u64, with_ring: bool) -> Result<MemoryPlan> {
    if mem_mib > MAX_MEM / MIB {
        return Err(VmError::MemoryTooLarge);
    }
    let requested = mem_mib * MIB;
    let rounded = requested & !(MEM_ALIGN - 1);
    if rounded < MEM_ALIGN {
        return Err(VmError::MemoryTooSmall);
    }
    let adjusted_from = (rounded != requested).then_some(requested);
    let total = if with_ring { (rounded + RING_RESERVATION).min(MAX_MEM) } else { rounded };
    let guest = if with_ring { total - RING_RESERVATION } else { total };
    Ok(MemoryPlan { total, guest, adjusted_from })
}

/// Writes the GDT and the identity page tables covering `total` bytes (B7).
pub fn write_low_memory(mem: &GuestView<'_>, total: u64) -> Result<()> {
    for (i, desc) in [0, GDT_CODE, GDT_DATA].into_iter().enumerate() {
        mem.write_u64(GDT_GPA + 8 * i as u64, desc)?;
    }
    mem.write_u64(PML4_GPA, PDPT_GPA | PTE_PRESENT | PTE_WRITE)?;
    for i in 0..PD_PAGES {
        mem.write_u64(PDPT_GPA + 8 * i, (PD_GPA + i * 0x1000) | PTE_PRESENT | PTE_WRITE)?;
    }
    // The PD pages are contiguous, so large page n has its entry at PD_GPA + 8n.
    mem.write_u64(PD_GPA, PT0_GPA | PTE_PRESENT | PTE_WRITE)?;
    for n in 1..total / MEM_ALIGN {
        mem.write_u64(PD_GPA + 8 * n, (n * MEM_ALIGN) | PTE_PRESENT | PTE_WRITE | PTE_LARGE)?;
    }
    for page in 0..512u64 {
        let addr = page * 0x1000;
        let entry = match addr {
            _ if addr < LOW_HIDDEN => 0,
            _ if addr < crate::elf::LOAD_BASE => addr | PTE_PRESENT,
            _ => addr | PTE_PRESENT | PTE_WRITE,
        };
        mem.write_u64(PT0_GPA + 8 * page, entry)?;
    }
    Ok(())
}

/// Contents of `struct hvt_boot_info` (B8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    pub mem_size: u64,
    pub kernel_end: u64,
    pub cpu_cycle_freq: u64,
    pub host_features: u32,
    pub net_ring: u64,
}

/// Writes boot info, the manifest copy right after it and the command line after that.
pub fn write_boot_info(mem: &GuestView<'_>, info: &BootInfo, manifest: &[u8], cmdline: &[u8]) -> Result<()> {
    if cmdline.len() >= CMDLINE_SIZE || cmdline.contains(&0) {
        return Err(VmError::CmdlineTooLong);
    }
    let mft_gpa = BOOT_INFO_GPA + BOOT_INFO_SIZE;
    let cmdline_gpa = mft_gpa + manifest.len() as u64;
    if cmdline_gpa + CMDLINE_SIZE as u64 > crate::elf::LOAD_BASE {
        return Err(VmError::BootInfoTooLarge);
    }
    let b = BOOT_INFO_GPA;
    mem.write_u64(b, info.mem_size)?;
    mem.write_u64(b + 8, info.kernel_end)?;
    mem.write_u64(b + 16, info.cpu_cycle_freq)?;
    mem.write_u64(b + 24, cmdline_gpa)?;
    mem.write_u64(b + 32, mft_gpa)?;
    mem.write_u32(b + 40, info.host_features)?;
    mem.write_u32(b + 44, 0)?;
    mem.write_u64(b + 48, info.net_ring)?;
    mem.write_bytes(mft_gpa, manifest)?;
    mem.zero(cmdline_gpa, CMDLINE_SIZE as u64)?;
    mem.write_bytes(cmdline_gpa, cmdline)?;
    Ok(())
}

/// The KVM objects of one single-vCPU guest.
#[derive(Debug)]
pub struct Vm {
    pub vcpu: VcpuFd,
    pub fd: VmFd,
    kvm: Kvm,
}

impl Vm {
    /// Opens KVM, creates the VM with `memory` as slot 0 and its one vCPU.
    pub fn new(memory: &GuestMemory) -> Result<Self> {
        let kvm = Kvm::new().map_err(VmError::Open)?;
        let version = kvm.get_api_version();
        if version != KVM_API_VERSION {
            return Err(VmError::ApiVersion(version));
        }
        for (cap, name) in [(Cap::UserMemory, "KVM_CAP_USER_MEMORY"), (Cap::GetTscKhz, "KVM_CAP_GET_TSC_KHZ")]
        {
            if !kvm.check_extension(cap) {
                return Err(VmError::MissingCapability(name));
            }
        }
        let fd = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: memory.size() as u64,
            userspace_addr: memory.host_address(),
        };
        // SAFETY: the region is our own anonymous mapping of exactly `memory_size` bytes. The
        // caller keeps `memory` alive for as long as the VM may run (the tender owns both and
        // drops the VM first).
        unsafe { fd.set_user_memory_region(region) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        let vcpu = fd.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
        Ok(Self { vcpu, fd, kvm })
    }

    /// Guest TSC frequency in Hz.
    pub fn tsc_hz(&self) -> Result<u64> {
        match self.vcpu.get_tsc_khz() {
            Ok(khz) => Ok(u64::from(khz) * 1000),
            Err(e) if e.errno() == libc::EIO => Err(VmError::UnstableTsc),
            Err(e) => Err(VmError::Kvm { what: "KVM_GET_TSC_KHZ", source: e }),
        }
    }

    /// CPUID as supported by KVM, then long-mode sregs and the entry registers (B7).
    pub fn setup_cpu(&self, entry: u64, stack_top: u64) -> Result<()> {
        let cpuid = self.supported_cpuid()?;
        self.vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;

        let mut sregs = self.vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
        let code = kvm_segment {
            base: 0,
            limit: 0xffff_ffff,
            selector: CS_SELECTOR,
            type_: 9,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 1,
            g: 1,
            ..Default::default()
        };
        let data = kvm_segment { selector: DS_SELECTOR, type_: 3, db: 1, l: 0, ..code };
        sregs.cs = code;
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.tr = kvm_segment { type_: 11, present: 1, ..Default::default() };
        sregs.ldt = kvm_segment { unusable: 1, ..Default::default() };
        sregs.gdt.base = GDT_GPA;
        sregs.gdt.limit = 3 * 8 - 1;
        sregs.idt.base = 0;
        sregs.idt.limit = 0;
        sregs.cr0 = CR0_INIT;
        sregs.cr3 = PML4_GPA;
        sregs.cr4 = CR4_INIT;
        sregs.efer = EFER_INIT;
        sregs.apic_base = 0;
        self.vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;

        let regs = kvm_bindings::kvm_regs {
            rip: entry,
            rflags: 0x2,
            rsp: stack_top - 8,
            rdi: BOOT_INFO_GPA,
            ..Default::default()
        };
        self.vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))
    }

    fn supported_cpuid(&self) -> Result<kvm_bindings::CpuId> {
        match self.kvm.get_supported_cpuid(CPUID_ENTRIES) {
            // A host with more leaves than upstream's buffer: retry with KVM's own maximum.
            Err(e) if e.errno() == libc::E2BIG => {
                self.kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            }
            other => other,
        }
        .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_plan() {
        assert_eq!(
            plan_memory(512, false).unwrap(),
            MemoryPlan { total: 512 * MIB, guest: 512 * MIB, adjusted_from: None }
        );
        assert_eq!(
            plan_memory(5, false).unwrap(),
            MemoryPlan { total: 4 * MIB, guest: 4 * MIB, adjusted_from: Some(5 * MIB) }
        );
        assert_eq!(
            plan_memory(2, true).unwrap(),
            MemoryPlan { total: 4 * MIB, guest: 2 * MIB, adjusted_from: None }
        );
        assert_eq!(
            plan_memory(4096, true).unwrap(),
            MemoryPlan { total: MAX_MEM, guest: MAX_MEM - 2 * MIB, adjusted_from: None }
        );
        assert_eq!(plan_memory(4096, false).unwrap().total, MAX_MEM);
        assert!(matches!(plan_memory(1, false), Err(VmError::MemoryTooSmall)));
        assert!(matches!(plan_memory(0, true), Err(VmError::MemoryTooSmall)));
        assert!(matches!(plan_memory(4097, false), Err(VmError::MemoryTooLarge)));
        assert!(matches!(plan_memory(u64::MAX, false), Err(VmError::MemoryTooLarge)));
    }

    #[test]
    fn page_tables_and_gdt() {
        let total = 8 * MIB;
        let mem = GuestMemory::new(total as usize).unwrap();
        let view = mem.view(0, total).unwrap();
        write_low_memory(&view, total).unwrap();
        assert_eq!(view.read_u64(GDT_GPA + 8).unwrap(), GDT_CODE);
        assert_eq!(view.read_u64(GDT_GPA + 16).unwrap(), GDT_DATA);
        assert_eq!(view.read_u64(PML4_GPA).unwrap(), 0x3003);
        assert_eq!(view.read_u64(PDPT_GPA + 24).unwrap(), 0x7003);
        assert_eq!(view.read_u64(PD_GPA).unwrap(), 0x8003);
        assert_eq!(view.read_u64(PD_GPA + 8).unwrap(), 0x20_0083);
        assert_eq!(view.read_u64(PD_GPA + 24).unwrap(), 0x60_0083);
        assert_eq!(view.read_u64(PD_GPA + 32).unwrap(), 0, "beyond memory");
        assert_eq!(view.read_u64(PT0_GPA).unwrap(), 0, "zero page hidden");
        assert_eq!(view.read_u64(PT0_GPA + 8 * 15).unwrap(), 0);
        assert_eq!(view.read_u64(PT0_GPA + 8 * 16).unwrap(), 0x10001, "boot info read-only");
        assert_eq!(view.read_u64(PT0_GPA + 8 * 255).unwrap(), 0xff001);
        assert_eq!(view.read_u64(PT0_GPA + 8 * 256).unwrap(), 0x10_0003);
        assert_eq!(view.read_u64(PT0_GPA + 8 * 511).unwrap(), 0x1f_f003);
    }

    #[test]
    fn page_tables_cover_four_gib() {
        let total = MAX_MEM;
        let mem = GuestMemory::new(total as usize).unwrap();
        let view = mem.view(0, total).unwrap();
        write_low_memory(&view, total).unwrap();
        assert_eq!(view.read_u64(PD_GPA + 8 * 2047).unwrap(), (2047 * MEM_ALIGN) | 0x83);
        assert_eq!(view.read_u64(PT0_GPA + 8 * 512).unwrap(), 0, "PT0 ends at 0x9000");
    }

    #[test]
    fn boot_info_layout() {
        let mem = GuestMemory::new(2 * MIB as usize).unwrap();
        let view = mem.view(0, 2 * MIB).unwrap();
        let info = BootInfo { mem_size: 1, kernel_end: 2, cpu_cycle_freq: 3, host_features: 1, net_ring: 4 };
        write_boot_info(&view, &info, &[9; 16], b"hello world").unwrap();
        assert_eq!(view.read_u64(BOOT_INFO_GPA + 24).unwrap(), 0x10038 + 16);
        assert_eq!(view.read_u64(BOOT_INFO_GPA + 32).unwrap(), 0x10038);
        assert_eq!(view.read_u32(BOOT_INFO_GPA + 40).unwrap(), 1);
        assert_eq!(view.read_u64(BOOT_INFO_GPA + 48).unwrap(), 4);
        assert_eq!(view.read_u32(0x10038).unwrap(), 0x0909_0909);
        let mut line = [0u8; 12];
        view.read_bytes(0x10048, &mut line).unwrap();
        assert_eq!(&line, b"hello world\0");
        assert!(write_boot_info(&view, &info, &[], &[b'a'; CMDLINE_SIZE - 1]).is_ok());
        assert!(matches!(
            write_boot_info(&view, &info, &[], &[b'a'; CMDLINE_SIZE]),
            Err(VmError::CmdlineTooLong)
        ));
    }
}
