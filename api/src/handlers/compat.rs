//! builder-web's URLs, kept so existing clients (albatross' `update`, scripts, package
//! repositories) work against Petrel unchanged. Tenancy applies: private builds resolve only
//! for their tenant. `:job` is a job's name, or `<tenant path>:<job>` when a name is shared by
//! several visible tenants; redirects always use the qualified form.
//!
//! These routes answer redirects and files, not JSON documents, so they are not part of the
//! OpenAPI document; their JSON twins are `/api/v1/hash/{sha256}` and `/api/v1/builds`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

use super::builds::{find_by_hash, parse_sha256, readable_build, serve_artifact};
use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::extract::Query;
use crate::server::AppState;

/// Registers the routes (called from `routes`, the one place routes are declared).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/hash", web::get().to(hash))
        .route("/job/{job}/build/latest", web::get().to(latest))
        .route("/job/{job}/build/latest/{rest:.*}", web::get().to(latest_rest))
        .route("/job/{job}/build/{build_id}/main-binary", web::get().to(main_binary))
        .route("/job/{job}/build/{build_id}/f/{path:.*}", web::get().to(file));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashQuery {
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformQuery {
    platform: Option<String>,
}

fn redirect(location: String) -> HttpResponse {
    HttpResponse::TemporaryRedirect().insert_header((header::LOCATION, location)).finish()
}

/// The job named `name` (bare or qualified) among those the caller may read.
async fn resolve_job(state: &AppState, scope: &ReadScope, name: &str) -> Result<(Uuid, String), ApiError> {
    let rows: Vec<(Uuid, String, bool)> = sqlx::query_as(&format!(
        "SELECT j.id, p.path || ':' || j.name, p.path || ':' || j.name = $3
           FROM jobs j JOIN tenant_paths p ON p.id = j.tenant_id
          WHERE {} AND (j.name = $3 OR p.path || ':' || j.name = $3)",
        ReadScope::SQL
    ))
    .bind(scope.all())
    .bind(scope.tenants())
    .bind(name)
    .fetch_all(&state.db)
    .await?;
    if let Some((id, qualified, _)) = rows.iter().find(|r| r.2) {
        return Ok((*id, qualified.clone()));
    }
    match rows.as_slice() {
        [] => Err(ApiError::NotFound("job")),
        [(id, qualified, _)] => Ok((*id, qualified.clone())),
        _ => Err(ApiError::conflict(
            "ambiguous-job",
            format!("several tenants have a job named {name:?}; use <tenant>:{name}"),
        )),
    }
}

/// `GET /hash?sha256=` → the newest build holding an artifact with that hash.
async fn hash(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    Query(q): Query<HashQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let sha = parse_sha256("sha256", &q.sha256)?;
    let found = find_by_hash(&state.db, &scope, &sha).await?;
    let qualified = qualified_name(&state, found.build.job_id).await?;
    Ok(redirect(format!("/job/{qualified}/build/{}", found.build.id)))
}

async fn qualified_name(state: &AppState, job_id: Uuid) -> Result<String, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT p.path || ':' || j.name FROM jobs j JOIN tenant_paths p ON p.id = j.tenant_id WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_one(&state.db)
    .await?)
}

async fn newest_success(state: &AppState, job_id: Uuid, platform: Option<&str>) -> Result<Uuid, ApiError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM builds WHERE job_id = $1 AND status = 'succeeded' AND ($2::text IS NULL OR platform = $2)
          ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1",
    )
    .bind(job_id)
    .bind(platform)
    .fetch_optional(&state.db)
    .await?;
    id.ok_or(ApiError::NotFound("build"))
}

async fn latest(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<String>,
    Query(q): Query<PlatformQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let (job, qualified) = resolve_job(&state, &scope, &path.into_inner()).await?;
    let build = newest_success(&state, job, q.platform.as_deref()).await?;
    Ok(redirect(format!("/job/{qualified}/build/{build}")))
}

async fn latest_rest(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: MaybeCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, rest) = path.into_inner();
    // builder-web takes ?platform= here too; other query parameters pass through.
    let q: PlatformQuery = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .map(|pairs| PlatformQuery {
            platform: pairs.into_iter().find(|(k, _)| k == "platform").map(|(_, v)| v),
        })
        .map_err(|_| ApiError::field("query", "is not a valid query string"))?;
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let (job, qualified) = resolve_job(&state, &scope, &name).await?;
    let build = newest_success(&state, job, q.platform.as_deref()).await?;
    Ok(redirect(format!("/job/{qualified}/build/{build}/{rest}")))
}

async fn main_binary(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (name, build_id) = path.into_inner();
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let (job, qualified) = resolve_job(&state, &scope, &name).await?;
    let build = readable_build(&state.db, &scope, build_id).await?;
    if build.job_id != job {
        return Err(ApiError::NotFound("build"));
    }
    let main = build.main_binary.ok_or(ApiError::NotFound("main binary"))?;
    Ok(redirect(format!("/job/{qualified}/build/{build_id}/f/{}", main.path)))
}

async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: MaybeCaller,
    path: web::Path<(String, Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, build_id, file) = path.into_inner();
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let (job, _) = resolve_job(&state, &scope, &name).await?;
    let build = readable_build(&state.db, &scope, build_id).await?;
    if build.job_id != job {
        return Err(ApiError::NotFound("build"));
    }
    serve_artifact(&state, &req, build.id, &file).await
}
