//! petrel-hvt start-up, hypercall and memory benchmark.
//!
//!     cargo bench -p petrel-hypervisor --bench tender
//!
//! Runs Petrel's own test guests (guests/, built with make) and prints a small
//! table. On this machine KVM is the software PVM (every guest instruction is
//! emulated), so absolute numbers are dominated by emulation; compare runs on
//! the same machine only.
//!
//! The tender measured is the one to deploy: `petrel-hvt` built with the `tender`
//! profile (root Cargo.toml: release + panic=abort, fat LTO, one codegen unit, no
//! debug info), which this bench builds first into the same target directory
//! (`cargo build -p petrel-hypervisor --bin petrel-hvt --profile tender` gives
//! target/tender/petrel-hvt). PETREL_BENCH_TENDER=/path/to/petrel-hvt measures
//! another build instead.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUNS: usize = 20;

static TENDER: OnceLock<PathBuf> = OnceLock::new();

fn tender() -> &'static Path {
    TENDER.get_or_init(tender_binary)
}

/// Builds `petrel-hvt` with the `tender` profile (unless PETREL_BENCH_TENDER names a binary)
/// and returns its path. Not CARGO_BIN_EXE_petrel-hvt: that one has the bench profile.
fn tender_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PETREL_BENCH_TENDER") {
        return PathBuf::from(path);
    }
    // CARGO_TARGET_TMPDIR is <target dir>/tmp whatever the profile or --target.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "petrel-hypervisor", "--bin", "petrel-hvt", "--profile", "tender"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --profile tender failed");
    target_dir.join("tender").join("petrel-hvt")
}

fn build_guests() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests-bench");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests");
    let o = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&src)
        .arg(format!("OUT={}", out.display()))
        .output()
        .expect("run make");
    assert!(o.status.success(), "guest build failed: {}", String::from_utf8_lossy(&o.stderr));
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

struct Stats {
    median: f64,
    p90: f64,
    min: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Stats { median: percentile(&v, 0.5), p90: percentile(&v, 0.9), min: v[0] }
}

fn row(what: &str, s: &Stats, unit: &str) {
    petrel_wire::perf::record(
        "tender",
        what,
        &format!("median {:.1} {unit}, p90 {:.1} {unit}", s.median, s.p90),
        "",
    );
    println!("| {what:<46} | {:>10.1} | {:>10.1} | {:>10.1} | {unit:<4} |", s.median, s.p90, s.min);
}

/// Runs the tender to completion, returns (wall time, stdout).
fn run(args: &[&str]) -> (Duration, String) {
    let start = Instant::now();
    let o = Command::new(tender()).args(args).stdin(Stdio::null()).output().unwrap();
    let d = start.elapsed();
    assert!(
        o.status.success(),
        "{args:?}: {:?}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (d, String::from_utf8_lossy(&o.stdout).into_owned())
}

fn field(out: &str, key: &str) -> u64 {
    let i = out.find(key).unwrap_or_else(|| panic!("no {key} in {out:?}")) + key.len();
    out[i..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Memory of a running tender in kB: /proc/PID/status counters, plus Rss and Pss
/// summed from /proc/PID/smaps over all mappings and over guest memory alone.
struct Memory {
    vm_rss: u64,
    rss_anon: u64,
    rss_file: u64,
    rss_shmem: u64,
    /// Guest pages the guest (or the tender for it) touched: the shared anonymous
    /// mapping shows as `/dev/zero (deleted)`, split into several VMAs by mprotect.
    /// Counted in RssShmem.
    guest_rss: u64,
    guest_pss: u64,
    pss: u64,
}

fn memory_kb(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
            .unwrap_or(0)
    };
    let mut m = Memory {
        vm_rss: get("VmRSS:"),
        rss_anon: get("RssAnon:"),
        rss_file: get("RssFile:"),
        rss_shmem: get("RssShmem:"),
        guest_rss: 0,
        guest_pss: 0,
        pss: 0,
    };
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut in_guest = false;
    for l in smaps.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let kb = || f[1].parse::<u64>().unwrap();
        match f.first() {
            Some(r) if r.contains('-') && !r.ends_with(':') => {
                in_guest = f.get(1).is_some_and(|p| p.ends_with('s')) && l.contains(" /dev/zero");
            }
            Some(&"Rss:") if in_guest => m.guest_rss += kb(),
            Some(&"Pss:") => {
                m.pss += kb();
                if in_guest {
                    m.guest_pss += kb();
                }
            }
            _ => {}
        }
    }
    m
}

fn main() {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        panic!("/dev/kvm cannot be opened ({e}); this benchmark needs KVM");
    }
    let dir = build_guests();
    let g = |n: &str| dir.join(format!("{n}.hvt")).to_str().unwrap().to_string();
    let (quiet, bench) = (g("quiet"), g("bench"));

    // Warm caches (binary, page cache, KVM module state).
    for _ in 0..3 {
        run(&["--mem=4", &quiet]);
    }

    let mut spawn_true = Vec::new();
    for _ in 0..RUNS {
        let s = Instant::now();
        Command::new("true").status().unwrap();
        spawn_true.push(s.elapsed().as_secs_f64() * 1e3);
    }

    let mut first = Vec::new();
    for _ in 0..RUNS {
        // The guest's first instruction block is a WALLTIME hypercall
        // (guests/start.S); compare with the host clock taken before spawn.
        let t0 = now_ns();
        let (_, out) = run(&["--mem=4", &bench, "--solo5:quiet", "first"]);
        let t1 = field(&out, "first_walltime_ns=");
        first.push((t1.saturating_sub(t0)) as f64 / 1e6);
    }

    let mut quiet_4 = Vec::new();
    let mut quiet_512 = Vec::new();
    for _ in 0..RUNS {
        quiet_4.push(run(&["--mem=4", &quiet]).0.as_secs_f64() * 1e3);
        quiet_512.push(run(&[&quiet]).0.as_secs_f64() * 1e3);
    }

    const CALLS: u64 = 2000;
    let mut wall_tsc = Vec::new();
    let mut poll_tsc = Vec::new();
    let mut wall_per_call = Vec::new();
    for _ in 0..5 {
        let (base, _) = run(&["--mem=4", &bench, "--solo5:quiet"]);
        let (d, out) = run(&["--mem=4", &bench, "--solo5:quiet", &format!("calls={CALLS}"), "poll0=500"]);
        let w = &out[out.find("walltime calls").unwrap()..];
        let p = &out[out.find("poll0 calls").unwrap()..];
        wall_tsc.push(field(w, "ns_per_call=") as f64 / 1e3);
        poll_tsc.push(field(p, "ns_per_call=") as f64 / 1e3);
        // Host-side cross-check: extra wall time of the run with the loop,
        // versus one without, per WALLTIME call (includes the POLL(0) loop,
        // subtracted using its own TSC total).
        let extra = d.as_secs_f64() * 1e9 - base.as_secs_f64() * 1e9 - field(p, "total_ns=") as f64;
        wall_per_call.push(extra.max(0.0) / CALLS as f64 / 1e3);
    }

    println!();
    println!("petrel-hvt benchmark ({RUNS} runs each unless noted; times in the unit column)");
    println!("| {:<46} | {:>10} | {:>10} | {:>10} | {:<4} |", "measurement", "median", "p90", "min", "unit");
    println!("|{:-<48}|{:-<12}|{:-<12}|{:-<12}|{:-<6}|", "", "", "", "", "");
    row("spawn+wait of /bin/true (reference)", &stats(spawn_true), "ms");
    row("spawn -> first guest instruction (--mem=4)", &stats(first), "ms");
    row("quiet guest, start -> exit (--mem=4)", &stats(quiet_4), "ms");
    row("quiet guest, start -> exit (--mem=512)", &stats(quiet_512), "ms");
    row("WALLTIME hypercall, guest TSC (5 x 2000)", &stats(wall_tsc), "us");
    row("POLL(0) hypercall, guest TSC (5 x 500)", &stats(poll_tsc), "us");
    row("WALLTIME hypercall, host wall time (5 x 2000)", &stats(wall_per_call), "us");

    println!();
    println!("memory while a guest idles in POLL (kB; tender: {}):", tender().display());
    println!(
        "| --mem | VmRSS | RssAnon | RssFile | RssShmem | guest Rss | RSS beyond guest | PSS beyond guest |"
    );
    println!(
        "|------:|------:|--------:|--------:|---------:|----------:|-----------------:|-----------------:|"
    );
    for mem in [4u64, 512] {
        let mut child = Command::new(tender())
            .args([&format!("--mem={mem}"), &bench, "--solo5:quiet", "idle"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = [0u8; 64];
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !String::from_utf8_lossy(&seen).contains("IDLE") {
            assert!(Instant::now() < deadline, "guest never reported IDLE");
            let n = std::io::Read::read(&mut stdout, &mut buf).unwrap();
            assert!(n > 0, "tender exited before IDLE");
            seen.extend_from_slice(&buf[..n]);
        }
        std::thread::sleep(Duration::from_millis(300));
        let m = memory_kb(child.id());
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        petrel_wire::perf::record(
            "tender",
            &format!("RSS beyond guest, idle guest (--mem={mem})"),
            &format!("{} kB", m.vm_rss.saturating_sub(m.guest_rss)),
            "< 2048 kB",
        );
        println!(
            "| {mem:>5} | {:>5} | {:>7} | {:>7} | {:>8} | {:>9} | {:>16} | {:>16} |",
            m.vm_rss,
            m.rss_anon,
            m.rss_file,
            m.rss_shmem,
            m.guest_rss,
            m.vm_rss.saturating_sub(m.guest_rss),
            m.pss.saturating_sub(m.guest_pss)
        );
    }
    println!();
    println!("RSS beyond guest = VmRSS - guest Rss: everything the tender has resident besides guest");
    println!("pages, i.e. RssAnon (heap, stacks), RssFile (pages of the binary, libc and ld.so, most of");
    println!("them shared with other processes through the page cache) and the non-guest part of");
    println!("RssShmem. PSS beyond guest divides shared pages by their number of users: the tender's");
    println!("actual share of memory. The goal is RSS beyond guest < 2048 kB.");
}
