//! Shared helpers: building the test guests, running the tender with a
//! timeout, temp dirs and network namespaces.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound for one tender run; a hang must fail the test, not stall CI.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub const TENDER: &str = env!("CARGO_BIN_EXE_petrel-hvt");

/// Builds the guests once per test process. nextest runs every test in its own
/// process, so concurrent `make` runs into the same directory are serialised
/// with a file lock (make itself is incremental, later runs are no-ops).
pub fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(tmp).unwrap();
        let out = tmp.join("guests");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(tmp.join("guests.lock"))
            .expect("open guest build lock");
        // SAFETY: flock on an fd we own; released when `lock` is dropped.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests");
        let result = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&src)
            .arg(format!("OUT={}", out.display()))
            .output()
            .expect("run make (is build-essential installed?)");
        assert!(
            result.status.success(),
            "building the test guests failed:\n{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        drop(lock);
        out
    })
}

pub fn guest(name: &str) -> PathBuf {
    let p = guest_dir().join(format!("{name}.hvt"));
    assert!(p.exists(), "guest {} was not built", p.display());
    p
}

/// Tests that run a guest need KVM; without it they must fail, not skip.
pub fn require_kvm() {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        panic!("/dev/kvm cannot be opened ({e}): these tests need KVM and must not be skipped");
    }
}

/// A finished tender run.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!("status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.status.code(), Some(want), "unexpected exit\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, s: &str) -> &Self {
        assert!(self.stdout.contains(s), "stdout lacks {s:?}\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stdout_lacks(&self, s: &str) -> &Self {
        assert!(!self.stdout.contains(s), "stdout has {s:?}\n{}", self.describe());
        self
    }

    /// A tender failure: exit 1 with a `petrel-hvt:` message mentioning `s`.
    #[track_caller]
    pub fn tender_error(&self, s: &str) -> &Self {
        // Shown with --no-capture, to review the tender's wording.
        eprintln!("tender said: {}", self.stderr.trim_end());
        self.code(1);
        assert!(self.stderr.contains("petrel-hvt:"), "no petrel-hvt: message\n{}", self.describe());
        let lower = self.stderr.to_lowercase();
        assert!(lower.contains(&s.to_lowercase()), "stderr lacks {s:?}\n{}", self.describe());
        self
    }
}

/// A tender (or other) process whose output is collected by reader threads,
/// so tests can wait for a line while it runs.
pub struct Running {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn pump(mut r: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    })
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            pump(child.stdout.take().unwrap(), out.clone()),
            pump(child.stderr.take().unwrap(), err.clone()),
        ];
        Running { child, out, err, readers }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits until stdout contains `s`; kills the process and panics on timeout
    /// or if it exits first.
    #[track_caller]
    pub fn wait_for_stdout(&mut self, s: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.stdout().contains(s) {
                return;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "process exited ({st:?}) before printing {s:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "timed out waiting for {s:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for exit; on timeout kills the process and panics.
    #[track_caller]
    pub fn finish(mut self, timeout: Duration) -> Run {
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let st = self.child.wait().unwrap();
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                panic!(
                    "timed out after {timeout:?}, killed ({st:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Run { status, stdout: self.stdout(), stderr: self.stderr() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A panicking test must not leave a tender behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn tender_cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(TENDER);
    c.args(args);
    c
}

/// Runs the tender with `args` to completion (bounded by TIMEOUT).
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Running::spawn(tender_cmd(args)).finish(TIMEOUT)
}

/// `args` as OsStrings, for mixing &str and paths.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(::std::ffi::OsString::from($a)),*] };
}

pub fn opt(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(path);
    s
}

/// A directory under CARGO_TARGET_TMPDIR removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "t-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A file of `len` zero bytes.
    pub fn zero_file(&self, name: &str, len: u64) -> PathBuf {
        let p = self.0.join(name);
        File::create(&p).unwrap().set_len(len).unwrap();
        p
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
