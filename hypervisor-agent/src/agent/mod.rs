//! `petrel-agent`: runs on a KVM host, does albatross' job for the Petrel API. It enrolls once
//! (a one-time token for a credential), then heartbeats with the host's inventory, long-polls
//! its assignments and makes the host run exactly those unikernels ([`reconcile`]), reporting
//! their states and shipping their consoles.
//!
//! State directory: `credential` (0600), `agent.json` (id, name, API), `images/<sha256>`,
//! `blocks/<block device id>`.

pub mod blocks;
pub mod client;
pub mod images;
pub mod inventory;
pub mod reconcile;
pub mod restart;
pub mod stats;
pub mod tap;
pub mod telemetry;
pub mod unikernel;

use std::future::Future;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use petrel_wire::deployments::{AgentHeartbeat, ENROLLMENT_TOKEN_PREFIX, EnrollRequest, Inventory};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use blocks::BlockStore;
use client::{ApiClient, ClientError};
use images::ImageError;
use inventory::InventoryError;
use reconcile::{Reconciler, RuntimeConfig};

/// Heartbeats go this often; the inventory rides along when it changed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Images(#[from] ImageError),
    #[error("{0} exists: this agent is enrolled already (enroll again with a new state directory)")]
    AlreadyEnrolled(String),
    #[error("the API refused the agent's credential ({0}): enroll again")]
    Revoked(String),
    #[error("{0}")]
    Invalid(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> AgentError + '_ {
    move |source| AgentError::Io { path: path.display().to_string(), source }
}

/// How to reach the API and where this agent keeps its state.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The API's base URL (`https://host:8443`).
    pub api: String,
    /// The API's CA certificate (PEM), the only one trusted.
    pub ca_pem: Vec<u8>,
    pub state_dir: PathBuf,
    /// The tender (`petrel-hvt`), see [`default_tender`].
    pub tender: PathBuf,
    /// Between two stats samples of a running unikernel.
    pub stats_interval: std::time::Duration,
}

/// As albatross: every 10 seconds.
pub const DEFAULT_STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// `agent.json` in the state directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentIdentity {
    pub agent_id: Uuid,
    pub name: String,
    pub api: String,
}

impl AgentConfig {
    pub fn credential_path(&self) -> PathBuf {
        self.state_dir.join("credential")
    }

    pub fn identity_path(&self) -> PathBuf {
        self.state_dir.join("agent.json")
    }

    pub fn image_dir(&self) -> PathBuf {
        self.state_dir.join("images")
    }

    pub fn block_dir(&self) -> PathBuf {
        self.state_dir.join("blocks")
    }

    async fn inventory(&self) -> Result<Inventory, InventoryError> {
        let (state_dir, tender) = (self.state_dir.clone(), self.tender.clone());
        tokio::task::spawn_blocking(move || inventory::collect(&state_dir, &tender))
            .await
            .unwrap_or_else(|e| Err(InventoryError::Memory(format!("inventory task: {e}"))))
    }
}

/// `petrel-hvt` next to the running executable (they are installed together), else from PATH.
pub fn default_tender() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("petrel-hvt")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("petrel-hvt"))
}

/// Trades a one-time enrollment token for this agent's credential, and stores both the
/// credential (0600) and the agent's identity in the state directory.
pub async fn enroll(config: &AgentConfig, token: &str) -> Result<AgentIdentity, AgentError> {
    if !token.starts_with(ENROLLMENT_TOKEN_PREFIX) {
        return Err(AgentError::Invalid(format!(
            "an enrollment token starts with {ENROLLMENT_TOKEN_PREFIX}"
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.state_dir)
        .map_err(io_error(&config.state_dir))?;
    let credential_path = config.credential_path();
    if credential_path.exists() {
        return Err(AgentError::AlreadyEnrolled(credential_path.display().to_string()));
    }
    let inventory = config.inventory().await?;
    let client = ApiClient::new(&config.api, &config.ca_pem, None)?;
    let enrolled = client.enroll(&EnrollRequest { token: token.to_owned(), inventory }).await?;
    write_private(&credential_path, format!("{}\n", enrolled.credential).as_bytes())?;
    let identity =
        AgentIdentity { agent_id: enrolled.agent_id, name: enrolled.name, api: config.api.clone() };
    let json = serde_json::to_vec_pretty(&identity).map_err(|e| AgentError::Invalid(e.to_string()))?;
    write_private(&config.identity_path(), &json)?;
    Ok(identity)
}

/// Writes a file readable by its owner only, atomically (a crash leaves no half credential).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Runs the agent until `shutdown` resolves (then stops every tender and removes the taps) or
/// the API refuses the credential.
///
/// Tenders die with the agent (PR_SET_PDEATHSIG), and nothing about them is persisted: on
/// start the agent asks for its assignments from generation 0, which the API always answers
/// with everything assigned, and starts it all again in startup-priority order (albatross
/// does the same from its state file, A14). A unikernel therefore restarts with its agent.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
    let credential_path = config.credential_path();
    let credential = std::fs::read_to_string(&credential_path).map_err(io_error(&credential_path))?;
    let client = Arc::new(ApiClient::new(&config.api, &config.ca_pem, Some(credential.trim().to_owned()))?);
    // Checks the tender before anything runs: without one there is nothing to do.
    let inventory = config.inventory().await?;
    tracing::info!(?inventory, "starting");
    let mut runtime = RuntimeConfig::new(
        config.tender.clone(),
        inventory.tender_abi,
        config.image_dir(),
        config.block_dir(),
    );
    runtime.stats_interval = config.stats_interval;
    let mut reconciler = Reconciler::new(client.clone(), runtime)?;
    let block_dir = config.block_dir();
    let mut blocks = BlockStore::open(&block_dir).map_err(io_error(&block_dir))?;
    let (revoked_tx, revoked) = watch::channel(None);
    let heartbeat = tokio::spawn(heartbeats(client.clone(), config.clone(), inventory, revoked_tx));
    let result = follow_assignments(&client, &mut reconciler, &mut blocks, revoked, shutdown).await;
    heartbeat.abort();
    tracing::info!("stopping every unikernel");
    reconciler.shutdown().await;
    result
}

/// The long-poll loop: applies each new generation of assignments. Block devices' files are
/// made before the deployments that use them start; uploads and copies wait until the
/// deployments that stopped have stopped; files of deleted devices go last.
async fn follow_assignments(
    client: &ApiClient,
    reconciler: &mut Reconciler<ApiClient>,
    blocks: &mut BlockStore,
    mut revoked: watch::Receiver<Option<String>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    tokio::pin!(shutdown);
    // 0: the API's generations start at 1, so the first poll answers at once.
    let mut generation = 0;
    let mut retry = Duration::from_secs(1);
    let mut block_devices = Vec::new();
    loop {
        // One trace per poll that brings news: the poll, then the reconcile pass it causes
        // (image fetches, starts, state reports of the unikernels started).
        let span = tracing::info_span!(
            "assignments",
            otel.name = "poll assignments",
            petrel.generation = generation
        );
        let polled = tokio::select! {
            polled = client.assignments(generation).instrument(span.clone()) => polled,
            _ = &mut shutdown => return Ok(()),
            Ok(why) = revoked.wait_for(Option::is_some) => {
                return Err(AgentError::Revoked(why.clone().unwrap_or_default()));
            }
        };
        let wait = match polled {
            Ok(Some(assignments)) => {
                tracing::info!(
                    generation = assignments.generation,
                    deployments = assignments.deployments.len(),
                    "new assignments"
                );
                // Not cancelled by shutdown: a half-applied generation would leave stray tasks.
                let pass = tracing::info_span!(
                    parent: &span,
                    "reconcile",
                    otel.name = "reconcile",
                    petrel.generation = assignments.generation,
                    petrel.deployments = assignments.deployments.len(),
                );
                blocks.create_missing(&assignments.block_devices);
                reconciler.apply(&assignments.deployments).instrument(pass.clone()).await;
                let in_use = reconciler.blocks_in_use();
                blocks.sync(client, &assignments.block_devices, &in_use).instrument(pass).await;
                // Uploads and copies start and stop no unikernel: the same devices are in use.
                blocks.prune(&assignments.block_devices, &in_use);
                block_devices = assignments.block_devices;
                generation = assignments.generation;
                retry = Duration::from_secs(1);
                continue;
            }
            Ok(None) => {
                // Work that found the API unreachable is tried again.
                blocks.sync(client, &block_devices, &reconciler.blocks_in_use()).await;
                continue;
            }
            Err(e @ ClientError::Refused { status: 401 | 403, .. }) => {
                return Err(AgentError::Revoked(e.to_string()));
            }
            Err(e) => {
                // Unreachable or refusing: the unikernels keep running as they are meanwhile.
                tracing::warn!("assignments: {e}; trying again in {retry:?}");
                let wait = retry;
                retry = (retry * 2).min(Duration::from_secs(30));
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => return Ok(()),
        }
    }
}

/// Heartbeats every 10 s; the inventory on the first and whenever it differs from the last one
/// the API accepted. A refused credential is passed on through `revoked`.
async fn heartbeats(
    client: Arc<ApiClient>,
    config: AgentConfig,
    first: Inventory,
    revoked: watch::Sender<Option<String>>,
) {
    let mut accepted: Option<Inventory> = None;
    let mut current = first;
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if accepted.is_some() {
            match config.inventory().await {
                Ok(inventory) => current = inventory,
                Err(e) => tracing::warn!("inventory: {e}"),
            }
        }
        let inventory = (accepted.as_ref() != Some(&current)).then(|| current.clone());
        match client.heartbeat(&AgentHeartbeat { inventory: inventory.clone() }).await {
            Ok(()) => {
                if inventory.is_some() {
                    accepted = inventory;
                }
            }
            Err(e @ ClientError::Refused { status: 401 | 403, .. }) => {
                let _ = revoked.send(Some(e.to_string()));
                return;
            }
            Err(e) => tracing::warn!("heartbeat: {e}"),
        }
    }
}
