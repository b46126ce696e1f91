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

use super::builds::{parse_sha256, readable_build, serve_artifact};
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
        .route("/job/{job}/build/{build_id}/f/{path:.*}", web::get().to(file))
        .route("/compare/{left_id}/{right_id}", web::get().to(compare))
        .route("/upload", web::post().to(upload_exec))
        .route("/job/{job}/platform/{platform}/upload", web::post().to(upload_binary));
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
    let sha = parse_sha256("sha256", &q.sha256)?;
    let location = cached(&state, caller.0.is_none(), format!("hash {}", hex::encode(&sha)), async {
        let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
        // One query: the newest readable build holding the hash, with its job's qualified name.
        let found: Option<(Uuid, String)> = sqlx::query_as(&format!(
            "SELECT b.id, p.path || ':' || j.name
               FROM build_artifacts h JOIN builds b ON b.id = h.build_id JOIN jobs j ON j.id = b.job_id
               JOIN tenant_paths p ON p.id = j.tenant_id
              WHERE {} AND h.sha256 = $3
              ORDER BY b.finished_at DESC NULLS LAST, b.id DESC LIMIT 1",
            ReadScope::SQL
        ))
        .bind(scope.all())
        .bind(scope.tenants())
        .bind(&sha)
        .fetch_optional(&state.db)
        .await?;
        let (build, qualified) = found.ok_or(ApiError::NotFound("artifact"))?;
        Ok(format!("/job/{qualified}/build/{build}"))
    })
    .await?;
    Ok(redirect(location))
}

/// A redirect's location, from the look-up cache for anonymous callers (see `lookup_cache`).
async fn cached(
    state: &AppState,
    anonymous: bool,
    key: String,
    compute: impl std::future::Future<Output = Result<String, ApiError>>,
) -> Result<String, ApiError> {
    if !anonymous {
        return compute.await;
    }
    if let Some(location) = state.lookups.get(&key) {
        return Ok(location);
    }
    let generation = state.lookups.generation();
    let location = compute.await?;
    state.lookups.put(key, generation, location.clone());
    Ok(location)
}

/// The newest successful build's location for builder-web's `latest` URLs.
async fn latest_location(
    state: &AppState,
    caller: &MaybeCaller,
    name: &str,
    platform: Option<&str>,
) -> Result<String, ApiError> {
    let key = format!("latest {name} {platform:?}");
    cached(state, caller.0.is_none(), key, async {
        let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
        let (job, qualified) = resolve_job(state, &scope, name).await?;
        let build = newest_success(state, job, platform).await?;
        Ok(format!("/job/{qualified}/build/{build}"))
    })
    .await
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
    Ok(redirect(latest_location(&state, &caller, &path.into_inner(), q.platform.as_deref()).await?))
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
    let location = latest_location(&state, &caller, &name, q.platform.as_deref()).await?;
    Ok(redirect(format!("{location}/{rest}")))
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

/// The tenant a builder-web style upload goes to: HTTP Basic with an API token as the password
/// (as builder-server's `--upload https://user:TOKEN@host/upload`), or a Bearer token.
async fn uploader(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(crate::auth::Caller, crate::auth::TenantScope), ApiError> {
    use base64::Engine;
    let value = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let secret = if let Some(b64) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
        let text = String::from_utf8(decoded).unwrap_or_default();
        text.split_once(':').map(|(_, password)| password.to_string()).unwrap_or_default()
    } else {
        value.strip_prefix("Bearer ").unwrap_or("").trim().to_string()
    };
    let ip = crate::auth::client_ip(req, state.config.trust_forwarded_for);
    let caller = crate::auth::session::caller_from_token(&state.db, &secret, ip)
        .await?
        .ok_or(ApiError::Unauthenticated("uploads need an API token as the HTTP Basic password"))?;
    let tenant = match &caller.via {
        crate::auth::Via::Token(t) => t.tenant_id,
        crate::auth::Via::Session { .. } => None,
    }
    .ok_or_else(|| ApiError::forbidden("tenant-token-required", "upload with a token made for one tenant"))?;
    let scope = caller.tenant(&state.db, tenant, petrel_wire::identity::Role::Operator).await?;
    Ok((caller, scope))
}

async fn read_body(state: &AppState, mut body: web::Payload) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    // builder sends a whole build in one message; it is decoded in memory, so it is bounded.
    let limit = state.config.max_build_bytes.min(2 << 30) as usize;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest {
            code: "body-unreadable",
            detail: "the upload was interrupted".into(),
            errors: vec![],
        })?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!("uploads are limited to {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A job of the tenant by name, created (private) when it does not exist yet, as builder-web does.
async fn job_for_upload(
    state: &AppState,
    tenant: &crate::auth::TenantScope,
    name: &str,
    platform: &str,
) -> Result<Uuid, ApiError> {
    crate::validate::job_name(name).map_err(|m| ApiError::field("job", m))?;
    crate::validate::platform(platform).map_err(|m| ApiError::field("platform", m))?;
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, name, platforms) VALUES ($1, $2, $3, ARRAY[$4]) ON CONFLICT (tenant_id, name) DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(tenant.tenant_id())
    .bind(name)
    .bind(platform)
    .execute(&state.db)
    .await?;
    Ok(sqlx::query_scalar("SELECT id FROM jobs WHERE tenant_id = $1 AND name = $2")
        .bind(tenant.tenant_id())
        .bind(name)
        .fetch_one(&state.db)
        .await?)
}

/// One finished build, already in memory, stored and made visible in one go.
struct WholeBuild {
    meta: petrel_wire::builds::OpenUpload,
    console: Vec<(i64, String)>,
    files: Vec<(String, Vec<u8>)>,
}

async fn store_whole_build(
    state: &AppState,
    caller: &crate::auth::Caller,
    tenant: &crate::auth::TenantScope,
    job_id: Uuid,
    build: WholeBuild,
) -> Result<Uuid, ApiError> {
    use sha2::Digest;
    let build_id = build.meta.build_id.unwrap_or_else(Uuid::new_v4);
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM builds WHERE id = $1) OR EXISTS (SELECT 1 FROM uploads WHERE build_id = $1)",
    )
    .bind(build_id)
    .fetch_one(&state.db)
    .await?;
    if exists {
        return Err(ApiError::conflict("build-exists", "a build with this UUID exists already"));
    }
    let upload_id = Uuid::new_v4();
    crate::builds::create_upload(
        state,
        upload_id,
        tenant,
        job_id,
        build_id,
        &build.meta,
        Some(caller.user_id),
    )
    .await?;
    for (path, data) in build.files {
        let sha = sha2::Sha256::digest(&data).to_vec();
        let size = data.len() as i64;
        crate::builds::store_blob(state, &sha, size, crate::builds::BlobSource::Bytes(data)).await?;
        sqlx::query(
            "INSERT INTO upload_artifacts (upload_id, path, sha256, size) VALUES ($1, $2, $3, $4)
             ON CONFLICT (upload_id, path) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size",
        )
        .bind(upload_id)
        .bind(&path)
        .bind(&sha)
        .bind(size)
        .execute(&state.db)
        .await?;
    }
    let numbers: Vec<i64> = (0..build.console.len() as i64).collect();
    let (at, texts): (Vec<i64>, Vec<String>) = build.console.into_iter().unzip();
    sqlx::query(
        "INSERT INTO upload_console (upload_id, number, at_ms, text) SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[])",
    )
    .bind(upload_id)
    .bind(&numbers)
    .bind(&at)
    .bind(&texts)
    .execute(&state.db)
    .await?;
    let inputs = crate::builds::RecordedInputs::read(state, upload_id).await;
    let mut tx = state.db.begin().await?;
    let result = match inputs {
        Ok(inputs) => {
            crate::builds::insert_build(&mut tx, tenant, job_id, build_id, upload_id, &build.meta, &inputs)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        drop(tx);
        // Nothing becomes visible: the upload is aborted and clean-up removes its blobs.
        sqlx::query("UPDATE uploads SET state = 'aborted' WHERE id = $1")
            .bind(upload_id)
            .execute(&state.db)
            .await?;
        sqlx::query("DELETE FROM upload_artifacts WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&state.db)
            .await?;
        return Err(e);
    }
    sqlx::query("UPDATE uploads SET state = 'finalized' WHERE id = $1")
        .bind(upload_id)
        .execute(&mut *tx)
        .await?;
    crate::audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &crate::audit::Actor::from(caller),
        "build.upload",
        Some(build_id.to_string()),
        serde_json::json!({"job_id": job_id, "platform": build.meta.platform, "via": "builder"}),
    )
    .await?;
    tx.commit().await?;
    crate::manifests::read_for_build(state, build_id).await;
    Ok(build_id)
}

/// `POST /upload`: builder's ASN.1 exec record, as builder-server sends it to builder-web.
async fn upload_exec(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    use petrel_inputs::exec::{Exec, ExecResult, validate_output_path};
    use petrel_wire::builds::{BuildResult, OpenUpload};
    let (caller, tenant) = uploader(&state, &req).await?;
    let bytes = read_body(&state, body).await?;
    let exec = Exec::from_der(&bytes).map_err(|e| ApiError::BadRequest {
        code: "malformed-exec",
        detail: format!("the body is not builder's ASN.1 exec record: {e}"),
        errors: vec![],
    })?;
    for output in &exec.outputs {
        validate_output_path(&output.path)
            .map_err(|e| ApiError::field(format!("outputs/{}", output.path.escape_debug()), e.to_string()))?;
    }
    let platform = exec.job.platform_or_default().to_string();
    let job_id = job_for_upload(&state, &tenant, &exec.job.name, &platform).await?;
    let result = match exec.result {
        ExecResult::Exited(code) => BuildResult::Exited { code },
        ExecResult::Signalled(signal) => BuildResult::Signalled { signal },
        ExecResult::Stopped(signal) => BuildResult::Stopped { signal },
        ExecResult::Message(message) => BuildResult::Message { message },
    };
    let meta = OpenUpload {
        platform,
        build_id: Some(Uuid::from_bytes(exec.uuid)),
        started_at: exec.started,
        finished_at: exec.finished.max(exec.started),
        result,
        script: Some(exec.job.script),
        worker: None,
        timed_out: false,
    };
    let console = exec.console.into_iter().map(|l| (l.delta_ns / 1_000_000, l.line)).collect();
    let files = exec.outputs.into_iter().map(|o| (o.path, o.data)).collect();
    store_whole_build(&state, &caller, &tenant, job_id, WholeBuild { meta, console, files }).await?;
    Ok(HttpResponse::Created().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryQuery {
    binary_name: Option<String>,
}

/// `POST /job/:job/platform/:platform/upload?binary_name=N`: a binary built elsewhere becomes a
/// successful build with one artifact `bin/N`.
async fn upload_binary(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    Query(q): Query<BinaryQuery>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (job, platform) = path.into_inner();
    let (caller, tenant) = uploader(&state, &req).await?;
    let name = q.binary_name.unwrap_or_else(|| format!("{job}.bin"));
    if name.contains('/') || crate::validate::artifact_path(&name).is_err() {
        return Err(ApiError::field("binary_name", "must be a plain file name"));
    }
    let bytes = read_body(&state, body).await?;
    let job_id = job_for_upload(&state, &tenant, &job, &platform).await?;
    let now = chrono::Utc::now();
    let meta = petrel_wire::builds::OpenUpload {
        platform,
        build_id: None,
        started_at: now,
        finished_at: now,
        result: petrel_wire::builds::BuildResult::Exited { code: 0 },
        script: Some("# manually built and uploaded".into()),
        worker: None,
        timed_out: false,
    };
    let build = WholeBuild { meta, console: Vec::new(), files: vec![(format!("bin/{name}"), bytes)] };
    let build_id = store_whole_build(&state, &caller, &tenant, job_id, build).await?;
    let qualified = qualified_name(&state, job_id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/job/{qualified}/build/{build_id}")))
        .finish())
}

/// `GET /compare/:left/:right`: JSON for `Accept: application/json` (as builder-web), else the
/// SPA's compare page.
async fn compare(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: MaybeCaller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (left, right) = path.into_inner();
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if !wants_json {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/builds/{left}/compare/{right}")))
            .finish());
    }
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let left = readable_build(&state.db, &scope, left).await?;
    let right = readable_build(&state.db, &scope, right).await?;
    Ok(HttpResponse::Ok().json(super::compare::comparison(&state, left.id, right.id).await?))
}
