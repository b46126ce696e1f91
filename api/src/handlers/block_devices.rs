//! Tenants' block devices (albatross' `block`): created with a size on one agent, filled by an
//! upload, copied out by a download, deleted. A device that backs a deployment can be neither
//! deleted nor overwritten, and is copied out only while that deployment does not run.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use petrel_wire::Page;
use petrel_wire::deployments::{BlockDevice, CreateBlockDevice};
use petrel_wire::identity::Role;
use petrel_wire::page::PageQuery;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::{Caller, TenantScope};
use crate::deploy::{self, REACHABLE_SECS};
use crate::error::{ApiError, is_unique_violation};
use crate::events;
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;

const MIB: u64 = 1024 * 1024;
/// How long a download waits for the agent's copy of the device.
const EXPORT_WAIT: Duration = Duration::from_secs(120);

#[derive(sqlx::FromRow)]
struct BlockRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    size_mib: i32,
    agent_id: Option<Uuid>,
    attached_to: Option<Uuid>,
    upload_pending: bool,
    message: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Selects [`BlockRow`]s (`b`), to be followed by a `WHERE`.
const SELECT_BLOCKS: &str = "SELECT b.id, b.tenant_id, b.name, b.size_mib, b.agent_id,
        (SELECT db.deployment_id FROM deployment_blocks db WHERE db.block_device_id = b.id) AS attached_to,
        b.content_version > b.applied_version AS upload_pending, b.message, b.created_at, b.updated_at
   FROM block_devices b";

impl From<BlockRow> for BlockDevice {
    fn from(r: BlockRow) -> BlockDevice {
        BlockDevice {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            size_mib: r.size_mib,
            agent_id: r.agent_id,
            attached_to: r.attached_to,
            upload_pending: r.upload_pending,
            message: r.message,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A block device the caller may use with at least `min` in its tenant (404 otherwise).
async fn block_for(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    min: Role,
) -> Result<(TenantScope, BlockDevice), ApiError> {
    let tenant_id: Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM block_devices WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db)
        .await?;
    let tenant_id = tenant_id.ok_or(ApiError::NotFound("block device"))?;
    let scope = caller.tenant(&state.db, tenant_id, min).await.map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound("block device"),
        other => other,
    })?;
    let row: BlockRow = sqlx::query_as(&format!("{SELECT_BLOCKS} WHERE b.id = $1 AND b.tenant_id = $2"))
        .bind(id)
        .bind(scope.tenant_id())
        .fetch_one(&state.db)
        .await?;
    Ok((scope, row.into()))
}

/// The name of the deployment a block device backs, in the caller's transaction.
async fn attached_name(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<Option<(String, String)>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT d.name, d.state::text FROM deployment_blocks db JOIN deployments d ON d.id = db.deployment_id
          WHERE db.block_device_id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

fn attached(name: &str, what: &str) -> ApiError {
    ApiError::conflict(
        "block-device-attached",
        format!("the block device backs deployment {name:?}; destroy the deployment before {what}"),
    )
}

/// The tenant's block devices, by name (viewers).
#[utoipa::path(
    tag = "block devices",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), PageQuery),
    responses((status = 200, description = "A page of block devices", body = Page<BlockDevice>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/block-devices")]
pub async fn list_block_devices(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    let ks = keyset::<String>(&q)?;
    let rows: Vec<BlockRow> = sqlx::query_as(&format!(
        "{SELECT_BLOCKS} WHERE b.tenant_id = $1 AND ($2::text IS NULL OR b.name > $2) ORDER BY b.name LIMIT $3"
    ))
    .bind(tenant.tenant_id())
    .bind(ks.after.as_deref())
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let items: Vec<BlockDevice> = rows.into_iter().map(BlockDevice::from).collect();
    Ok(HttpResponse::Ok().json(page(items, ks.limit, |b: &BlockDevice| b.name.clone())))
}

/// Create a block device (operators): a zeroed file of `size_mib` on the pinned agent or the
/// one with the most free block storage, admitted atomically against the `block_mib` quotas
/// of the tenant and its ancestors.
#[utoipa::path(
    tag = "block devices",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    request_body = CreateBlockDevice,
    responses(
        (status = 201, description = "Created; its agent makes the file", body = BlockDevice),
        (status = 403, description = "Over quota: by how much", body = petrel_wire::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or no agent has the space", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/tenants/{tenant_id}/block-devices")]
pub async fn create_block_device(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(body): Json<CreateBlockDevice>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Operator).await?;
    let mut errors = Vec::new();
    if let Err(m) = crate::validate::label(&body.name) {
        errors.push(petrel_wire::FieldError::new("name", m));
    }
    if !(1..=1_048_576).contains(&body.size_mib) {
        errors.push(petrel_wire::FieldError::new("size_mib", "must be between 1 and 1048576 (whole MiB)"));
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let mut tx = state.db.begin().await?;
    deploy::admit_block(&mut tx, tenant.tenant_id(), i64::from(body.size_mib)).await?;
    let agent_id = deploy::place_block(&mut tx, body.agent_id, i64::from(body.size_mib)).await?;
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO block_devices (id, tenant_id, name, size_mib, agent_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(tenant.tenant_id())
    .bind(&body.name)
    .bind(body.size_mib)
    .bind(agent_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "block_devices_tenant_id_name_key") {
            ApiError::conflict(
                "block-device-name-taken",
                format!("the tenant has a block device named {:?}", body.name),
            )
        } else {
            e.into()
        }
    })?;
    events::agent_assignments_changed(&mut tx, agent_id).await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "block_device.create",
        Some(id.to_string()),
        serde_json::json!({"name": body.name, "size_mib": body.size_mib, "agent": agent_id}),
    )
    .await?;
    tx.commit().await?;
    let (_, created) = block_for(&state, &caller, id, Role::Viewer).await?;
    Ok(HttpResponse::Created().json(created))
}

/// One block device (viewers of its tenant).
#[utoipa::path(
    tag = "block devices",
    params(("block_device_id" = Uuid, Path, description = "The block device's id")),
    responses((status = 200, description = "The block device", body = BlockDevice)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/block-devices/{block_device_id}")]
pub async fn get_block_device(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(block_for(&state, &caller, path.into_inner(), Role::Viewer).await?.1))
}

/// Delete a block device and its data (operators); refused while it backs a deployment.
#[utoipa::path(
    tag = "block devices",
    params(("block_device_id" = Uuid, Path, description = "The block device's id")),
    responses(
        (status = 204, description = "Deleted; its agent removes the file"),
        (status = 409, description = "It backs a deployment", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/block-devices/{block_device_id}")]
pub async fn delete_block_device(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device) = block_for(&state, &caller, path.into_inner(), Role::Operator).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query("SELECT 1 FROM block_devices WHERE id = $1 FOR UPDATE")
        .bind(device.id)
        .execute(&mut *tx)
        .await?;
    if let Some((name, _)) = attached_name(&mut tx, device.id).await? {
        return Err(attached(&name, "deleting it"));
    }
    sqlx::query("DELETE FROM block_devices WHERE id = $1 AND tenant_id = $2")
        .bind(device.id)
        .bind(tenant.tenant_id())
        .execute(&mut *tx)
        .await?;
    if let Some(agent_id) = device.agent_id {
        events::agent_assignments_changed(&mut tx, agent_id).await?;
    }
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "block_device.delete",
        Some(device.id.to_string()),
        serde_json::json!({"name": device.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace a block device's contents (operators): the body (at most its size; the rest is
/// zeroed) is stored, then written into the device by its agent; `upload_pending` is true
/// until then. Send its SHA-256 (hex) in `X-Petrel-Sha256`. Refused while the device backs a
/// deployment.
#[utoipa::path(
    tag = "block devices",
    params(
        ("block_device_id" = Uuid, Path, description = "The block device's id"),
        ("x-petrel-sha256" = String, Header, description = "Hex SHA-256 of the body"),
    ),
    request_body(content = inline(super::Binary), content_type = "application/octet-stream"),
    responses(
        (status = 202, description = "Stored; its agent writes it into the device", body = BlockDevice),
        (status = 409, description = "It backs a deployment, or its agent is gone", body = petrel_wire::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the device", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[put("/block-devices/{block_device_id}/content")]
pub async fn upload_block_device(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<Uuid>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (tenant, device) = block_for(&state, &caller, path.into_inner(), Role::Operator).await?;
    let expected = super::uploads::declared_sha256(&req)?;
    let capacity = device.size_mib as u64 * MIB;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the block device holds {} MiB ({capacity} bytes)",
            device.size_mib
        ))
    };
    if super::uploads::declared_length(&req).is_some_and(|n| n > capacity) {
        return Err(too_large());
    }
    let Some(agent_id) = device.agent_id else {
        return Err(ApiError::conflict(
            "block-device-lost",
            "the agent that kept the block device was deleted",
        ));
    };
    {
        let mut conn = state.db.acquire().await?;
        if let Some((name, _)) = attached_name(&mut conn, device.id).await? {
            return Err(attached(&name, "overwriting it"));
        }
    }
    let (staged, sha, written) =
        super::uploads::receive(&state, &req, &mut body, capacity, &expected, too_large).await?;
    crate::builds::store_blob(&state, &sha, written as i64, crate::builds::BlobSource::File(&staged.0))
        .await?;
    let mut tx = state.db.begin().await?;
    sqlx::query("SELECT 1 FROM block_devices WHERE id = $1 FOR UPDATE")
        .bind(device.id)
        .execute(&mut *tx)
        .await?;
    // Attached meanwhile: the deployment may already be writing to it.
    if let Some((name, _)) = attached_name(&mut tx, device.id).await? {
        return Err(attached(&name, "overwriting it"));
    }
    sqlx::query(
        "UPDATE block_devices SET content_sha256 = $2, content_version = content_version + 1, message = NULL,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(device.id)
    .bind(&sha[..])
    .execute(&mut *tx)
    .await?;
    events::agent_assignments_changed(&mut tx, agent_id).await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "block_device.upload",
        Some(device.id.to_string()),
        serde_json::json!({"name": device.name, "sha256": hex::encode(sha), "size": written}),
    )
    .await?;
    tx.commit().await?;
    drop(staged);
    let (_, updated) = block_for(&state, &caller, device.id, Role::Viewer).await?;
    Ok(HttpResponse::Accepted().json(updated))
}

/// The latest copy of a block device its agent sent (or failed to).
#[derive(sqlx::FromRow)]
struct ExportRow {
    version: i64,
    sha256: Option<Vec<u8>>,
    size: Option<i64>,
    message: Option<String>,
}

/// Download a block device's contents (viewers): its agent copies the device and the copy is
/// streamed (with `X-Petrel-Sha256`). Refused while the deployment it backs runs (a copy of a
/// device in use would be torn), while an upload is pending, or when its agent is unreachable.
#[utoipa::path(
    tag = "block devices",
    params(("block_device_id" = Uuid, Path, description = "The block device's id")),
    responses(
        (status = 200, description = "The device's bytes", content_type = "application/octet-stream", body = inline(super::Binary)),
        (status = 409, description = "In use, upload pending, agent unreachable or slow", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[get("/block-devices/{block_device_id}/content")]
pub async fn download_block_device(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (_, device) = block_for(&state, &caller, path.into_inner(), Role::Viewer).await?;
    // Subscribed before asking: the agent's answer cannot slip by.
    let mut changes = state.events.builds();
    let mut tx = state.db.begin().await?;
    let (reachable, pending): (bool, bool) = sqlx::query_as(
        "SELECT coalesce((SELECT a.last_seen_at > now() - make_interval(secs => $2) AND a.revoked_at IS NULL
                            FROM agents a WHERE a.id = b.agent_id), false),
                b.content_version > b.applied_version
           FROM block_devices b WHERE b.id = $1 FOR UPDATE",
    )
    .bind(device.id)
    .bind(REACHABLE_SECS)
    .fetch_one(&mut *tx)
    .await?;
    if let Some((name, state)) = attached_name(&mut tx, device.id).await?
        && matches!(state.as_str(), "pending" | "running" | "restarting")
    {
        return Err(ApiError::conflict(
            "block-device-in-use",
            format!(
                "deployment {name:?} is {state} with this block device; download it once the unikernel ended"
            ),
        ));
    }
    if pending {
        return Err(ApiError::conflict(
            "upload-pending",
            "an upload is still being written into the block device",
        ));
    }
    let Some(agent_id) = device.agent_id.filter(|_| reachable) else {
        return Err(ApiError::conflict(
            "agent-unreachable",
            "the agent that keeps the block device is unreachable",
        ));
    };
    let wanted: i64 = sqlx::query_scalar(
        "UPDATE block_devices SET export_requested = export_requested + 1 WHERE id = $1 RETURNING export_requested",
    )
    .bind(device.id)
    .fetch_one(&mut *tx)
    .await?;
    events::agent_assignments_changed(&mut tx, agent_id).await?;
    tx.commit().await?;

    let deadline = tokio::time::Instant::now() + EXPORT_WAIT;
    loop {
        let copy: Option<ExportRow> = sqlx::query_as(
            "SELECT b.export_version AS version, b.export_sha256 AS sha256, bl.size, b.message
               FROM block_devices b LEFT JOIN blobs bl ON bl.sha256 = b.export_sha256 AND bl.stored
              WHERE b.id = $1",
        )
        .bind(device.id)
        .fetch_optional(&state.db)
        .await?;
        let Some(ExportRow { version, sha256, size, message }) = copy else {
            return Err(ApiError::NotFound("block device"));
        };
        if version >= wanted {
            return match (sha256, size) {
                (Some(sha), Some(size)) => super::blob_response(&state, &sha, size).await,
                _ => Err(ApiError::conflict(
                    "export-failed",
                    format!("the agent could not copy the block device: {}", message.unwrap_or_default()),
                )),
            };
        }
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(id) if id == device.id => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return Err(ApiError::Unavailable),
                },
                _ = tokio::time::sleep_until(deadline) => return Err(ApiError::conflict(
                    "agent-unresponsive",
                    format!("the agent did not send a copy within {} s; try again", EXPORT_WAIT.as_secs()),
                )),
            }
        }
    }
}
