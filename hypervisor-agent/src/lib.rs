//! Petrel's KVM side: `petrel-hvt`, a tender compatible with solo5-hvt (ABI version 2) that
//! runs unmodified solo5 hvt unikernels, and [`inspect`] for reading an image's ABI and device
//! manifest without running it. With the `agent` feature (default), [`agent`] is
//! `petrel-agent`, which runs the unikernels a Petrel API assigns to this host.
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "agent")]
pub mod agent;
pub mod cli;
pub mod elf;
pub mod hypercall;
pub mod manifest;
pub mod memory;
mod netif;
pub mod sandbox;
pub mod signals;
pub mod tender;
pub mod vm;

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

pub use elf::ElfError;
pub use manifest::DeviceType;

/// What an orchestrator needs to know about an image before deploying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// solo5 ABI target (1 = hvt) and version (2).
    pub abi_target: u32,
    pub abi_version: u32,
    pub entry: u64,
    /// End of the highest PT_LOAD including bss: the guest needs more memory than this.
    pub memory_end: u64,
    /// Devices in manifest order; each must be attached when running the image.
    pub devices: Vec<DeviceInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub kind: DeviceType,
}

/// Validates an hvt image like the tender does before running it and describes it.
pub fn inspect(image: &[u8]) -> Result<ImageInfo, ElfError> {
    let img = elf::Image::parse(image)?;
    Ok(ImageInfo {
        abi_target: img.abi_target,
        abi_version: img.abi_version,
        entry: img.entry,
        memory_end: img.memory_end(),
        devices: img
            .manifest
            .devices
            .iter()
            .map(|d| DeviceInfo { name: d.name.clone(), kind: d.kind })
            .collect(),
    })
}

/// The whole `petrel-hvt` command; returns the process exit status.
pub fn run_command(args: impl IntoIterator<Item = OsString>) -> i32 {
    let opts = match cli::parse(args) {
        Ok(cli::Command::Run(opts)) => opts,
        Ok(cli::Command::Help) => {
            eprintln!("{}", cli::USAGE);
            return 1;
        }
        Ok(cli::Command::Version) => {
            eprintln!("petrel-hvt tender, version {}", env!("CARGO_PKG_VERSION"));
            eprintln!("ABI version {}", elf::ABI_VERSION);
            return 0;
        }
        Err(e) => {
            eprintln!("petrel-hvt: {e}\n{}", cli::USAGE);
            return 1;
        }
    };
    match run(&opts) {
        Ok(status) => status,
        Err(message) => {
            eprintln!("petrel-hvt: {message}");
            1
        }
    }
}

fn run(opts: &cli::Options) -> Result<i32, String> {
    let kernel = opts.kernel.display();
    let bytes = std::fs::read(&opts.kernel).map_err(|e| format!("{kernel}: {e}"))?;
    let image = elf::Image::parse(&bytes).map_err(|e| format!("{kernel}: {e}"))?;
    let mut manifest = image.manifest.clone();
    let specs = cli::resolve(opts, &manifest).map_err(|e| e.to_string())?;
    let devices = tender::attach(&specs, &mut manifest).map_err(|e| e.to_string())?;
    signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let plan = vm::plan_memory(opts.mem_mib.unwrap_or(vm::DEFAULT_MEM_MIB), devices.has_net())
        .map_err(|e| e.to_string())?;
    if plan.adjusted_from.is_some() {
        // The ring reservation comes on top, so the guest size is the rounded request.
        eprintln!("petrel-hvt: adjusting memory to {} bytes", plan.guest);
    }
    let cmdline = opts.kernel_args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>().join(&b' ');
    let tender = tender::Tender::new(&image, &manifest, devices, plan, &cmdline).map_err(|e| match e {
        // The image does not fit in the memory given: named like the parse errors above.
        tender::TenderError::Load(e) => format!("{kernel}: {e}"),
        e => e.to_string(),
    })?;
    // Free the big setup buffers now: once sandboxed, freeing them could need munmap.
    drop(image);
    drop((bytes, manifest, cmdline, specs));
    // Never dropped: the process exits after the guest, and closing descriptors or unmapping
    // guest memory is neither needed nor allowed by the sandbox.
    let mut tender = std::mem::ManuallyDrop::new(tender);
    sandbox::apply().map_err(|e| e.to_string())?;
    tender.run().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::testing::hvt_image;

    #[test]
    fn inspect_reports_abi_and_devices() {
        let info = inspect(&hvt_image(&[0xf4], &[("storage", 1), ("service0", 2)])).unwrap();
        assert_eq!((info.abi_target, info.abi_version), (1, 2));
        assert_eq!(info.entry, elf::LOAD_BASE);
        assert_eq!(info.memory_end, elf::LOAD_BASE + elf::PAGE_SIZE);
        assert_eq!(
            info.devices,
            vec![
                DeviceInfo { name: "storage".into(), kind: DeviceType::Block },
                DeviceInfo { name: "service0".into(), kind: DeviceType::Net },
            ]
        );
        assert!(matches!(inspect(b"\x7fELF"), Err(ElfError::TooSmall(4))));
    }
}
