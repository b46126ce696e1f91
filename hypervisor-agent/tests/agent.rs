//! The agent's library parts against the real thing: taps and bridges in fresh network
//! namespaces, the real tender (`petrel-hvt`) running the test guests on KVM. Only the API is
//! replaced, by an in-memory [`Control`]. Tests that need KVM or root fail without them, they
//! are never skipped.

#[path = "hvt/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use petrel_hypervisor::agent::client::ClientError;
use petrel_hypervisor::agent::images::ImageCache;
use petrel_hypervisor::agent::reconcile::{Control, Reconciler, RuntimeConfig};
use petrel_hypervisor::agent::restart::Exit;
use petrel_hypervisor::agent::tap::{Tap, TapError};
use petrel_hypervisor::agent::unikernel::{ConsoleBuffer, LaunchSpec, Unikernel};
use petrel_wire::builds::NewConsoleLine;
use petrel_wire::deployments::{
    AssignedBlock, Assignment, DeploymentState, DeploymentStats, NetAttachment, RestartPolicy, StateReport,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use common::{TENDER, guest, require_kvm};

/// Upper bound for anything a test waits for; a hang must fail, not stall.
const WAIT: Duration = Duration::from_secs(60);

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("these tests create network namespaces, bridges and taps: run them as root (never skipped)");
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ip link show dev NAME` finds the interface (in the calling thread's namespace).
fn link_exists(name: &str) -> bool {
    Command::new("ip").args(["link", "show", "dev", name]).output().unwrap().status.success()
}

/// Runs `f` on a thread of its own in a fresh network namespace holding `br0`
/// (`subnet`.1/24, MTU `mtu`, up). Processes started from that thread (ip, ping, the
/// tenders) live in the namespace too; it vanishes with the thread and its processes, so
/// nothing is left behind even when `f` panics.
fn in_netns<T: Send>(subnet: &str, mtu: u32, f: impl FnOnce() -> T + Send) -> T {
    require_root();
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            // SAFETY: unshare only changes this thread's namespace membership.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
            sh(&["ip", "link", "set", "lo", "up"]);
            sh(&["ip", "link", "add", "br0", "mtu", &mtu.to_string(), "type", "bridge"]);
            sh(&["ip", "addr", "add", &format!("{subnet}.1/24"), "dev", "br0"]);
            sh(&["ip", "link", "set", "br0", "up"]);
            f()
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A single-threaded runtime: every task runs on the calling thread, hence in its namespace.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

// --- tap.rs ------------------------------------------------------------------------------

#[test]
fn the_inventory_lists_the_bridges_of_the_agents_network_namespace() {
    in_netns("10.81.9", 1500, || {
        sh(&["ip", "link", "add", "br-extra", "type", "bridge"]);
        sh(&["ip", "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b"]);
        // Nor loopback, veths or a tap.
        let _tap = Tap::create("br0").unwrap();
        assert_eq!(petrel_hypervisor::agent::inventory::bridges(), ["br-extra", "br0"]);
    });
}

#[test]
fn tap_is_up_on_its_bridge_with_its_mtu_and_removed_when_dropped() {
    in_netns("10.81.0", 1400, || {
        let tap = Tap::create("br0").expect("create a tap on br0");
        let name = tap.name().to_owned();
        assert!(name.starts_with("ptap"), "{name}");
        assert_eq!(tap.bridge(), "br0");
        let link = sh(&["ip", "-o", "-d", "link", "show", "dev", &name]);
        let flags = link.split(['<', '>']).nth(1).unwrap_or_default();
        assert!(flags.split(',').any(|f| f == "UP"), "not up: {link}");
        assert!(link.contains(" master br0 "), "not on br0: {link}");
        assert!(link.contains(" mtu 1400 "), "not the bridge's MTU: {link}");
        assert!(link.contains("tun type tap"), "not a tap: {link}");
        // A second one gets the next name.
        let second = Tap::create("br0").unwrap();
        assert_ne!(second.name(), name);
        let ports = sh(&["ip", "-o", "link", "show", "master", "br0"]);
        assert!(
            ports.contains(&format!(" {name}:")) && ports.contains(&format!(" {}:", second.name())),
            "{ports}"
        );

        drop(tap);
        assert!(!link_exists(&name), "{name} still exists after teardown");
        drop(second);
        assert!(!sh(&["ip", "-o", "link", "show"]).contains("ptap"), "taps left behind");
    });
}

#[test]
fn tap_on_a_missing_bridge_or_a_non_bridge_is_refused_and_leaves_nothing() {
    in_netns("10.81.1", 1500, || {
        assert!(matches!(Tap::create("nosuchbr"), Err(TapError::NoBridge(b)) if b == "nosuchbr"));
        let err = Tap::create("lo").unwrap_err();
        assert!(matches!(&err, TapError::NotABridge(b) if b == "lo"), "{err}");
        assert_eq!(err.to_string(), "lo is not a bridge");
        // An interface with a driver (tun) that is not a bridge.
        let port = Tap::create("br0").unwrap();
        let err = Tap::create(port.name()).unwrap_err();
        assert!(matches!(&err, TapError::NotABridge(b) if b == port.name()), "{err}");
        drop(port);
        assert!(!sh(&["ip", "-o", "link", "show"]).contains("ptap"), "a failed attach left a tap");
    });
}

// --- unikernel.rs ------------------------------------------------------------------------

fn spec(image: &Path, args: &[&str]) -> LaunchSpec {
    LaunchSpec {
        tender: TENDER.into(),
        image: image.to_owned(),
        memory_mib: 8,
        cpus: vec![],
        nets: vec![],
        blocks: vec![],
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

fn texts(lines: &[NewConsoleLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

#[tokio::test]
async fn unikernel_console_lines_and_exit_code() {
    require_kvm();
    let console = ConsoleBuffer::new();
    let before = chrono::Utc::now().timestamp_millis();
    let mut hello = Unikernel::spawn(&spec(&guest("hello"), &["Hello_Petrel"]), &console).unwrap();
    assert!(hello.pid() > 0);
    let exit = tokio::time::timeout(WAIT, hello.wait()).await.expect("hello.hvt timed out").unwrap();
    assert_eq!(exit, Exit::Code(0));
    let lines = console.take();
    let text = texts(&lines);
    assert!(text.contains(&"Hello, World"), "{text:#?}");
    assert!(text.contains(&"Command line is: 'Hello_Petrel'"), "{text:#?}");
    assert!(text.contains(&"SUCCESS"), "{text:#?}");
    assert!(text.iter().all(|l| !l.is_empty()), "empty lines are dropped: {text:#?}");
    assert!(lines.iter().all(|l| l.at_ms >= before), "timestamps");

    let mut exit7 = Unikernel::spawn(&spec(&guest("exit"), &["7"]), &console).unwrap();
    assert_eq!(tokio::time::timeout(WAIT, exit7.wait()).await.unwrap().unwrap(), Exit::Code(7));
    assert!(texts(&console.take()).contains(&"exiting with status 7"));

    // The tender's own errors (stderr) are console lines too.
    let mut missing = Unikernel::spawn(&spec(Path::new("/nonexistent.hvt"), &[]), &console).unwrap();
    assert_eq!(tokio::time::timeout(WAIT, missing.wait()).await.unwrap().unwrap(), Exit::Code(1));
    let text = console.take().into_iter().map(|l| l.text).collect::<Vec<_>>().join("\n");
    assert!(text.contains("petrel-hvt: /nonexistent.hvt"), "{text}");
}

#[tokio::test]
async fn unikernel_is_pinned_and_terminated() {
    require_kvm();
    let console = ConsoleBuffer::new();
    let mut idle =
        Unikernel::spawn(&LaunchSpec { cpus: vec![0], ..spec(&guest("bench"), &["idle"]) }, &console)
            .unwrap();
    let start = Instant::now();
    while !texts(&console.take()).contains(&"IDLE") {
        assert!(start.elapsed() < WAIT, "bench.hvt idle did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", idle.pid())).unwrap();
    let allowed = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
    assert_eq!(allowed.split_whitespace().nth(1), Some("0"), "{allowed}");
    // The tender exits 1 on SIGTERM (albatross' "never restart" code).
    let exit = idle.terminate(Duration::from_secs(5)).await.unwrap();
    assert_eq!(exit, Exit::Code(1));
    let pid = idle.pid() as libc::pid_t;
    // SAFETY: signal 0 only checks whether the pid exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, -1, "the tender still exists");
}

// --- reconcile.rs, with an in-memory API -------------------------------------------------

/// The API's side of the agent protocol, in memory.
#[derive(Default)]
struct MemControl {
    images: HashMap<String, Vec<u8>>,
    reports: Mutex<Vec<(Uuid, StateReport, Instant)>>,
    console: Mutex<Vec<(Uuid, NewConsoleLine)>>,
    /// Deployments the API no longer assigns here: their reports get 404.
    gone: Mutex<HashSet<Uuid>>,
    fetches: AtomicU64,
    stats: Mutex<Vec<(Uuid, DeploymentStats)>>,
}

impl Control for MemControl {
    async fn fetch_image(&self, sha256: &str, dest: &Path) -> Result<(), ClientError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let bytes = self.images.get(sha256).ok_or_else(|| ClientError::Refused {
            status: 404,
            code: "not-found".into(),
            detail: "no such image".into(),
        })?;
        std::fs::write(dest, bytes).map_err(|e| ClientError::Local(e.to_string()))
    }

    async fn report_state(&self, deployment: Uuid, report: &StateReport) -> Result<(), ClientError> {
        if self.gone.lock().unwrap().contains(&deployment) {
            return Err(ClientError::Refused {
                status: 404,
                code: "not-found".into(),
                detail: "not assigned".into(),
            });
        }
        self.reports.lock().unwrap().push((deployment, report.clone(), Instant::now()));
        Ok(())
    }

    async fn send_console(&self, deployment: Uuid, lines: &[NewConsoleLine]) -> Result<(), ClientError> {
        self.console.lock().unwrap().extend(lines.iter().map(|l| (deployment, l.clone())));
        Ok(())
    }

    async fn send_stats(&self, deployment: Uuid, stats: &DeploymentStats) -> Result<(), ClientError> {
        self.stats.lock().unwrap().push((deployment, stats.clone()));
        Ok(())
    }
}

impl MemControl {
    /// Serves the named guests' images; returns their SHA-256s.
    fn with_guests(names: &[&str]) -> (Arc<MemControl>, HashMap<String, String>) {
        let mut control = MemControl::default();
        let mut shas = HashMap::new();
        for name in names {
            let bytes = std::fs::read(guest(name)).unwrap();
            let sha = hex::encode(Sha256::digest(&bytes));
            control.images.insert(sha.clone(), bytes);
            shas.insert(name.to_string(), sha);
        }
        (Arc::new(control), shas)
    }

    fn reports(&self, id: Uuid) -> Vec<StateReport> {
        self.reports.lock().unwrap().iter().filter(|(d, ..)| *d == id).map(|(_, r, _)| r.clone()).collect()
    }

    fn timed_reports(&self, id: Uuid) -> Vec<(StateReport, Instant)> {
        self.reports
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, ..)| *d == id)
            .map(|(_, r, t)| (r.clone(), *t))
            .collect()
    }

    fn console_text(&self, id: Uuid) -> String {
        let lines = self.console.lock().unwrap();
        lines.iter().filter(|(d, _)| *d == id).map(|(_, l)| l.text.as_str()).collect::<Vec<_>>().join("\n")
    }

    /// Waits until `done` holds for the deployment's reports.
    async fn wait_reports(
        &self,
        id: Uuid,
        what: &str,
        done: impl Fn(&[StateReport]) -> bool,
    ) -> Vec<StateReport> {
        let start = Instant::now();
        loop {
            let reports = self.reports(id);
            if done(&reports) {
                return reports;
            }
            assert!(start.elapsed() < WAIT, "timed out waiting for {what}; reports: {reports:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_console(&self, id: Uuid, needle: &str) {
        let start = Instant::now();
        while !self.console_text(id).contains(needle) {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for console {needle:?}:\n{}",
                self.console_text(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn states(reports: &[StateReport]) -> Vec<DeploymentState> {
    reports.iter().map(|r| r.state).collect()
}

fn count(reports: &[StateReport], state: DeploymentState) -> usize {
    reports.iter().filter(|r| r.state == state).count()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn assignment(name: &str, sha: &str, args: &[&str], restart: RestartPolicy) -> Assignment {
    Assignment {
        deployment_id: Uuid::from_u128(u128::from(NEXT_ID.fetch_add(1, Ordering::Relaxed))),
        name: format!("test.{name}"),
        image_sha256: sha.to_owned(),
        memory_mib: 8,
        cpus: vec![],
        args: args.iter().map(|s| s.to_string()).collect(),
        nets: vec![],
        blocks: vec![],
        restart,
        startup_priority: 50,
        revision: 1,
    }
}

/// The reconciler's image cache, removed at the end of the test.
struct ImageDir(std::path::PathBuf);

impl ImageDir {
    fn new(tag: &str) -> ImageDir {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-images-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ImageDir(dir)
    }
}

impl Drop for ImageDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_dir_all(block_dir(self));
    }
}

fn reconciler(control: &Arc<MemControl>, images: &ImageDir) -> Reconciler<MemControl> {
    Reconciler::new(control.clone(), runtime_config(images)).unwrap()
}

/// Images in `images`, block devices' files in `<images>-blocks`.
fn runtime_config(images: &ImageDir) -> RuntimeConfig {
    RuntimeConfig::new(TENDER.into(), 2, images.0.clone(), block_dir(images))
}

fn block_dir(images: &ImageDir) -> std::path::PathBuf {
    images.0.with_extension("blocks")
}

fn on_failure(codes: Option<&[i32]>) -> RestartPolicy {
    RestartPolicy::OnFailure { exit_codes: codes.map(<[i32]>::to_vec) }
}

/// Whether a process exists (zombies included).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks whether the pid exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[tokio::test]
async fn on_failure_restarts_with_backoff_until_the_assignment_is_removed() {
    require_kvm();
    let images = ImageDir::new("restarts");
    let (control, shas) = MemControl::with_guests(&["exit"]);
    let mut reconciler = reconciler(&control, &images);
    let a = assignment("loop", &shas["exit"], &["3"], on_failure(None));
    let id = a.deployment_id;
    reconciler.apply(std::slice::from_ref(&a)).await;
    // Running, Restarting(3) after 1 s Running, Restarting(3) after 2 s Running.
    let reports = control
        // Not "the last one is Running": the guest exits within milliseconds.
        .wait_reports(id, "two restarts", |r| count(r, DeploymentState::Running) >= 3)
        .await;
    use DeploymentState::*;
    assert_eq!(states(&reports[..5]), [Running, Restarting, Running, Restarting, Running]);
    for r in reports.iter().filter(|r| r.state == Restarting) {
        assert_eq!(r.exit_code, Some(3));
        assert!(r.message.as_deref().unwrap_or_default().contains("exited with code 3"), "{r:?}");
        assert_eq!(r.revision, 1);
    }
    // The back-off: 1 s before the first restart, 2 s before the second.
    let timed = control.timed_reports(id);
    let first_wait = timed[2].1 - timed[1].1;
    let second_wait = timed[4].1 - timed[3].1;
    assert!(first_wait >= Duration::from_millis(900), "first restart after {first_wait:?}");
    assert!(second_wait >= Duration::from_millis(1900), "second restart after {second_wait:?}");
    assert!(control.console_text(id).contains("exiting with status 3"));

    // Removing the assignment ends the loop (whether it is running or waiting to restart).
    reconciler.apply(&[]).await;
    assert!(reconciler.deployments().is_empty());
    let settled = control.reports(id).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(control.reports(id).len(), settled, "reports after removal: {:#?}", control.reports(id));
}

#[tokio::test]
async fn never_and_final_exit_codes_do_not_restart_and_starts_follow_priority() {
    require_kvm();
    let images = ImageDir::new("never");
    let (control, shas) = MemControl::with_guests(&["exit"]);
    let mut reconciler = reconciler(&control, &images);
    // Given in reverse priority order.
    let mut never = assignment("never", &shas["exit"], &["3"], RestartPolicy::Never);
    never.startup_priority = 30;
    let mut listed = assignment("listed", &shas["exit"], &["3"], on_failure(Some(&[5])));
    listed.startup_priority = 20;
    let mut one = assignment("one", &shas["exit"], &["1"], on_failure(None));
    one.startup_priority = 10;
    let all = [never.clone(), listed.clone(), one.clone()];
    reconciler.apply(&all).await;

    use DeploymentState::*;
    for (a, code) in [(&never, 3), (&listed, 3), (&one, 1)] {
        let reports = control.wait_reports(a.deployment_id, "an exit", |r| r.len() >= 2).await;
        assert_eq!(states(&reports), [Running, Exited], "{}: {reports:#?}", a.name);
        assert_eq!(reports[1].exit_code, Some(code), "{}", a.name);
        assert_eq!(reports[1].message.as_deref(), Some(format!("exited with code {code}").as_str()));
    }
    // Lower startup priority first: each start is awaited before the next.
    let order: Vec<Uuid> = {
        let all = control.reports.lock().unwrap();
        all.iter().filter(|(_, r, _)| r.state == Running).map(|(d, ..)| *d).collect()
    };
    assert_eq!(order, [one.deployment_id, listed.deployment_id, never.deployment_id]);

    // Nothing more happens, also when the same assignments come again.
    reconciler.apply(&all).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for a in &all {
        assert_eq!(
            control.reports(a.deployment_id).len(),
            2,
            "{}: {:#?}",
            a.name,
            control.reports(a.deployment_id)
        );
        assert_eq!(reconciler.tender_pid(a.deployment_id), None);
    }
    // A new revision (a restart request) starts an ended deployment again.
    let again = Assignment { revision: 2, ..never.clone() };
    reconciler.apply(&[again, listed, one]).await;
    let reports = control.wait_reports(never.deployment_id, "the restart", |r| r.len() >= 4).await;
    assert_eq!(states(&reports[2..]), [Running, Exited]);
    assert!(reports[2..].iter().all(|r| r.revision == 2));
    reconciler.shutdown().await;
}

#[tokio::test]
async fn manifest_mismatch_block_devices_and_bad_images_fail() {
    let images = ImageDir::new("fail");
    let (control, shas) = MemControl::with_guests(&["hello", "blk", "net"]);
    let mut reconciler = reconciler(&control, &images);
    let net = |device: &str| NetAttachment { device: device.into(), bridge: "br0".into(), mac: None };

    let mut hello = assignment("hello", &shas["hello"], &[], RestartPolicy::Never);
    hello.nets = vec![net("service0")];
    let mut wrong_name = assignment("wrong", &shas["net"], &[], RestartPolicy::Never);
    wrong_name.nets = vec![net("service1"), net("admin")];
    let blk = assignment("blk", &shas["blk"], &[], RestartPolicy::Never);
    let missing = assignment("missing", &"0".repeat(64), &[], RestartPolicy::Never);
    let not_a_sha = assignment("bad", "../../etc/passwd", &[], RestartPolicy::Never);
    let all = [hello.clone(), wrong_name.clone(), blk.clone(), missing.clone(), not_a_sha.clone()];
    reconciler.apply(&all).await;

    let failed = |a: &Assignment| {
        let control = control.clone();
        let id = a.deployment_id;
        async move {
            let reports = control.wait_reports(id, "a failure", |r| !r.is_empty()).await;
            assert_eq!(states(&reports), [DeploymentState::Failed], "{reports:#?}");
            assert_eq!(reports[0].exit_code, None);
            reports[0].message.clone().unwrap()
        }
    };
    let message = failed(&hello).await;
    assert_eq!(
        message,
        "the image's manifest declares net devices [] but the deployment attaches [service0]"
    );
    let message = failed(&wrong_name).await;
    assert_eq!(
        message,
        "the image's manifest declares net devices [service0] but the deployment attaches [admin, service1]"
    );
    let message = failed(&blk).await;
    assert_eq!(
        message,
        "the image's manifest declares block devices [storage] but the deployment attaches []"
    );
    let message = failed(&missing).await;
    assert!(message.contains("no such image"), "{message}");
    let message = failed(&not_a_sha).await;
    assert!(message.contains("is not a SHA-256"), "{message}");
    for a in &all {
        assert_eq!(reconciler.tender_pid(a.deployment_id), None);
    }
    reconciler.shutdown().await;
}

#[tokio::test]
async fn a_block_deployment_runs_on_its_file_and_a_missing_file_fails() {
    require_kvm();
    let images = ImageDir::new("blocks");
    let (control, shas) = MemControl::with_guests(&["blk"]);
    let mut reconciler = reconciler(&control, &images);
    let dir = block_dir(&images);
    std::fs::create_dir_all(&dir).unwrap();
    let file = Uuid::from_u128(0xb10c_0000 + u128::from(std::process::id()));
    let disk = petrel_hypervisor::agent::blocks::BlockStore::path(&dir, file);
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut blk = assignment("blk", &shas["blk"], &[], RestartPolicy::Never);
    blk.blocks = vec![AssignedBlock { device: "storage".into(), block_device_id: file, sector_size: 4096 }];
    let mut missing = assignment("nofile", &shas["blk"], &[], RestartPolicy::Never);
    missing.blocks = vec![AssignedBlock {
        device: "storage".into(),
        block_device_id: Uuid::from_u128(0xdead),
        sector_size: 512,
    }];
    reconciler.apply(&[blk.clone(), missing.clone()]).await;

    let reports = control.wait_reports(blk.deployment_id, "an exit", |r| r.len() >= 2).await;
    assert_eq!(states(&reports), [DeploymentState::Running, DeploymentState::Exited], "{reports:#?}");
    assert_eq!(reports[1].exit_code, Some(0), "{}", control.console_text(blk.deployment_id));
    let console = control.console_text(blk.deployment_id);
    assert!(console.contains("Block size is 4096, capacity 1048576"), "{console}");
    assert!(console.contains("SUCCESS"), "{console}");
    // The guest's writes are in the file: the first block holds its pattern.
    let bytes = std::fs::read(&disk).unwrap();
    assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 1 ^ 0x5a5a);

    let reports = control.wait_reports(missing.deployment_id, "a failure", |r| !r.is_empty()).await;
    assert_eq!(states(&reports), [DeploymentState::Failed]);
    let message = reports[0].message.clone().unwrap();
    assert!(message.starts_with("block device storage: "), "{message}");
    // Ended deployments hold no device.
    assert!(reconciler.blocks_in_use().is_empty());
    reconciler.shutdown().await;
}

#[tokio::test]
async fn an_image_that_does_not_match_its_sha256_is_refused() {
    let images = ImageDir::new("mismatch");
    let mut control = MemControl::default();
    let claimed = hex::encode(Sha256::digest(b"the real image"));
    control.images.insert(claimed.clone(), std::fs::read(guest("hello")).unwrap());
    let control = Arc::new(control);
    let mut reconciler = reconciler(&control, &images);
    let a = assignment("tampered", &claimed, &[], RestartPolicy::Never);
    reconciler.apply(std::slice::from_ref(&a)).await;
    let reports = control.wait_reports(a.deployment_id, "a failure", |r| !r.is_empty()).await;
    assert_eq!(states(&reports), [DeploymentState::Failed]);
    let message = reports[0].message.as_deref().unwrap();
    assert!(message.contains(&format!("the image fetched as {claimed} has SHA-256 ")), "{message}");
    reconciler.shutdown().await;
}

#[tokio::test]
async fn image_cache_verifies_refetches_damaged_images_and_prunes_long_unused_ones() {
    let images = ImageDir::new("cache");
    let (control, shas) = MemControl::with_guests(&["hello", "exit"]);
    std::fs::create_dir_all(&images.0).unwrap();
    std::fs::write(images.0.join("x.1.2.part"), b"left over").unwrap();
    let cache = ImageCache::open(&images.0).unwrap();
    assert!(!images.0.join("x.1.2.part").exists(), "partial downloads are removed at start");
    let hello = cache.get(&*control, &shas["hello"]).await.unwrap();
    assert_eq!(hello, images.0.join(&shas["hello"]));
    assert_eq!(std::fs::read(&hello).unwrap(), std::fs::read(guest("hello")).unwrap());
    cache.get(&*control, &shas["hello"]).await.unwrap();
    assert_eq!(control.fetches.load(Ordering::SeqCst), 1, "a good cached image is not fetched again");
    std::fs::write(&hello, b"damaged").unwrap();
    cache.get(&*control, &shas["hello"]).await.unwrap();
    assert_eq!(control.fetches.load(Ordering::SeqCst), 2, "a damaged one is");
    assert_eq!(std::fs::read(&hello).unwrap(), std::fs::read(guest("hello")).unwrap());
    let exit = cache.get(&*control, &shas["exit"]).await.unwrap();
    let keep_exit = [shas["exit"].clone()].into_iter().collect();
    // Used a moment ago: kept for a redeployment or a rollback.
    cache.prune(&keep_exit, Duration::from_secs(3600));
    assert!(hello.exists() && exit.exists());
    cache.prune(&keep_exit, Duration::ZERO);
    assert!(!hello.exists() && exit.exists());
    let names: Vec<_> = std::fs::read_dir(&images.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[tokio::test]
async fn a_deployment_the_api_no_longer_knows_is_stopped() {
    require_kvm();
    let images = ImageDir::new("gone");
    let (control, shas) = MemControl::with_guests(&["exit"]);
    let mut reconciler = reconciler(&control, &images);
    let a = assignment("loop", &shas["exit"], &["3"], on_failure(None));
    let id = a.deployment_id;
    reconciler.apply(std::slice::from_ref(&a)).await;
    control.wait_reports(id, "a restart", |r| count(r, DeploymentState::Restarting) >= 1).await;
    // The API forgets it: the next report (the restart's Running) gets 404, and the agent
    // stops the tender and the restart loop without being told by new assignments.
    control.gone.lock().unwrap().insert(id);
    let start = Instant::now();
    while reconciler.supervising(id) {
        assert!(start.elapsed() < WAIT, "still supervised; reports: {:#?}", control.reports(id));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reconciler.tender_pid(id), None);
    let runs = control.console_text(id).matches("exiting with status 3").count();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        control.console_text(id).matches("exiting with status 3").count(),
        runs,
        "restarted after 404"
    );
    assert_eq!(states(&control.reports(id)), [DeploymentState::Running, DeploymentState::Restarting]);
    // Assigned again (a new generation still lists it): it starts again.
    control.gone.lock().unwrap().clear();
    reconciler.apply(std::slice::from_ref(&a)).await;
    control.wait_reports(id, "running again", |r| r.len() >= 3).await;
    reconciler.shutdown().await;
    assert!(!reconciler.supervising(id));
}

/// A deployment with a net device, end to end: a tap handed to the tender, the guest answering
/// ping on the bridge, a restart request (new revision), and removal.
#[test]
fn net_deployment_answers_ping_restarts_on_a_new_revision_and_is_removed() {
    require_kvm();
    in_netns("10.81.2", 1500, || {
        runtime().block_on(async {
            let images = ImageDir::new("net");
            let (control, shas) = MemControl::with_guests(&["net"]);
            let mut config = runtime_config(&images);
            config.stats_interval = Duration::from_millis(200);
            let mut reconciler = Reconciler::new(control.clone(), config).unwrap();
            let mut a = assignment("web", &shas["net"], &["ip=10.81.2.2"], on_failure(None));
            a.nets = vec![NetAttachment {
                device: "service0".into(),
                bridge: "br0".into(),
                mac: Some("02:AA:BB:CC:DD:0E".into()),
            }];
            let id = a.deployment_id;
            reconciler.apply(std::slice::from_ref(&a)).await;
            control.wait_reports(id, "running", |r| !r.is_empty()).await;
            control.wait_console(id, "Serving 10.81.2.2 on 02:aa:bb:cc:dd:0e").await;
            let taps = reconciler.taps(id);
            assert_eq!(taps.len(), 1, "{taps:?}");
            let ports = sh(&["ip", "-o", "link", "show", "master", "br0"]);
            assert!(ports.contains(&format!(" {}:", taps[0])), "{ports}");
            let pid = reconciler.tender_pid(id).unwrap();
            let ping = sh(&["ping", "-n", "-c", "2", "-i", "0.3", "-W", "5", "-w", "30", "10.81.2.2"]);
            assert!(ping.contains(" 2 received"), "{ping}");
            // Stats: the tender's memory and CPU time, and the pings on the tap's counters.
            let deadline = Instant::now() + Duration::from_secs(30);
            let sample = loop {
                let latest = control
                    .stats
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .find(|(d, _)| *d == id)
                    .map(|(_, s)| s.clone());
                match latest {
                    Some(s) if s.nets.first().is_some_and(|n| n.rx_packets >= 2 && n.tx_packets >= 2) => {
                        break s;
                    }
                    _ if Instant::now() > deadline => panic!("no stats with the pings: {latest:?}"),
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            assert_eq!(sample.nets[0].device, "service0");
            assert!(sample.rss_kib > 1024, "{sample:?}");
            // CPU time comes in clock ticks (10 ms): an idle guest may not have used one yet.
            assert!(sample.uptime_ms > 0, "{sample:?}");
            assert!(sample.uptime_ms < 600_000, "{sample:?}");

            // A restart request: the old tender stops, a new one runs with the new revision.
            let again = Assignment { revision: 2, ..a.clone() };
            reconciler.apply(std::slice::from_ref(&again)).await;
            assert!(!alive(pid), "the old tender still runs");
            let reports = control.wait_reports(id, "running again", |r| r.len() >= 2).await;
            assert_eq!(states(&reports), [DeploymentState::Running, DeploymentState::Running]);
            assert_eq!(reports[1].revision, 2);
            let new_pid = reconciler.tender_pid(id).unwrap();
            assert_ne!(new_pid, pid);
            let ping = sh(&["ping", "-n", "-c", "1", "-W", "5", "-w", "30", "10.81.2.2"]);
            assert!(ping.contains(" 1 received"), "{ping}");
            let taps = reconciler.taps(id);

            // Removed: the tender is stopped, the tap is gone, nothing is reported.
            reconciler.apply(&[]).await;
            assert!(!alive(new_pid), "the tender still runs");
            assert!(!link_exists(&taps[0]), "{} still exists", taps[0]);
            assert!(!sh(&["ip", "-o", "link", "show"]).contains("ptap"), "taps left behind");
            assert_eq!(control.reports(id).len(), 2, "{:#?}", control.reports(id));
        })
    });
}
