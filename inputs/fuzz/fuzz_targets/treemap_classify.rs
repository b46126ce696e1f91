//! The treemap's symbol classifier on arbitrary names (symbol tables are untrusted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_inputs::treemap::{SymbolClass, classify_symbol};

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    match classify_symbol(&name) {
        SymbolClass::OCaml { library, module, value } => {
            assert!(!library.is_empty() && !module.is_empty() && !value.is_empty());
        }
        SymbolClass::Rust { krate, modules, .. } => {
            assert!(modules.len() <= 8, "{krate}: {} modules", modules.len());
        }
        SymbolClass::OCamlRuntime { .. } | SymbolClass::Other { .. } => {}
    }
});
