//! Manifest payload parsing and the round trip through the guest-visible copy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_hypervisor::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::parse(data) {
        // Host-private and padding bytes are not preserved, so compare parsed values.
        let bytes = manifest.to_bytes();
        assert_eq!(bytes.len(), data.len());
        assert_eq!(Manifest::parse(&bytes), Ok(manifest));
    }
});
