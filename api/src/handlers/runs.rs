//! Asking for builds and following them: "run now", cancel, rebuild (with its verdicts), and
//! the live console as server-sent events.

use actix_web::{HttpResponse, get, post, web};
use petrel_wire::FieldError;
use petrel_wire::identity::Role;
use petrel_wire::workers::{QueuedBuild, RebuildVerdict, RunJob};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::builds::readable_build;
use super::jobs::writable_job;
use crate::audit::{self, Actor};
use crate::auth::Caller;
use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::events;
use crate::extract::{Json, Query};
use crate::queue;
use crate::server::AppState;

/// Queue a build of the job now, on all its platforms or some (operators). A platform that
/// has a build queued already gets no second one: that build is returned.
#[utoipa::path(
    tag = "builds",
    params(("job_id" = Uuid, Path, description = "The job's id")),
    request_body = RunJob,
    responses(
        (status = 202, description = "Queued", body = Vec<QueuedBuild>),
        (status = 409, description = "The job has no recipe", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/jobs/{job_id}/runs")]
pub async fn run_job(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(body): Json<RunJob>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, job) = writable_job(&state.db, &caller, path.into_inner(), Role::Operator).await?;
    if job.recipe.is_none() {
        return Err(ApiError::conflict(
            "no-recipe",
            "the job has no recipe; set one to let workers build it",
        ));
    }
    let platforms = match body.platforms {
        Some(platforms) => {
            let errors: Vec<FieldError> = platforms
                .iter()
                .enumerate()
                .filter(|(_, p)| !job.platforms.contains(p))
                .map(|(i, p)| {
                    FieldError::new(format!("platforms[{i}]"), format!("{p:?} is not a platform of the job"))
                })
                .collect();
            if !errors.is_empty() {
                return Err(ApiError::fields(errors));
            }
            platforms
        }
        None => job.platforms.clone(),
    };
    if platforms.is_empty() {
        return Err(ApiError::field("platforms", "the job has no platforms; add one first"));
    }
    let mut tx = state.db.begin().await?;
    let queued = queue::enqueue_job(&mut tx, job.id, &platforms, Some(caller.user_id)).await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "job.run",
        Some(job.id.to_string()),
        serde_json::json!({"platforms": platforms}),
    )
    .await?;
    tx.commit().await?;
    let queued: Vec<QueuedBuild> = queued
        .into_iter()
        .map(|q| QueuedBuild { platform: q.platform, build_id: q.build_id, new: q.new })
        .collect();
    Ok(HttpResponse::Accepted().json(queued))
}

/// A build the caller may change with at least `min` (operators cancel and rebuild).
async fn writable_build(state: &AppState, caller: &Caller, build_id: Uuid) -> Result<(Uuid, Uuid), ApiError> {
    let scope = ReadScope::of(Some(caller), &state.db).await?;
    let build = readable_build(&state.db, &scope, build_id).await?;
    let tenant = writable_job(&state.db, caller, build.job_id, Role::Operator).await?.0;
    Ok((build.id, tenant.tenant_id()))
}

/// Cancel a queued or running build (operators). A running build's worker learns it at its
/// next heartbeat and kills the build.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 409, description = "The build has finished", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/builds/{build_id}/cancel")]
pub async fn cancel_build(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (build_id, tenant_id) = writable_build(&state, &caller, path.into_inner()).await?;
    let mut tx = state.db.begin().await?;
    let cancelled = sqlx::query(
        "UPDATE builds SET status = 'cancelled', result_kind = 'message',
                result_message = format('cancelled by %s', $3::text), finished_at = now(), lease_expires_at = NULL
          WHERE id = $1 AND tenant_id = $2 AND status IN ('queued', 'running')",
    )
    .bind(build_id)
    .bind(tenant_id)
    .bind(&caller.username)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if cancelled == 0 {
        return Err(ApiError::conflict("build-finished", "the build has finished already"));
    }
    events::build_changed(&mut tx, build_id).await?;
    audit::record(
        &mut *tx,
        Some(tenant_id),
        &Actor::from(&caller),
        "build.cancel",
        Some(build_id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Queue a rebuild of a finished build (operators): the same recipe, limits and epoch on the
/// same platform. When it finishes, every artifact is compared by hash with the original and
/// the verdict is kept (see `GET /builds/{id}/rebuilds`).
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build to re-run")),
    responses(
        (status = 202, description = "The rebuild, queued", body = QueuedBuild),
        (status = 409, description = "The build is not finished or was not built from a recipe", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/builds/{build_id}/rebuild")]
pub async fn rebuild_build(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (build_id, tenant_id) = writable_build(&state, &caller, path.into_inner()).await?;
    let mut tx = state.db.begin().await?;
    let (platform, rebuildable): (String, bool) = sqlx::query_as(
        "SELECT platform, status IN ('succeeded', 'failed') AND recipe IS NOT NULL FROM builds
          WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(build_id)
    .bind(tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    if !rebuildable {
        return Err(ApiError::conflict(
            "not-rebuildable",
            "only finished builds that a worker ran from a recipe can be rebuilt",
        ));
    }
    let rebuild_id = queue::enqueue_rebuild(&mut tx, build_id, Some(caller.user_id))
        .await?
        .ok_or(ApiError::NotFound("build"))?;
    audit::record(
        &mut *tx,
        Some(tenant_id),
        &Actor::from(&caller),
        "build.rebuild",
        Some(build_id.to_string()),
        serde_json::json!({"rebuild": rebuild_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Accepted().json(QueuedBuild { platform, build_id: rebuild_id, new: true }))
}

/// The verdicts of the build's rebuilds, oldest first: reproducible, or which artifacts
/// differ with both hashes.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The original build's id")),
    responses((status = 200, description = "The verdicts", body = Vec<RebuildVerdict>)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/rebuilds")]
pub async fn list_rebuilds(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(crate::builds::verdicts_of_build(&state.db, build.id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Send lines after this number (a reconnecting client's last one); all lines when absent.
    /// The `Last-Event-ID` header does the same.
    pub after: Option<i64>,
    /// `false`: send the lines there are, then end (with `event: end`, data `"caught-up"` while
    /// the source goes on). Default `true`: follow until the source ends.
    pub follow: Option<bool>,
}

/// The `after` query parameter or the `Last-Event-ID` header of a reconnecting client.
pub(crate) fn resume_after(req: &actix_web::HttpRequest, after: Option<i64>) -> i64 {
    let last_event_id =
        req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    after.or(last_event_id).unwrap_or(-1)
}

/// Follow a build's console live, as server-sent events: `line` events (data: a ConsoleLine,
/// id: its number) as the worker sends them, then one `end` event (data: the final status)
/// when the build has finished. Comments keep idle connections open.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id"), StreamQuery),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = super::ServerSentEvent)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/console/stream")]
pub async fn stream_console(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
    Query(q): Query<StreamQuery>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, path.into_inner()).await?;
    let after = resume_after(&req, q.after);
    Ok(crate::console_stream::respond(
        &state,
        crate::console_stream::Source::Build(build.id),
        after,
        q.follow.unwrap_or(true),
    ))
}
