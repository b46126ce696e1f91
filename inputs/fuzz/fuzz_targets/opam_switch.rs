//! opam's file format and `opam-switch` exports: parsing untrusted uploads, the canonical
//! rendering round trip, and everything computed from a parsed export (graph, self-comparison).
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_inputs::compare::{BuildInputs, compare};
use petrel_inputs::graph::opam_dependency_graph;
use petrel_inputs::opam::{parse_opam_file, parse_switch_export, render_file};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(file) = parse_opam_file(text)
    {
        // The canonical rendering parses back to the same tree.
        let rendered = render_file(&file);
        assert_eq!(parse_opam_file(&rendered).as_ref(), Ok(&file), "rendered:\n{rendered}");
    }
    if let Ok(export) = parse_switch_export(data) {
        for package in export.packages.values() {
            let _ = package.duniverse_dirs();
            let _ = package.orb_dependencies();
        }
        let _ = opam_dependency_graph(&export, None);
        // A build compared with itself has no differences.
        let inputs = BuildInputs { opam_switch: Some(export), ..BuildInputs::default() };
        assert_eq!(compare(&inputs, &inputs).summary.total, 0);
    }
});
