//! Treemap time on a large real ELF next to `nm -S --size-sort` on the same file.
//!
//! `cargo bench -p petrel-inputs --bench treemap [-- FILE...]`; without arguments it takes
//! `$PETREL_TREEMAP_BENCH_ELF`, else the largest executable in the workspace's `target/`, else
//! any ELF > 20 MB from a short list of system paths. Both sides include opening and mapping
//! (or reading) the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF"
}

fn candidates() -> Vec<PathBuf> {
    let args: Vec<PathBuf> =
        std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(PathBuf::from).collect();
    if !args.is_empty() {
        return args;
    }
    if let Some(p) = std::env::var_os("PETREL_TREEMAP_BENCH_ELF") {
        return vec![PathBuf::from(p)];
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for dir in ["target/release", "target/debug"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file()
                && meta.permissions().mode() & 0o111 != 0
                && meta.len() > 20 << 20
                && is_elf(&path)
            {
                found.push((meta.len(), path));
            }
        }
    }
    found.sort();
    let mut out: Vec<PathBuf> = found.pop().map(|(_, p)| p).into_iter().collect();
    // A big stripped C/C++ binary, for the other extreme (sections and dynamic symbols only).
    for p in ["/usr/lib/chromium/chromium", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus"] {
        if Path::new(p).exists() && is_elf(Path::new(p)) {
            out.push(PathBuf::from(p));
            break;
        }
    }
    out
}

/// The file mapped read-only; the treemap then touches only the pages it reads.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn open(path: &Path) -> std::io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        // SAFETY: a fresh private read-only mapping of a file that this process does not write;
        // the result is checked before use.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until `drop`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

fn best(mut f: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let files = candidates();
    if files.is_empty() {
        eprintln!("no ELF > 20 MB found; pass one: cargo bench -p petrel-inputs --bench treemap -- FILE");
        return;
    }
    for path in files {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut result = None;
        let ours = best(|| {
            let mapped = Mapped::open(&path).expect("readable file");
            result = Some(petrel_inputs::treemap::treemap(mapped.bytes(), None));
        });
        let nm = best(|| {
            let status = Command::new("nm")
                .args(["-S", "--size-sort"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                eprintln!("  (nm failed on {})", path.display());
            }
        });
        println!("{} ({:.1} MB)", path.display(), size as f64 / 1e6);
        match &result {
            Some(Ok(t)) => println!(
                "  treemap: {:>8.1} ms  symbols {} ({:?}), dwarf {}, loadable {:.1} MB, unattributed {:.1}%",
                ours.as_secs_f64() * 1e3,
                t.totals.symbols,
                t.totals.symbol_source,
                t.totals.dwarf,
                t.totals.loadable_size as f64 / 1e6,
                t.totals.unattributed_size as f64 * 100.0 / t.totals.loadable_size.max(1) as f64,
            ),
            Some(Err(e)) => println!("  treemap: error {e}"),
            None => {}
        }
        // A stripped file (dynamic symbols only) has almost nothing to lay out: its time says
        // nothing about the treemap, so only the log shows it.
        let symbolised = matches!(&result, Some(Ok(t)) if !matches!(
            t.totals.symbol_source,
            petrel_wire::treemap::SymbolSource::Dynamic | petrel_wire::treemap::SymbolSource::None
        ));
        if symbolised {
            petrel_wire::perf::record(
                "treemap",
                &format!("treemap of a {:.1} MB ELF", size as f64 / 1e6),
                &format!(
                    "{:.1} ms ({:.2}x nm -S)",
                    ours.as_secs_f64() * 1e3,
                    ours.as_secs_f64() / nm.as_secs_f64().max(1e-9)
                ),
                "",
            );
        }
        println!(
            "  nm -S --size-sort: {:>8.1} ms  (treemap / nm = {:.2}x, best of {RUNS})",
            nm.as_secs_f64() * 1e3,
            ours.as_secs_f64() / nm.as_secs_f64().max(1e-9)
        );
    }
}
