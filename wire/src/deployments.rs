//! KVM agents, deployments of unikernels, quotas, and the agent protocol (albatross' job).

use crate::time::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::builds::NewConsoleLine;

/// The prefix of every agent credential.
pub const AGENT_TOKEN_PREFIX: &str = "petrela_";
/// The prefix of one-time enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "petrele_";

/// What a host offers, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cpus": 2, "memory_mib": 24576, "bridges": ["br0"], "block_mib": 51200,
    "tender_version": "petrel-hvt 0.1.0", "tender_abi": 2}))]
pub struct Inventory {
    /// Online CPUs (ids 0..cpus).
    pub cpus: u32,
    pub memory_mib: u64,
    /// Bridges present on the host.
    pub bridges: Vec<String>,
    /// Capacity of the file system holding block devices.
    pub block_mib: u64,
    pub tender_version: String,
    /// The solo5 hvt ABI version the tender runs.
    pub tender_abi: u32,
}

/// A one-time token an administrator creates for a new agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "kvm-host-1"}))]
pub struct CreateEnrollment {
    /// The agent's name: 1 to 100 characters of `A-Z a-z 0-9 . _ -`, unique.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Enrollment {
    /// The token's id, to revoke it (`DELETE /api/v1/agents/enrollments/{id}`).
    pub id: Uuid,
    pub name: String,
    /// `petrele_...`, shown once; traded by `petrel-agent enroll` for the agent's credential.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Where an enrollment token is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentState {
    /// Not used yet and not expired: an agent may still enroll with it.
    Unused,
    /// An agent enrolled with it.
    Used,
    /// Not used within its day.
    Expired,
}

impl EnrollmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Unused => "unused",
            EnrollmentState::Used => "used",
            EnrollmentState::Expired => "expired",
        }
    }
}

/// An enrollment token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnrollmentToken {
    pub id: Uuid,
    /// The name the enrolling agent gets.
    pub name: String,
    pub state: EnrollmentState,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// An agent trades its enrollment token for a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "petrele_...", "inventory": {"cpus": 2, "memory_mib": 24576,
    "bridges": ["br0"], "block_mib": 51200, "tender_version": "petrel-hvt 0.1.0", "tender_abi": 2}}))]
pub struct EnrollRequest {
    pub token: String,
    pub inventory: Inventory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Enrolled {
    pub agent_id: Uuid,
    pub name: String,
    /// `petrela_...`: the agent sends it as `Authorization: Bearer ...` from now on.
    pub credential: String,
}

/// A KVM host's agent, as administrators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    pub inventory: Option<Inventory>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Heartbeats arrive; an unreachable agent's deployments show as `unknown`.
    pub reachable: bool,
    pub deployments: i64,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
}

/// When a unikernel that ended is started again, as albatross' fail behaviour: never after
/// exit 1 (the tender refused, or was stopped) or 60–64 (usage errors), nor after a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(not(feature = "full"), serde(try_from = "crate::lean::RestartPolicyFields"))]
pub enum RestartPolicy {
    Never,
    /// On any other exit code, or only on these.
    OnFailure {
        #[serde(default)]
        exit_codes: Option<Vec<i32>>,
    },
}

/// A network device of the unikernel's manifest, attached to a host bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetAttachment {
    /// The device's name in the unikernel's manifest (e.g. `service`).
    pub device: String,
    pub bridge: String,
    /// `xx:xx:xx:xx:xx:xx`; generated when absent.
    #[serde(default)]
    pub mac: Option<String>,
}

/// The devices a solo5 image's manifest declares, each list sorted by name: a deployment of the
/// image attaches exactly these (`nets[].device`, `blocks[].device`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"nets": ["service"], "blocks": ["storage"]}))]
pub struct ImageManifest {
    pub nets: Vec<String>,
    pub blocks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "hello", "image_sha256": "0f1e...", "memory_mib": 32,
    "restart": {"kind": "on_failure"}}))]
pub struct CreateDeployment {
    /// 1 to 63 characters of `a-z 0-9 -`, unique in the tenant.
    pub name: String,
    /// The image: an artifact (usually a build's main binary) by its SHA-256.
    pub image_sha256: String,
    pub memory_mib: i32,
    /// CPU ids the unikernel may run on (among the tenant's allowed ones); any when empty.
    #[serde(default)]
    pub cpus: Vec<i32>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub nets: Vec<NetAttachment>,
    /// Block devices of the manifest, backed by the tenant's block devices; they pin the
    /// deployment to the agent that holds them.
    #[serde(default)]
    pub blocks: Vec<BlockAttachment>,
    #[serde(default = "never")]
    pub restart: RestartPolicy,
    /// Lower starts first after a host restart (default 50).
    #[serde(default)]
    pub startup_priority: Option<i32>,
    /// Pin to this agent; otherwise Petrel picks one with the capacity and the bridges.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
}

/// A block device of the unikernel's manifest, backed by one of the tenant's block devices
/// (albatross' `--block name:host@sector`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockAttachment {
    /// The device's name in the unikernel's manifest (e.g. `storage`).
    pub device: String,
    /// The tenant's block device, by name.
    pub block_device: String,
    /// 512 (the default), 1024, 2048 or 4096 bytes.
    #[serde(default)]
    pub sector_size: Option<i32>,
}

fn never() -> RestartPolicy {
    RestartPolicy::Never
}

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Assigned; the agent has not reported yet.
    Pending,
    Running,
    /// Ended, to be started again by its restart policy.
    Restarting,
    /// Ended and not restarted.
    Exited,
    /// Could not be started (image, manifest, tap ...); `message` says why.
    Failed,
    /// Destroyed.
    Stopped,
    /// Its agent stopped heartbeating.
    Unknown,
}

impl DeploymentState {
    /// As the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Pending => "pending",
            DeploymentState::Running => "running",
            DeploymentState::Restarting => "restarting",
            DeploymentState::Exited => "exited",
            DeploymentState::Failed => "failed",
            DeploymentState::Stopped => "stopped",
            DeploymentState::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub image_sha256: String,
    /// The build whose artifact the image is, when there is one.
    pub build_id: Option<Uuid>,
    pub memory_mib: i32,
    pub cpus: Vec<i32>,
    pub args: Vec<String>,
    pub nets: Vec<NetAttachment>,
    pub blocks: Vec<BlockAttachment>,
    pub restart: RestartPolicy,
    pub startup_priority: i32,
    pub agent_id: Option<Uuid>,
    pub state: DeploymentState,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    pub restarts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The image before the last update: what `rollback` returns to.
    pub previous_image_sha256: Option<String>,
    /// A newer successful build of the image's job on the same platform, with another main
    /// binary: what `update` without an image moves to.
    pub update_available: Option<AvailableUpdate>,
}

/// A newer build a deployment can be updated to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AvailableUpdate {
    pub build_id: Uuid,
    pub image_sha256: String,
    pub finished_at: Option<DateTime<Utc>>,
    /// What changed: `/api/v1/compare/<current build>/<new build>`.
    pub compare: String,
}

/// What a restart may change; an empty object restarts the deployment as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"args": ["--ipv4=10.0.0.2/24"], "memory_mib": 64}))]
pub struct RestartDeployment {
    /// New arguments (replacing the old ones).
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// New memory, admitted against the quota like a new deployment.
    #[serde(default)]
    pub memory_mib: Option<i32>,
}

/// Update a deployment's image, as `albatross update` but in one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"image_sha256": null}))]
pub struct UpdateDeployment {
    /// The new image (an artifact the tenant may read); the available update when absent.
    #[serde(default)]
    pub image_sha256: Option<String>,
}

/// Counters of one network device of a running unikernel (its tap, seen from the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetCounters {
    pub device: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// One sample of a running unikernel, taken by its agent from /proc and the tap's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"at": "2026-11-26T10:00:00Z", "uptime_ms": 60000, "cpu_user_ms": 1200,
    "cpu_system_ms": 300, "rss_kib": 70000, "nets": []}))]
pub struct DeploymentStats {
    pub at: DateTime<Utc>,
    /// Since the tender started.
    pub uptime_ms: u64,
    /// The tender's CPU time (the guest runs inside it).
    pub cpu_user_ms: u64,
    pub cpu_system_ms: u64,
    /// Resident memory of the tender, guest memory included.
    pub rss_kib: u64,
    pub nets: Vec<NetCounters>,
}

/// The latest sample and the recent ones, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsHistory {
    pub latest: Option<DeploymentStats>,
    pub history: Vec<DeploymentStats>,
}

/// One change of a deployment's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentEvent {
    pub at: DateTime<Utc>,
    pub state: DeploymentState,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
}

/// A tenant's limits, as albatross' policies. Sub-tenants' quotas fit inside their parent's;
/// usage under a tenant counts against every ancestor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"unikernels": 4, "memory_mib": 512, "block_mib": 0, "cpus": [0, 1], "bridges": ["br0"]}))]
pub struct Quota {
    pub unikernels: i32,
    pub memory_mib: i64,
    pub block_mib: i64,
    pub cpus: Vec<i32>,
    pub bridges: Vec<String>,
}

/// A tenant's quota and what it uses (its own and its sub-tenants' deployments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuotaUsage {
    /// None: no quota set here (the ancestors' apply; none at all means no deployments).
    pub quota: Option<Quota>,
    pub unikernels: i64,
    pub memory_mib: i64,
    /// The block devices' sizes.
    pub block_mib: i64,
}

/// Create a block device: a zeroed file of `size_mib` on one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "data", "size_mib": 16}))]
pub struct CreateBlockDevice {
    /// 1 to 63 characters of `a-z 0-9 -`, unique in the tenant.
    pub name: String,
    /// Whole MiB, counted against the tenant's `block_mib` quota.
    pub size_mib: i32,
    /// The agent to keep it on; otherwise the reachable agent with the most free block storage.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
}

/// A tenant's block device (albatross' `block`): it lives on one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockDevice {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub size_mib: i32,
    /// Where it lives; None when that agent was deleted (its data is gone).
    pub agent_id: Option<Uuid>,
    /// The deployment it backs (then it cannot be deleted or overwritten).
    pub attached_to: Option<Uuid>,
    /// An upload the agent has not written into the device yet.
    pub upload_pending: bool,
    /// What went wrong last on the agent, if anything.
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// --- The agent protocol -------------------------------------------------------------------

/// A long-poll for the agent's assignments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"generation": 0, "wait_secs": 30}))]
pub struct AssignmentsRequest {
    /// The generation the agent runs; the answer comes when there is a newer one.
    pub generation: i64,
    #[serde(default)]
    pub wait_secs: Option<i32>,
}

/// Everything the agent must run now (deployments absent from it are to be stopped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Assignments {
    pub generation: i64,
    pub deployments: Vec<Assignment>,
    /// Every block device kept on this agent (files of others are deleted).
    #[serde(default)]
    pub block_devices: Vec<AgentBlockDevice>,
}

/// A block device this agent keeps, and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentBlockDevice {
    pub id: Uuid,
    pub size_mib: i32,
    /// An upload to write into it (`GET /agent/block-devices/{id}/content`) when it is newer
    /// than `applied_version`.
    pub content_version: i64,
    pub applied_version: i64,
    /// A copy is wanted (`PUT /agent/block-devices/{id}/export/{export_requested}`) when this
    /// is newer than `export_version`.
    pub export_requested: i64,
    pub export_version: i64,
}

/// A manifest block device of an assigned deployment and the file that backs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignedBlock {
    pub device: String,
    pub block_device_id: Uuid,
    pub sector_size: i32,
}

/// What the agent did with a block device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"applied_version": 1}))]
pub struct BlockReport {
    /// The upload of this version is written into the device.
    #[serde(default)]
    pub applied_version: Option<i64>,
    /// The upload of this version could not be written (`message` says why).
    #[serde(default)]
    pub failed_version: Option<i64>,
    /// The copy asked for with this number could not be made (`message` says why).
    #[serde(default)]
    pub failed_export: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub deployment_id: Uuid,
    /// `<tenant path>.<name>`, unique on the host (for taps, logs).
    pub name: String,
    pub image_sha256: String,
    pub memory_mib: i32,
    pub cpus: Vec<i32>,
    pub args: Vec<String>,
    pub nets: Vec<NetAttachment>,
    #[serde(default)]
    pub blocks: Vec<AssignedBlock>,
    pub restart: RestartPolicy,
    pub startup_priority: i32,
    /// Changes when the deployment must be restarted (a restart request, new arguments).
    pub revision: i64,
}

/// A state change the agent reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"revision": 1, "state": "running"}))]
pub struct StateReport {
    /// The assignment's revision this is about (older reports are ignored).
    pub revision: i64,
    pub state: DeploymentState,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Console lines of a deployment, shipped by its agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": [{"at_ms": 12, "text": "Hello, World"}]}))]
pub struct AgentConsole {
    pub lines: Vec<NewConsoleLine>,
}

/// A heartbeat, with the inventory when it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct AgentHeartbeat {
    #[serde(default)]
    pub inventory: Option<Inventory>,
}
