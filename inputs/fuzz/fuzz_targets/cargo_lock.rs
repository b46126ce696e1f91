//! `Cargo.lock` parsing of untrusted uploads, and the graph and comparisons built on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_inputs::cargo_lock::parse_cargo_lock;
use petrel_inputs::compare::{BuildInputs, compare};
use petrel_inputs::graph::cargo_dependency_graph;

fuzz_target!(|data: &[u8]| {
    if let Ok(lock) = parse_cargo_lock(data) {
        let _ = cargo_dependency_graph(&lock, None);
        let inputs = BuildInputs { cargo_lock: Some(lock), ..BuildInputs::default() };
        assert_eq!(compare(&inputs, &inputs).summary.total, 0);
        // Against a build with an empty lock: everything is one-sided, and mirrors exactly.
        let empty =
            BuildInputs { cargo_lock: parse_cargo_lock(b"version = 4\n").ok(), ..BuildInputs::default() };
        assert_eq!(compare(&empty, &inputs), compare(&inputs, &empty).reversed());
    }
});
