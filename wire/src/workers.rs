//! Recipes, build workers and the worker protocol (claim, heartbeat, console), and rebuilds.

use std::collections::BTreeMap;

use crate::time::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The prefix of every worker credential (distinct from user API tokens).
pub const WORKER_TOKEN_PREFIX: &str = "petrelw_";

/// How a job is built: a shell script run by a worker in a fresh, sandboxed directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"script": "cc -O2 -o hello hello.c\nmkdir -p \"$PETREL_OUTPUT/bin\"\ncp hello \"$PETREL_OUTPUT/bin/\"",
    "files": {"hello.c": "int main(void) { return 0; }\n"}}))]
pub struct Recipe {
    /// Run with `/bin/sh -eu` in the build directory. Artifacts are the files it leaves in
    /// `$PETREL_OUTPUT`; the single file under `bin/` is the main binary. Empty when a
    /// `template` gives the script.
    #[serde(default)]
    pub script: String,
    /// A named script template (see `GET /api/v1/recipe-templates`), in its variant for the
    /// build's platform, with these substitutions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
    /// Files written into the build directory before the script runs: relative path → content.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Extra environment variables (names `[A-Z_][A-Z0-9_]*`; `PATH`, `HOME` and the `PETREL_`
    /// and `SOURCE_DATE_EPOCH` names are the worker's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether the build may reach the network (to fetch sources). Without it the build has
    /// a network namespace of its own with loopback only.
    #[serde(default)]
    pub network: bool,
}

/// A template by name, with values for its variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    /// Each value is substituted as one shell word (quoted).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

/// A script template workers can run, with a variant per platform family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecipeTemplate {
    pub name: String,
    pub description: String,
    /// Variables: name → what it is. Written `{{NAME}}` in the script.
    pub variables: BTreeMap<String, String>,
    /// Variables that may be left out (substituted as nothing).
    pub optional: Vec<String>,
    /// Platform prefixes with a variant (e.g. `debian-`, `freebsd-`).
    pub platforms: Vec<String>,
}

/// Limits of each build of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildLimits {
    /// Wall-clock limit of one attempt, in seconds (default 3600).
    pub timeout_secs: i32,
    /// Address-space limit of the build's processes, in MiB (default 4096).
    pub memory_mib: i32,
    /// Largest total size of the output directory, in MiB (default 1024).
    pub output_mib: i32,
    /// How many times a build is tried when its worker is lost (default 3).
    pub max_attempts: i32,
}

impl Default for BuildLimits {
    fn default() -> Self {
        BuildLimits { timeout_secs: 3600, memory_mib: 4096, output_mib: 1024, max_attempts: 3 }
    }
}

/// A registered build worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Worker {
    pub id: Uuid,
    pub name: String,
    /// The tenant whose builds it runs (and only those); none for the shared pool.
    pub tenant_id: Option<Uuid>,
    /// As the worker reported it, e.g. `debian-12-x86_64`.
    pub platform: Option<String>,
    /// Builds it runs at once, as reported.
    pub concurrency: Option<i32>,
    pub version: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Builds it holds now.
    pub running: i64,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "builder-1"}))]
pub struct CreateWorker {
    /// 1 to 100 characters of `A-Z a-z 0-9 . _ -`, unique.
    pub name: String,
    /// A tenant-private worker (tenant owners may register these); the shared pool
    /// (administrators only) when absent.
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
}

/// A newly registered worker and its credential, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedWorker {
    pub worker: Worker,
    /// `petrelw_...`: the worker sends it as `Authorization: Bearer ...`.
    pub credential: String,
}

/// What a worker says about itself when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"platform": "debian-12-x86_64", "concurrency": 2, "version": "0.1.0"}))]
pub struct WorkerHello {
    pub platform: String,
    pub concurrency: i32,
    pub version: String,
}

/// A long-poll for work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"platform": "debian-12-x86_64", "wait_secs": 30}))]
pub struct ClaimRequest {
    pub platform: String,
    /// How long to wait for work before answering 204 (0 to 60, default 30).
    #[serde(default)]
    pub wait_secs: Option<i32>,
}

/// A claimed build: everything the worker needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Claim {
    pub build_id: Uuid,
    pub job_id: Uuid,
    pub job_name: String,
    pub platform: String,
    /// 1 for the first try.
    pub attempt: i32,
    pub recipe: Recipe,
    pub limits: BuildLimits,
    /// Fixed per job, so every build and rebuild sees the same timestamps.
    pub source_date_epoch: i64,
    /// The build this one re-runs to check its reproducibility.
    pub rebuild_of: Option<Uuid>,
    /// Renew with a heartbeat before this; the build is re-queued after it.
    pub lease_expires_at: DateTime<Utc>,
    pub lease_secs: i32,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    /// Stop the build and discard it: it was cancelled, timed out or given to another worker.
    pub cancel: bool,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// The outcome of a rebuild: the same recipe re-run, every artifact compared by hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RebuildVerdict {
    /// The build that was re-run.
    pub build_id: Uuid,
    /// The rebuild.
    pub rebuild_id: Uuid,
    /// Every artifact of both builds has the same SHA-256.
    pub reproducible: bool,
    /// The artifacts that differ (or exist on one side only).
    pub differences: Vec<ArtifactDifference>,
    pub checked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactDifference {
    pub path: String,
    pub original_sha256: Option<String>,
    pub rebuild_sha256: Option<String>,
}

/// "Run now": queue a build of the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"platforms": ["debian-12-x86_64"]}))]
pub struct RunJob {
    /// Some of the job's platforms; all of them when absent.
    #[serde(default)]
    pub platforms: Option<Vec<String>>,
}

/// A build asked for, per platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueuedBuild {
    pub platform: String,
    pub build_id: Uuid,
    /// False when a build of the job was queued for this platform already (it is returned).
    pub new: bool,
}

/// A worker asks to rebuild a build itself (`petrel-worker rebuild`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"build_id": "0195f1d2-7c1e-7b9a-9d2e-3f4a5b6c7d8e"}))]
pub struct RebuildRequest {
    pub build_id: Uuid,
}
