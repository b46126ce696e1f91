//! What KVM agents call: heartbeat (with inventory), long-poll for assignments, fetch images,
//! report state changes and ship console lines of the deployments assigned to them.

use std::time::Duration;

use actix_web::{HttpResponse, get, post, put, web};
use petrel_wire::deployments::{
    AgentConsole, AgentHeartbeat, Assignments, AssignmentsRequest, BlockReport, DeploymentState,
    DeploymentStats, StateReport,
};
use sqlx::types::Json as DbJson;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::agent::AgentPrincipal;
use crate::error::ApiError;
use crate::events;
use crate::extract::Json;
use crate::server::AppState;

const MAX_WAIT_SECS: i32 = 60;
/// albatross keeps 1,024 lines per unikernel; so does Petrel, also after it stopped.
pub const CONSOLE_LINES: i64 = 1024;
const MAX_LINE: usize = 4096;

/// I am alive; here is my inventory when it changed.
#[utoipa::path(
    tag = "agent protocol",
    request_body = AgentHeartbeat,
    responses((status = 204, description = "Noted")),
    security(("agent" = []))
)]
#[post("/agent/heartbeat")]
pub async fn agent_heartbeat(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    Json(body): Json<AgentHeartbeat>,
) -> Result<HttpResponse, ApiError> {
    if let Some(inventory) = body.inventory {
        sqlx::query("UPDATE agents SET inventory = $2 WHERE id = $1")
            .bind(agent.id)
            .bind(DbJson(&inventory))
            .execute(&state.db)
            .await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Wait for a newer generation of this agent's assignments than `generation` and answer it
/// (at once when there is one; 204 after `wait_secs` otherwise). Woken by PostgreSQL
/// notifications from any replica.
#[utoipa::path(
    tag = "agent protocol",
    request_body = AssignmentsRequest,
    responses(
        (status = 200, description = "What to run now", body = Assignments),
        (status = 204, description = "Nothing changed"),
    ),
    security(("agent" = []))
)]
#[post("/agent/assignments")]
pub async fn assignments(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    Json(body): Json<AssignmentsRequest>,
) -> Result<HttpResponse, ApiError> {
    let wait = body.wait_secs.unwrap_or(30);
    if !(0..=MAX_WAIT_SECS).contains(&wait) {
        return Err(ApiError::field("wait_secs", format!("must be between 0 and {MAX_WAIT_SECS}")));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    let mut changes = state.events.agents();
    loop {
        let mut conn = state.db.acquire().await?;
        let (generation, deployments, block_devices) =
            crate::deploy::assignments(&mut conn, agent.id).await?;
        drop(conn);
        if generation != body.generation {
            return Ok(HttpResponse::Ok().json(Assignments { generation, deployments, block_devices }));
        }
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(id) if id == agent.id || id.is_nil() => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return Ok(HttpResponse::NoContent().finish()),
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(HttpResponse::NoContent().finish()),
            }
        }
    }
}

/// The image of a deployment assigned to this agent, by SHA-256 (verify it).
#[utoipa::path(
    tag = "agent protocol",
    params(("sha256" = String, Path, description = "Hex SHA-256 of the image")),
    responses((status = 200, description = "The image", content_type = "application/octet-stream", body = inline(super::Binary))),
    security(("agent" = []))
)]
#[get("/agent/images/{sha256}")]
pub async fn agent_image(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sha = super::builds::parse_sha256("sha256", &path.into_inner())?;
    // Only images this agent must run: other tenants' artifacts stay out of its reach.
    let size: Option<i64> = sqlx::query_scalar(
        "SELECT bl.size FROM blobs bl
          WHERE bl.sha256 = $1 AND bl.stored
            AND EXISTS (SELECT 1 FROM deployments d WHERE d.agent_id = $2 AND d.image_sha256 = $1)",
    )
    .bind(&sha)
    .bind(agent.id)
    .fetch_optional(&state.db)
    .await?;
    let size = size.ok_or(ApiError::NotFound("image"))?;
    super::blob_response(&state, &sha, size).await
}

/// The id of a deployment assigned to this agent, locked for the caller's transaction.
async fn assigned(conn: &mut sqlx::PgConnection, agent: &AgentPrincipal, id: Uuid) -> Result<i64, ApiError> {
    let revision: Option<i64> = sqlx::query_scalar(
        "SELECT revision FROM deployments WHERE id = $1 AND agent_id = $2 AND state <> 'stopped' FOR UPDATE",
    )
    .bind(id)
    .bind(agent.id)
    .fetch_optional(conn)
    .await?;
    revision.ok_or(ApiError::NotFound("deployment"))
}

/// Report a deployment's new state (with the exit code when it ended). Reports about an older
/// revision are ignored; 404 means the deployment is no longer assigned here: stop it.
#[utoipa::path(
    tag = "agent protocol",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    request_body = StateReport,
    responses((status = 204, description = "Recorded")),
    security(("agent" = []))
)]
#[post("/agent/deployments/{deployment_id}/state")]
pub async fn report_state(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    path: web::Path<Uuid>,
    Json(body): Json<StateReport>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if matches!(body.state, DeploymentState::Stopped | DeploymentState::Unknown | DeploymentState::Pending) {
        return Err(ApiError::field("state", "agents report running, restarting, exited or failed"));
    }
    if body.message.as_ref().is_some_and(|m| m.len() > 4096) {
        return Err(ApiError::field("message", "at most 4096 bytes"));
    }
    let mut tx = state.db.begin().await?;
    let revision = assigned(&mut tx, &agent, id).await?;
    if body.revision == revision {
        let state_name = body.state.as_str();
        sqlx::query(
            "UPDATE deployments SET state = $2::deployment_state, exit_code = $3, message = $4, updated_at = now(),
                    restarts = restarts + CASE WHEN $2 = 'restarting' THEN 1 ELSE 0 END
              WHERE id = $1",
        )
        .bind(id)
        .bind(state_name)
        .bind(body.exit_code)
        .bind(&body.message)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO deployment_events (deployment_id, state, exit_code, message) VALUES ($1, $2::deployment_state, $3, $4)",
        )
        .bind(id)
        .bind(state_name)
        .bind(body.exit_code)
        .bind(&body.message)
        .execute(&mut *tx)
        .await?;
        events::build_changed(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ship console lines of a deployment (the last 1,024 are kept).
#[utoipa::path(
    tag = "agent protocol",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    request_body = AgentConsole,
    responses((status = 204, description = "Appended")),
    security(("agent" = []))
)]
#[post("/agent/deployments/{deployment_id}/console")]
pub async fn ship_console(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    path: web::Path<Uuid>,
    Json(body): Json<AgentConsole>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if body.lines.len() > CONSOLE_LINES as usize {
        return Err(ApiError::field("lines", format!("at most {CONSOLE_LINES} lines at once")));
    }
    if let Some(i) = body.lines.iter().position(|l| l.text.len() > MAX_LINE) {
        return Err(ApiError::field(format!("lines[{i}].text"), format!("at most {MAX_LINE} bytes")));
    }
    let texts: Vec<String> = body.lines.iter().map(|l| l.text.replace('\0', "\u{fffd}")).collect();
    let mut tx = state.db.begin().await?;
    assigned(&mut tx, &agent, id).await?;
    sqlx::query(
        "INSERT INTO deployment_console (deployment_id, number, at, text)
         SELECT $1, coalesce((SELECT max(number) FROM deployment_console WHERE deployment_id = $1), 0) + n, now(), text
           FROM unnest($2::text[]) WITH ORDINALITY AS l(text, n)",
    )
    .bind(id)
    .bind(&texts)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM deployment_console WHERE deployment_id = $1
            AND number <= (SELECT max(number) FROM deployment_console WHERE deployment_id = $1) - $2",
    )
    .bind(id)
    .bind(CONSOLE_LINES)
    .execute(&mut *tx)
    .await?;
    events::build_changed(&mut tx, id).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Report a running deployment's stats sample (every 10 seconds); the last hour is kept.
#[utoipa::path(
    tag = "agent protocol",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    request_body = DeploymentStats,
    responses((status = 204, description = "Recorded")),
    security(("agent" = []))
)]
#[post("/agent/deployments/{deployment_id}/stats")]
pub async fn report_stats(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    path: web::Path<Uuid>,
    Json(body): Json<DeploymentStats>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if body.nets.len() > 64 || body.nets.iter().any(|n| n.device.len() > 64) {
        return Err(ApiError::field("nets", "at most 64 devices with names of at most 64 bytes"));
    }
    let mut tx = state.db.begin().await?;
    assigned(&mut tx, &agent, id).await?;
    sqlx::query(
        "INSERT INTO deployment_stats (deployment_id, at, sample) VALUES ($1, $2, $3)
         ON CONFLICT (deployment_id, at) DO UPDATE SET sample = EXCLUDED.sample",
    )
    .bind(id)
    .bind(body.at)
    .bind(sqlx::types::Json(&body))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM deployment_stats WHERE deployment_id = $1 AND at < (
             SELECT at FROM deployment_stats WHERE deployment_id = $1 ORDER BY at DESC OFFSET $2 LIMIT 1)",
    )
    .bind(id)
    .bind(super::deployments::STATS_KEPT - 1)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    crate::otel::unikernel_stats(id, &agent.name, &body);
    Ok(HttpResponse::NoContent().finish())
}

/// A block device this agent keeps, locked for the caller's transaction: its size in MiB.
async fn kept_block(
    conn: &mut sqlx::PgConnection,
    agent: &AgentPrincipal,
    id: Uuid,
) -> Result<i32, ApiError> {
    let size: Option<i32> =
        sqlx::query_scalar("SELECT size_mib FROM block_devices WHERE id = $1 AND agent_id = $2 FOR UPDATE")
            .bind(id)
            .bind(agent.id)
            .fetch_optional(conn)
            .await?;
    size.ok_or(ApiError::NotFound("block device"))
}

/// The pending upload of a block device this agent keeps (write it in, then report it).
#[utoipa::path(
    tag = "agent protocol",
    params(("block_device_id" = Uuid, Path, description = "The block device's id")),
    responses((status = 200, description = "The upload; `X-Petrel-Sha256` names it", content_type = "application/octet-stream", body = inline(super::Binary))),
    security(("agent" = []))
)]
#[get("/agent/block-devices/{block_device_id}/content")]
pub async fn agent_block_content(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let upload: Option<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT bl.sha256, bl.size FROM block_devices b JOIN blobs bl ON bl.sha256 = b.content_sha256
          WHERE b.id = $1 AND b.agent_id = $2 AND bl.stored",
    )
    .bind(path.into_inner())
    .bind(agent.id)
    .fetch_optional(&state.db)
    .await?;
    let (sha, size) = upload.ok_or(ApiError::NotFound("upload"))?;
    super::blob_response(&state, &sha, size).await
}

/// What became of a block device's upload or copy on this agent.
#[utoipa::path(
    tag = "agent protocol",
    params(("block_device_id" = Uuid, Path, description = "The block device's id")),
    request_body = BlockReport,
    responses((status = 204, description = "Recorded")),
    security(("agent" = []))
)]
#[post("/agent/block-devices/{block_device_id}/report")]
pub async fn report_block(
    state: web::Data<AppState>,
    agent: AgentPrincipal,
    path: web::Path<Uuid>,
    Json(body): Json<BlockReport>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if body.message.as_ref().is_some_and(|m| m.len() > 4096) {
        return Err(ApiError::field("message", "at most 4096 bytes"));
    }
    let mut tx = state.db.begin().await?;
    kept_block(&mut tx, &agent, id).await?;
    let written =
        body.applied_version.map(|v| (v, None)).or(body.failed_version.map(|v| (v, body.message.clone())));
    if let Some((version, message)) = written {
        // The upload is no longer needed once written (or found unusable): the blob can go.
        sqlx::query(
            "UPDATE block_devices SET applied_version = $2, message = $3, updated_at = now(),
                    content_sha256 = CASE WHEN $2 = content_version THEN NULL ELSE content_sha256 END
              WHERE id = $1 AND $2 > applied_version AND $2 <= content_version",
        )
        .bind(id)
        .bind(version)
        .bind(message)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(version) = body.failed_export {
        sqlx::query(
            "UPDATE block_devices SET export_version = $2, export_sha256 = NULL, message = $3, updated_at = now()
              WHERE id = $1 AND $2 > export_version AND $2 <= export_requested",
        )
        .bind(id)
        .bind(version)
        .bind(&body.message)
        .execute(&mut *tx)
        .await?;
    }
    events::agent_assignments_changed(&mut tx, agent.id).await?;
    // Downloads waiting for the copy learn of it.
    events::build_changed(&mut tx, id).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A copy of a block device this agent keeps, asked for by a download (`number` is the
/// assignment's `export_requested`). Send `X-Petrel-Sha256`.
#[utoipa::path(
    tag = "agent protocol",
    params(
        ("block_device_id" = Uuid, Path, description = "The block device's id"),
        ("number" = i64, Path, description = "The `export_requested` this answers"),
        ("x-petrel-sha256" = String, Header, description = "Hex SHA-256 of the body"),
    ),
    request_body(content = inline(super::Binary), content_type = "application/octet-stream"),
    responses((status = 204, description = "Stored")),
    security(("agent" = []))
)]
#[put("/agent/block-devices/{block_device_id}/export/{number}")]
pub async fn export_block(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    agent: AgentPrincipal,
    path: web::Path<(Uuid, i64)>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (id, number) = path.into_inner();
    let expected = super::uploads::declared_sha256(&req)?;
    let size_mib = {
        let mut conn = state.db.acquire().await?;
        kept_block(&mut conn, &agent, id).await?
    };
    let capacity = size_mib as u64 * 1024 * 1024;
    let (staged, sha, written) =
        super::uploads::receive(&state, &req, &mut body, capacity, &expected, || {
            ApiError::PayloadTooLarge(format!("the block device holds {capacity} bytes"))
        })
        .await?;
    crate::builds::store_blob(&state, &sha, written as i64, crate::builds::BlobSource::File(&staged.0))
        .await?;
    let mut tx = state.db.begin().await?;
    kept_block(&mut tx, &agent, id).await?;
    sqlx::query(
        "UPDATE block_devices SET export_version = $2, export_sha256 = $3, updated_at = now()
          WHERE id = $1 AND $2 > export_version AND $2 <= export_requested",
    )
    .bind(id)
    .bind(number)
    .bind(&sha[..])
    .execute(&mut *tx)
    .await?;
    events::agent_assignments_changed(&mut tx, agent.id).await?;
    events::build_changed(&mut tx, id).await?;
    tx.commit().await?;
    drop(staged);
    Ok(HttpResponse::NoContent().finish())
}
