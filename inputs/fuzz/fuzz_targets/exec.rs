//! builder's ASN.1 exec record: decoding untrusted uploads, and the encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_inputs::exec::{Exec, validate_output_path};

fuzz_target!(|data: &[u8]| {
    if let Ok(exec) = Exec::from_der(data) {
        for output in &exec.outputs {
            let _ = validate_output_path(&output.path);
        }
        // Whatever decodes re-encodes, and decodes to the same value (the bytes may differ:
        // UTCTime becomes GeneralizedTime, legacy files are dropped).
        if let Ok(der) = exec.to_der() {
            assert_eq!(Exec::from_der(&der).as_ref(), Ok(&exec));
        }
    }
});
