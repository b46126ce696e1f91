//! What a build records about its inputs, as orb does: `build-environment`, `system-packages`,
//! and when the recipe left them, `opam-switch` and `Cargo.lock`. The API parses these files
//! (`petrel_inputs`) to compute the build's `input_id`.
//!
//! The build directory was written by the build: files are read without following symbolic
//! links, so a build cannot make the worker upload a host file.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Recorded files are small; anything larger is not what a recipe meant to leave (the API
/// refuses inputs above this size too).
pub const MAX_RECORDED_FILE: u64 = 64 * 1024 * 1024;

/// Top-level artifact name → content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("environment variable {name:?} cannot be recorded: {reason}")]
    Environment { name: String, reason: &'static str },
    #[error("running {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Command { program: &'static str, status: String, stderr: String },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is larger than {MAX_RECORDED_FILE} bytes")]
    TooLarge { path: String },
}

/// Records the inputs of a finished build whose script saw `environment`.
pub async fn record(
    environment: &BTreeMap<String, String>,
    build_dir: &Path,
) -> Result<Recorded, RecordError> {
    let mut files = BTreeMap::new();
    files.insert("build-environment".to_string(), build_environment(environment)?);
    if let Some(packages) = system_packages().await? {
        files.insert("system-packages".to_string(), packages);
    }
    let dir = build_dir.to_path_buf();
    let (switch, lock) = tokio::task::spawn_blocking(move || {
        Ok::<_, RecordError>((read_in(&dir, &["src", "opam-switch"])?, find_cargo_lock(&dir)?))
    })
    .await
    .map_err(|e| RecordError::Read {
        path: build_dir.display().to_string(),
        source: io::Error::other(e),
    })??;
    if let Some(switch) = switch {
        files.insert("opam-switch".to_string(), switch);
    }
    if let Some(lock) = lock {
        files.insert("Cargo.lock".to_string(), lock);
    }
    Ok(Recorded { files })
}

/// `KEY=VALUE` lines sorted by key. A name with `=` or a newline, or a value with a newline,
/// would not read back the same, so it is refused.
pub fn build_environment(environment: &BTreeMap<String, String>) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    for (name, value) in environment {
        let refuse = |reason| RecordError::Environment { name: name.clone(), reason };
        if name.is_empty() || name.contains(['=', '\n', '\r']) || name.contains(char::is_whitespace) {
            return Err(refuse("the name must be non-empty, without `=` or white space"));
        }
        if value.contains(['\n', '\r']) {
            return Err(refuse("the value contains a line break"));
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// The host's packages: dpkg's on Debian (`name=version`), pkg's on FreeBSD (`name-version`),
/// sorted; `None` when neither tool exists.
pub async fn system_packages() -> Result<Option<Vec<u8>>, RecordError> {
    // The status column drops packages that are removed but keep their configuration files.
    let dpkg = ["-W", "-f", "${db:Status-Abbrev} ${binary:Package}=${Version}\n"];
    if let Some(out) = command_output("dpkg-query", &dpkg).await? {
        let lines = out.lines().filter_map(|line| {
            let (status, package) = line.split_once(' ')?;
            let installed = !matches!(status.as_bytes().get(1), Some(b'n' | b'c') | None);
            let has_version = package.split_once('=').is_some_and(|(n, v)| !n.is_empty() && !v.is_empty());
            (installed && has_version).then_some(package)
        });
        return Ok(Some(sorted_lines(lines)));
    }
    // Only FreeBSD's `pkg` (other systems have unrelated programs of that name).
    if cfg!(target_os = "freebsd")
        && let Some(out) = command_output("pkg", &["query", "%n-%v"]).await?
    {
        return Ok(Some(sorted_lines(out.lines().filter(|l| !l.trim().is_empty()))));
    }
    Ok(None)
}

fn sorted_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut lines: Vec<&str> = lines.collect();
    lines.sort_unstable();
    lines.dedup();
    lines.iter().flat_map(|l| [l.as_bytes(), b"\n"]).flatten().copied().collect()
}

/// The program's stdout, or `None` when it is not installed.
async fn command_output(program: &'static str, args: &[&str]) -> Result<Option<String>, RecordError> {
    let output = match tokio::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .await
    {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordError::Spawn { program, source }),
    };
    if !output.status.success() {
        return Err(RecordError::Command {
            program,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// `src/Cargo.lock`, or else the first `src/<dir>/Cargo.lock` by name.
fn find_cargo_lock(build_dir: &Path) -> Result<Option<Vec<u8>>, RecordError> {
    if let Some(lock) = read_in(build_dir, &["src", "Cargo.lock"])? {
        return Ok(Some(lock));
    }
    // Only names are taken from this listing; opening goes through `read_in` again.
    let Ok(entries) = std::fs::read_dir(build_dir.join("src")) else { return Ok(None) };
    let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if let Some(lock) = read_in(build_dir, &["src", name, "Cargo.lock"])? {
            return Ok(Some(lock));
        }
    }
    Ok(None)
}

/// Reads `<dir>/<components...>` if it is a regular file reached without any symbolic link;
/// `None` when it is missing, or is (or lies behind) a link or something else than a file.
fn read_in(dir: &Path, components: &[&str]) -> Result<Option<Vec<u8>>, RecordError> {
    let display = || {
        let mut p = dir.to_path_buf();
        p.extend(components);
        p.display().to_string()
    };
    let read_error = |source| RecordError::Read { path: display(), source };
    let absent = |e: &io::Error| {
        matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EMLINK))
    };
    let mut fd = match open_at(None, dir.as_os_str().as_bytes(), libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let flags = libc::O_NOFOLLOW | if last { libc::O_NONBLOCK } else { libc::O_DIRECTORY };
        fd = match open_at(Some(&fd), component.as_bytes(), flags) {
            Ok(next) => next,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(read_error(e)),
        };
    }
    let mut file = File::from(fd);
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > MAX_RECORDED_FILE {
        return Err(RecordError::TooLarge { path: display() });
    }
    let mut bytes = Vec::new();
    (&mut file).take(MAX_RECORDED_FILE + 1).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > MAX_RECORDED_FILE {
        return Err(RecordError::TooLarge { path: display() });
    }
    Ok(Some(bytes))
}

/// `openat(2)` read-only with close-on-exec; relative to the working directory without `dir`.
fn open_at(dir: Option<&OwnedFd>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `dirfd` is AT_FDCWD or a descriptor borrowed for the call; `name` is NUL-terminated.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn build_environment_is_sorted_key_value_lines_the_api_parses() {
        let environment = env(&[("PATH", "/usr/bin:/bin"), ("A", "x=y"), ("EMPTY", ""), ("TZ", "UTC")]);
        let bytes = build_environment(&environment).expect("valid");
        assert_eq!(bytes, b"A=x=y\nEMPTY=\nPATH=/usr/bin:/bin\nTZ=UTC\n");
        let parsed = petrel_inputs::environment::parse_environment(&bytes).expect("the API parses it");
        assert_eq!(parsed, environment);
    }

    #[test]
    fn build_environment_refuses_what_cannot_read_back() {
        for (k, v) in [("A", "two\nlines"), ("A=B", "1"), ("", "1"), ("A B", "1"), ("A", "cr\r")] {
            assert!(
                matches!(build_environment(&env(&[(k, v)])), Err(RecordError::Environment { .. })),
                "{k:?}={v:?}"
            );
        }
    }

    #[tokio::test]
    async fn system_packages_parse_as_debian_on_this_host() {
        if !Path::new("/usr/bin/dpkg-query").exists() {
            panic!("this test expects a Debian host with dpkg-query");
        }
        let bytes = system_packages().await.expect("dpkg-query runs").expect("dpkg-query exists");
        let parsed =
            petrel_inputs::system_packages::parse_system_packages(&bytes).expect("the API parses it");
        assert_eq!(parsed.format, petrel_inputs::system_packages::PackageFormat::Debian);
        assert!(parsed.packages.contains_key("dpkg"), "dpkg itself is installed");
        let text = String::from_utf8(bytes).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        let mut sorted = lines.clone();
        sorted.sort_unstable();
        assert_eq!(lines, sorted);
        assert!(text.ends_with('\n'));
    }

    const LOCK: &str = "# This file is automatically @generated by Cargo.\nversion = 4\n\n[[package]]\nname = \"hello\"\nversion = \"0.1.0\"\n";

    fn write(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    #[tokio::test]
    async fn cargo_lock_and_opam_switch_are_picked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("src/opam-switch"), "opam-version: \"2.0\"\ninstalled: [\"ocaml.4.14.2\"]\n");
        write(&dir.path().join("src/Cargo.lock"), LOCK);
        write(&dir.path().join("src/aaa/Cargo.lock"), "not this one");
        let recorded = record(&env(&[("A", "1")]), dir.path()).await.expect("records");
        assert_eq!(recorded.files["Cargo.lock"], LOCK.as_bytes());
        let switch =
            petrel_inputs::opam::parse_switch_export(&recorded.files["opam-switch"]).expect("parses");
        assert_eq!(switch.installed.len(), 1);
        assert_eq!(recorded.files["build-environment"], b"A=1\n");
        let lock =
            petrel_inputs::cargo_lock::parse_cargo_lock(&recorded.files["Cargo.lock"]).expect("parses");
        assert_eq!(lock.packages.len(), 1);
    }

    #[tokio::test]
    async fn cargo_lock_one_level_down_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("src/zzz/Cargo.lock"), "second");
        write(&dir.path().join("src/mid/Cargo.lock"), LOCK);
        write(&dir.path().join("src/a/b/Cargo.lock"), "too deep");
        let recorded = record(&BTreeMap::new(), dir.path()).await.expect("records");
        assert_eq!(recorded.files["Cargo.lock"], LOCK.as_bytes());
        assert!(!recorded.files.contains_key("opam-switch"));

        let empty = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(empty.path().join("src")).expect("mkdir");
        let recorded = record(&BTreeMap::new(), empty.path()).await.expect("records");
        assert!(!recorded.files.contains_key("Cargo.lock"));
        assert!(!recorded.files.contains_key("opam-switch"));
    }

    #[tokio::test]
    async fn symbolic_links_are_not_followed() {
        let secret = tempfile::tempdir().expect("tempdir");
        write(&secret.path().join("Cargo.lock"), LOCK);
        write(&secret.path().join("opam-switch"), "secret");
        // A link as the file itself.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("src")).expect("mkdir");
        std::os::unix::fs::symlink(secret.path().join("opam-switch"), dir.path().join("src/opam-switch"))
            .expect("symlink");
        std::os::unix::fs::symlink(secret.path(), dir.path().join("src/sub")).expect("symlink");
        let recorded = record(&BTreeMap::new(), dir.path()).await.expect("records");
        assert!(!recorded.files.contains_key("opam-switch"));
        assert!(!recorded.files.contains_key("Cargo.lock"), "src/sub is a link: not followed");
        // A link as the src directory.
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(secret.path(), dir.path().join("src")).expect("symlink");
        let recorded = record(&BTreeMap::new(), dir.path()).await.expect("records");
        assert_eq!(
            recorded.files.keys().filter(|k| *k != "system-packages").collect::<Vec<_>>(),
            ["build-environment"]
        );
    }
}
