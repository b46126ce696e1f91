//! Benchmark figures for the performance report (`scripts/perf-report.sh`): each benchmark
//! prints its own table and also hands its headline figures here, which appends them to the
//! file `PETREL_PERF_REPORT` names (nothing happens without it). Not on the wire; it lives here
//! because every crate with a benchmark depends on this one.

use std::io::Write;

/// Records one figure: the benchmark, what was measured, the figure with its unit, and the
/// goal it is held against (empty when there is none).
pub fn record(bench: &str, what: &str, figure: &str, goal: &str) {
    let Some(path) = std::env::var_os("PETREL_PERF_REPORT") else { return };
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let line = format!("{}\t{}\t{}\t{}\n", clean(bench), clean(what), clean(figure), clean(goal));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("perf report {}: {e}", std::path::Path::new(&path).display());
    }
}
