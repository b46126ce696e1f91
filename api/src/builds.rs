//! Turning a finalized upload into a build: reading the recorded inputs it carries (as rows,
//! with its `input_id`) and inserting everything in the caller's transaction.

use petrel_inputs::input_id::{InputFiles, input_id};
use petrel_inputs::system_packages::PackageFormat;
use petrel_wire::builds::{BuildResult, OpenUpload};
use petrel_wire::workers::{ArtifactDifference, RebuildVerdict};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::auth::TenantScope;
use crate::error::ApiError;
use crate::server::AppState;

/// Recorded input files are small; anything larger is not what orb writes.
const MAX_INPUT_FILE: usize = 64 * 1024 * 1024;

/// What a build recorded about its inputs, parsed.
#[derive(Debug, Default)]
pub struct RecordedInputs {
    pub input_id: Option<[u8; 32]>,
    pub environment: Vec<(String, String)>,
    /// (ecosystem, name, version)
    pub packages: Vec<(String, String, String)>,
}

impl RecordedInputs {
    /// Reads and parses the upload's `opam-switch`, `build-environment`, `system-packages` and
    /// `Cargo.lock`. A file that does not parse is refused with the reason.
    pub async fn read(state: &AppState, upload_id: Uuid) -> Result<RecordedInputs, ApiError> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT path, sha256 FROM upload_artifacts
              WHERE upload_id = $1 AND path IN ('opam-switch', 'build-environment', 'system-packages', 'Cargo.lock')",
        )
        .bind(upload_id)
        .fetch_all(&state.db)
        .await?;
        let mut files: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for (path, sha) in rows {
            let bytes = state
                .store
                .read_all(&sha, MAX_INPUT_FILE)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            files.insert(path, bytes);
        }
        Self::parse(&files)
    }

    pub fn parse(files: &std::collections::BTreeMap<String, Vec<u8>>) -> Result<RecordedInputs, ApiError> {
        let get = |name: &str| files.get(name).map(Vec::as_slice);
        let refuse = |name: &str, e: &dyn std::fmt::Display| {
            ApiError::field(format!("artifacts/{name}"), e.to_string())
        };
        let mut inputs = RecordedInputs {
            input_id: input_id(&InputFiles {
                opam_switch: get("opam-switch"),
                build_environment: get("build-environment"),
                system_packages: get("system-packages"),
                cargo_lock: get("Cargo.lock"),
            }),
            ..Default::default()
        };
        if let Some(bytes) = get("build-environment") {
            let env = petrel_inputs::environment::parse_environment(bytes)
                .map_err(|e| refuse("build-environment", &e))?;
            inputs.environment = env.into_iter().collect();
        }
        if let Some(bytes) = get("system-packages") {
            let parsed = petrel_inputs::system_packages::parse_system_packages(bytes)
                .map_err(|e| refuse("system-packages", &e))?;
            let ecosystem = match parsed.format {
                PackageFormat::FreeBsd => "freebsd",
                PackageFormat::Debian => "debian",
                PackageFormat::Empty | PackageFormat::Mixed => "system",
            };
            inputs.packages.extend(parsed.packages.into_iter().map(|(n, v)| (ecosystem.to_string(), n, v)));
        }
        if let Some(bytes) = get("opam-switch") {
            let switch =
                petrel_inputs::opam::parse_switch_export(bytes).map_err(|e| refuse("opam-switch", &e))?;
            inputs
                .packages
                .extend(switch.installed.into_iter().map(|a| ("opam".to_string(), a.name, a.version)));
        }
        if let Some(bytes) = get("Cargo.lock") {
            let lock =
                petrel_inputs::cargo_lock::parse_cargo_lock(bytes).map_err(|e| refuse("Cargo.lock", &e))?;
            inputs
                .packages
                .extend(lock.packages.into_iter().map(|p| ("cargo".to_string(), p.name, p.version)));
        }
        inputs.packages.sort();
        inputs.packages.dedup();
        Ok(inputs)
    }
}

/// Opens an upload row for a build; returns when it expires.
pub async fn create_upload(
    state: &AppState,
    upload_id: Uuid,
    tenant: &TenantScope,
    job_id: Uuid,
    build_id: Uuid,
    meta: &OpenUpload,
    created_by: Option<Uuid>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO uploads (id, tenant_id, job_id, build_id, metadata, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) RETURNING expires_at",
    )
    .bind(upload_id)
    .bind(tenant.tenant_id())
    .bind(job_id)
    .bind(build_id)
    .bind(serde_json::to_value(meta).map_err(ApiError::internal)?)
    .bind(created_by)
    .bind(state.config.upload_ttl.as_secs_f64())
    .fetch_one(&state.db)
    .await?)
}

/// Where a verified blob's bytes are.
pub enum BlobSource<'a> {
    File(&'a std::path::Path),
    Bytes(Vec<u8>),
}

/// Records and stores a verified blob once. The row comes first (not yet stored), so a crash
/// between the two leaves a row that clean-up finds and removes with whatever reached the store.
/// An existing row's `created_at` is refreshed: clean-up spares rows younger than its grace, so
/// an unreferenced old blob claimed again here is not deleted before the caller references it.
#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "store blob", db.system.name = "postgresql"))]
pub async fn store_blob(
    state: &AppState,
    sha256: &[u8],
    size: i64,
    source: BlobSource<'_>,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO blobs (sha256, size, stored) VALUES ($1, $2, false)
         ON CONFLICT (sha256) DO UPDATE SET created_at = now()",
    )
    .bind(sha256)
    .bind(size)
    .execute(&state.db)
    .await?;
    let stored: bool = sqlx::query_scalar("SELECT stored FROM blobs WHERE sha256 = $1")
        .bind(sha256)
        .fetch_one(&state.db)
        .await?;
    // A clean-up pass that died between deleting the object and committing the row's deletion
    // leaves a row that says stored: the object is put back rather than trusted.
    let present =
        stored && state.store.exists(sha256).await.map_err(|e| ApiError::internal(e.to_string()))?;
    if !present {
        let put = match source {
            BlobSource::File(path) => state.store.put_file(sha256, path).await,
            BlobSource::Bytes(bytes) => state.store.put_bytes(sha256, bytes).await,
        };
        put.map_err(|e| ApiError::internal(e.to_string()))?;
        sqlx::query("UPDATE blobs SET stored = true WHERE sha256 = $1")
            .bind(sha256)
            .execute(&state.db)
            .await?;
    }
    Ok(())
}

/// The single file directly under `bin/`, as builder-web defines a build's main binary.
pub fn main_binary<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut bins =
        paths.into_iter().filter(|p| p.strip_prefix("bin/").is_some_and(|rest| !rest.contains('/')));
    match (bins.next(), bins.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Inserts the build of an upload with its artifacts, console and inputs.
#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "INSERT builds (finalize upload)", db.system.name = "postgresql"))]
pub async fn insert_build(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &TenantScope,
    job_id: Uuid,
    build_id: Uuid,
    upload_id: Uuid,
    meta: &OpenUpload,
    inputs: &RecordedInputs,
) -> Result<(), ApiError> {
    let paths: Vec<String> =
        sqlx::query_scalar("SELECT path FROM upload_artifacts WHERE upload_id = $1 ORDER BY path")
            .bind(upload_id)
            .fetch_all(&mut **tx)
            .await?;
    let main = main_binary(paths.iter().map(String::as_str));
    let (kind, code, message) = match &meta.result {
        BuildResult::Exited { code } => ("exited", Some(*code), None),
        BuildResult::Signalled { signal } => ("signalled", Some(*signal), None),
        BuildResult::Stopped { signal } => ("stopped", Some(*signal), None),
        BuildResult::Message { message } => ("message", None, Some(message.as_str())),
    };
    let status = if meta.timed_out {
        "timed_out"
    } else if matches!(meta.result, BuildResult::Exited { code: 0 }) {
        "succeeded"
    } else {
        "failed"
    };
    // A build a worker claimed exists already (queued or running): it gets its result. An
    // uploaded build is new.
    let existing: Option<(String, Option<Uuid>)> = sqlx::query_as(
        "SELECT status::text, rebuild_of FROM builds WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(build_id)
    .bind(tenant.tenant_id())
    .fetch_optional(&mut **tx)
    .await?;
    let rebuild_of = match &existing {
        Some((current, _)) if current != "queued" && current != "running" => {
            return Err(ApiError::conflict(
                "build-finished",
                format!("the build is {current} already; its result cannot change"),
            ));
        }
        Some((_, rebuild_of)) => *rebuild_of,
        None => None,
    };
    if existing.is_some() {
        sqlx::query(
            "UPDATE builds SET status = $2::build_status, result_kind = $3::build_result_kind, result_code = $4,
                    result_message = $5, started_at = coalesce(started_at, $6), finished_at = $7,
                    worker = coalesce(worker, $8), script = $9, input_id = $10, main_binary = $11,
                    lease_expires_at = NULL
              WHERE id = $1",
        )
        .bind(build_id)
        .bind(status)
        .bind(kind)
        .bind(code)
        .bind(message)
        .bind(meta.started_at)
        .bind(meta.finished_at)
        .bind(&meta.worker)
        .bind(&meta.script)
        .bind(inputs.input_id.map(|id| id.to_vec()))
        .bind(main)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO builds (id, tenant_id, job_id, platform, status, result_kind, result_code, result_message,
                                 queued_at, started_at, finished_at, worker, script, input_id, main_binary)
             VALUES ($1, $2, $3, $4, $5::build_status, $6::build_result_kind, $7, $8, $9, $9, $10, $11, $12, $13, $14)",
        )
        .bind(build_id)
        .bind(tenant.tenant_id())
        .bind(job_id)
        .bind(&meta.platform)
        .bind(status)
        .bind(kind)
        .bind(code)
        .bind(message)
        .bind(meta.started_at)
        .bind(meta.finished_at)
        .bind(&meta.worker)
        .bind(&meta.script)
        .bind(inputs.input_id.map(|id| id.to_vec()))
        .bind(main)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO build_artifacts (build_id, path, sha256, size)
         SELECT $1, path, sha256, size FROM upload_artifacts WHERE upload_id = $2",
    )
    .bind(build_id)
    .bind(upload_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO build_console (build_id, number, at_ms, text)
         SELECT $1, number + coalesce((SELECT max(number) FROM build_console WHERE build_id = $1), 0), at_ms, text
           FROM upload_console WHERE upload_id = $2",
    )
    .bind(build_id)
    .bind(upload_id)
    .execute(&mut **tx)
    .await?;
    crate::tasks::enqueue(tx, &crate::tasks::Task::Visualize { build_id }).await?;
    if let Some(original) = rebuild_of {
        record_verdict(tx, original, build_id).await?;
    }
    crate::events::build_changed(tx, build_id).await?;
    // The upload's rows now live on as the build's; keeping them would pin blobs forever.
    sqlx::query("DELETE FROM upload_artifacts WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM upload_console WHERE upload_id = $1").bind(upload_id).execute(&mut **tx).await?;
    let (keys, values): (Vec<&str>, Vec<&str>) =
        inputs.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
    sqlx::query("INSERT INTO build_environment (build_id, key, value) SELECT $1, * FROM unnest($2::text[], $3::text[])")
        .bind(build_id)
        .bind(&keys)
        .bind(&values)
        .execute(&mut **tx)
        .await?;
    let ecosystems: Vec<&str> = inputs.packages.iter().map(|p| p.0.as_str()).collect();
    let names: Vec<&str> = inputs.packages.iter().map(|p| p.1.as_str()).collect();
    let versions: Vec<&str> = inputs.packages.iter().map(|p| p.2.as_str()).collect();
    sqlx::query(
        "INSERT INTO build_packages (build_id, ecosystem, name, version)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(build_id)
    .bind(&ecosystems)
    .bind(&names)
    .bind(&versions)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Recorded inputs describe the environment, not the output: a rebuild is judged by the rest.
const RECORDED_INPUTS: [&str; 4] = ["opam-switch", "build-environment", "system-packages", "Cargo.lock"];

/// Compares a rebuild's artifacts with the original's by path and hash, and keeps the verdict.
async fn record_verdict(
    tx: &mut Transaction<'_, Postgres>,
    original: Uuid,
    rebuild: Uuid,
) -> Result<(), ApiError> {
    // (path, the original's SHA-256, the rebuild's)
    type Difference = (String, Option<Vec<u8>>, Option<Vec<u8>>);
    let differences: Vec<Difference> = sqlx::query_as(
        "SELECT coalesce(o.path, r.path), o.sha256, r.sha256
           FROM (SELECT path, sha256 FROM build_artifacts WHERE build_id = $1 AND NOT path = ANY($3)) o
           FULL JOIN (SELECT path, sha256 FROM build_artifacts WHERE build_id = $2 AND NOT path = ANY($3)) r
             ON r.path = o.path
          WHERE o.sha256 IS DISTINCT FROM r.sha256
          ORDER BY 1",
    )
    .bind(original)
    .bind(rebuild)
    .bind(&RECORDED_INPUTS[..])
    .fetch_all(&mut **tx)
    .await?;
    let differences: Vec<ArtifactDifference> = differences
        .into_iter()
        .map(|(path, o, r)| ArtifactDifference {
            path,
            original_sha256: o.map(hex::encode),
            rebuild_sha256: r.map(hex::encode),
        })
        .collect();
    sqlx::query(
        "INSERT INTO rebuild_verdicts (rebuild_id, build_id, reproducible, differences) VALUES ($1, $2, $3, $4)",
    )
    .bind(rebuild)
    .bind(original)
    .bind(differences.is_empty())
    .bind(sqlx::types::Json(&differences))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

type VerdictRow =
    (Uuid, Uuid, bool, sqlx::types::Json<Vec<ArtifactDifference>>, chrono::DateTime<chrono::Utc>);

fn verdict(row: VerdictRow) -> RebuildVerdict {
    let (build_id, rebuild_id, reproducible, differences, checked_at) = row;
    RebuildVerdict { build_id, rebuild_id, reproducible, differences: differences.0, checked_at }
}

/// The verdicts of a build's rebuilds, oldest first (the caller checked that it may read it).
pub async fn verdicts_of_build(db: &sqlx::PgPool, build_id: Uuid) -> Result<Vec<RebuildVerdict>, ApiError> {
    let rows: Vec<VerdictRow> = sqlx::query_as(
        "SELECT build_id, rebuild_id, reproducible, differences, checked_at FROM rebuild_verdicts
          WHERE build_id = $1 ORDER BY checked_at, rebuild_id",
    )
    .bind(build_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(verdict).collect())
}

/// The verdict of one rebuild; with `worker`, only of a rebuild that worker ran.
pub async fn verdict_of_rebuild(
    db: &sqlx::PgPool,
    rebuild_id: Uuid,
    worker: Option<Uuid>,
) -> Result<Option<RebuildVerdict>, ApiError> {
    let row: Option<VerdictRow> = sqlx::query_as(
        "SELECT v.build_id, v.rebuild_id, v.reproducible, v.differences, v.checked_at
           FROM rebuild_verdicts v JOIN builds b ON b.id = v.rebuild_id
          WHERE v.rebuild_id = $1 AND ($2::uuid IS NULL OR b.worker_id = $2)",
    )
    .bind(rebuild_id)
    .bind(worker)
    .fetch_optional(db)
    .await?;
    Ok(row.map(verdict))
}

#[cfg(test)]
mod tests {
    use super::main_binary;

    #[test]
    fn the_main_binary_is_the_only_file_directly_under_bin() {
        assert_eq!(main_binary(["bin/a.hvt", "opam-switch"]), Some("bin/a.hvt"));
        assert_eq!(main_binary(["bin/a.hvt", "bin/b.hvt"]), None);
        assert_eq!(main_binary(["bin/x/a.hvt"]), None);
        assert_eq!(main_binary(["a.hvt"]), None);
    }
}
