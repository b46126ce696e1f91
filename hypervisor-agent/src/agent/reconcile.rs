//! Makes the host run what the API assigns: one supervising task per deployment, which fetches
//! and checks the image, makes the taps, runs the tender, reports each state change and
//! applies the restart policy.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use petrel_wire::builds::NewConsoleLine;
use petrel_wire::deployments::{Assignment, DeploymentState, DeploymentStats, StateReport};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::client::ClientError;
use super::images::{ImageCache, ImageError};
use super::restart::{Backoff, Decision, Exit, decide};
use super::tap::Tap;
use super::unikernel::{BlockArg, ConsoleBuffer, LaunchSpec, NetArg, Unikernel};
use crate::DeviceType;

/// What the reconciler needs from the API. [`super::client::ApiClient`] in production; tests
/// use an in-memory implementation.
pub trait Control: Send + Sync + 'static {
    /// Writes the image with this SHA-256 to `dest` (the caller verifies it).
    fn fetch_image(&self, sha256: &str, dest: &Path) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// A refusal with status 404 means the deployment is no longer assigned here.
    fn report_state(
        &self,
        deployment: Uuid,
        report: &StateReport,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    fn send_console(
        &self,
        deployment: Uuid,
        lines: &[NewConsoleLine],
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    fn send_stats(
        &self,
        deployment: Uuid,
        stats: &DeploymentStats,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// How unikernels are run on this host.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub tender: PathBuf,
    /// The solo5 ABI version the tender runs (its `--version`); images must match it.
    pub tender_abi: u32,
    pub image_dir: PathBuf,
    /// Where block devices' files are ([`super::blocks::BlockStore`]).
    pub block_dir: PathBuf,
    /// Between SIGTERM and SIGKILL when stopping a tender.
    pub stop_grace: Duration,
    pub backoff: Backoff,
    /// How long one deployment's start may hold up the next in startup-priority order (an
    /// image download that waits for an unreachable API must not block everything).
    pub start_timeout: Duration,
    /// How often console lines are shipped.
    pub console_interval: Duration,
    /// How often a running unikernel's stats are sampled and sent.
    pub stats_interval: Duration,
    /// How long an image no assignment uses stays cached.
    pub image_grace: Duration,
}

impl RuntimeConfig {
    pub fn new(tender: PathBuf, tender_abi: u32, image_dir: PathBuf, block_dir: PathBuf) -> RuntimeConfig {
        RuntimeConfig {
            tender,
            tender_abi,
            image_dir,
            block_dir,
            stop_grace: Duration::from_secs(5),
            backoff: Backoff::default(),
            start_timeout: Duration::from_secs(60),
            console_interval: Duration::from_millis(200),
            stats_interval: super::DEFAULT_STATS_INTERVAL,
            image_grace: Duration::from_secs(3600),
        }
    }
}

struct Ctx<C> {
    control: Arc<C>,
    config: RuntimeConfig,
    images: ImageCache,
}

/// What the reconciler (and tests) can see of a supervising task.
#[derive(Debug, Default)]
struct Shared {
    /// The running tender's pid, 0 when none runs.
    pid: AtomicU32,
    /// The API answered 404 to a report: the deployment is not assigned here any more.
    gone: AtomicBool,
    taps: Mutex<Vec<String>>,
}

struct Instance {
    revision: i64,
    /// The block devices it uses.
    blocks: Vec<Uuid>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

/// The deployments this host runs, kept equal to the latest assignments by [`Reconciler::apply`].
pub struct Reconciler<C: Control> {
    ctx: Arc<Ctx<C>>,
    instances: HashMap<Uuid, Instance>,
}

impl<C: Control> Reconciler<C> {
    pub fn new(control: Arc<C>, config: RuntimeConfig) -> Result<Reconciler<C>, ImageError> {
        let images = ImageCache::open(&config.image_dir)?;
        Ok(Reconciler { ctx: Arc::new(Ctx { control, config, images }), instances: HashMap::new() })
    }

    /// Stops what is no longer assigned (or was restarted: a new revision), then starts what
    /// does not run yet, lower startup priority first, each start awaited before the next.
    /// A deployment that ended (exited, failed) stays ended until its revision changes.
    ///
    /// On agent start this runs with everything assigned, so after an agent restart (whose
    /// tenders died with it) all deployments start again in startup-priority order, as
    /// albatross restores its state (A14).
    pub async fn apply(&mut self, assignments: &[Assignment]) {
        let wanted: HashMap<Uuid, &Assignment> = assignments.iter().map(|a| (a.deployment_id, a)).collect();
        let stale: Vec<Uuid> = self
            .instances
            .iter()
            .filter(|(id, i)| {
                wanted.get(id).is_none_or(|a| a.revision != i.revision)
                    || i.shared.gone.load(Ordering::SeqCst)
            })
            .map(|(id, _)| *id)
            .collect();
        let stopping: Vec<Instance> = stale.iter().filter_map(|id| self.instances.remove(id)).collect();
        stop_all(stopping).await;

        let mut starts: Vec<&Assignment> =
            assignments.iter().filter(|a| !self.instances.contains_key(&a.deployment_id)).collect();
        starts.sort_by(|a, b| (a.startup_priority, &a.name).cmp(&(b.startup_priority, &b.name)));
        for a in starts {
            let (stop, stop_rx) = watch::channel(false);
            let (started_tx, started_rx) = oneshot::channel();
            let shared = Arc::new(Shared::default());
            let task = tokio::spawn(tracing::Instrument::instrument(
                supervise(self.ctx.clone(), a.clone(), shared.clone(), stop_rx, started_tx),
                super::telemetry::deployment_span(a),
            ));
            let blocks = a.blocks.iter().map(|b| b.block_device_id).collect();
            self.instances
                .insert(a.deployment_id, Instance { revision: a.revision, blocks, stop, task, shared });
            // Sent at the first start (or failure); dropped with the task.
            if tokio::time::timeout(self.ctx.config.start_timeout, started_rx).await.is_err() {
                tracing::warn!(deployment = %a.deployment_id, name = %a.name, "slow to start; starting the next");
            }
        }
        let keep: HashSet<String> = assignments.iter().map(|a| a.image_sha256.clone()).collect();
        self.ctx.images.prune(&keep, self.ctx.config.image_grace);
    }

    /// Stops every tender (SIGTERM, SIGKILL after the grace) and removes the taps, without
    /// reporting: the deployments stay assigned and start again with the agent.
    pub async fn shutdown(&mut self) {
        stop_all(self.instances.drain().map(|(_, i)| i).collect()).await;
    }

    /// The deployments this reconciler supervises (running, restarting or ended).
    pub fn deployments(&self) -> Vec<Uuid> {
        self.instances.keys().copied().collect()
    }

    /// Whether the deployment's supervision goes on (it runs, starts or waits to restart);
    /// false once it ended for good (exited, failed, no longer known to the API).
    pub fn supervising(&self, deployment: Uuid) -> bool {
        self.instances.get(&deployment).is_some_and(|i| !i.task.is_finished())
    }

    /// The block devices of the deployments still supervised (running, starting, waiting to
    /// restart): their files must not be replaced or copied.
    pub fn blocks_in_use(&self) -> HashSet<Uuid> {
        self.instances
            .values()
            .filter(|i| !i.task.is_finished())
            .flat_map(|i| i.blocks.iter().copied())
            .collect()
    }

    /// The pid of the deployment's tender, while one runs.
    pub fn tender_pid(&self, deployment: Uuid) -> Option<u32> {
        let pid = self.instances.get(&deployment)?.shared.pid.load(Ordering::SeqCst);
        (pid != 0).then_some(pid)
    }

    /// The deployment's taps, while it has them.
    pub fn taps(&self, deployment: Uuid) -> Vec<String> {
        self.instances
            .get(&deployment)
            .map(|i| i.shared.taps.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }
}

async fn stop_all(instances: Vec<Instance>) {
    // All at once: each may take the whole grace period.
    for instance in &instances {
        let _ = instance.stop.send(true);
    }
    for instance in instances {
        if let Err(e) = instance.task.await {
            tracing::error!("a supervising task failed: {e}");
        }
    }
}

/// Why a deployment's supervision must end early.
struct Halt {
    /// Set by the reconciler (unassigned, new revision, agent shutdown).
    stop: watch::Receiver<bool>,
    /// Set by the reporter: the API answered 404, the deployment is not assigned here any more.
    gone: watch::Receiver<bool>,
}

impl Halt {
    /// Resolves when the deployment must stop (also when the reconciler was dropped).
    async fn wait(&mut self) {
        let reporter_ended = tokio::select! {
            _ = self.stop.wait_for(|s| *s) => return,
            r = self.gone.wait_for(|g| *g) => r.is_err(),
        };
        if reporter_ended {
            // It ended without a 404: only `stop` can end the wait now.
            let _ = self.stop.wait_for(|s| *s).await;
        }
    }
}

/// The whole life of one assigned deployment (one revision of it).
async fn supervise<C: Control>(
    ctx: Arc<Ctx<C>>,
    a: Assignment,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    started: oneshot::Sender<()>,
) {
    let id = a.deployment_id;
    let (gone_tx, gone) = watch::channel(false);
    let (reports, reports_rx) = mpsc::unbounded_channel();
    let reporter = tokio::spawn(tracing::Instrument::in_current_span(report_states(
        ctx.clone(),
        id,
        a.revision,
        reports_rx,
        stop.clone(),
        gone_tx,
    )));
    let console = ConsoleBuffer::new();
    let (ship_done, ship_done_rx) = oneshot::channel();
    let shipper = tokio::spawn(ship_console(ctx.clone(), id, console.clone(), ship_done_rx));
    let devices: Vec<String> = a.nets.iter().map(|n| n.device.clone()).collect();
    let sampler = tokio::spawn(send_stats(ctx.clone(), id, shared.clone(), devices));
    let report = |state, exit: Option<Exit>, message: Option<String>| {
        let _ = reports.send(StateReport {
            revision: a.revision,
            state,
            exit_code: exit.and_then(Exit::code),
            message,
        });
    };
    let mut halt = Halt { stop, gone };
    let mut started = Some(started);
    run(&ctx, &a, &shared, &console, &report, &mut halt, &mut started).await;
    if *halt.gone.borrow() {
        // Started again should a later generation still assign it.
        shared.gone.store(true, Ordering::SeqCst);
    }
    shared.pid.store(0, Ordering::SeqCst);
    shared.taps.lock().unwrap_or_else(|e| e.into_inner()).clear();
    drop(started);
    drop(reports);
    sampler.abort();
    let _ = ship_done.send(());
    let _ = shipper.await;
    let _ = reporter.await;
    tracing::info!(deployment = %id, name = %a.name, "supervision ended");
}

/// Starts and restarts the unikernel until it ends for good or `halt` says to stop it (then
/// the tender gets SIGTERM, SIGKILL after the grace). The taps are removed when this returns.
async fn run<C: Control>(
    ctx: &Ctx<C>,
    a: &Assignment,
    shared: &Shared,
    console: &ConsoleBuffer,
    report: &(impl Fn(DeploymentState, Option<Exit>, Option<String>) + Sync),
    halt: &mut Halt,
    started: &mut Option<oneshot::Sender<()>>,
) {
    let failed = |message: String| {
        tracing::warn!(deployment = %a.deployment_id, name = %a.name, "failed: {message}");
        report(DeploymentState::Failed, None, Some(message));
    };
    let prepared = tokio::select! {
        prepared = prepare(ctx, a) => prepared,
        _ = halt.wait() => return,
    };
    let (image, nets, blocks) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => return failed(message),
    };
    let mut taps = Vec::with_capacity(nets.len());
    for (device, bridge, mac) in nets {
        match Tap::create(&bridge) {
            Ok(tap) => taps.push((device, tap, mac)),
            Err(e) => return failed(format!("net device {device}: {e}")),
        }
    }
    *shared.taps.lock().unwrap_or_else(|e| e.into_inner()) =
        taps.iter().map(|(_, tap, _)| tap.name().to_owned()).collect();
    let spec = LaunchSpec {
        tender: ctx.config.tender.clone(),
        image,
        memory_mib: a.memory_mib as u32,
        cpus: a.cpus.clone(),
        nets: taps
            .iter()
            .map(|(device, tap, mac)| NetArg {
                device: device.clone(),
                tap_fd: tap.as_fd().as_raw_fd(),
                mac: mac.clone(),
            })
            .collect(),
        blocks,
        args: a.args.clone(),
    };
    let mut backoff = ctx.config.backoff.clone();
    loop {
        let mut tender = match Unikernel::spawn(&spec, console) {
            Ok(tender) => tender,
            Err(e) => return failed(e.to_string()),
        };
        shared.pid.store(tender.pid(), Ordering::SeqCst);
        tracing::info!(deployment = %a.deployment_id, name = %a.name, pid = tender.pid(), "running");
        report(DeploymentState::Running, None, None);
        if let Some(started) = started.take() {
            let _ = started.send(());
        }
        let exit = tokio::select! {
            exit = tender.wait() => exit,
            _ = halt.wait() => {
                match tender.terminate(ctx.config.stop_grace).await {
                    Ok(exit) => tracing::info!(deployment = %a.deployment_id, name = %a.name, "stopped: {}", exit.describe()),
                    Err(e) => tracing::error!(deployment = %a.deployment_id, name = %a.name, "stopping the tender: {e}"),
                }
                shared.pid.store(0, Ordering::SeqCst);
                return;
            }
        };
        shared.pid.store(0, Ordering::SeqCst);
        let exit = match exit {
            Ok(exit) => exit,
            Err(e) => return failed(format!("waiting for the tender: {e}")),
        };
        tracing::info!(deployment = %a.deployment_id, name = %a.name, "{}", exit.describe());
        match decide(&a.restart, exit) {
            Decision::Stop => return report(DeploymentState::Exited, Some(exit), Some(exit.describe())),
            Decision::Restart => {
                let delay = backoff.delay(tender.uptime());
                let message = format!("{}; restarting in {} s", exit.describe(), delay.as_secs_f32());
                report(DeploymentState::Restarting, Some(exit), Some(message));
                // A boot loop stays destroyable: the wait ends when the deployment must stop.
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = halt.wait() => return,
                }
            }
        }
    }
}

/// What [`prepare`] found ready: the image's path, the nets as (device, bridge, MAC), and
/// the block devices.
type Prepared = (PathBuf, Vec<(String, String, String)>, Vec<BlockArg>);

/// Checks everything that can be checked before starting: the image (fetched, verified,
/// inspected), its devices against the requested ones, the block devices' files, MACs.
async fn prepare<C: Control>(ctx: &Ctx<C>, a: &Assignment) -> Result<Prepared, String> {
    if a.memory_mib < 1 {
        return Err(format!("memory_mib {} is below 1", a.memory_mib));
    }
    let mut nets = Vec::with_capacity(a.nets.len());
    for net in &a.nets {
        let mac = match &net.mac {
            Some(mac) => {
                parse_mac(mac).ok_or_else(|| format!("net device {}: invalid MAC {mac:?}", net.device))?
            }
            None => default_mac(&a.name, &net.device),
        };
        nets.push((net.device.clone(), net.bridge.clone(), mac));
    }
    let requested: BTreeSet<&str> = a.nets.iter().map(|n| n.device.as_str()).collect();
    if requested.len() != a.nets.len() {
        return Err("a net device is attached more than once".into());
    }

    let mut retry = Duration::from_secs(1);
    let image = loop {
        match ctx.images.get(&*ctx.control, &a.image_sha256).await {
            Ok(path) => break path,
            Err(e) if e.is_retryable() => {
                tracing::warn!(deployment = %a.deployment_id, "{e}; trying again in {retry:?}");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let bytes = tokio::fs::read(&image).await.map_err(|e| format!("reading the image: {e}"))?;
    let info = crate::inspect(&bytes).map_err(|e| format!("the image is not a solo5 hvt unikernel: {e}"))?;
    if info.abi_version != ctx.config.tender_abi {
        return Err(format!(
            "the image needs solo5 ABI version {}, the tender runs version {}",
            info.abi_version, ctx.config.tender_abi
        ));
    }
    let devices = |kind| -> BTreeSet<&str> {
        info.devices.iter().filter(|d| d.kind == kind).map(|d| d.name.as_str()).collect()
    };
    let manifest_nets = devices(DeviceType::Net);
    if manifest_nets != requested {
        return Err(format!(
            "the image's manifest declares net devices {} but the deployment attaches {}",
            set(&manifest_nets),
            set(&requested)
        ));
    }
    let manifest_blocks = devices(DeviceType::Block);
    let requested_blocks: BTreeSet<&str> = a.blocks.iter().map(|b| b.device.as_str()).collect();
    if manifest_blocks != requested_blocks {
        return Err(format!(
            "the image's manifest declares block devices {} but the deployment attaches {}",
            set(&manifest_blocks),
            set(&requested_blocks)
        ));
    }
    let mut blocks = Vec::with_capacity(a.blocks.len());
    for block in &a.blocks {
        let path = super::blocks::BlockStore::path(&ctx.config.block_dir, block.block_device_id);
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("block device {}: {}: {e}", block.device, path.display()))?
            .len();
        let sector_size = u64::try_from(block.sector_size).unwrap_or(0);
        if sector_size < 512 || !sector_size.is_power_of_two() || size % sector_size != 0 {
            return Err(format!(
                "block device {}: sector size {} does not divide its {size} bytes",
                block.device, block.sector_size
            ));
        }
        blocks.push(BlockArg { device: block.device.clone(), path, sector_size });
    }
    Ok((image, nets, blocks))
}

fn set(names: &BTreeSet<&str>) -> String {
    format!("[{}]", names.iter().copied().collect::<Vec<_>>().join(", "))
}

/// `xx:xx:xx:xx:xx:xx`, unicast; normalised to lowercase.
pub fn parse_mac(text: &str) -> Option<String> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|p| if p.len() == 2 { u8::from_str_radix(p, 16).ok() } else { None })
        .collect::<Option<_>>()?;
    (bytes.len() == 6 && bytes[0] & 1 == 0).then(|| text.to_ascii_lowercase())
}

/// A MAC that stays the same for a deployment's device across restarts and hosts, like
/// albatross' (which takes 3 bytes of MD5(device ++ name) after the OUI 00:80:41): here a
/// locally administered address with 5 bytes of SHA-256(device ++ name).
pub fn default_mac(name: &str, device: &str) -> String {
    let digest = Sha256::digest(format!("{device}{name}"));
    let tail: Vec<String> = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("02:{}", tail.join(":"))
}

/// Delivers one deployment's state reports in order, retrying while the API is unreachable.
/// A 404 means the deployment is no longer assigned: `gone` tells the supervisor to stop it.
async fn report_states<C: Control>(
    ctx: Arc<Ctx<C>>,
    id: Uuid,
    revision: i64,
    mut reports: mpsc::UnboundedReceiver<StateReport>,
    mut stop: watch::Receiver<bool>,
    gone: watch::Sender<bool>,
) {
    while let Some(report) = reports.recv().await {
        let mut retry = Duration::from_secs(1);
        loop {
            if *stop.borrow() {
                // Stopped on purpose: what is still queued is about a revision that is over.
                return;
            }
            match ctx.control.report_state(id, &report).await {
                Ok(()) => break,
                Err(e) if e.status() == Some(404) => {
                    tracing::info!(deployment = %id, revision, "no longer assigned here: stopping it");
                    let _ = gone.send(true);
                    return;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(deployment = %id, "reporting {:?}: {e}; trying again in {retry:?}", report.state);
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    retry = (retry * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::warn!(deployment = %id, "the report {:?} was refused: {e}", report.state);
                    break;
                }
            }
        }
    }
}

/// Ships console lines as they arrive, at most once per `console_interval`: the first lines
/// of a quiet unikernel go at once, a chatty one's in batches. Lines the API cannot take now
/// are kept for the next time; what remains at the end is sent once more.
async fn ship_console<C: Control>(
    ctx: Arc<Ctx<C>>,
    id: Uuid,
    console: ConsoleBuffer,
    mut done: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = console.arrival() => {
                ship(&*ctx.control, id, &console).await;
                // Lines arriving meanwhile wait for the next batch.
                tokio::select! {
                    _ = tokio::time::sleep(ctx.config.console_interval) => {}
                    _ = &mut done => break,
                }
            }
            _ = &mut done => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ship(&*ctx.control, id, &console)).await;
}

/// Samples the running tender every `stats_interval` and sends the sample; nothing while no
/// tender runs (between restarts). Aborted when supervision ends.
async fn send_stats<C: Control>(ctx: Arc<Ctx<C>>, id: Uuid, shared: Arc<Shared>, devices: Vec<String>) {
    let mut tick = tokio::time::interval(ctx.config.stats_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let pid = shared.pid.load(Ordering::SeqCst);
        if pid == 0 {
            continue;
        }
        let taps = shared.taps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Taps are created in the order of the assignment's network devices.
        let nets: Vec<(String, String)> = devices.iter().cloned().zip(taps).collect();
        let sample = match tokio::task::spawn_blocking(move || super::stats::sample(pid, &nets)).await {
            Ok(Ok(sample)) => sample,
            // The tender ended between the load and the read.
            Ok(Err(e)) => {
                tracing::debug!(deployment = %id, "no stats: {e}");
                continue;
            }
            Err(_) => continue,
        };
        if let Err(e) = ctx.control.send_stats(id, &sample).await {
            tracing::debug!(deployment = %id, "stats not sent: {e}");
        }
    }
}

async fn ship<C: Control>(control: &C, id: Uuid, console: &ConsoleBuffer) {
    let lines = console.take();
    if lines.is_empty() {
        return;
    }
    match control.send_console(id, &lines).await {
        Ok(()) => {}
        Err(e) if e.is_retryable() => console.requeue(lines),
        Err(e) => tracing::debug!(deployment = %id, "console lines refused: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:AA:bb:cc:dd:0e").as_deref(), Some("02:aa:bb:cc:dd:0e"));
        assert_eq!(parse_mac("01:00:5e:00:00:01"), None, "multicast");
        assert_eq!(parse_mac("02:aa:bb:cc:dd"), None);
        assert_eq!(parse_mac("02:aa:bb:cc:dd:0"), None);
        assert_eq!(parse_mac("02:aa:bb:cc:dd:zz"), None);
        let mac = default_mac("default.web", "service");
        assert_eq!(mac, default_mac("default.web", "service"), "stable");
        assert_ne!(mac, default_mac("default.web", "management"));
        assert_eq!(parse_mac(&mac).as_deref(), Some(mac.as_str()));
        assert!(mac.starts_with("02:"));
    }

    #[test]
    fn device_sets_are_named_in_messages() {
        assert_eq!(set(&BTreeSet::new()), "[]");
        assert_eq!(set(&["service", "admin"].into_iter().collect()), "[admin, service]");
    }
}
