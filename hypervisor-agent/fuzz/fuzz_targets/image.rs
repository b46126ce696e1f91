//! Whole-image parsing: ELF header, program headers, notes and manifest, then the
//! memory-dependent checks the tender applies before loading.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_hypervisor::elf::Image;
use petrel_hypervisor::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let info = petrel_hypervisor::inspect(data);
    let Ok(image) = Image::parse(data) else {
        assert!(info.is_err());
        return;
    };
    assert!(info.is_ok());
    for mem in [2 << 20, 512 << 20, 4 << 30] {
        if let Ok(kernel_end) = image.check_fits(mem) {
            assert!(kernel_end <= mem);
            for seg in &image.loads {
                assert_eq!(image.contents(seg).len() as u64, seg.filesz);
                let (start, len) = seg.pages();
                assert!(start + len <= mem);
            }
        }
    }
    let bytes = image.manifest.to_bytes();
    assert_eq!(Manifest::parse(&bytes).as_ref(), Ok(&image.manifest));
});
