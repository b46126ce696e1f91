//! Runs one recipe in a sandbox, as orb runs a build, but isolated from the host and from the
//! worker's other builds.
//!
//! The build runs as its own unprivileged uid (one per concurrent build, chosen by the caller),
//! with no capabilities and `no_new_privs`, in fresh mount, PID, IPC and UTS namespaces and,
//! unless the recipe asks for the network, a network namespace with loopback only. The host's
//! file systems are visible read-only; `/tmp`, `/var/tmp` and `/dev/shm` are private tmpfs
//! (so are `/run` and `/opt` where they need to be); the host build directory appears at the
//! fixed path [`SANDBOX_BUILD_DIR`] so that paths embedded in binaries are the same on every
//! machine and in every build.
//!
//! The namespaces and mounts are set up in the forked child before `exec` (as root); util-linux
//! `unshare --pid --fork` then gives the script a PID namespace of its own (whose end kills every
//! process of the build) and `setpriv` drops to the build's uid.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use libc::{c_char, c_int, c_ulong};
use petrel_wire::builds::BuildResult;
use petrel_wire::workers::{BuildLimits, Recipe};
use tokio::sync::{mpsc, watch};

/// Where the build directory is inside the sandbox, on every machine and in every build.
pub const SANDBOX_BUILD_DIR: &str = "/tmp/build";
/// Where tool directories are inside the sandbox: `/opt/petrel/<name>`.
pub const SANDBOX_TOOL_ROOT: &str = "/opt/petrel";
/// Console lines longer than this are split.
pub const MAX_LINE: usize = 64 * 1024;
/// The sandbox's host name (a fixed one, as builds may embed it).
pub const SANDBOX_HOSTNAME: &str = "petrel";

const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Names the worker sets itself (besides the `PETREL_` prefix). `PWD` is here because the
/// shell overwrites it anyway.
const RESERVED_ENV: &[&str] = &["PATH", "HOME", "SOURCE_DATE_EPOCH", "TZ", "LC_ALL", "LANG", "PWD"];
/// Processes per build uid: generous for `make -j`, small enough to stop a fork bomb.
const MAX_PROCESSES: u64 = 4096;
const MIB: u64 = 1024 * 1024;

/// One build to run.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Host directory, created empty by the caller inside a root-owned `0700` parent.
    pub build_dir: PathBuf,
    pub recipe: Recipe,
    pub limits: BuildLimits,
    pub source_date_epoch: i64,
    /// Unprivileged ids for this build. The uid must belong to this build alone while it runs:
    /// every process with it is killed when the build ends.
    pub uid: u32,
    pub gid: u32,
    /// Host directories exposed read-only in the sandbox.
    pub tool_dirs: Vec<ToolDir>,
}

/// A host directory visible read-only at `/opt/petrel/<name>`, whose `bin` is put on `PATH`
/// before the system directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDir {
    pub host: PathBuf,
    /// `A-Z a-z 0-9 . _ -`, at most 64 characters, not `.` or `..`.
    pub name: String,
}

/// A line of the build's merged stdout and stderr, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Milliseconds since the build started.
    pub at_ms: i64,
    pub text: String,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub result: BuildResult,
    pub timed_out: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Host path of the output directory (`<build_dir>/output`).
    pub output_dir: PathBuf,
    /// The exact environment the script was started with.
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The recipe, limits or tool directories are not acceptable; `what` names the culprit.
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{0} not found (util-linux is needed)")]
    MissingProgram(&'static str),
    /// The sandbox could not be set up (in the child, before the script ran).
    #[error("sandbox setup failed at {step}: {source}")]
    Setup {
        step: String,
        #[source]
        source: io::Error,
    },
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> SandboxError {
    SandboxError::Invalid { what: what.into(), reason: reason.into() }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Io { context, source }
}

/// Runs the recipe of `spec` to its end, the timeout or `cancel` becoming true, whichever comes
/// first, sending its console to `console` (a slow receiver slows the build down; a dropped
/// one loses the console only). No process of the build survives the return, nor the future
/// being dropped.
pub async fn run(
    spec: &SandboxSpec,
    console: mpsc::Sender<ConsoleLine>,
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, SandboxError> {
    // Root would undo the sandbox, and every process of the uid is killed at the end.
    if spec.uid == 0 || spec.gid == 0 {
        return Err(invalid("uid and gid", "must not be 0"));
    }
    validate_limits(&spec.limits)?;
    validate_files(&spec.recipe.files)?;
    validate_tools(&spec.tool_dirs)?;
    let environment = sandbox_environment(&spec.recipe, &spec.tool_dirs, spec.source_date_epoch)?;
    let unshare = find_program("unshare")?;
    let setpriv = find_program("setpriv")?;

    let build_dir = std::fs::canonicalize(&spec.build_dir)
        .map_err(io_error(format!("build directory {}", spec.build_dir.display())))?;
    {
        let (build_dir, recipe, uid, gid) = (build_dir.clone(), spec.recipe.clone(), spec.uid, spec.gid);
        blocking(move || prepare_build_dir(&build_dir, &recipe, uid, gid)).await?;
    }
    let outcome = run_prepared(spec, &build_dir, environment, console, cancel, unshare, setpriv).await;
    // Root-owned and 0700 again, whatever happened: the uid (reused by this slot's next build)
    // cannot reach the tree any more, whatever modes the build left inside.
    let restored = std::os::unix::fs::lchown(&build_dir, Some(0), Some(0))
        .and_then(|()| std::fs::set_permissions(&build_dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(io_error(format!("chown {}", build_dir.display())));
    let outcome = outcome?;
    restored?;
    Ok(outcome)
}

/// [`run`] once the build directory is ready.
async fn run_prepared(
    spec: &SandboxSpec,
    build_dir: &Path,
    environment: BTreeMap<String, String>,
    console: mpsc::Sender<ConsoleLine>,
    mut cancel: watch::Receiver<bool>,
    unshare: PathBuf,
    setpriv: PathBuf,
) -> Result<Outcome, SandboxError> {
    let mut plan = ChildPlan::new(spec, build_dir)?;

    let (reader, writer) = io::pipe().map_err(io_error("console pipe"))?;
    // `unshare` and `setpriv` report on their own stderr, kept out of the console (and read
    // into the worker's log): the script's stderr is joined to its stdout by the shell below.
    let (diagnostics, diagnostics_writer) = io::pipe().map_err(io_error("diagnostics pipe"))?;
    let mut command = tokio::process::Command::new(unshare);
    command
        .args(["--pid", "--fork", "--kill-child", "--mount-proc", "--"])
        .arg(setpriv)
        .arg(format!("--reuid={}", spec.uid))
        .arg(format!("--regid={}", spec.gid))
        .args(["--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"])
        // Ties the script to `unshare`: killing that (or the worker killing its group) ends the
        // PID namespace. `unshare --kill-child` alone is undone by the uid change.
        .arg("--pdeathsig=KILL")
        .args(["--", "/bin/sh", "-c", "exec /bin/sh -eu \"$0\" 2>&1"])
        .arg(format!("{SANDBOX_BUILD_DIR}/recipe.sh"))
        .env_clear()
        .envs(&environment)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(diagnostics_writer);
    // SAFETY: the closure runs in the forked child before exec; `ChildPlan::enter` only makes
    // system calls on data prepared here (no allocation, no locks), see its comments.
    unsafe {
        command.pre_exec(move || plan.enter());
    }

    let started_at = Utc::now();
    let start = Instant::now();
    let spawned = command.spawn();
    // The command holds the pipe's write ends: the console ends only once they are closed.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(source) => return Err(setup_error(diagnostics, source).await),
    };
    let pid = child.id().ok_or_else(|| invalid("sandbox", "the child vanished at once"))?;
    let mut guard = KillGuard { pid, uid: spec.uid, armed: true };
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(io_error("console pipe"))?;
    let pump = tokio::spawn(pump_console(receiver, console, start));
    let diagnostics = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(diagnostics))
        .map_err(io_error("diagnostics pipe"))?;
    let diagnostics = tokio::spawn(read_diagnostics(diagnostics));

    enum End {
        Exited(io::Result<ExitStatus>),
        TimedOut,
        Cancelled,
    }
    let timeout = Duration::from_secs(u64::try_from(spec.limits.timeout_secs).unwrap_or(1));
    let cancelled = async {
        // A dropped sender means nobody can cancel any more.
        if cancel.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let end = tokio::select! {
        biased;
        status = child.wait() => End::Exited(status),
        _ = cancelled => End::Cancelled,
        _ = tokio::time::sleep(timeout) => End::TimedOut,
    };
    let (status, result_override, timed_out) = match end {
        End::Exited(status) => (status, None, false),
        End::TimedOut => {
            let message = format!("timed out after {} s", spec.limits.timeout_secs);
            (kill_and_wait(&mut child, pid, spec.uid).await, Some(message), true)
        }
        End::Cancelled => {
            (kill_and_wait(&mut child, pid, spec.uid).await, Some("cancelled".to_string()), false)
        }
    };
    guard.armed = false;
    let finished_at = Utc::now();
    let status = status.map_err(io_error("waiting for the sandbox"))?;

    // The PID namespace ended with the script; this catches anything that got out of it.
    let uid = spec.uid;
    blocking(move || kill_processes_of(uid).map_err(io_error("killing leftover build processes"))).await?;
    // Every writer is dead now, so the console ends promptly; the limit covers a console
    // receiver that stopped reading.
    if tokio::time::timeout(Duration::from_secs(10), pump).await.is_err() {
        tracing::warn!("console of the build did not end; dropped its tail");
    }
    let diagnostics = match tokio::time::timeout(Duration::from_secs(10), diagnostics).await {
        Ok(Ok(text)) => text,
        _ => String::new(),
    };

    let mut result = match result_override {
        Some(message) => BuildResult::Message { message },
        None => {
            // After a kill, `unshare` complains as expected; otherwise it is worth a look.
            if !diagnostics.trim().is_empty() {
                tracing::warn!(uid = spec.uid, "sandbox diagnostics: {}", diagnostics.trim());
            }
            exit_result(status, &diagnostics)
        }
    };
    let output_dir = build_dir.join("output");
    if result == (BuildResult::Exited { code: 0 }) {
        let (dir, cap_mib) = (output_dir.clone(), spec.limits.output_mib);
        if let Some(message) = blocking(move || check_output(&dir, cap_mib)).await? {
            result = BuildResult::Message { message };
        }
    }
    Ok(Outcome { result, timed_out, started_at, finished_at, output_dir, environment })
}

/// Sends SIGKILL to every process whose real uid is `uid` until none is left (zombies aside);
/// returns how many were signalled. The worker can call it at start-up for each build uid, to
/// clean up after a crash.
pub fn kill_processes_of(uid: u32) -> io::Result<usize> {
    let mut killed = 0;
    for _ in 0..500 {
        let pids = processes_of(uid)?;
        if pids.is_empty() {
            return Ok(killed);
        }
        for pid in pids {
            // SAFETY: kill has no memory arguments; a pid that exited meanwhile gives ESRCH.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(io::Error::other(format!("processes of uid {uid} keep appearing")))
}

/// Live (non-zombie) processes whose real uid is `uid`.
fn processes_of(uid: u32) -> io::Result<Vec<libc::pid_t>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        // The process may be gone already: then it needs no killing.
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let field =
            |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim_start).unwrap_or("");
        let real_uid = field("Uid:").split_whitespace().next().and_then(|u| u.parse::<u32>().ok());
        if real_uid == Some(uid) && !field("State:").starts_with('Z') {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Kills a running sandbox and reaps it. The build's processes go first, so that `unshare`
/// reaps the PID namespace's first process and exits by itself (killing `unshare` first would
/// leave that process to the host's init to reap); `unshare` is killed only if it lingers.
async fn kill_and_wait(child: &mut tokio::process::Child, pid: u32, uid: u32) -> io::Result<ExitStatus> {
    match tokio::task::spawn_blocking(move || kill_processes_of(uid)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(uid, "killing build processes: {e}"),
        Err(e) => tracing::warn!(uid, "killing build processes: {e}"),
    }
    if let Ok(status) = tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        return status;
    }
    kill_sandbox(pid, uid);
    child.wait().await
}

/// Kills the sandbox at once: `unshare`'s process group (which holds the PID namespace's first
/// process unless the script left it) and every process of the build's uid.
fn kill_sandbox(pid: u32, uid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg has no memory arguments; `pid` is an unreaped child, so its group id is
        // still ours.
        unsafe { libc::killpg(pid, libc::SIGKILL) };
    }
    if let Err(e) = kill_processes_of(uid) {
        tracing::warn!(uid, "killing build processes: {e}");
    }
}

/// Kills the sandbox when `run`'s future is dropped before the child was reaped.
struct KillGuard {
    pid: u32,
    uid: u32,
    armed: bool,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_sandbox(self.pid, self.uid);
        }
    }
}

/// The build's result from `unshare`'s wait status and diagnostics.
fn exit_result(status: ExitStatus, diagnostics: &str) -> BuildResult {
    // util-linux 2.38 `unshare` passes on a child's death by signal by raising the same signal,
    // but cannot for SIGKILL (e.g. the OOM killer): it then says so and exits with 1.
    if status.code() == Some(1) && diagnostics.contains("sigprocmask unblock failed") {
        return BuildResult::Signalled { signal: libc::SIGKILL };
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => BuildResult::Exited { code },
        (None, Some(signal)) => BuildResult::Signalled { signal },
        (None, None) => BuildResult::Message { message: format!("unexpected wait status {status}") },
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, SandboxError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SandboxError::Io {
        context: "blocking task".into(),
        source: io::Error::other(e.to_string()),
    })?
}

/// What `unshare` and `setpriv` said, at most 64 KiB (the rest is drained, never blocking them).
async fn read_diagnostics(receiver: tokio::net::unix::pipe::Receiver) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    while receiver.readable().await.is_ok() {
        match receiver.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n.min((64 * 1024usize).saturating_sub(bytes.len()))]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The child reports which step failed on its stderr (the diagnostics pipe) before exiting;
/// the spawn error carries only the errno.
async fn setup_error(mut reader: io::PipeReader, source: io::Error) -> SandboxError {
    let text = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    })
    .await
    .unwrap_or_default();
    let step = text
        .lines()
        .find_map(|l| l.strip_prefix(SETUP_PREFIX))
        .map_or_else(|| "spawning the sandbox".to_string(), str::to_string);
    SandboxError::Setup { step, source }
}

// ---------------------------------------------------------------------------------------------
// Validation and the environment

fn validate_limits(limits: &BuildLimits) -> Result<(), SandboxError> {
    for (name, value) in [
        ("timeout_secs", limits.timeout_secs),
        ("memory_mib", limits.memory_mib),
        ("output_mib", limits.output_mib),
    ] {
        if value < 1 {
            return Err(invalid(format!("limit {name}"), "must be at least 1"));
        }
    }
    Ok(())
}

/// Recipe file names: relative, `/`-separated, without empty, `.` or `..` components.
fn validate_files(files: &BTreeMap<String, String>) -> Result<(), SandboxError> {
    for path in files.keys() {
        let what = || format!("recipe file {path:?}");
        if path.is_empty() || path.len() > 1024 {
            return Err(invalid(what(), "must be 1 to 1024 bytes"));
        }
        if path.starts_with('/') {
            return Err(invalid(what(), "must be a relative path"));
        }
        if path.contains('\0') {
            return Err(invalid(what(), "must not contain NUL"));
        }
        if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(invalid(what(), "must not contain empty, `.` or `..` components"));
        }
    }
    Ok(())
}

fn validate_tools(tools: &[ToolDir]) -> Result<(), SandboxError> {
    let mut seen = std::collections::BTreeSet::new();
    for tool in tools {
        let what = || format!("tool directory {:?}", tool.name);
        let name_ok = (1..=64).contains(&tool.name.len())
            && tool.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && tool.name != "."
            && tool.name != "..";
        if !name_ok {
            return Err(invalid(what(), "name must be 1 to 64 characters of A-Z a-z 0-9 . _ -"));
        }
        if !seen.insert(&tool.name) {
            return Err(invalid(what(), "given twice"));
        }
        if !tool.host.is_dir() {
            return Err(invalid(what(), format!("{} is not a directory", tool.host.display())));
        }
    }
    Ok(())
}

fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The environment of the script: the worker's variables and the recipe's.
fn sandbox_environment(
    recipe: &Recipe,
    tools: &[ToolDir],
    source_date_epoch: i64,
) -> Result<BTreeMap<String, String>, SandboxError> {
    let mut path: Vec<String> = tools.iter().map(|t| format!("{SANDBOX_TOOL_ROOT}/{}/bin", t.name)).collect();
    path.push(SYSTEM_PATH.to_string());
    let mut env = BTreeMap::from([
        ("PATH".to_string(), path.join(":")),
        ("HOME".to_string(), format!("{SANDBOX_BUILD_DIR}/home")),
        ("PETREL_OUTPUT".to_string(), format!("{SANDBOX_BUILD_DIR}/output")),
        ("SOURCE_DATE_EPOCH".to_string(), source_date_epoch.to_string()),
        ("TZ".to_string(), "UTC".to_string()),
        ("LC_ALL".to_string(), "C.UTF-8".to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ]);
    for (name, value) in &recipe.env {
        let what = || format!("environment variable {name:?}");
        if !valid_env_name(name) {
            return Err(invalid(what(), "name must match [A-Z_][A-Z0-9_]*"));
        }
        if RESERVED_ENV.contains(&name.as_str()) || name.starts_with("PETREL_") {
            return Err(invalid(what(), "is set by the worker"));
        }
        // NUL cannot be passed to exec; a newline cannot be recorded in `build-environment`.
        if value.contains(['\0', '\n']) {
            return Err(invalid(what(), "value must not contain NUL or newlines"));
        }
        env.insert(name.clone(), value.clone());
    }
    Ok(env)
}

fn find_program(name: &'static str) -> Result<PathBuf, SandboxError> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .ok_or(SandboxError::MissingProgram(name))
}

// ---------------------------------------------------------------------------------------------
// The build directory

/// Writes the recipe into the (empty) build directory and hands the tree to the build's uid.
fn prepare_build_dir(dir: &Path, recipe: &Recipe, uid: u32, gid: u32) -> Result<(), SandboxError> {
    let mkdir = |path: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(io_error(format!("creating {}", path.display())))
    };
    // `create_new` never follows a symlink, should the caller have left one behind.
    let write = |path: &Path, content: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .and_then(|mut f| f.write_all(content.as_bytes()))
            .map_err(io_error(format!("writing {}", path.display())))
    };
    let src = dir.join("src");
    for sub in ["src", "output", "home"] {
        mkdir(&dir.join(sub))?;
    }
    for (name, content) in &recipe.files {
        let path = src.join(name);
        if let Some(parent) = path.parent() {
            mkdir(parent)?;
        }
        write(&path, content)?;
    }
    write(&dir.join("recipe.sh"), &recipe.script)?;
    chown_tree(dir, uid, gid).map_err(io_error(format!("chown {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("chmod {}", dir.display())))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Checks the output directory after a successful script: regular files and directories only,
/// at most `cap_mib` MiB in all. Returns the reason when it is not acceptable.
fn check_output(dir: &Path, cap_mib: i32) -> Result<Option<String>, SandboxError> {
    let cap = u64::try_from(cap_mib).unwrap_or(0) * MIB;
    let meta = std::fs::symlink_metadata(dir).map_err(io_error(format!("reading {}", dir.display())))?;
    if !meta.is_dir() {
        return Ok(Some("$PETREL_OUTPUT is not a directory any more".into()));
    }
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(io_error(format!("reading {}", current.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_error(format!("reading {}", current.display())))?;
            let path = entry.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(io_error(format!("reading {}", path.display())))?;
            let relative = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                total += meta.len();
            } else if kind.is_symlink() {
                return Ok(Some(format!("output contains a symbolic link: {relative}")));
            } else {
                return Ok(Some(format!("output contains a special file: {relative}")));
            }
        }
    }
    Ok((total > cap).then(|| format!("output exceeds {cap_mib} MiB")))
}

// ---------------------------------------------------------------------------------------------
// The console

async fn pump_console(
    receiver: tokio::net::unix::pipe::Receiver,
    console: mpsc::Sender<ConsoleLine>,
    start: Instant,
) {
    let mut lines = LineSplitter::default();
    let mut chunk = vec![0u8; 64 * 1024];
    // Keeps draining after the receiver is gone, so the build never blocks on a full pipe.
    let mut open = true;
    let mut send = async |text: String| {
        if open {
            let at_ms = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
            open = console.send(ConsoleLine { at_ms, text }).await.is_ok();
        }
    };
    loop {
        if receiver.readable().await.is_err() {
            break;
        }
        match receiver.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                for line in lines.push(&chunk[..n]) {
                    send(line).await;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!("reading the build console: {e}");
                break;
            }
        }
    }
    if let Some(last) = lines.finish() {
        send(last).await;
    }
}

/// Splits bytes into lines of at most [`MAX_LINE`] bytes (at a UTF-8 boundary when there is
/// one near the limit); invalid UTF-8 is replaced.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    self.split_long(&mut out);
                    out.push(String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned());
                }
                None => {
                    self.pending.extend_from_slice(bytes);
                    bytes = &[];
                    self.split_long(&mut out);
                }
            }
        }
        out
    }

    /// Emits full-size pieces while more than [`MAX_LINE`] bytes are pending.
    fn split_long(&mut self, out: &mut Vec<String>) {
        while self.pending.len() > MAX_LINE {
            let cut = match std::str::from_utf8(&self.pending[..MAX_LINE]) {
                Ok(_) => MAX_LINE,
                // A character cut in two at the limit goes to the next piece.
                Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > MAX_LINE => e.valid_up_to(),
                Err(_) => MAX_LINE,
            };
            let rest = self.pending.split_off(cut);
            out.push(String::from_utf8_lossy(&std::mem::replace(&mut self.pending, rest)).into_owned());
        }
    }

    fn finish(self) -> Option<String> {
        (!self.pending.is_empty()).then(|| String::from_utf8_lossy(&self.pending).into_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// The child: namespaces and mounts, between fork and exec

const SETUP_PREFIX: &str = "petrel-sandbox setup failed: ";

/// Mount attributes for `mount_setattr(2)` (Linux 5.12); libc has no stable binding yet.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;

enum OptKind {
    Dir,
    File,
    Symlink(CString),
}

/// An entry of the host's `/opt`, re-created on the tmpfs that replaces `/opt` when tool
/// directories are mounted (the host's root is read-only, so `/opt/petrel` cannot be made).
struct OptEntry {
    /// Relative to the host `/opt`.
    name: CString,
    /// `/opt/<name>`.
    target: CString,
    kind: OptKind,
}

struct ToolMount {
    host: CString,
    target: CString,
}

/// Everything the child needs, prepared before the fork: `enter` must not allocate.
struct ChildPlan {
    build_dir: CString,
    tools: Vec<ToolMount>,
    /// Filled in the child; its capacity is reserved here.
    tool_fds: Vec<c_int>,
    opt_entries: Vec<OptEntry>,
    tmpfs_options: CString,
    new_net: bool,
    memory_bytes: u64,
    file_bytes: u64,
}

fn cstring(what: &str, bytes: &[u8]) -> Result<CString, SandboxError> {
    CString::new(bytes).map_err(|_| invalid(what.to_string(), "path contains NUL"))
}

impl ChildPlan {
    fn new(spec: &SandboxSpec, build_dir: &Path) -> Result<ChildPlan, SandboxError> {
        let memory_mib = u64::try_from(spec.limits.memory_mib).unwrap_or(1);
        let mut tools = Vec::new();
        for tool in &spec.tool_dirs {
            let host = std::fs::canonicalize(&tool.host)
                .map_err(io_error(format!("tool directory {}", tool.host.display())))?;
            tools.push(ToolMount {
                host: cstring("tool directory", host.as_os_str().as_bytes())?,
                target: cstring("tool directory", format!("{SANDBOX_TOOL_ROOT}/{}", tool.name).as_bytes())?,
            });
        }
        let opt_entries = if tools.is_empty() { Vec::new() } else { host_opt_entries()? };
        Ok(ChildPlan {
            build_dir: cstring("build directory", build_dir.as_os_str().as_bytes())?,
            tool_fds: Vec::with_capacity(tools.len()),
            tools,
            opt_entries,
            // Private temporary space counts against memory, so it is bounded like memory.
            tmpfs_options: cstring("tmpfs", format!("mode=1777,size={memory_mib}m").as_bytes())?,
            new_net: !spec.recipe.network,
            memory_bytes: memory_mib * MIB,
            file_bytes: u64::try_from(spec.limits.output_mib).unwrap_or(1) * MIB,
        })
    }

    /// Runs in the child after fork, as root: async-signal-safe system calls only.
    fn enter(&mut self) -> io::Result<()> {
        // A session of its own: one killpg reaches `unshare` and the script.
        // SAFETY: no arguments.
        check("setsid", unsafe { libc::setsid() })?;
        // A worker killed outright takes its builds with it (`unshare`, then through
        // `--pdeathsig` the script). The signal follows the spawning thread, one of the
        // runtime's long-lived workers.
        // SAFETY: plain integer arguments.
        check("prctl(PR_SET_PDEATHSIG)", unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0)
        })?;
        let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        if self.new_net {
            flags |= libc::CLONE_NEWNET;
        }
        // SAFETY: no memory arguments.
        check("unshare", unsafe { libc::unshare(flags) })?;
        // SAFETY: the pointer and length describe a static byte string.
        check("sethostname", unsafe {
            libc::sethostname(SANDBOX_HOSTNAME.as_ptr().cast::<c_char>(), SANDBOX_HOSTNAME.len())
        })?;
        // Nothing mounted from here on propagates to the host.
        check("making mounts private", mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None))?;

        // Opened before anything is hidden (a tool directory may live under /tmp or /opt), and
        // in this namespace, as bind mounts need sources from the caller's namespace.
        let build_fd = open_path(&self.build_dir).map_err(|e| report("opening the build directory", e))?;
        self.tool_fds.clear();
        for tool in &self.tools {
            let fd = open_path(&tool.host).map_err(|e| report("opening a tool directory", e))?;
            // Within the reserved capacity: no allocation.
            self.tool_fds.push(fd);
        }
        let opt_fd = if self.tools.is_empty() {
            -1
        } else {
            open_path(c"/opt").map_err(|e| report("opening /opt", e))?
        };

        // The whole host read-only (and without set-uid), whatever its permissions say.
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: the path is a static C string and `attr` a live `mount_attr` of the given size.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                c"/".as_ptr(),
                libc::AT_RECURSIVE as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        // Before Linux 5.12 the host's permissions (and the private tmpfs below) have to do.
        if rc == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
            return Err(report("making the host read-only", io::Error::last_os_error()));
        }

        let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
        check(
            "mounting /tmp",
            mount(Some(c"tmpfs"), c"/tmp", Some(c"tmpfs"), nosuid_nodev, Some(&self.tmpfs_options)),
        )?;
        // SAFETY: static C string.
        check("creating /tmp/build", unsafe { libc::mkdir(c"/tmp/build".as_ptr(), 0o755) })?;
        let mut buf = [0u8; 32];
        let source = proc_fd_path(build_fd, &mut buf);
        check("mounting /tmp/build", mount(Some(source), c"/tmp/build", None, libc::MS_BIND, None))?;
        // The bind copied the read-only flag of its source mount.
        check(
            "making /tmp/build writable",
            mount(None, c"/tmp/build", None, libc::MS_BIND | libc::MS_REMOUNT | nosuid_nodev, None),
        )?;
        // Other world-writable places, private too; /run holds the host's unix sockets
        // (reachable across network namespaces), but also what DNS may need, so a build with
        // the network keeps it.
        let mut private: &[&CStr] = &[c"/var/tmp", c"/dev/shm", c"/run"];
        if !self.new_net {
            private = &private[..2];
        }
        for dir in private {
            let rc = mount(Some(c"tmpfs"), dir, Some(c"tmpfs"), nosuid_nodev, Some(&self.tmpfs_options));
            if rc == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
                return Err(report("mounting a private tmpfs", io::Error::last_os_error()));
            }
        }

        if !self.tools.is_empty() {
            self.mount_tools(opt_fd)?;
        }
        for &fd in self.tool_fds.iter().chain([&build_fd, &opt_fd]) {
            if fd >= 0 {
                // SAFETY: closing descriptors this function opened.
                unsafe { libc::close(fd) };
            }
        }
        if self.new_net {
            loopback_up().map_err(|e| report("bringing up lo", e))?;
        }
        for (resource, value) in [
            (libc::RLIMIT_AS, self.memory_bytes),
            (libc::RLIMIT_FSIZE, self.file_bytes),
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_NPROC, MAX_PROCESSES),
        ] {
            let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
            // SAFETY: `limit` is a live rlimit.
            check("setrlimit", unsafe { libc::setrlimit(resource, &limit) })?;
        }
        // SAFETY: no memory arguments.
        unsafe { libc::umask(0o022) };
        // SAFETY: static C string.
        check("entering /tmp/build/src", unsafe { libc::chdir(c"/tmp/build/src".as_ptr()) })
    }

    /// Replaces /opt by a tmpfs holding the host's entries (bound back) and /opt/petrel with
    /// each tool directory bound read-only.
    fn mount_tools(&self, opt_fd: c_int) -> io::Result<()> {
        let flags = libc::MS_NOSUID | libc::MS_NODEV;
        check(
            "mounting /opt",
            mount(Some(c"tmpfs"), c"/opt", Some(c"tmpfs"), flags, Some(c"mode=0755,size=1m")),
        )?;
        // Relative names below resolve in the host's /opt, now hidden.
        // SAFETY: `opt_fd` is an open directory descriptor.
        check("entering the host /opt", unsafe { libc::fchdir(opt_fd) })?;
        for entry in &self.opt_entries {
            let target = entry.target.as_ptr();
            match &entry.kind {
                OptKind::Dir => {
                    // SAFETY: NUL-terminated path prepared before the fork.
                    check("recreating /opt", unsafe { libc::mkdir(target, 0o755) })?;
                    let rc =
                        mount(Some(&entry.name), &entry.target, None, libc::MS_BIND | libc::MS_REC, None);
                    check("binding /opt entries", rc)?;
                }
                OptKind::File => {
                    // SAFETY: NUL-terminated path prepared before the fork.
                    let fd = unsafe {
                        libc::open(target, libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644)
                    };
                    check("recreating /opt", fd)?;
                    // SAFETY: the descriptor just opened.
                    unsafe { libc::close(fd) };
                    check(
                        "binding /opt entries",
                        mount(Some(&entry.name), &entry.target, None, libc::MS_BIND, None),
                    )?;
                }
                OptKind::Symlink(link) => {
                    // SAFETY: NUL-terminated strings prepared before the fork.
                    check("recreating /opt", unsafe { libc::symlink(link.as_ptr(), target) })?;
                }
            }
        }
        // SAFETY: static C string.
        check("creating /opt/petrel", unsafe { libc::mkdir(c"/opt/petrel".as_ptr(), 0o755) })?;
        for (tool, &fd) in self.tools.iter().zip(&self.tool_fds) {
            // SAFETY: NUL-terminated path prepared before the fork.
            check("creating a tool mount point", unsafe { libc::mkdir(tool.target.as_ptr(), 0o755) })?;
            let mut buf = [0u8; 32];
            let source = proc_fd_path(fd, &mut buf);
            check(
                "binding a tool directory",
                mount(Some(source), &tool.target, None, libc::MS_BIND | libc::MS_REC, None),
            )?;
            let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags;
            check("making a tool directory read-only", mount(None, &tool.target, None, ro, None))?;
        }
        let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags;
        check("making /opt read-only", mount(None, c"/opt", None, ro, None))?;
        // SAFETY: static C string.
        check("leaving the host /opt", unsafe { libc::chdir(c"/".as_ptr()) })
    }
}

/// The host's /opt entries (but `petrel`), sorted, for [`ChildPlan::mount_tools`].
fn host_opt_entries() -> Result<Vec<OptEntry>, SandboxError> {
    let opt = Path::new("/opt");
    let read =
        std::fs::read_dir(opt).map_err(io_error("/opt (needed for tool directories at /opt/petrel)"))?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(io_error("reading /opt"))?;
        let name = entry.file_name();
        if name == OsStr::new("petrel") {
            continue;
        }
        let kind = match entry.file_type().map_err(io_error("reading /opt"))? {
            t if t.is_dir() => OptKind::Dir,
            t if t.is_file() => OptKind::File,
            t if t.is_symlink() => {
                let link = std::fs::read_link(entry.path()).map_err(io_error("reading /opt"))?;
                OptKind::Symlink(cstring("/opt entry", link.as_os_str().as_bytes())?)
            }
            // Sockets and devices in /opt are not worth re-creating.
            _ => continue,
        };
        entries.push(OptEntry {
            target: cstring("/opt entry", opt.join(&name).as_os_str().as_bytes())?,
            name: cstring("/opt entry", name.as_bytes())?,
            kind,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Writes the failed step to stderr (the diagnostics pipe, read by [`setup_error`]) and passes
/// the error on.
fn report(step: &'static str, error: io::Error) -> io::Error {
    for part in [SETUP_PREFIX.as_bytes(), step.as_bytes(), b"\n"] {
        // SAFETY: writing a live byte slice to fd 2; a failed write loses the step name only.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    error
}

fn check(step: &'static str, rc: c_int) -> io::Result<()> {
    if rc == -1 { Err(report(step, io::Error::last_os_error())) } else { Ok(()) }
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> c_int {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    unsafe { libc::mount(ptr(source), target.as_ptr(), ptr(fstype), flags, ptr(data).cast()) }
}

fn open_path(path: &CStr) -> io::Result<c_int> {
    // SAFETY: NUL-terminated path; O_PATH opens without reading anything.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd == -1 { Err(io::Error::last_os_error()) } else { Ok(fd) }
}

/// `/proc/self/fd/<fd>` in `buf`, without allocating.
fn proc_fd_path(fd: c_int, buf: &mut [u8; 32]) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (fd.unsigned_abs(), 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = PREFIX.len();
    for &d in digits[..len].iter().rev() {
        buf[at] = d;
        at += 1;
    }
    buf[at] = 0;
    CStr::from_bytes_until_nul(&buf[..]).unwrap_or(c"/proc/self/fd/")
}

/// A new network namespace has `lo` down; builds expect 127.0.0.1 to work.
fn loopback_up() -> io::Result<()> {
    // SAFETY: no memory arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name[0] = b'l' as c_char;
    req.ifr_name[1] = b'o' as c_char;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the `ifreq` we own; the flags member is
    // the one these requests use.
    let result = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) == -1 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req) == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_at_newlines_and_the_limit() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\nb"), ["a"]);
        assert_eq!(s.push(b"c\n\n"), ["bc", ""]);
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let out = s.push(&long);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(s.finish().as_deref(), Some("xxxxx"));
    }

    #[test]
    fn a_character_at_the_limit_is_not_cut() {
        let mut s = LineSplitter::default();
        let mut bytes = vec![b'x'; MAX_LINE - 1];
        bytes.extend_from_slice("é\n".as_bytes());
        let out = s.push(&bytes);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE - 1);
        assert_eq!(out[1], "é");
    }

    #[test]
    fn proc_fd_paths() {
        let mut buf = [0u8; 32];
        assert_eq!(proc_fd_path(7, &mut buf), c"/proc/self/fd/7");
        assert_eq!(proc_fd_path(1234, &mut buf), c"/proc/self/fd/1234");
        assert_eq!(proc_fd_path(0, &mut buf), c"/proc/self/fd/0");
    }

    #[test]
    fn environment_names() {
        for ok in ["A", "_", "CFLAGS", "OPAMJOBS", "X_1"] {
            assert!(valid_env_name(ok), "{ok}");
        }
        for bad in ["", "1A", "a", "A-B", "A B", "É"] {
            assert!(!valid_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn file_names() {
        let one = |p: &str| validate_files(&BTreeMap::from([(p.to_string(), String::new())]));
        for ok in ["a", "a/b.c", "..a", "a..", ".hidden"] {
            assert!(one(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "../x", "a/../b", "a//b", "./a", "a/", "a/.", "a\0b"] {
            assert!(matches!(one(bad), Err(SandboxError::Invalid { .. })), "{bad}");
        }
    }
}
