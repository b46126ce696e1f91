//! One run of a unikernel: the tender process, its console and its end.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use petrel_wire::builds::NewConsoleLine;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::restart::Exit;

/// albatross' console: lines are cut at 512 bytes.
pub const MAX_LINE: usize = 512;
const TRUNCATED: &str = " [truncated]";
/// Lines kept for shipping (albatross' ring size); older ones are dropped when the API lags.
pub const CONSOLE_CAPACITY: usize = 1024;

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("CPU id {0} is out of range")]
    Cpu(i32),
    #[error("cannot start the tender {tender}: {source}")]
    Spawn { tender: String, source: io::Error },
}

/// A network device handed to the tender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetArg {
    /// The manifest's device name.
    pub device: String,
    /// The tap descriptor the tender inherits (`--net:DEVICE=@FD`).
    pub tap_fd: RawFd,
    pub mac: String,
}

/// Everything needed to start the tender for one unikernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub tender: PathBuf,
    pub image: PathBuf,
    pub memory_mib: u32,
    /// CPU ids to pin the tender to; any when empty.
    pub cpus: Vec<i32>,
    pub nets: Vec<NetArg>,
    pub blocks: Vec<BlockArg>,
    pub args: Vec<String>,
}

/// A block device's file, as the tender opens it (`--block:DEVICE=PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockArg {
    pub device: String,
    pub path: PathBuf,
    pub sector_size: u64,
}

impl LaunchSpec {
    /// The tender's arguments, as albatross builds them (A5 step 5).
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![format!("--mem={}", self.memory_mib).into()];
        for net in &self.nets {
            argv.push(format!("--net:{}=@{}", net.device, net.tap_fd).into());
            argv.push(format!("--net-mac:{}={}", net.device, net.mac).into());
        }
        for block in &self.blocks {
            let mut arg = OsString::from(format!("--block:{}=", block.device));
            arg.push(&block.path);
            argv.push(arg);
            argv.push(format!("--block-sector-size:{}={}", block.device, block.sector_size).into());
        }
        argv.push("--".into());
        argv.push(self.image.clone().into());
        argv.extend(self.args.iter().map(OsString::from));
        argv
    }

    fn cpu_set(&self) -> Result<Option<libc::cpu_set_t>, SpawnError> {
        if self.cpus.is_empty() {
            return Ok(None);
        }
        // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
        for &cpu in &self.cpus {
            let id = usize::try_from(cpu).ok().filter(|&id| id < max).ok_or(SpawnError::Cpu(cpu))?;
            // SAFETY: `id` is below the set's size in bits (checked above).
            unsafe { libc::CPU_SET(id, &mut set) };
        }
        Ok(Some(set))
    }
}

/// Cuts a byte stream into console lines like albatross' console daemon (A12): split at `\n`,
/// a line reaching 512 bytes is cut there with " [truncated]" and the rest of it dropped up to
/// the next newline, empty lines are dropped.
#[derive(Debug, Default)]
pub struct LineSplitter {
    line: Vec<u8>,
    /// Dropping the rest of a truncated line.
    skipping: bool,
}

impl LineSplitter {
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        for &b in bytes {
            if b == b'\n' {
                if !self.skipping && !self.line.is_empty() {
                    out.push(String::from_utf8_lossy(&self.line).into_owned());
                }
                self.line.clear();
                self.skipping = false;
            } else if !self.skipping {
                self.line.push(b);
                if self.line.len() == MAX_LINE {
                    let mut text = String::from_utf8_lossy(&self.line).into_owned();
                    text.push_str(TRUNCATED);
                    out.push(text);
                    self.line.clear();
                    self.skipping = true;
                }
            }
        }
    }

    /// The unterminated last line, at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.line);
        (!self.skipping && !line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned())
    }
}

/// Console lines waiting to be shipped, shared by the output readers of every run of a
/// deployment and its shipper. Bounded: when the API cannot take them, the oldest go.
#[derive(Debug, Clone, Default)]
pub struct ConsoleBuffer {
    inner: Arc<Mutex<ConsoleInner>>,
    /// Woken by new lines, so the shipper sends the first ones at once.
    arrived: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct ConsoleInner {
    lines: VecDeque<NewConsoleLine>,
    dropped: u64,
}

impl ConsoleBuffer {
    pub fn new() -> ConsoleBuffer {
        ConsoleBuffer::default()
    }

    pub fn push(&self, text: String) {
        let at_ms = chrono::Utc::now().timestamp_millis();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.lines.push_back(NewConsoleLine { at_ms, text });
        inner.trim();
        drop(inner);
        self.arrived.notify_one();
    }

    /// Resolves once lines arrived since the last call (at once if some did meanwhile).
    pub async fn arrival(&self) {
        self.arrived.notified().await;
    }

    /// Everything waiting, oldest first.
    pub fn take(&self) -> Vec<NewConsoleLine> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.lines.drain(..).collect()
    }

    /// Puts back lines that could not be shipped, before any that arrived since.
    pub fn requeue(&self, lines: Vec<NewConsoleLine>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for line in lines.into_iter().rev() {
            inner.lines.push_front(line);
        }
        inner.trim();
        drop(inner);
        // The shipper tries them again after its interval.
        self.arrived.notify_one();
    }

    /// Lines dropped so far because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).dropped
    }
}

impl ConsoleInner {
    fn trim(&mut self) {
        while self.lines.len() > CONSOLE_CAPACITY {
            self.lines.pop_front();
            self.dropped += 1;
        }
    }
}

/// A running tender. Killed (SIGKILL) if dropped while running.
#[derive(Debug)]
pub struct Unikernel {
    child: tokio::process::Child,
    pid: u32,
    started: Instant,
    readers: Vec<JoinHandle<()>>,
}

impl Unikernel {
    /// Starts the tender; its stdout and stderr go line by line to `console`.
    ///
    /// Must be called from a thread that outlives the tender (a runtime thread, not a
    /// `spawn_blocking` one): PR_SET_PDEATHSIG fires when the *thread* that forked exits.
    pub fn spawn(spec: &LaunchSpec, console: &ConsoleBuffer) -> Result<Unikernel, SpawnError> {
        let cpus = spec.cpu_set()?;
        let fds: Vec<RawFd> = spec.nets.iter().map(|n| n.tap_fd).collect();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let mut cmd = tokio::process::Command::new(&spec.tender);
        cmd.args(spec.argv())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the agent's terminal must not reach tenders
            // directly (they would exit 1 and be reported) but go through the agent's shutdown.
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // syscalls (prctl, getppid, fcntl, sched_setaffinity) on data prepared before the fork;
        // it allocates nothing (io::Error from an errno does not allocate).
        unsafe {
            cmd.pre_exec(move || {
                // Tenders die with the agent; it starts them again when it comes back.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The agent may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                // The tap descriptors are close-on-exec in the agent (so that no other child
                // inherits them); only this tender keeps them.
                for &fd in &fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(set) = &cpus
                    && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|source| SpawnError::Spawn { tender: spec.tender.display().to_string(), source })?;
        let pid = child.id().unwrap_or_default();
        let mut readers = Vec::with_capacity(2);
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_console(out, console.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_console(err, console.clone())));
        }
        Ok(Unikernel { child, pid, started: Instant::now(), readers })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for the tender to end and for its last output to reach the console.
    pub async fn wait(&mut self) -> io::Result<Exit> {
        let status = self.child.wait().await?;
        for reader in self.readers.drain(..) {
            // The pipes close with the tender; bounded in case it passed them on.
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
        }
        Ok(Exit::from_status(status))
    }

    /// SIGTERM (the tender exits 1 at once), then SIGKILL after `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<Exit> {
        // None once reaped: then the pid may belong to someone else already.
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                self.child.start_kill()?;
                self.wait().await
            }
        }
    }
}

async fn read_console(mut stream: impl AsyncRead + Unpin, console: ConsoleBuffer) {
    let mut splitter = LineSplitter::default();
    let mut chunk = vec![0u8; 4096];
    let mut lines = Vec::new();
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => splitter.push(&chunk[..n], &mut lines),
        }
        for line in lines.drain(..) {
            console.push(line);
        }
    }
    if let Some(line) = splitter.finish() {
        console.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn lines_are_split_across_chunks_and_empty_ones_dropped() {
        assert_eq!(split(&[b"Hello, ", b"World\n\n\nnext\nlast"]), ["Hello, World", "next", "last"]);
        assert_eq!(split(&[b"\n", b"\n"]), Vec::<String>::new());
    }

    #[test]
    fn long_lines_are_cut_at_512_bytes_and_the_rest_dropped() {
        let long = vec![b'x'; 1300];
        let out = split(&[&long[..700], &long[700..], b"\nafter\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], format!("{} [truncated]", "x".repeat(512)));
        assert_eq!(out[1], "after");
        // Exactly 511 bytes fit.
        let fits = vec![b'y'; 511];
        assert_eq!(split(&[&fits, b"\n"]), [String::from_utf8(fits).unwrap()]);
        // A truncated line's remainder at the end of the stream is dropped too.
        assert_eq!(split(&[&long]).len(), 1);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(split(&[b"a\xffb\n"]), ["a\u{fffd}b"]);
    }

    #[test]
    fn console_buffer_keeps_the_newest_and_requeues_in_order() {
        let buffer = ConsoleBuffer::new();
        for i in 0..CONSOLE_CAPACITY + 10 {
            buffer.push(format!("{i}"));
        }
        assert_eq!(buffer.dropped(), 10);
        let lines = buffer.take();
        assert_eq!(lines.len(), CONSOLE_CAPACITY);
        assert_eq!(lines[0].text, "10");
        buffer.push("new".into());
        buffer.requeue(lines[..2].to_vec());
        let texts: Vec<String> = buffer.take().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["10", "11", "new"]);
    }

    #[test]
    fn argv_follows_albatross_order() {
        let spec = LaunchSpec {
            tender: "/usr/bin/petrel-hvt".into(),
            image: "/var/lib/petrel-agent/images/ab".into(),
            memory_mib: 32,
            cpus: vec![],
            nets: vec![NetArg { device: "service".into(), tap_fd: 7, mac: "02:00:00:00:00:01".into() }],
            blocks: vec![BlockArg {
                device: "storage".into(),
                path: "/var/lib/petrel-agent/blocks/b1".into(),
                sector_size: 4096,
            }],
            args: vec!["--ipv4=10.0.0.2/24".into()],
        };
        let argv: Vec<String> = spec.argv().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            argv,
            [
                "--mem=32",
                "--net:service=@7",
                "--net-mac:service=02:00:00:00:00:01",
                "--block:storage=/var/lib/petrel-agent/blocks/b1",
                "--block-sector-size:storage=4096",
                "--",
                "/var/lib/petrel-agent/images/ab",
                "--ipv4=10.0.0.2/24"
            ]
        );
        assert!(spec.cpu_set().unwrap().is_none());
        let bad = LaunchSpec { cpus: vec![0, -1], ..spec.clone() };
        assert!(matches!(bad.cpu_set(), Err(SpawnError::Cpu(-1))));
        let set = LaunchSpec { cpus: vec![0, 3], ..spec }.cpu_set().unwrap().unwrap();
        // SAFETY: ids below the set's size.
        assert!(unsafe { libc::CPU_ISSET(3, &set) && !libc::CPU_ISSET(1, &set) });
    }
}
