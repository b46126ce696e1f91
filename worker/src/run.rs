//! The worker's loop: say hello, then in each slot claim a build (long-poll), run it in the
//! sandbox while streaming its console and renewing its lease, keep the result on disk, and
//! upload it until the API accepts it. Results kept from an earlier run are sent first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use petrel_wire::builds::{Build, NewConsoleLine, OpenUpload};
use petrel_wire::workers::{Claim, WorkerHello};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;
use tracing::field::Empty;
use uuid::Uuid;

use crate::client::{ApiClient, ClientError};
use crate::record;
use crate::sandbox::{self, ConsoleLine, SandboxSpec, ToolDir};
use crate::spool::{Source, Spool};

pub struct WorkerConfig {
    /// Builds, and results not yet accepted, live here.
    pub work_dir: PathBuf,
    pub platform: String,
    pub concurrency: u32,
    /// Slot N runs its builds as this uid + N (and the same gid), so concurrent builds cannot
    /// read each other's files.
    pub uid_base: u32,
    pub tool_dirs: Vec<ToolDir>,
}

pub struct Runner {
    client: ApiClient,
    config: WorkerConfig,
    spool: Spool,
}

/// Console lines go out in batches at most this often.
const CONSOLE_FLUSH: Duration = Duration::from_millis(200);
const CONSOLE_BATCH: usize = 500;
/// Lines kept while the API is unreachable; older ones are dropped beyond this.
const CONSOLE_BACKLOG: usize = 100_000;
/// After the build ended, how long unsent console lines are retried before the result is
/// delivered without them. The lease bounds this in practice: once the API re-queues the build,
/// it refuses the lines and the worker stops trying.
const CONSOLE_FINAL_RETRY: Duration = Duration::from_secs(600);
/// The `rebuild` command's slot, apart from a running worker's.
pub const REBUILD_SLOT: u32 = 1000;

impl Runner {
    pub fn new(client: ApiClient, config: WorkerConfig) -> std::io::Result<Runner> {
        std::fs::create_dir_all(&config.work_dir)?;
        restrict(&config.work_dir)?;
        let builds = config.work_dir.join("builds");
        std::fs::create_dir_all(&builds)?;
        restrict(&builds)?;
        let spool = Spool::open(&config.work_dir.join("results"))?;
        Ok(Runner { client, config, spool })
    }

    /// Runs until `shutdown` turns true. Builds running then are abandoned: their leases lapse
    /// and the API queues them again.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let hello = WorkerHello {
            platform: self.config.platform.clone(),
            concurrency: self.config.concurrency as i32,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut backoff = Backoff::new();
        loop {
            match self.client.hello(&hello).await {
                Ok(w) => {
                    tracing::info!(worker = %w.name, platform = %hello.platform, "connected to the API");
                    break;
                }
                Err(e) if e.is_retryable() => tracing::warn!("cannot reach the API: {e}; retrying"),
                Err(e) => tracing::error!("the API refused this worker: {e}; retrying"),
            }
            tokio::select! {
                _ = backoff.wait() => {}
                _ = shutdown.changed() => return,
            }
        }
        // Builds left running by an earlier run of this worker that died are ended first: their
        // uids are about to be reused.
        for slot in 0..self.config.concurrency {
            match sandbox::kill_processes_of(self.config.uid_base + slot) {
                Ok(0) => {}
                Ok(n) => tracing::warn!(slot, "killed {n} processes left by an earlier run"),
                Err(e) => tracing::warn!(slot, "cannot look for leftover build processes: {e}"),
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        let me = self.clone();
        tasks.spawn(async move { me.deliver_kept().await });
        for slot in 0..self.config.concurrency {
            let me = self.clone();
            tasks.spawn(async move { me.slot_loop(slot).await });
        }
        let _ = shutdown.wait_for(|stop| *stop).await;
        tasks.abort_all();
    }

    /// Results kept by an earlier run of this worker (it crashed or was stopped mid-upload).
    async fn deliver_kept(&self) {
        let pending = match self.spool.pending() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot read kept results: {e}");
                return;
            }
        };
        for (build_id, _) in pending {
            self.deliver(build_id).await;
        }
    }

    async fn slot_loop(&self, slot: u32) {
        let mut backoff = Backoff::new();
        loop {
            // One trace per claim: the claim, then the build it brought, its upload.
            let span = tracing::info_span!(
                "claim",
                otel.name = "claim build",
                petrel.platform = %self.config.platform,
                petrel.worker.slot = slot,
                petrel.build_id = Empty,
            );
            match self.client.claim(&self.config.platform).instrument(span.clone()).await {
                Ok(Some(claim)) => {
                    backoff.reset();
                    span.record("petrel.build_id", claim.build_id.to_string());
                    self.execute(claim, slot).instrument(span).await;
                }
                Ok(None) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(slot, "claiming failed: {e}");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Runs one claimed build to the end: sandbox, record, keep, deliver. Returns the build as
    /// the API accepted it, or `None` when it was cancelled or refused.
    #[tracing::instrument(name = "build", skip_all, fields(
        otel.name = "build",
        petrel.build_id = %claim.build_id,
        petrel.job = %claim.job_name,
        petrel.attempt = claim.attempt,
        petrel.build.outcome = Empty,
    ))]
    pub async fn execute(&self, claim: Claim, slot: u32) -> Option<Build> {
        let build_id = claim.build_id;
        tracing::info!(build = %build_id, job = %claim.job_name, attempt = claim.attempt, slot, "building");
        let build_dir = self.config.work_dir.join("builds").join(build_id.to_string());
        let _ = std::fs::remove_dir_all(&build_dir);
        if let Err(e) = std::fs::create_dir_all(&build_dir) {
            tracing::error!(build = %build_id, "cannot create the build directory: {e}");
            return None;
        }
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let heartbeat = tokio::spawn(
            heartbeats(
                self.client.clone(),
                build_id,
                Duration::from_secs((claim.lease_secs.max(3) / 3) as u64),
                cancel_tx.clone(),
                running.clone(),
            )
            .in_current_span(),
        );
        let (console_tx, console_rx) = mpsc::channel(4096);
        let console = tokio::spawn(
            forward_console(self.client.clone(), build_id, console_rx, cancel_tx).in_current_span(),
        );
        let spec = SandboxSpec {
            build_dir: build_dir.clone(),
            recipe: claim.recipe.clone(),
            limits: claim.limits,
            source_date_epoch: claim.source_date_epoch,
            uid: self.config.uid_base + slot,
            gid: self.config.uid_base + slot,
            tool_dirs: self.config.tool_dirs.clone(),
        };
        let outcome = sandbox::run(&spec, console_tx, cancel_rx.clone())
            .instrument(tracing::info_span!("sandbox", otel.name = "run recipe"))
            .await;
        let _ = console.await;
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        if *cancel_rx.borrow() {
            tracing::info!(build = %build_id, "cancelled; discarding");
            tracing::Span::current().record("petrel.build.outcome", "cancelled");
            heartbeat.abort();
            let _ = std::fs::remove_dir_all(&build_dir);
            return None;
        }
        let kept = match outcome {
            Ok(outcome) => self.keep(&claim, &build_dir, outcome).await,
            Err(e) => {
                // The recipe could not even start (a bad file name, a missing tool directory):
                // that is the build's result, not a worker failure.
                tracing::warn!(build = %build_id, "the build could not run: {e}");
                let now = chrono::Utc::now();
                let meta = OpenUpload {
                    platform: claim.platform.clone(),
                    build_id: Some(build_id),
                    started_at: now,
                    finished_at: now,
                    result: petrel_wire::builds::BuildResult::Message {
                        message: format!("the build could not run: {e}"),
                    },
                    script: Some(claim.recipe.script.clone()),
                    worker: None,
                    timed_out: false,
                };
                self.spool.store(build_id, claim.job_id, meta, Vec::new()).map(drop)
            }
        };
        let _ = std::fs::remove_dir_all(&build_dir);
        let delivered = match kept {
            Ok(()) => self.deliver(build_id).await,
            Err(e) => {
                tracing::error!(build = %build_id, "cannot keep the result: {e}");
                None
            }
        };
        heartbeat.abort();
        let outcome = delivered.as_ref().map_or("not delivered", |b| b.status.as_str());
        tracing::Span::current().record("petrel.build.outcome", outcome);
        delivered
    }

    /// Moves the result into the spool: metadata, output files and recorded inputs.
    async fn keep(&self, claim: &Claim, build_dir: &Path, outcome: sandbox::Outcome) -> std::io::Result<()> {
        let mut files: Vec<(String, Source)> = Vec::new();
        for (path, file) in output_files(&outcome.output_dir)? {
            files.push((path, Source::File(file)));
        }
        match record::record(&outcome.environment, build_dir).await {
            Ok(recorded) => {
                for (name, bytes) in recorded.files {
                    files.retain(|(path, _)| *path != name);
                    files.push((name, Source::Bytes(bytes)));
                }
            }
            Err(e) => tracing::warn!(build = %claim.build_id, "recording the inputs failed: {e}"),
        }
        let meta = OpenUpload {
            platform: claim.platform.clone(),
            build_id: Some(claim.build_id),
            started_at: outcome.started_at,
            finished_at: outcome.finished_at,
            result: outcome.result,
            script: Some(claim.recipe.script.clone()),
            worker: None,
            timed_out: outcome.timed_out,
        };
        self.spool.store(claim.build_id, claim.job_id, meta, files).map(drop)
    }

    /// Sends a kept result until the API accepts or refuses it; retries with backoff while it
    /// is unreachable.
    #[tracing::instrument(name = "upload", skip_all, fields(otel.name = "upload result", petrel.build_id = %build_id))]
    async fn deliver(&self, build_id: Uuid) -> Option<Build> {
        let mut backoff = Backoff::new();
        loop {
            let pending = match self.spool.pending() {
                Ok(all) => all.into_iter().find(|(id, _)| *id == build_id)?.1,
                Err(e) => {
                    tracing::error!(build = %build_id, "cannot read the kept result: {e}");
                    return None;
                }
            };
            match self.spool.deliver(&self.client, build_id, &pending).await {
                Ok(build) => {
                    tracing::info!(build = %build_id, status = ?build.status, "result accepted");
                    self.spool.remove(build_id);
                    return Some(build);
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(build = %build_id, "uploading failed: {e}; the result is kept and sent again");
                    backoff.wait().await;
                }
                Err(e) => {
                    tracing::warn!(build = %build_id, "the API refused the result: {e}; discarding it");
                    self.spool.remove(build_id);
                    return None;
                }
            }
        }
    }

    pub fn client(&self) -> &ApiClient {
        &self.client
    }
}

/// Renews the lease until aborted. While the build runs, losing the lease (or a cancel)
/// stops it; afterwards the upload alone decides whether the result is still wanted.
async fn heartbeats(
    client: ApiClient,
    build_id: Uuid,
    every: Duration,
    cancel: watch::Sender<bool>,
    running: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        tokio::time::sleep(every).await;
        match client.heartbeat(build_id).await {
            Ok(lease) if lease.cancel && running.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::info!(build = %build_id, "the API asks to stop this build");
                let _ = cancel.send(true);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(build = %build_id, "heartbeat failed: {e}"),
        }
    }
}

/// Sends console lines in batches; keeps them while the API is unreachable. A refusal means
/// the build is no longer ours: stop it. Once the build has ended, the rest is retried until
/// sent (the result is delivered after its console, so a brief cut loses no line).
async fn forward_console(
    client: ApiClient,
    build_id: Uuid,
    mut lines: mpsc::Receiver<ConsoleLine>,
    cancel: watch::Sender<bool>,
) {
    let mut backlog: Vec<NewConsoleLine> = Vec::new();
    let mut open = true;
    let mut final_retry: Option<(tokio::time::Instant, Duration)> = None;
    while open || !backlog.is_empty() {
        if open {
            // Gather what arrives within one flush interval.
            let deadline = tokio::time::Instant::now() + CONSOLE_FLUSH;
            loop {
                match tokio::time::timeout_at(deadline, lines.recv()).await {
                    Ok(Some(line)) => {
                        backlog.push(NewConsoleLine { at_ms: line.at_ms, text: line.text });
                        if backlog.len() >= CONSOLE_BACKLOG {
                            backlog.drain(..CONSOLE_BATCH);
                        }
                    }
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        while !backlog.is_empty() {
            let n = backlog.len().min(CONSOLE_BATCH);
            match client.console(build_id, backlog[..n].to_vec()).await {
                Ok(()) => {
                    backlog.drain(..n);
                }
                Err(ClientError::Refused { code, .. }) => {
                    tracing::info!(build = %build_id, code, "console refused: the build is no longer ours");
                    let _ = cancel.send(true);
                    backlog.clear();
                    // Keep draining so the sandbox never blocks on a full channel.
                    while lines.recv().await.is_some() {}
                    return;
                }
                Err(e) => {
                    tracing::warn!(build = %build_id, "console not sent: {e}");
                    if !open {
                        let now = tokio::time::Instant::now();
                        let (give_up, pause) = final_retry
                            .get_or_insert((now + CONSOLE_FINAL_RETRY, Duration::from_millis(500)));
                        if now >= *give_up {
                            tracing::warn!(build = %build_id, lines = backlog.len(), "console lines dropped");
                            return;
                        }
                        tokio::time::sleep(*pause).await;
                        *pause = (*pause * 2).min(Duration::from_secs(15));
                        continue;
                    }
                    break;
                }
            }
        }
    }
}

/// Every regular file under the output directory, by path relative to it (sorted).
fn output_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && let Ok(rel) = entry.path().strip_prefix(dir)
                && let Some(rel) = rel.to_str()
            {
                found.push((rel.to_string(), entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Exponential backoff from 0.5 s to 30 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(500))
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(500);
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
    }
}
