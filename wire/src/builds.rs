//! Jobs, builds, artifacts, uploads and look-ups.

use crate::time::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::workers::{BuildLimits, Recipe};

/// Who may read a job and its builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Members of the job's tenant (and its ancestors) only.
    Private,
    /// Anyone, signed in or not, as on builds.robur.coop.
    Public,
}

/// How often a job is built by the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Hourly,
    Daily,
    Weekly,
    /// Only when asked ("run now" or an upload).
    Never,
}

/// What to keep of a job's builds. Metadata and hashes always stay; only artifact contents
/// that no kept build references are deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep the contents of the newest N successful builds per platform.
    pub keep_last: Option<i32>,
    /// Keep the contents of builds finished within this many days.
    pub keep_days: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Unique within the tenant: 1 to 100 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// `<tenant path>:<job>`, the job's name in builder-web compatible URLs (`/job/<qualified>/...`).
    pub qualified_name: String,
    pub platforms: Vec<String>,
    pub schedule: Schedule,
    pub visibility: Visibility,
    pub synopsis: Option<String>,
    pub readme: Option<String>,
    pub retention: Retention,
    /// How workers build it; jobs without a recipe only receive uploads.
    pub recipe: Option<Recipe>,
    pub limits: BuildLimits,
    /// `SOURCE_DATE_EPOCH` of every build of the job (fixed when the job is created).
    pub source_date_epoch: i64,
    /// When the scheduler queues it next.
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "hello", "platforms": ["debian-12-x86_64"], "visibility": "public",
    "schedule": "never", "synopsis": "Hello, unikernel"}))]
pub struct CreateJob {
    pub name: String,
    #[serde(default)]
    pub platforms: Vec<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub visibility: Option<Visibility>,
    #[serde(default)]
    pub synopsis: Option<String>,
    #[serde(default)]
    pub readme: Option<String>,
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub recipe: Option<Recipe>,
    /// Defaults: one hour, 4 GiB, 1 GiB of output, 3 attempts.
    #[serde(default)]
    pub limits: Option<BuildLimits>,
    /// Defaults to the job's creation time.
    #[serde(default)]
    pub source_date_epoch: Option<i64>,
}

/// A partial update: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"visibility": "private", "retention": {"keep_last": 10}}))]
pub struct UpdateJob {
    pub platforms: Option<Vec<String>>,
    pub schedule: Option<Schedule>,
    pub visibility: Option<Visibility>,
    pub synopsis: Option<String>,
    pub readme: Option<String>,
    pub retention: Option<Retention>,
    pub recipe: Option<Recipe>,
    pub limits: Option<BuildLimits>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl BuildStatus {
    /// As the API and the database spell it (`timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
            BuildStatus::TimedOut => "timed_out",
        }
    }
}

/// How a build ended: kind and code kept apart, never one packed integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(not(feature = "full"), serde(try_from = "crate::lean::BuildResultFields"))]
pub enum BuildResult {
    Exited { code: i32 },
    Signalled { signal: i32 },
    Stopped { signal: i32 },
    Message { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// The path inside the build's output, e.g. `bin/hello.hvt`.
    pub path: String,
    /// Lower-case hex.
    pub sha256: String,
    pub size: i64,
    /// False once retention deleted the contents (the hash stays known).
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Build {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub job_id: Uuid,
    pub job_name: String,
    pub platform: String,
    pub status: BuildStatus,
    pub result: Option<BuildResult>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    /// Hex SHA-256 identifying the build's inputs (see the input_id rules).
    pub input_id: Option<String>,
    pub main_binary: Option<Artifact>,
    /// Tries so far (a worker lost mid-build counts one); 0 for uploaded builds.
    pub attempt: i32,
    /// The build this one re-runs to check its reproducibility.
    pub rebuild_of: Option<Uuid>,
}

/// Query parameters of build lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BuildFilter {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub job_id: Option<Uuid>,
    pub platform: Option<String>,
    pub status: Option<BuildStatus>,
    /// Builds queued at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Builds queued before this time.
    pub until: Option<DateTime<Utc>>,
}

/// One line of a build's console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsoleLine {
    /// 0-based line number.
    pub number: i64,
    /// Milliseconds since the build started.
    pub at_ms: i64,
    pub text: String,
}

/// What the build recorded about its inputs, as rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildInputs {
    pub environment: Vec<EnvironmentEntry>,
    pub packages: Vec<PackageRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentEntry {
    pub key: String,
    pub value: String,
}

/// A package a build contained, in one ecosystem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct PackageRef {
    /// `debian`, `freebsd`, `opam` or `cargo`.
    pub ecosystem: String,
    pub name: String,
    pub version: String,
}

/// Opens a staged upload of one build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"platform": "debian-12-x86_64", "started_at": "2026-11-26T10:00:00Z",
    "finished_at": "2026-11-26T10:05:00Z", "result": {"kind": "exited", "code": 0}}))]
pub struct OpenUpload {
    pub platform: String,
    /// Reuse a build id (e.g. a worker's claimed build, or a retry); a new one otherwise.
    #[serde(default)]
    pub build_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub result: BuildResult,
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    pub worker: Option<String>,
    /// The build was stopped at its job's timeout (its status becomes `timed_out`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Upload {
    pub id: Uuid,
    pub job_id: Uuid,
    pub build_id: Uuid,
    /// `open` until finalized or aborted.
    pub state: String,
    pub artifacts: Vec<Artifact>,
    pub expires_at: DateTime<Utc>,
}

/// Console lines sent with an upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": [{"at_ms": 0, "text": "building hello"}]}))]
pub struct ConsoleChunk {
    pub lines: Vec<NewConsoleLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsoleLine {
    pub at_ms: i64,
    pub text: String,
}

/// The answer of a hash look-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HashLookup {
    pub sha256: String,
    pub build: Build,
    /// The artifact's path in that build.
    pub path: String,
    /// False when retention deleted the contents; the build and hash are still known.
    pub available: bool,
}

/// A build in a list of related builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildRef {
    pub id: Uuid,
    pub job_id: Uuid,
    pub job_name: String,
    pub platform: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub input_id: Option<String>,
    /// Hex SHA-256 of the main binary.
    pub main_binary_sha256: Option<String>,
    /// `/api/v1/compare/{this build}/{that build}`.
    pub compare: String,
}

/// Which builds reproduced this one, and which did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reproducibility {
    pub build_id: Uuid,
    pub input_id: Option<String>,
    pub main_binary_sha256: Option<String>,
    /// Same inputs, same main binary.
    pub same_input_same_output: Vec<BuildRef>,
    /// Other inputs, same main binary (one build per distinct input).
    pub other_input_same_output: Vec<BuildRef>,
    /// Same inputs, another main binary: not reproducible.
    pub same_input_other_output: Vec<BuildRef>,
}

/// How reproducible a job's outputs are, over the inputs built more than once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReproducibilitySummary {
    pub job_id: Uuid,
    /// Successful builds with an input id and a main binary.
    pub builds: i64,
    /// Distinct input ids among them.
    pub inputs: i64,
    /// Inputs built at least twice, always to the same main binary.
    pub reproducible_inputs: i64,
    /// Inputs built at least twice to different main binaries.
    pub unreproducible_inputs: i64,
    /// Inputs built once (nothing to compare yet).
    pub single_build_inputs: i64,
}

/// Query of the fleet search.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FleetQuery {
    /// `debian`, `freebsd`, `opam` or `cargo`.
    pub ecosystem: String,
    /// The package's name.
    pub name: String,
    /// Only this version; all versions when absent.
    pub version: Option<String>,
    /// Only builds that running deployments (of tenants you belong to) were made from.
    #[serde(default)]
    pub deployed: Option<bool>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A deployment made from a build (in a fleet search).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeployedFrom {
    pub deployment_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// `pending`, `running` or `restarting`.
    pub state: String,
}

/// A build that contains the package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FleetHit {
    pub build_id: Uuid,
    pub job_id: Uuid,
    pub job_name: String,
    pub platform: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub ecosystem: String,
    pub name: String,
    pub version: String,
    /// The live deployments made from this build, of tenants you belong to: the running
    /// unikernels that contain the package.
    pub deployments: Vec<DeployedFrom>,
}
