//! Comparing two builds with 500 opam packages each (generated), as the compare page does:
//! parse both `opam-switch` files, then compare. Prints the median of several runs.
//!
//! `cargo bench -p petrel-inputs --bench compare`

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use petrel_inputs::compare::{BuildInputs, compare};
use petrel_inputs::input_id::InputFiles;

const PACKAGES: usize = 500;
const RUNS: usize = 11;

/// A switch export of `PACKAGES` packages, each depending on a few earlier ones. `variant` 1
/// bumps every 10th version, edits every 10th (offset 5) opam file, and swaps a few packages.
fn switch(variant: u32) -> String {
    let name = |i: usize| {
        if variant == 1 && i % 100 == 7 { format!("pkg-new-{i:03}") } else { format!("pkg-{i:03}") }
    };
    let version =
        |i: usize| if variant == 1 && i.is_multiple_of(10) { format!("1.{i}.1") } else { format!("1.{i}.0") };
    let mut out = String::from("opam-version: \"2.0\"\ncompiler: [\"ocaml-base-compiler.4.14.1\"]\n");
    let _ = writeln!(out, "roots: [\"{}.{}\"]\ninstalled: [", name(PACKAGES - 1), version(PACKAGES - 1));
    for i in 0..PACKAGES {
        let _ = writeln!(out, "  \"{}.{}\"", name(i), version(i));
    }
    out.push_str("]\n");
    for i in 0..PACKAGES {
        let _ = writeln!(
            out,
            "package \"{}\" {{\n  opam-version: \"2.0\"\n  version: \"{}\"",
            name(i),
            version(i)
        );
        let _ = writeln!(out, "  synopsis: \"Package number {i}\"\n  maintainer: \"someone@example.org\"");
        let _ = writeln!(out, "  license: \"ISC\"\n  homepage: \"https://example.org/{}\"", name(i));
        out.push_str("  depends: [\n    \"ocaml\" {>= \"4.08.0\"}\n    \"dune\" {>= \"3.0\"}\n");
        for d in [i / 2, i / 3, i.saturating_sub(1)] {
            if d < i {
                let _ = writeln!(out, "    \"{}\" {{>= \"{}\" & < \"2.0\"}}", name(d), version(d));
            }
        }
        out.push_str("    \"alcotest\" {with-test}\n  ]\n");
        let flag = if variant == 1 && i % 10 == 5 { " \"--release\"" } else { "" };
        let _ = writeln!(
            out,
            "  build: [\n    [\"dune\" \"subst\"] {{dev}}\n    [\"dune\" \"build\" \"-p\" name \"-j\" jobs{flag}]\n  ]"
        );
        let _ = writeln!(
            out,
            "  url {{\n    src: \"https://example.org/releases/{0}-{1}.tbz\"\n    checksum: [\n      \"sha256={2:064x}\"\n    ]\n  }}\n}}",
            name(i),
            version(i),
            i * 7919
        );
    }
    out
}

fn main() {
    let (left, right) = (switch(0), switch(1));
    let env = b"HOME=/home/builder\nPATH=/bin:/usr/bin\nOS=linux";
    let pkgs = b"libc6=2.36-9+deb12u4\ngcc-12=12.2.0-14";
    let files = |switch: &str| -> BuildInputs {
        BuildInputs::from_files(
            &InputFiles {
                opam_switch: Some(switch.as_bytes()),
                build_environment: Some(env),
                system_packages: Some(pkgs),
                cargo_lock: None,
            },
            Vec::new(),
        )
    };

    let mut parse = Vec::new();
    let mut diff = Vec::new();
    let mut summary = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let (l, r) = (files(black_box(&left)), files(black_box(&right)));
        parse.push(start.elapsed());
        let start = Instant::now();
        let c = compare(&l, &r);
        diff.push(start.elapsed());
        summary = Some(black_box(c).summary);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (p, d) = (median(&mut parse), median(&mut diff));
    let s = summary.expect("ran");
    println!(
        "compare {PACKAGES} vs {PACKAGES} opam packages ({} + {} bytes): parse both {:.1} ms, compare {:.1} ms, \
         total {:.1} ms (median of {RUNS})",
        left.len(),
        right.len(),
        p.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e3,
        (p + d).as_secs_f64() * 1e3,
    );
    petrel_wire::perf::record(
        "compare",
        &format!("compare two builds of {PACKAGES} opam packages (parse + diff)"),
        &format!("{:.1} ms", (p + d).as_secs_f64() * 1e3),
        "",
    );
    println!(
        "  found: {} version changes, {} removed, {} added, {} opam file diffs",
        s.opam_packages.changed, s.opam_packages.only_left, s.opam_packages.only_right, s.opam_files
    );
}
