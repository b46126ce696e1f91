//! Comparing two builds: inputs (environment, system, opam and Cargo packages, opam files,
//! duniverse) and outputs (artifacts by hash, main-binary size).

use actix_web::{HttpResponse, get, web};
use petrel_inputs::compare::{BuildInputs, compare};
use petrel_inputs::input_id::InputFiles;
use petrel_wire::compare::{Artifact, Comparison};
use uuid::Uuid;

use super::builds::readable_build;
use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::server::AppState;

const MAX_INPUT_FILE: usize = 64 * 1024 * 1024;
/// Bump when the comparison's computation changes, so cached ones are recomputed.
const COMPARE_VERSION: i32 = 1;

async fn inputs_of(state: &AppState, build_id: Uuid) -> Result<BuildInputs, ApiError> {
    let rows: Vec<(String, Vec<u8>, i64, bool)> = sqlx::query_as(
        "SELECT a.path, a.sha256, a.size, bl.stored FROM build_artifacts a JOIN blobs bl ON bl.sha256 = a.sha256
          WHERE a.build_id = $1 ORDER BY a.path",
    )
    .bind(build_id)
    .fetch_all(&state.db)
    .await?;
    let mut files: std::collections::BTreeMap<&str, Vec<u8>> = Default::default();
    for (path, sha, _, stored) in &rows {
        let name = path.as_str();
        if *stored && matches!(name, "opam-switch" | "build-environment" | "system-packages" | "Cargo.lock") {
            let bytes = state
                .store
                .read_all(sha, MAX_INPUT_FILE)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            files.insert(name, bytes);
        }
    }
    let get = |n: &str| files.get(n).map(Vec::as_slice);
    let input_files = InputFiles {
        opam_switch: get("opam-switch"),
        build_environment: get("build-environment"),
        system_packages: get("system-packages"),
        cargo_lock: get("Cargo.lock"),
    };
    let artifacts = rows
        .iter()
        .map(|(path, sha, size, _)| Artifact {
            path: path.clone(),
            sha256: hex::encode(sha),
            size: (*size).max(0) as u64,
        })
        .collect();
    Ok(BuildInputs::from_files(&input_files, artifacts))
}

/// Compare two builds you can see: `left` is the first id, `right` the second; swap them for
/// the reverse view.
#[utoipa::path(
    tag = "builds",
    params(("left_id" = Uuid, Path, description = "The left build"), ("right_id" = Uuid, Path, description = "The right build")),
    responses((status = 200, description = "The differences", body = Comparison)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/compare/{left_id}/{right_id}")]
pub async fn compare_builds(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (left, right) = path.into_inner();
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let left = readable_build(&state.db, &scope, left).await?;
    let right = readable_build(&state.db, &scope, right).await?;
    Ok(HttpResponse::Ok().json(comparison(&state, left.id, right.id).await?))
}

/// The comparison of two readable builds, from the cache or computed (and cached) now.
pub(crate) async fn comparison(
    state: &AppState,
    left: Uuid,
    right: Uuid,
) -> Result<serde_json::Value, ApiError> {
    let cached: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT data FROM compare_cache WHERE left_build = $1 AND right_build = $2 AND version = $3",
    )
    .bind(left)
    .bind(right)
    .bind(COMPARE_VERSION)
    .fetch_optional(&state.db)
    .await?;
    if let Some(data) = cached {
        return Ok(data);
    }
    let (l, r) = (inputs_of(state, left).await?, inputs_of(state, right).await?);
    let data = serde_json::to_value(compare(&l, &r)).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO compare_cache (left_build, right_build, version, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(left)
    .bind(right)
    .bind(COMPARE_VERSION)
    .bind(&data)
    .execute(&state.db)
    .await?;
    Ok(data)
}
