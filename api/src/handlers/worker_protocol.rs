//! What workers call: say hello, long-poll for a build, renew the lease while it runs, stream
//! its console. The result arrives through the staged upload protocol (`uploads`), which
//! accepts a worker's credential for the build it holds.

use std::time::Duration;

use actix_web::{HttpResponse, get, post, web};
use petrel_wire::FieldError;
use petrel_wire::builds::ConsoleChunk;
use petrel_wire::workers::{Claim, ClaimRequest, Lease, RebuildRequest, RebuildVerdict, Worker, WorkerHello};
use uuid::Uuid;

use crate::auth::worker::WorkerPrincipal;
use crate::error::ApiError;
use crate::events;
use crate::extract::Json;
use crate::queue;
use crate::server::AppState;
use crate::validate;

const MAX_WAIT_SECS: i32 = 60;
const DEFAULT_WAIT_SECS: i32 = 30;
const MAX_CONSOLE_LINE: usize = 64 * 1024;
const MAX_CONSOLE_LINES_PER_CHUNK: usize = 10_000;

fn claimant<'a>(worker: &'a WorkerPrincipal, state: &AppState) -> queue::Claimant<'a> {
    queue::Claimant {
        worker_id: worker.id,
        worker_name: &worker.name,
        tenant_id: worker.tenant_id,
        lease: state.config.worker_lease,
    }
}

/// Tell the API what this worker is: its platform, how many builds it runs at once, its
/// version. Answers the worker as the API sees it.
#[utoipa::path(
    tag = "worker protocol",
    request_body = WorkerHello,
    responses((status = 200, description = "The worker", body = Worker)),
    security(("worker" = []))
)]
#[post("/worker/hello")]
pub async fn hello(
    state: web::Data<AppState>,
    worker: WorkerPrincipal,
    Json(body): Json<WorkerHello>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Vec::new();
    if let Err(m) = validate::platform(&body.platform) {
        errors.push(FieldError::new("platform", m));
    }
    if !(1..=256).contains(&body.concurrency) {
        errors.push(FieldError::new("concurrency", "must be between 1 and 256"));
    }
    if validate::display_name(&body.version).is_err() {
        errors.push(FieldError::new("version", "must be 1 to 100 printable characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let row: (Option<Uuid>, chrono::DateTime<chrono::Utc>, i64) = sqlx::query_as(
        "UPDATE workers w SET platform = $2, concurrency = $3, version = $4, last_seen_at = now()
          WHERE w.id = $1
         RETURNING w.tenant_id, w.created_at,
                   (SELECT count(*) FROM builds b WHERE b.worker_id = w.id AND b.status = 'running')",
    )
    .bind(worker.id)
    .bind(&body.platform)
    .bind(body.concurrency)
    .bind(&body.version)
    .fetch_one(&state.db)
    .await?;
    Ok(HttpResponse::Ok().json(Worker {
        id: worker.id,
        name: worker.name,
        tenant_id: row.0,
        platform: Some(body.platform),
        concurrency: Some(body.concurrency),
        version: Some(body.version),
        last_seen_at: Some(chrono::Utc::now()),
        running: row.2,
        revoked: false,
        created_at: row.1,
    }))
}

/// Wait for a build of the platform and claim it. Answers as soon as one is queued (woken by
/// PostgreSQL notifications, on any replica), or 204 after `wait_secs`. Two workers never get
/// the same build.
#[utoipa::path(
    tag = "worker protocol",
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "A claimed build: run it, heartbeat, upload the result", body = Claim),
        (status = 204, description = "Nothing to do; ask again"),
    ),
    security(("worker" = []))
)]
#[post("/worker/claim")]
pub async fn claim(
    state: web::Data<AppState>,
    worker: WorkerPrincipal,
    Json(body): Json<ClaimRequest>,
) -> Result<HttpResponse, ApiError> {
    if let Err(m) = validate::platform(&body.platform) {
        return Err(ApiError::field("platform", m));
    }
    let wait = body.wait_secs.unwrap_or(DEFAULT_WAIT_SECS);
    if !(0..=MAX_WAIT_SECS).contains(&wait) {
        return Err(ApiError::field("wait_secs", format!("must be between 0 and {MAX_WAIT_SECS}")));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    let mut queue_changed = state.events.queue();
    loop {
        // Marked seen before looking, so a build queued while we look wakes the next wait.
        queue_changed.borrow_and_update();
        let mut tx = state.db.begin().await?;
        let claimed = queue::claim(&mut tx, &claimant(&worker, &state), &body.platform, None).await?;
        tx.commit().await?;
        if let Some(claim) = claimed {
            tracing::info!(build = %claim.build_id, worker = %worker.name, attempt = claim.attempt, "build claimed");
            return Ok(HttpResponse::Ok().json(claim));
        }
        tokio::select! {
            changed = queue_changed.changed() => {
                if changed.is_err() {
                    return Ok(HttpResponse::NoContent().finish());
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(HttpResponse::NoContent().finish()),
        }
    }
}

/// Renew the lease on a build this worker runs. `cancel: true` means stop and discard it: it
/// was cancelled, timed out, or handed to another worker after the lease lapsed.
#[utoipa::path(
    tag = "worker protocol",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses((status = 200, description = "The lease", body = Lease)),
    security(("worker" = []))
)]
#[post("/worker/builds/{build_id}/heartbeat")]
pub async fn heartbeat(
    state: web::Data<AppState>,
    worker: WorkerPrincipal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db.acquire().await?;
    let renewed = queue::renew(&mut conn, worker.id, path.into_inner(), state.config.worker_lease).await?;
    Ok(HttpResponse::Ok().json(Lease { cancel: renewed.is_none(), lease_expires_at: renewed }))
}

/// Append console lines of a build this worker runs; followers see them at once.
#[utoipa::path(
    tag = "worker protocol",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    request_body = ConsoleChunk,
    responses(
        (status = 204, description = "Appended"),
        (status = 404, description = "Not a build this worker holds: stop it", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("worker" = []))
)]
#[post("/worker/builds/{build_id}/console")]
pub async fn append_build_console(
    state: web::Data<AppState>,
    worker: WorkerPrincipal,
    path: web::Path<Uuid>,
    Json(body): Json<ConsoleChunk>,
) -> Result<HttpResponse, ApiError> {
    let build_id = path.into_inner();
    if body.lines.len() > MAX_CONSOLE_LINES_PER_CHUNK {
        return Err(ApiError::field("lines", format!("at most {MAX_CONSOLE_LINES_PER_CHUNK} lines at once")));
    }
    if let Some(i) = body.lines.iter().position(|l| l.text.len() > MAX_CONSOLE_LINE) {
        return Err(ApiError::field(format!("lines[{i}].text"), "at most 64 KiB per line"));
    }
    worker.held_build(&state.db, build_id).await?;
    let (at_ms, text): (Vec<i64>, Vec<String>) =
        body.lines.into_iter().map(|l| (l.at_ms, l.text.replace('\0', "\u{fffd}"))).unzip();
    let mut tx = state.db.begin().await?;
    // Serialises appends to one build, so line numbers stay dense and ordered.
    sqlx::query("SELECT 1 FROM builds WHERE id = $1 FOR UPDATE").bind(build_id).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO build_console (build_id, number, at_ms, text)
         SELECT $1, coalesce((SELECT max(number) FROM build_console WHERE build_id = $1), 0) + n, at_ms, text
           FROM unnest($2::bigint[], $3::text[]) WITH ORDINALITY AS l(at_ms, text, n)",
    )
    .bind(build_id)
    .bind(&at_ms)
    .bind(&text)
    .execute(&mut *tx)
    .await?;
    events::build_changed(&mut tx, build_id).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rebuild a finished build here and now (`petrel-worker rebuild`): queues the rebuild and
/// claims it for this worker in one step.
#[utoipa::path(
    tag = "worker protocol",
    request_body = RebuildRequest,
    responses((status = 200, description = "The claimed rebuild", body = Claim)),
    security(("worker" = []))
)]
#[post("/worker/rebuilds")]
pub async fn claim_rebuild(
    state: web::Data<AppState>,
    worker: WorkerPrincipal,
    Json(body): Json<RebuildRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = state.db.begin().await?;
    // Only builds of tenants this worker serves, and only finished ones with a recipe.
    let platform: Option<(String, bool)> = sqlx::query_as(
        "SELECT platform, status IN ('succeeded', 'failed') AND recipe IS NOT NULL FROM builds
          WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id IN (
                WITH RECURSIVE sub(id) AS (
                    SELECT id FROM tenants WHERE id = $2
                    UNION ALL SELECT t.id FROM tenants t JOIN sub ON t.parent_id = sub.id)
                SELECT id FROM sub))",
    )
    .bind(body.build_id)
    .bind(worker.tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (platform, rebuildable) = platform.ok_or(ApiError::NotFound("build"))?;
    if !rebuildable {
        return Err(ApiError::conflict(
            "not-rebuildable",
            "only finished builds that a worker ran from a recipe can be rebuilt",
        ));
    }
    let rebuild_id =
        queue::enqueue_rebuild(&mut tx, body.build_id, None).await?.ok_or(ApiError::NotFound("build"))?;
    let claimed = queue::claim(&mut tx, &claimant(&worker, &state), &platform, Some(rebuild_id))
        .await?
        .ok_or_else(|| ApiError::internal("the rebuild could not be claimed"))?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(claimed))
}

/// The verdict of a rebuild this worker ran (once its upload is finalized).
#[utoipa::path(
    tag = "worker protocol",
    params(("rebuild_id" = Uuid, Path, description = "The rebuild's build id")),
    responses((status = 200, description = "The verdict", body = RebuildVerdict)),
    security(("worker" = []))
)]
#[get("/worker/verdicts/{rebuild_id}")]
pub async fn get_verdict(
    state: web::Data<AppState>,
    worker: WorkerPrincipal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let verdict = crate::builds::verdict_of_rebuild(&state.db, path.into_inner(), Some(worker.id))
        .await?
        .ok_or(ApiError::NotFound("verdict"))?;
    Ok(HttpResponse::Ok().json(verdict))
}
