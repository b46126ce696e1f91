//! Reading builds: lists with filters, one build, its artifacts (and their contents), console
//! and recorded inputs, and look-up by artifact hash.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use base64::Engine;
use chrono::{DateTime, Utc};
use petrel_wire::Page;
use petrel_wire::builds::{
    Artifact, Build, BuildFilter, BuildInputs, BuildResult, BuildStatus, ConsoleLine, EnvironmentEntry,
    HashLookup, PackageRef,
};
use petrel_wire::page::PageQuery;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::extract::Query;
use crate::pagination::{keyset, page};
use crate::server::AppState;

#[derive(sqlx::FromRow)]
pub(crate) struct BuildRow {
    id: Uuid,
    tenant_id: Uuid,
    job_id: Uuid,
    job_name: String,
    platform: String,
    status: String,
    result_kind: Option<String>,
    result_code: Option<i32>,
    result_message: Option<String>,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    worker: Option<String>,
    input_id: Option<Vec<u8>>,
    main_binary: Option<String>,
    main_sha256: Option<Vec<u8>>,
    main_size: Option<i64>,
    main_stored: Option<bool>,
    attempt: i32,
    rebuild_of: Option<Uuid>,
}

/// Columns of [`BuildRow`], from [`BUILD_FROM`].
const BUILD_COLUMNS: &str = "SELECT b.id, b.tenant_id, b.job_id, j.name AS job_name, b.platform,
        b.status::text AS status, b.result_kind::text AS result_kind, b.result_code, b.result_message,
        b.queued_at, b.started_at, b.finished_at, b.worker, b.input_id, b.main_binary,
        a.sha256 AS main_sha256, a.size AS main_size, bl.stored AS main_stored, b.attempt, b.rebuild_of";
/// Builds with their job (`j`, for [`ReadScope::SQL`]) and main binary's artifact and blob.
const BUILD_FROM: &str = "FROM builds b JOIN jobs j ON j.id = b.job_id
   LEFT JOIN build_artifacts a ON a.build_id = b.id AND a.path = b.main_binary
   LEFT JOIN blobs bl ON bl.sha256 = a.sha256";

pub(crate) fn status_from_db(s: &str) -> BuildStatus {
    match s {
        "queued" => BuildStatus::Queued,
        "running" => BuildStatus::Running,
        "succeeded" => BuildStatus::Succeeded,
        "cancelled" => BuildStatus::Cancelled,
        "timed_out" => BuildStatus::TimedOut,
        _ => BuildStatus::Failed,
    }
}

impl From<BuildRow> for Build {
    fn from(r: BuildRow) -> Build {
        let result = match (r.result_kind.as_deref(), r.result_code, r.result_message) {
            (Some("exited"), Some(code), _) => Some(BuildResult::Exited { code }),
            (Some("signalled"), Some(signal), _) => Some(BuildResult::Signalled { signal }),
            (Some("stopped"), Some(signal), _) => Some(BuildResult::Stopped { signal }),
            (Some("message"), _, Some(message)) => Some(BuildResult::Message { message }),
            _ => None,
        };
        let main_binary = match (r.main_binary, r.main_sha256, r.main_size) {
            (Some(path), Some(sha), Some(size)) => Some(Artifact {
                path,
                sha256: hex::encode(sha),
                size,
                available: r.main_stored.unwrap_or(false),
            }),
            _ => None,
        };
        Build {
            id: r.id,
            tenant_id: r.tenant_id,
            job_id: r.job_id,
            job_name: r.job_name,
            platform: r.platform,
            status: status_from_db(&r.status),
            result,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            worker: r.worker,
            input_id: r.input_id.map(hex::encode),
            main_binary,
            attempt: r.attempt,
            rebuild_of: r.rebuild_of,
        }
    }
}

/// A build the caller may read (404 otherwise).
pub(crate) async fn readable_build(
    db: &PgPool,
    scope: &ReadScope,
    build_id: Uuid,
) -> Result<Build, ApiError> {
    let row: Option<BuildRow> =
        sqlx::query_as(&format!("{BUILD_COLUMNS} {BUILD_FROM} WHERE {} AND b.id = $3", ReadScope::SQL))
            .bind(scope.all())
            .bind(scope.tenants())
            .bind(build_id)
            .fetch_optional(db)
            .await?;
    row.map(Build::from).ok_or(ApiError::NotFound("build"))
}

/// Builds you can see, newest first, filtered by job, platform, status and time.
#[utoipa::path(
    tag = "builds",
    params(BuildFilter),
    responses((status = 200, description = "A page of builds", body = Page<Build>)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds")]
pub async fn list_builds(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    Query(f): Query<BuildFilter>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let ks = keyset::<(DateTime<Utc>, Uuid)>(&PageQuery { limit: f.limit, cursor: f.cursor.clone() })?;
    if let Some(p) = &f.platform {
        crate::validate::platform(p).map_err(|m| ApiError::field("platform", m))?;
    }
    let (after_at, after_id) = ks.after.unzip();
    let rows: Vec<BuildRow> = sqlx::query_as(&format!(
        "{BUILD_COLUMNS} {BUILD_FROM}
          WHERE {} AND ($3::uuid IS NULL OR b.job_id = $3) AND ($4::text IS NULL OR b.platform = $4)
            AND ($5::text IS NULL OR b.status = $5::build_status)
            AND ($6::timestamptz IS NULL OR b.queued_at >= $6) AND ($7::timestamptz IS NULL OR b.queued_at < $7)
            AND ($8::timestamptz IS NULL OR (b.queued_at, b.id) < ($8, $9))
          ORDER BY b.queued_at DESC, b.id DESC LIMIT $10",
        ReadScope::SQL
    ))
    .bind(scope.all())
    .bind(scope.tenants())
    .bind(f.job_id)
    .bind(&f.platform)
    .bind(f.status.map(BuildStatus::as_str))
    .bind(f.since)
    .bind(f.until)
    .bind(after_at)
    .bind(after_id)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let builds: Vec<Build> = rows.into_iter().map(Build::from).collect();
    Ok(HttpResponse::Ok().json(page(builds, ks.limit, |b: &Build| (b.queued_at, b.id))))
}

/// One build.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses((status = 200, description = "The build", body = Build)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}")]
pub async fn get_build(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    Ok(HttpResponse::Ok().json(readable_build(&state.db, &scope, path.into_inner()).await?))
}

/// A build's artifacts, by path.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses((status = 200, description = "The artifacts", body = Vec<Artifact>)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/artifacts")]
pub async fn list_artifacts(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, path.into_inner()).await?;
    let rows: Vec<(String, Vec<u8>, i64, bool)> = sqlx::query_as(
        "SELECT a.path, a.sha256, a.size, bl.stored FROM build_artifacts a JOIN blobs bl ON bl.sha256 = a.sha256
          WHERE a.build_id = $1 ORDER BY a.path",
    )
    .bind(build.id)
    .fetch_all(&state.db)
    .await?;
    let artifacts: Vec<Artifact> = rows
        .into_iter()
        .map(|(path, sha, size, available)| Artifact { path, sha256: hex::encode(sha), size, available })
        .collect();
    Ok(HttpResponse::Ok().json(artifacts))
}

/// An artifact's contents. `ETag` is the base64 SHA-256 (as builder-web); `If-None-Match`
/// answers 304. 410 when retention deleted the contents.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id"), ("path" = String, Path, description = "The artifact's path in the build")),
    responses(
        (status = 200, description = "The contents", body = inline(super::Binary), content_type = "application/octet-stream"),
        (status = 304, description = "Not modified"),
        (status = 410, description = "The contents were deleted by retention", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/files/{path:.*}")]
pub async fn download_artifact(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: MaybeCaller,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (build_id, file) = path.into_inner();
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, build_id).await?;
    serve_artifact(&state, &req, build.id, &file).await
}

pub(crate) async fn serve_artifact(
    state: &AppState,
    req: &HttpRequest,
    build_id: Uuid,
    file: &str,
) -> Result<HttpResponse, ApiError> {
    let row: Option<(Vec<u8>, i64, bool)> = sqlx::query_as(
        "SELECT a.sha256, a.size, bl.stored FROM build_artifacts a JOIN blobs bl ON bl.sha256 = a.sha256
          WHERE a.build_id = $1 AND a.path = $2",
    )
    .bind(build_id)
    .bind(file)
    .fetch_optional(&state.db)
    .await?;
    let (sha, size, stored) = row.ok_or(ApiError::NotFound("artifact"))?;
    if !stored {
        return Err(ApiError::Gone(
            "the artifact's contents were deleted by the job's retention policy".into(),
        ));
    }
    let etag = format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(&sha));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    let stream = state.store.get(&sha).await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CONTENT_TYPE, content_type(file)))
        .insert_header((header::CONTENT_LENGTH, size.to_string()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        // Artifacts go out as stored: gzip on the fly would be slow, drop the length and
        // mismatch the ETag.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .streaming(futures_util::StreamExt::map(stream, |c| {
            c.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))
        })))
}

/// builder-web's content types: recorded inputs are text, binaries are octets.
fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name {
        "opam-switch" | "build-environment" | "system-packages" | "Cargo.lock" => "text/plain; charset=utf-8",
        _ if name.ends_with(".build-hashes") || name.ends_with(".txt") || name.ends_with(".md") => {
            "text/plain; charset=utf-8"
        }
        _ if name.ends_with(".json") => "application/json",
        _ if name.ends_with(".html") => "text/html; charset=utf-8",
        _ if name.ends_with(".tar.gz") || name.ends_with(".tgz") => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// A build's console, line by line.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id"), PageQuery),
    responses((status = 200, description = "A page of console lines", body = Page<ConsoleLine>)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/console")]
pub async fn get_console(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, path.into_inner()).await?;
    let ks = keyset::<i64>(&PageQuery { limit: Some(q.limit.unwrap_or(200)), cursor: q.cursor })?;
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT number, at_ms, text FROM build_console WHERE build_id = $1 AND ($2::bigint IS NULL OR number > $2)
          ORDER BY number LIMIT $3",
    )
    .bind(build.id)
    .bind(ks.after)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let lines: Vec<ConsoleLine> =
        rows.into_iter().map(|(number, at_ms, text)| ConsoleLine { number, at_ms, text }).collect();
    Ok(HttpResponse::Ok().json(page(lines, ks.limit, |l: &ConsoleLine| l.number)))
}

/// What the build recorded about its inputs: environment and packages.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses((status = 200, description = "The inputs", body = BuildInputs)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/inputs")]
pub async fn get_inputs(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, path.into_inner()).await?;
    let environment: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM build_environment WHERE build_id = $1 ORDER BY key")
            .bind(build.id)
            .fetch_all(&state.db)
            .await?;
    let packages: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT ecosystem, name, version FROM build_packages WHERE build_id = $1 ORDER BY ecosystem, name, version",
    )
    .bind(build.id)
    .fetch_all(&state.db)
    .await?;
    Ok(HttpResponse::Ok().json(BuildInputs {
        environment: environment.into_iter().map(|(key, value)| EnvironmentEntry { key, value }).collect(),
        packages: packages
            .into_iter()
            .map(|(ecosystem, name, version)| PackageRef { ecosystem, name, version })
            .collect(),
    }))
}

/// The newest build you can see that has an artifact with this SHA-256 (any path), as
/// albatross' `update` asks builder-web. Answers also when retention deleted the contents.
#[utoipa::path(
    tag = "builds",
    params(("sha256" = String, Path, description = "Hex SHA-256 of an artifact")),
    responses((status = 200, description = "The build holding it", body = HashLookup)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/hash/{sha256}")]
pub async fn lookup_hash(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let sha = parse_sha256("sha256", &path.into_inner())?;
    Ok(HttpResponse::Ok().json(find_by_hash(&state.db, &scope, &sha).await?))
}

pub(crate) fn parse_sha256(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    match hex::decode(s.trim()) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(ApiError::field(field.to_string(), "must be 64 hexadecimal characters")),
    }
}

pub(crate) async fn find_by_hash(db: &PgPool, scope: &ReadScope, sha: &[u8]) -> Result<HashLookup, ApiError> {
    #[derive(sqlx::FromRow)]
    struct Hit {
        #[sqlx(flatten)]
        build: BuildRow,
        hash_path: String,
        hash_stored: bool,
    }
    // One query: the artifact with the hash, and the build that holds it.
    let hit: Option<Hit> = sqlx::query_as(&format!(
        "{} , h.path AS hash_path, hb.stored AS hash_stored {BUILD_FROM}
           JOIN build_artifacts h ON h.build_id = b.id JOIN blobs hb ON hb.sha256 = h.sha256
          WHERE {} AND h.sha256 = $3
          ORDER BY b.finished_at DESC NULLS LAST, b.id DESC LIMIT 1",
        BUILD_COLUMNS,
        ReadScope::SQL
    ))
    .bind(scope.all())
    .bind(scope.tenants())
    .bind(sha)
    .fetch_optional(db)
    .await?;
    let hit = hit.ok_or(ApiError::NotFound("artifact"))?;
    Ok(HashLookup {
        sha256: hex::encode(sha),
        build: hit.build.into(),
        path: hit.hash_path,
        available: hit.hash_stored,
    })
}
