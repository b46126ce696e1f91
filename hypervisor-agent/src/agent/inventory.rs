//! What this host offers (CPUs, memory, bridges, disk, tender), as reported to the API.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use petrel_wire::deployments::Inventory;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum InventoryError {
    #[error("sched_getaffinity: {0}")]
    Cpus(io::Error),
    #[error("/proc/meminfo: {0}")]
    Memory(String),
    #[error("statvfs {path}: {source}")]
    Disk { path: String, source: io::Error },
    #[error("the tender {tender}: {reason}")]
    Tender { tender: String, reason: String },
}

/// The whole inventory; `state_dir` is where block devices would live.
pub fn collect(state_dir: &Path, tender: &Path) -> Result<Inventory, InventoryError> {
    let (tender_version, tender_abi) = tender_version(tender)?;
    Ok(Inventory {
        cpus: cpus()?,
        memory_mib: memory_mib()?,
        bridges: bridges(),
        block_mib: block_mib(state_dir)?,
        tender_version,
        tender_abi,
    })
}

/// CPUs this agent (and so its tenders) may run on.
pub fn cpus() -> Result<u32, InventoryError> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(InventoryError::Cpus(io::Error::last_os_error()));
    }
    // SAFETY: counts bits of an initialised cpu_set_t.
    Ok(unsafe { libc::CPU_COUNT(&set) } as u32)
}

pub fn memory_mib() -> Result<u64, InventoryError> {
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| InventoryError::Memory(e.to_string()))?;
    parse_meminfo(&text).ok_or_else(|| InventoryError::Memory("no MemTotal line".into()))
}

/// MemTotal in MiB.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib / 1024)
}

/// The bridges of the agent's network namespace, sorted: interfaces whose driver is `bridge`.
pub fn bridges() -> Vec<String> {
    let mut names: Vec<String> = crate::netif::interfaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|name| crate::netif::driver(name).is_ok_and(|d| d == "bridge"))
        .collect();
    names.sort();
    names
}

/// Capacity of the file system holding `dir`.
pub fn block_mib(dir: &Path) -> Result<u64, InventoryError> {
    let fail = |source| InventoryError::Disk { path: dir.display().to_string(), source };
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| fail(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    Ok(st.f_blocks as u64 * st.f_frsize as u64 / (1024 * 1024))
}

/// Runs `TENDER --version`: (a version such as "petrel-hvt 0.1.0", its ABI version).
pub fn tender_version(tender: &Path) -> Result<(String, u32), InventoryError> {
    let fail = |reason: String| InventoryError::Tender { tender: tender.display().to_string(), reason };
    let out =
        std::process::Command::new(tender).arg("--version").output().map_err(|e| fail(e.to_string()))?;
    // solo5-hvt prints its version to stderr; take both like albatross.
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(fail(format!("--version failed ({}): {}", out.status, text.trim())));
    }
    parse_version(&text).ok_or_else(|| fail(format!("unexpected --version output {:?}", text.trim())))
}

/// Parses "NAME tender, version V\nABI version N" (solo5-hvt and petrel-hvt).
pub fn parse_version(text: &str) -> Option<(String, u32)> {
    let abi = text.lines().find_map(|l| l.trim().strip_prefix("ABI version ")?.trim().parse().ok())?;
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("ABI version"))?;
    let name = first.split([' ', ',']).next()?;
    let version = first.rsplit_once("version ").map(|(_, v)| v.trim())?;
    Some((format!("{name} {version}"), abi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_in_mib() {
        let text = "MemTotal:       24683520 kB\nMemFree:         9438000 kB\n";
        assert_eq!(parse_meminfo(text), Some(24105));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 12\n"), None);
    }

    #[test]
    fn tender_versions() {
        assert_eq!(
            parse_version("petrel-hvt tender, version 0.1.0\nABI version 2\n"),
            Some(("petrel-hvt 0.1.0".into(), 2))
        );
        assert_eq!(
            parse_version("solo5-hvt version v0.9.1\nABI version 2\n"),
            Some(("solo5-hvt v0.9.1".into(), 2))
        );
        assert_eq!(parse_version("petrel-hvt tender, version 0.1.0\n"), None);
    }

    #[test]
    fn this_host_has_cpus_memory_and_disk() {
        assert!(cpus().unwrap() >= 1);
        assert!(memory_mib().unwrap() >= 1);
        assert!(block_mib(Path::new("/")).unwrap() >= 1);
    }
}
