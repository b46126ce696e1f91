//! Staged, resumable uploads of a build: open, stream each artifact (hashed while written,
//! verified against the declared SHA-256 and size), add console lines, then finalize in one
//! transaction. Nothing is visible before finalize; retries of every step are harmless.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use petrel_wire::FieldError;
use petrel_wire::builds::{Artifact, Build, BuildResult, ConsoleChunk, OpenUpload, Upload};
use petrel_wire::identity::Role;
use sqlx::PgPool;
use uuid::Uuid;

use super::builds::readable_build;
use super::jobs::writable_job;
use crate::audit::{self, Actor};
use crate::auth::read::ReadScope;
use crate::auth::worker::WorkerPrincipal;
use crate::auth::{Caller, TenantScope};
use crate::error::ApiError;
use crate::extract::Json;
use crate::server::AppState;
use crate::store::Staging;
use crate::validate;

/// The header carrying an artifact's expected SHA-256 (hex).
pub const SHA256_HEADER: &str = "x-petrel-sha256";
const MAX_SCRIPT_BYTES: usize = 1024 * 1024;
const MAX_CONSOLE_LINE: usize = 64 * 1024;
const MAX_CONSOLE_LINES_PER_CHUNK: usize = 10_000;

struct UploadRow {
    tenant: TenantScope,
    job_id: Uuid,
    build_id: Uuid,
    state: String,
    metadata: OpenUpload,
    expires_at: DateTime<Utc>,
}

/// Who uploads: an operator of the job's tenant, or the worker that holds the build.
pub enum Uploader {
    User(Caller),
    Worker(WorkerPrincipal),
}

impl FromRequest for Uploader {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if crate::auth::worker::credential_in(req).is_some() {
            let worker = WorkerPrincipal::from_request(req, payload);
            Box::pin(async move { Ok(Uploader::Worker(worker.await?)) })
        } else {
            let caller = Caller::from_request(req, payload);
            Box::pin(async move { Ok(Uploader::User(caller.await?)) })
        }
    }
}

impl Uploader {
    fn actor(&self) -> Actor {
        match self {
            Uploader::User(caller) => Actor::from(caller),
            Uploader::Worker(worker) => worker.actor(),
        }
    }

    fn user_id(&self) -> Option<Uuid> {
        match self {
            Uploader::User(caller) => Some(caller.user_id),
            Uploader::Worker(_) => None,
        }
    }

    async fn read_scope(&self, db: &PgPool, tenant: &TenantScope) -> Result<ReadScope, ApiError> {
        match self {
            Uploader::User(caller) => ReadScope::of(Some(caller), db).await,
            Uploader::Worker(_) => Ok(ReadScope::from(tenant)),
        }
    }

    /// The tenant scope for writing the upload of `build_id` (of job `job_id`).
    async fn scope_for(
        &self,
        db: &PgPool,
        tenant_id: Uuid,
        build_id: Uuid,
        job_id: Uuid,
        finalized: bool,
    ) -> Result<TenantScope, ApiError> {
        match self {
            Uploader::User(caller) => {
                caller.tenant(db, tenant_id, Role::Operator).await.map_err(|e| match e {
                    ApiError::NotFound(_) => ApiError::NotFound("upload"),
                    other => other,
                })
            }
            Uploader::Worker(worker) => worker.build_for_upload(db, build_id, job_id, finalized).await,
        }
    }
}

async fn writable_upload(db: &PgPool, uploader: &Uploader, upload_id: Uuid) -> Result<UploadRow, ApiError> {
    let row: Option<(Uuid, Uuid, Uuid, String, serde_json::Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT tenant_id, job_id, build_id, state, metadata, expires_at FROM uploads WHERE id = $1",
    )
    .bind(upload_id)
    .fetch_optional(db)
    .await?;
    let (tenant_id, job_id, build_id, state, metadata, expires_at) =
        row.ok_or(ApiError::NotFound("upload"))?;
    let tenant = uploader.scope_for(db, tenant_id, build_id, job_id, state == "finalized").await?;
    let metadata = serde_json::from_value(metadata).map_err(ApiError::internal)?;
    Ok(UploadRow { tenant, job_id, build_id, state, metadata, expires_at })
}

fn require_open(upload: &UploadRow) -> Result<(), ApiError> {
    match upload.state.as_str() {
        "open" if upload.expires_at > Utc::now() => Ok(()),
        "open" => Err(ApiError::conflict("upload-expired", "the upload expired; open a new one")),
        "finalized" => Err(ApiError::conflict("upload-finalized", "the upload is finalized already")),
        _ => Err(ApiError::conflict("upload-aborted", "the upload was aborted")),
    }
}

async fn upload_view(db: &PgPool, upload_id: Uuid, upload: &UploadRow) -> Result<Upload, ApiError> {
    let rows: Vec<(String, Vec<u8>, i64)> =
        sqlx::query_as("SELECT path, sha256, size FROM upload_artifacts WHERE upload_id = $1 ORDER BY path")
            .bind(upload_id)
            .fetch_all(db)
            .await?;
    Ok(Upload {
        id: upload_id,
        job_id: upload.job_id,
        build_id: upload.build_id,
        state: upload.state.clone(),
        artifacts: rows
            .into_iter()
            .map(|(path, sha, size)| Artifact { path, sha256: hex::encode(sha), size, available: true })
            .collect(),
        expires_at: upload.expires_at,
    })
}

/// Open an upload of one build of the job (operators). Opening again with the same
/// `build_id` while the upload is open returns it (for retries).
#[utoipa::path(
    tag = "uploads",
    params(("job_id" = Uuid, Path, description = "The job's id")),
    request_body = OpenUpload,
    responses(
        (status = 201, description = "Opened", body = Upload),
        (status = 200, description = "Already open (a retry)", body = Upload),
        (status = 409, description = "That build exists already", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []), ("worker" = []))
)]
#[post("/jobs/{job_id}/uploads")]
pub async fn open_upload(
    state: web::Data<AppState>,
    uploader: Uploader,
    path: web::Path<Uuid>,
    Json(body): Json<OpenUpload>,
) -> Result<HttpResponse, ApiError> {
    let job_id = path.into_inner();
    let tenant = match &uploader {
        Uploader::User(caller) => writable_job(&state.db, caller, job_id, Role::Operator).await?.0,
        Uploader::Worker(worker) => {
            let build_id = body.build_id.ok_or_else(|| {
                ApiError::field("build_id", "a worker uploads the build it claimed: give its id")
            })?;
            worker.build_for_upload(&state.db, build_id, job_id, false).await?
        }
    };
    let mut errors = Vec::new();
    if let Err(m) = validate::platform(&body.platform) {
        errors.push(FieldError::new("platform", m));
    }
    if body.finished_at < body.started_at {
        errors.push(FieldError::new("finished_at", "is before started_at"));
    }
    if body.script.as_ref().is_some_and(|s| s.len() > MAX_SCRIPT_BYTES) {
        errors.push(FieldError::new("script", "at most 1 MiB"));
    }
    if body.worker.as_ref().is_some_and(|w| validate::display_name(w).is_err()) {
        errors.push(FieldError::new("worker", "must be 1 to 100 printable characters"));
    }
    if let BuildResult::Message { message } = &body.result
        && message.len() > 4096
    {
        errors.push(FieldError::new("result.message", "at most 4096 bytes"));
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let build_id = body.build_id.unwrap_or_else(Uuid::new_v4);
    let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM uploads WHERE build_id = $1")
        .bind(build_id)
        .fetch_optional(&state.db)
        .await?;
    if let Some(upload_id) = existing {
        let upload = writable_upload(&state.db, &uploader, upload_id).await?;
        if upload.job_id != job_id || upload.state != "open" {
            return Err(ApiError::conflict("build-exists", "an upload of this build exists already"));
        }
        return Ok(HttpResponse::Ok().json(upload_view(&state.db, upload_id, &upload).await?));
    }
    // A worker's claimed build exists already and is what it uploads; a user's upload is a
    // new build.
    let built: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM builds WHERE id = $1)")
        .bind(build_id)
        .fetch_one(&state.db)
        .await?;
    if built && matches!(uploader, Uploader::User(_)) {
        return Err(ApiError::conflict("build-exists", "a build with this id exists already"));
    }
    let id = Uuid::new_v4();
    let expires_at =
        crate::builds::create_upload(&state, id, &tenant, job_id, build_id, &body, uploader.user_id())
            .await?;
    Ok(HttpResponse::Created().json(Upload {
        id,
        job_id,
        build_id,
        state: "open".into(),
        artifacts: Vec::new(),
        expires_at,
    }))
}

/// The upload's state and the artifacts received so far (to resume after an interruption).
#[utoipa::path(
    tag = "uploads",
    params(("upload_id" = Uuid, Path, description = "The upload's id")),
    responses((status = 200, description = "The upload", body = Upload)),
    security(("bearer" = []), ("session" = []), ("worker" = []))
)]
#[get("/uploads/{upload_id}")]
pub async fn get_upload(
    state: web::Data<AppState>,
    uploader: Uploader,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let upload_id = path.into_inner();
    let upload = writable_upload(&state.db, &uploader, upload_id).await?;
    Ok(HttpResponse::Ok().json(upload_view(&state.db, upload_id, &upload).await?))
}

/// Removes a staged file however the handler ends.
pub(crate) struct StagedFile(pub(crate) std::path::PathBuf);

impl Drop for StagedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Stream one artifact. Send its SHA-256 (hex) in `X-Petrel-Sha256`; the body is hashed while
/// it is written to a staging file and stored only when hash and size match. Sending the same
/// path again replaces it.
#[utoipa::path(
    tag = "uploads",
    params(
        ("upload_id" = Uuid, Path, description = "The upload's id"),
        ("path" = String, Path, description = "The artifact's path in the build, e.g. bin/hello.hvt"),
        ("x-petrel-sha256" = String, Header, description = "Hex SHA-256 of the body"),
    ),
    request_body(content = inline(super::Binary), content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = Artifact),
        (status = 409, description = "The upload is finalized, aborted or expired", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []), ("worker" = []))
)]
#[put("/uploads/{upload_id}/artifacts/{path:.*}")]
pub async fn put_artifact(
    state: web::Data<AppState>,
    req: HttpRequest,
    uploader: Uploader,
    path: web::Path<(Uuid, String)>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let (upload_id, file) = path.into_inner();
    validate::artifact_path(&file).map_err(|m| ApiError::field("path", m))?;
    let expected = declared_sha256(&req)?;
    let upload = writable_upload(&state.db, &uploader, upload_id).await?;
    require_open(&upload)?;
    let limits = &state.config;
    let others: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(size), 0)::bigint FROM upload_artifacts WHERE upload_id = $1 AND path <> $2",
    )
    .bind(upload_id)
    .bind(&file)
    .fetch_one(&state.db)
    .await?;
    let allowed = limits.max_artifact_bytes.min(limits.max_build_bytes.saturating_sub(others as u64));
    if declared_length(&req).is_some_and(|n| n > allowed) {
        return Err(too_large(limits.max_artifact_bytes, limits.max_build_bytes));
    }

    let (staged, actual, written) = receive(&state, &req, &mut body, allowed, &expected, || {
        too_large(limits.max_artifact_bytes, limits.max_build_bytes)
    })
    .await?;
    crate::builds::store_blob(&state, &actual, written as i64, crate::builds::BlobSource::File(&staged.0))
        .await?;
    sqlx::query(
        "INSERT INTO upload_artifacts (upload_id, path, sha256, size) VALUES ($1, $2, $3, $4)
         ON CONFLICT (upload_id, path) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size",
    )
    .bind(upload_id)
    .bind(&file)
    .bind(&actual[..])
    .bind(written as i64)
    .execute(&state.db)
    .await?;
    crate::otel::artifact_uploaded(written, started.elapsed());
    Ok(HttpResponse::Created().json(Artifact {
        path: file,
        sha256: hex::encode(actual),
        size: written as i64,
        available: true,
    }))
}

/// The `X-Petrel-Sha256` header of a raw upload: required, 64 hex digits.
pub(crate) fn declared_sha256(req: &HttpRequest) -> Result<Vec<u8>, ApiError> {
    req.headers()
        .get(SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::field(SHA256_HEADER, "is required: the hex SHA-256 of the body"))
        .and_then(|v| super::builds::parse_sha256(SHA256_HEADER, v))
}

/// The `Content-Length` header, when sent.
pub(crate) fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Streams a raw upload's body into a staging file (removed when the result is dropped),
/// hashing it on the way; more than `limit` bytes is refused with `too_large()`. The body must
/// be as long as its `Content-Length` says and hash to `expected` (its `X-Petrel-Sha256`).
pub(crate) async fn receive(
    state: &AppState,
    req: &HttpRequest,
    body: &mut web::Payload,
    limit: u64,
    expected: &[u8],
    too_large: impl Fn() -> ApiError,
) -> Result<(StagedFile, [u8; 32], u64), ApiError> {
    let staged = StagedFile(state.store.staging.join(format!("{}.part", Uuid::new_v4())));
    let mut staging = Staging::create(&staged.0).map_err(ApiError::internal)?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest {
            code: "body-unreadable",
            detail: "the upload was interrupted".into(),
            errors: vec![],
        })?;
        if staging.bytes_so_far() + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        staging.push(chunk).await.map_err(ApiError::internal)?;
    }
    let (sha256, written) = staging.finish().await.map_err(ApiError::internal)?;
    if declared_length(req).is_some_and(|n| n != written) {
        return Err(ApiError::field("content-length", "the body is shorter than declared"));
    }
    if sha256[..] != expected[..] {
        return Err(ApiError::field(
            SHA256_HEADER,
            format!("does not match the body, whose SHA-256 is {}", hex::encode(sha256)),
        ));
    }
    Ok((staged, sha256, written))
}

fn too_large(artifact: u64, build: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "artifacts are limited to {artifact} bytes each and {build} bytes per build"
    ))
}

/// Append console lines (in order; send chunks one after another).
#[utoipa::path(
    tag = "uploads",
    params(("upload_id" = Uuid, Path, description = "The upload's id")),
    request_body = ConsoleChunk,
    responses(
        (status = 204, description = "Appended"),
        (status = 409, description = "The upload is finalized, aborted or expired", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []), ("worker" = []))
)]
#[post("/uploads/{upload_id}/console")]
pub async fn append_console(
    state: web::Data<AppState>,
    uploader: Uploader,
    path: web::Path<Uuid>,
    Json(body): Json<ConsoleChunk>,
) -> Result<HttpResponse, ApiError> {
    let upload_id = path.into_inner();
    let upload = writable_upload(&state.db, &uploader, upload_id).await?;
    require_open(&upload)?;
    if body.lines.len() > MAX_CONSOLE_LINES_PER_CHUNK {
        return Err(ApiError::field(
            "lines",
            format!("at most {MAX_CONSOLE_LINES_PER_CHUNK} lines per request"),
        ));
    }
    for (i, line) in body.lines.iter().enumerate() {
        if line.text.len() > MAX_CONSOLE_LINE || line.text.contains('\0') {
            return Err(ApiError::field(format!("lines[{i}].text"), "at most 64 KiB, without NUL"));
        }
    }
    let mut tx = state.db.begin().await?;
    sqlx::query("SELECT 1 FROM uploads WHERE id = $1 FOR UPDATE").bind(upload_id).execute(&mut *tx).await?;
    let next: i64 =
        sqlx::query_scalar("SELECT COALESCE(max(number) + 1, 0) FROM upload_console WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_one(&mut *tx)
            .await?;
    let numbers: Vec<i64> = (0..body.lines.len() as i64).map(|i| next + i).collect();
    let at: Vec<i64> = body.lines.iter().map(|l| l.at_ms).collect();
    let texts: Vec<&str> = body.lines.iter().map(|l| l.text.as_str()).collect();
    sqlx::query(
        "INSERT INTO upload_console (upload_id, number, at_ms, text)
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[])",
    )
    .bind(upload_id)
    .bind(&numbers)
    .bind(&at)
    .bind(&texts)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Make the build visible, in one transaction. Finalizing again returns the same build.
#[utoipa::path(
    tag = "uploads",
    params(("upload_id" = Uuid, Path, description = "The upload's id")),
    responses(
        (status = 201, description = "The new build", body = Build),
        (status = 200, description = "Finalized before (a retry)", body = Build),
        (status = 409, description = "The upload is finalized, aborted or expired", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []), ("worker" = []))
)]
#[post("/uploads/{upload_id}/finalize")]
pub async fn finalize_upload(
    state: web::Data<AppState>,
    uploader: Uploader,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let upload_id = path.into_inner();
    let upload = writable_upload(&state.db, &uploader, upload_id).await?;
    let scope = uploader.read_scope(&state.db, &upload.tenant).await?;
    if upload.state == "finalized" {
        return Ok(HttpResponse::Ok().json(readable_build(&state.db, &scope, upload.build_id).await?));
    }
    require_open(&upload)?;
    let inputs = crate::builds::RecordedInputs::read(&state, upload_id).await?;
    let mut tx = state.db.begin().await?;
    let st: String = sqlx::query_scalar("SELECT state FROM uploads WHERE id = $1 FOR UPDATE")
        .bind(upload_id)
        .fetch_one(&mut *tx)
        .await?;
    if st != "open" {
        // Another request finalized or aborted it meanwhile.
        drop(tx);
        return Ok(HttpResponse::Ok().json(readable_build(&state.db, &scope, upload.build_id).await?));
    }
    crate::builds::insert_build(
        &mut tx,
        &upload.tenant,
        upload.job_id,
        upload.build_id,
        upload_id,
        &upload.metadata,
        &inputs,
    )
    .await?;
    sqlx::query("UPDATE uploads SET state = 'finalized' WHERE id = $1")
        .bind(upload_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        Some(upload.tenant.tenant_id()),
        &uploader.actor(),
        "build.upload",
        Some(upload.build_id.to_string()),
        serde_json::json!({"job_id": upload.job_id, "platform": upload.metadata.platform}),
    )
    .await?;
    tx.commit().await?;
    crate::otel::build_finished(&upload.metadata);
    crate::manifests::read_for_build(&state, upload.build_id).await;
    Ok(HttpResponse::Created().json(readable_build(&state.db, &scope, upload.build_id).await?))
}

/// Abandon an upload. What it stored is removed by the next clean-up unless a build uses it.
#[utoipa::path(
    tag = "uploads",
    params(("upload_id" = Uuid, Path, description = "The upload's id")),
    responses(
        (status = 204, description = "Aborted"),
        (status = 409, description = "The upload is finalized already", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []), ("worker" = []))
)]
#[delete("/uploads/{upload_id}")]
pub async fn abort_upload(
    state: web::Data<AppState>,
    uploader: Uploader,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let upload_id = path.into_inner();
    let upload = writable_upload(&state.db, &uploader, upload_id).await?;
    if upload.state == "finalized" {
        return Err(ApiError::conflict("upload-finalized", "the upload is finalized already"));
    }
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE uploads SET state = 'aborted' WHERE id = $1 AND state = 'open'")
        .bind(upload_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM upload_artifacts WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM upload_console WHERE upload_id = $1").bind(upload_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
