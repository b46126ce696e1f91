//! Deployments of unikernels on KVM agents: create (quota admission and placement), list,
//! show, restart, destroy, state history, and the console (last lines, and live).

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use petrel_wire::builds::ConsoleLine;
use petrel_wire::deployments::{
    AvailableUpdate, BlockAttachment, CreateDeployment, Deployment, DeploymentEvent, DeploymentState,
    DeploymentStats, ImageManifest, NetAttachment, RestartDeployment, RestartPolicy, StatsHistory,
    UpdateDeployment,
};
use petrel_wire::identity::Role;
use petrel_wire::page::PageQuery;
use petrel_wire::{FieldError, Page};
use serde::Deserialize;
use sqlx::types::Json as DbJson;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::{Caller, TenantScope};
use crate::deploy::{self, REACHABLE_SECS};
use crate::error::{ApiError, is_unique_violation};
use crate::events;
use crate::extract::{Json, JsonOrEmpty, Query};
use crate::manifests::{self, Devices};
use crate::pagination::{keyset, page};
use crate::server::AppState;

#[derive(sqlx::FromRow)]
struct DeploymentRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    image_sha256: Vec<u8>,
    build_id: Option<Uuid>,
    memory_mib: i32,
    cpus: Vec<i32>,
    args: Vec<String>,
    nets: DbJson<Vec<NetAttachment>>,
    blocks: DbJson<Vec<BlockAttachment>>,
    restart: DbJson<RestartPolicy>,
    startup_priority: i32,
    agent_id: Option<Uuid>,
    state: String,
    exit_code: Option<i32>,
    message: Option<String>,
    restarts: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    previous_image_sha256: Option<Vec<u8>>,
    update_build_id: Option<Uuid>,
    update_image: Option<Vec<u8>>,
    update_finished_at: Option<DateTime<Utc>>,
}

/// Selects [`DeploymentRow`]s (`d`), to be followed by a `WHERE`: a deployment whose agent
/// stopped heartbeating is `unknown`; the available update is the newest successful build of
/// the image's job and platform, finished later, with another main binary whose manifest
/// declares the same devices.
fn select_deployments() -> String {
    format!(
        "SELECT d.id, d.tenant_id, d.name, d.image_sha256, d.build_id, d.memory_mib, d.cpus, d.args, d.nets, d.restart,
         (SELECT coalesce(jsonb_agg(jsonb_build_object('device', db.device, 'block_device', b.name,
                                                       'sector_size', db.sector_size) ORDER BY db.device), '[]')
            FROM deployment_blocks db JOIN block_devices b ON b.id = db.block_device_id
           WHERE db.deployment_id = d.id) AS blocks,
         d.startup_priority, d.agent_id,
         CASE WHEN d.state IN ('running', 'restarting', 'pending') AND NOT coalesce(
                  (SELECT a.last_seen_at > now() - make_interval(secs => {REACHABLE_SECS}) AND a.revoked_at IS NULL
                     FROM agents a WHERE a.id = d.agent_id), false)
              THEN 'unknown' ELSE d.state::text END AS state,
         d.exit_code, d.message, d.restarts, d.created_at, d.updated_at, d.previous_image_sha256,
         u.id AS update_build_id, u.sha256 AS update_image, u.finished_at AS update_finished_at
    FROM deployments d
    LEFT JOIN LATERAL (
         SELECT nb.id, a.sha256, nb.finished_at
           FROM builds cb
           JOIN builds nb ON nb.job_id = cb.job_id AND nb.platform = cb.platform AND nb.status = 'succeeded'
                         AND nb.finished_at > cb.finished_at
           JOIN build_artifacts a ON a.build_id = nb.id AND a.path = nb.main_binary
          WHERE cb.id = d.build_id AND a.sha256 <> d.image_sha256
            -- Only an image that declares the devices the deployment attaches (when known).
            AND NOT EXISTS (
                SELECT 1 FROM image_manifests m
                 WHERE m.sha256 = a.sha256 AND m.solo5
                   AND (m.nets <> (SELECT coalesce(array_agg(x->>'device' ORDER BY x->>'device' COLLATE \"C\"), '{{}}')
                                     FROM jsonb_array_elements(d.nets) x)
                        OR m.blocks <> (SELECT coalesce(array_agg(db.device ORDER BY db.device COLLATE \"C\"), '{{}}')
                                          FROM deployment_blocks db WHERE db.deployment_id = d.id)))
          ORDER BY nb.finished_at DESC LIMIT 1) u ON true"
    )
}

fn state_from_db(s: &str) -> DeploymentState {
    match s {
        "pending" => DeploymentState::Pending,
        "running" => DeploymentState::Running,
        "restarting" => DeploymentState::Restarting,
        "exited" => DeploymentState::Exited,
        "failed" => DeploymentState::Failed,
        "stopped" => DeploymentState::Stopped,
        _ => DeploymentState::Unknown,
    }
}

impl From<DeploymentRow> for Deployment {
    fn from(r: DeploymentRow) -> Deployment {
        Deployment {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            image_sha256: hex::encode(r.image_sha256),
            build_id: r.build_id,
            memory_mib: r.memory_mib,
            cpus: r.cpus,
            args: r.args,
            nets: r.nets.0,
            blocks: r.blocks.0,
            restart: r.restart.0,
            startup_priority: r.startup_priority,
            agent_id: r.agent_id,
            state: state_from_db(&r.state),
            exit_code: r.exit_code,
            message: r.message,
            restarts: r.restarts,
            created_at: r.created_at,
            updated_at: r.updated_at,
            previous_image_sha256: r.previous_image_sha256.map(hex::encode),
            update_available: match (r.update_build_id, r.update_image) {
                (Some(build_id), Some(image)) => Some(AvailableUpdate {
                    build_id,
                    image_sha256: hex::encode(image),
                    finished_at: r.update_finished_at,
                    compare: format!(
                        "/api/v1/compare/{}/{build_id}",
                        r.build_id.expect("an update is found through the current build")
                    ),
                }),
                _ => None,
            },
        }
    }
}

/// A deployment the caller may see with at least `min` in its tenant (404 otherwise).
async fn deployment_for(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    min: Role,
) -> Result<(TenantScope, Deployment), ApiError> {
    let tenant_id: Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db)
        .await?;
    let tenant_id = tenant_id.ok_or(ApiError::NotFound("deployment"))?;
    let scope = caller.tenant(&state.db, tenant_id, min).await.map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::NotFound("deployment"),
        other => other,
    })?;
    let row: DeploymentRow =
        sqlx::query_as(&format!("{} WHERE d.id = $1 AND d.tenant_id = $2", select_deployments()))
            .bind(id)
            .bind(scope.tenant_id())
            .fetch_one(&state.db)
            .await?;
    Ok((scope, row.into()))
}

fn memory_error(memory_mib: i32) -> Option<FieldError> {
    (!(1..=1_048_576).contains(&memory_mib))
        .then(|| FieldError::new("memory_mib", "must be between 1 and 1048576"))
}

fn args_error(args: &[String]) -> Option<FieldError> {
    (args.len() > 256 || args.iter().any(|a| a.len() > 4096 || a.contains('\0')))
        .then(|| FieldError::new("args", "at most 256 arguments of at most 4096 bytes, without NUL"))
}

fn validate(body: &CreateDeployment) -> Result<Vec<u8>, ApiError> {
    let mut errors = Vec::new();
    if let Err(m) = crate::validate::label(&body.name) {
        errors.push(FieldError::new("name", m));
    }
    let sha = super::builds::parse_sha256("image_sha256", &body.image_sha256);
    errors.extend(memory_error(body.memory_mib));
    if body.cpus.iter().any(|c| !(0..4096).contains(c)) || body.cpus.len() > 256 {
        errors.push(FieldError::new("cpus", "CPU ids are 0 to 4095, at most 256 of them"));
    }
    errors.extend(args_error(&body.args));
    let mut devices = std::collections::BTreeSet::new();
    for (i, net) in body.nets.iter().enumerate() {
        if crate::validate::platform(&net.device).is_err() || !devices.insert(&net.device) {
            errors.push(FieldError::new(format!("nets[{i}].device"), "a distinct manifest device name"));
        }
        if crate::validate::platform(&net.bridge).is_err() || net.bridge.len() > 15 {
            errors.push(FieldError::new(
                format!("nets[{i}].bridge"),
                "an interface name of at most 15 characters",
            ));
        }
        let mac_ok = net.mac.as_ref().is_none_or(|m| {
            m.len() == 17 && m.split(':').all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
        });
        if !mac_ok {
            errors.push(FieldError::new(format!("nets[{i}].mac"), "must be xx:xx:xx:xx:xx:xx"));
        }
    }
    for (i, block) in body.blocks.iter().enumerate() {
        if crate::validate::platform(&block.device).is_err() || !devices.insert(&block.device) {
            errors.push(FieldError::new(format!("blocks[{i}].device"), "a distinct manifest device name"));
        }
        if crate::validate::label(&block.block_device).is_err() {
            errors.push(FieldError::new(
                format!("blocks[{i}].block_device"),
                "the name of one of the tenant's block devices",
            ));
        }
        if block.sector_size.is_some_and(|s| ![512, 1024, 2048, 4096].contains(&s)) {
            errors.push(FieldError::new(format!("blocks[{i}].sector_size"), "512, 1024, 2048 or 4096"));
        }
    }
    if body.blocks.len() > 63 {
        errors.push(FieldError::new("blocks", "at most 63 block devices"));
    }
    if let RestartPolicy::OnFailure { exit_codes: Some(codes) } = &body.restart
        && codes.iter().any(|c| !(0..=255).contains(c))
    {
        errors.push(FieldError::new("restart.exit_codes", "exit codes are 0 to 255"));
    }
    match sha {
        Ok(sha) if errors.is_empty() => Ok(sha),
        Ok(_) => Err(ApiError::fields(errors)),
        Err(e) => {
            if let ApiError::Validation { errors: mut sha_errors, .. } = e {
                sha_errors.extend(errors);
                Err(ApiError::fields(sha_errors))
            } else {
                Err(e)
            }
        }
    }
}

/// The tenant's deployments, by name (viewers).
#[utoipa::path(
    tag = "deployments",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), PageQuery),
    responses((status = 200, description = "A page of deployments", body = Page<Deployment>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/deployments")]
pub async fn list_deployments(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    let ks = keyset::<String>(&q)?;
    let rows: Vec<DeploymentRow> = sqlx::query_as(&format!(
        "{} WHERE d.tenant_id = $1 AND ($2::text IS NULL OR d.name > $2) ORDER BY d.name LIMIT $3",
        select_deployments()
    ))
    .bind(tenant.tenant_id())
    .bind(ks.after.as_deref())
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let items: Vec<Deployment> = rows.into_iter().map(Deployment::from).collect();
    Ok(HttpResponse::Ok().json(page(items, ks.limit, |d: &Deployment| d.name.clone())))
}

/// Deploy a unikernel (operators): the image is an artifact of one of the tenant's builds (or
/// a public build), by SHA-256. Admission against the tenant's quotas (and its ancestors') is
/// atomic; the agent is the pinned one or the reachable one with the bridges and most memory.
#[utoipa::path(
    tag = "deployments",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    request_body = CreateDeployment,
    responses(
        (status = 201, description = "Created; the agent starts it", body = Deployment),
        (status = 403, description = "Over quota: `errors` names each limit and by how much", body = petrel_wire::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or no agent can run it", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/tenants/{tenant_id}/deployments")]
pub async fn create_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(body): Json<CreateDeployment>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Operator).await?;
    let sha = validate(&body)?;
    let build_id = readable_build_with(&state, &tenant, &sha).await?;
    if let Some(declared) = manifests::devices(&state, &sha).await? {
        let requested = Devices::requested(
            body.nets.iter().map(|n| n.device.as_str()),
            body.blocks.iter().map(|b| b.device.as_str()),
        );
        let errors = declared.mismatch(&requested);
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
    }
    let bridges: Vec<&str> = body.nets.iter().map(|n| n.bridge.as_str()).collect();
    let mut tx = state.db.begin().await?;
    let request = deploy::Request {
        memory_mib: i64::from(body.memory_mib),
        cpus: &body.cpus,
        bridges: bridges.clone(),
        replacing: None,
    };
    deploy::admit(&mut tx, tenant.tenant_id(), &request).await?;
    let (blocks, blocks_agent) = attachable_blocks(&mut tx, tenant.tenant_id(), &body).await?;
    let pinned = blocks_agent.or(body.agent_id);
    let agent_id = deploy::place(&mut tx, pinned, i64::from(body.memory_mib), &bridges, None).await?;
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO deployments (id, tenant_id, name, image_sha256, build_id, memory_mib, cpus, args, nets, restart,
                                  startup_priority, agent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(tenant.tenant_id())
    .bind(&body.name)
    .bind(&sha)
    .bind(build_id)
    .bind(body.memory_mib)
    .bind(&body.cpus)
    .bind(&body.args)
    .bind(DbJson(&body.nets))
    .bind(DbJson(&body.restart))
    .bind(body.startup_priority.unwrap_or(50))
    .bind(agent_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "deployments_tenant_id_name_key") {
            ApiError::conflict("deployment-name-taken", format!("the tenant has a deployment named {:?}", body.name))
        } else {
            e.into()
        }
    })?;
    sqlx::query(
        "INSERT INTO deployment_blocks (deployment_id, device, block_device_id, sector_size)
         SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::int[])",
    )
    .bind(id)
    .bind(blocks.iter().map(|b| b.0.clone()).collect::<Vec<String>>())
    .bind(blocks.iter().map(|b| b.1).collect::<Vec<Uuid>>())
    .bind(blocks.iter().map(|b| b.2).collect::<Vec<i32>>())
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO deployment_events (deployment_id, state) VALUES ($1, 'pending')")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    events::agent_assignments_changed(&mut tx, agent_id).await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "deployment.create",
        Some(id.to_string()),
        serde_json::json!({"name": body.name, "image_sha256": body.image_sha256, "agent": agent_id}),
    )
    .await?;
    tx.commit().await?;
    let (_, created) = deployment_for(&state, &caller, id, Role::Viewer).await?;
    Ok(HttpResponse::Created().json(created))
}

#[derive(sqlx::FromRow)]
struct AttachableRow {
    id: Uuid,
    name: String,
    agent_id: Option<Uuid>,
    pending: bool,
    used_by: Option<String>,
}

/// The block devices a new deployment attaches, as (device, block device id, sector size), and
/// the agent that keeps them (locked for the caller's transaction). Each must exist in the
/// tenant, back no other deployment, hold no pending upload, and all live on one agent (the
/// pinned one, when the request pins one).
async fn attachable_blocks(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    body: &CreateDeployment,
) -> Result<(Vec<(String, Uuid, i32)>, Option<Uuid>), ApiError> {
    if body.blocks.is_empty() {
        return Ok((Vec::new(), None));
    }
    let names: Vec<&str> = body.blocks.iter().map(|b| b.block_device.as_str()).collect();
    let rows: Vec<AttachableRow> = sqlx::query_as(
        "SELECT b.id, b.name, b.agent_id, b.content_version > b.applied_version AS pending,
                (SELECT d.name FROM deployment_blocks db JOIN deployments d ON d.id = db.deployment_id
                  WHERE db.block_device_id = b.id) AS used_by
           FROM block_devices b WHERE b.tenant_id = $1 AND b.name = ANY($2) ORDER BY b.id FOR UPDATE OF b",
    )
    .bind(tenant_id)
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    let mut errors = Vec::new();
    let mut attached = Vec::new();
    let mut agents = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, block) in body.blocks.iter().enumerate() {
        let field = format!("blocks[{i}].block_device");
        let Some(AttachableRow { id, agent_id: agent, pending, used_by: user, .. }) =
            rows.iter().find(|r| r.name == block.block_device)
        else {
            errors.push(FieldError::new(
                field,
                format!("the tenant has no block device named {:?}", block.block_device),
            ));
            continue;
        };
        if !seen.insert(*id) {
            errors.push(FieldError::new(field, "attached twice"));
        } else if let Some(user) = user {
            errors.push(FieldError::new(field, format!("backs deployment {user:?} already")));
        } else if *pending {
            errors.push(FieldError::new(field, "an upload is still being written into it"));
        } else if let Some(agent) = agent {
            agents.insert(*agent);
            attached.push((block.device.clone(), *id, block.sector_size.unwrap_or(512)));
        } else {
            errors.push(FieldError::new(field, "the agent that kept it was deleted"));
        }
    }
    if agents.len() > 1 {
        errors.push(FieldError::new("blocks", "the block devices live on different agents"));
    }
    let agent = agents.into_iter().next();
    if let (Some(pinned), Some(agent)) = (body.agent_id, agent)
        && pinned != agent
    {
        errors.push(FieldError::new("agent_id", format!("the block devices live on agent {agent}")));
    }
    if errors.is_empty() { Ok((attached, agent)) } else { Err(ApiError::fields(errors)) }
}

/// One deployment (viewers of its tenant).
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    responses((status = 200, description = "The deployment", body = Deployment)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/deployments/{deployment_id}")]
pub async fn get_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(deployment_for(&state, &caller, path.into_inner(), Role::Viewer).await?.1))
}

/// Destroy a deployment (operators): its agent stops the unikernel and frees its taps.
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    responses((status = 204, description = "Destroyed")),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/deployments/{deployment_id}")]
pub async fn destroy_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Operator).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query("DELETE FROM deployments WHERE id = $1 AND tenant_id = $2")
        .bind(deployment.id)
        .bind(tenant.tenant_id())
        .execute(&mut *tx)
        .await?;
    if let Some(agent_id) = deployment.agent_id {
        events::agent_assignments_changed(&mut tx, agent_id).await?;
    }
    // Console followers learn that it is gone.
    events::build_changed(&mut tx, deployment.id).await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "deployment.destroy",
        Some(deployment.id.to_string()),
        serde_json::json!({"name": deployment.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restart a deployment (operators): its agent stops the unikernel and starts it again,
/// with new arguments or memory when given (more memory is admitted against the quota).
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    request_body(content = RestartDeployment, description = "Optional: what to change"),
    responses(
        (status = 200, description = "Restarting", body = Deployment),
        (status = 403, description = "More memory than the quota allows", body = petrel_wire::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Its agent lacks the memory", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/deployments/{deployment_id}/restart")]
pub async fn restart_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    JsonOrEmpty(body): JsonOrEmpty<RestartDeployment>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Operator).await?;
    let errors: Vec<FieldError> = body
        .args
        .as_deref()
        .and_then(args_error)
        .into_iter()
        .chain(body.memory_mib.and_then(memory_error))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let mut tx = state.db.begin().await?;
    if let Some(memory) = body.memory_mib.filter(|m| *m > deployment.memory_mib) {
        let bridges: Vec<&str> = deployment.nets.iter().map(|n| n.bridge.as_str()).collect();
        let request = deploy::Request {
            memory_mib: i64::from(memory),
            cpus: &deployment.cpus,
            bridges: bridges.clone(),
            replacing: Some(deployment.id),
        };
        deploy::admit(&mut tx, tenant.tenant_id(), &request).await?;
        deploy::place(&mut tx, deployment.agent_id, i64::from(memory), &bridges, Some(deployment.id)).await?;
    }
    sqlx::query(
        "UPDATE deployments SET revision = revision + 1, state = 'pending', exit_code = NULL, message = NULL,
                args = coalesce($3, args), memory_mib = coalesce($4, memory_mib), updated_at = now()
          WHERE id = $1 AND tenant_id = $2",
    )
    .bind(deployment.id)
    .bind(tenant.tenant_id())
    .bind(&body.args)
    .bind(body.memory_mib)
    .execute(&mut *tx)
    .await?;
    let details = serde_json::json!({"args": body.args, "memory_mib": body.memory_mib});
    restarted(&mut tx, &caller, &tenant, &deployment, "restart requested", "deployment.restart", details)
        .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(deployment_for(&state, &caller, deployment.id, Role::Viewer).await?.1))
}

/// Records a change that restarts the deployment: its event, its agent's wake-up, the audit.
async fn restarted(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    caller: &Caller,
    tenant: &TenantScope,
    deployment: &Deployment,
    message: &str,
    action: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO deployment_events (deployment_id, state, message) VALUES ($1, 'pending', $2)")
        .bind(deployment.id)
        .bind(message)
        .execute(&mut **tx)
        .await?;
    if let Some(agent_id) = deployment.agent_id {
        events::agent_assignments_changed(tx, agent_id).await?;
    }
    audit::record(
        &mut **tx,
        Some(tenant.tenant_id()),
        &Actor::from(caller),
        action,
        Some(deployment.id.to_string()),
        details,
    )
    .await?;
    Ok(())
}

/// Update a deployment's image (operators), as `albatross update` in one step: to the given
/// image, or to the available update (`update_available`). The agent restarts it on the new
/// image; `rollback` returns to the one it replaced.
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    request_body(content = UpdateDeployment, description = "Optional: the image; the available update otherwise"),
    responses(
        (status = 200, description = "Updating", body = Deployment),
        (status = 409, description = "No update available, or already on that image", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/deployments/{deployment_id}/update")]
pub async fn update_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    JsonOrEmpty(body): JsonOrEmpty<UpdateDeployment>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Operator).await?;
    let image = match (&body.image_sha256, &deployment.update_available) {
        (Some(image), _) => super::builds::parse_sha256("image_sha256", image)?,
        (None, Some(update)) => hex::decode(&update.image_sha256).expect("hex from the database"),
        (None, None) => {
            return Err(ApiError::conflict("no-update", "no newer build of the image's job is available"));
        }
    };
    if hex::encode(&image) == deployment.image_sha256 {
        return Err(ApiError::conflict("same-image", "the deployment already runs this image"));
    }
    let build_id = readable_build_with(&state, &tenant, &image).await?;
    if let Some(declared) = manifests::devices(&state, &image).await? {
        let current = Devices::requested(
            deployment.nets.iter().map(|n| n.device.as_str()),
            deployment.blocks.iter().map(|b| b.device.as_str()),
        );
        let errors: Vec<FieldError> = declared
            .mismatch(&current)
            .into_iter()
            .map(|e| FieldError::new("image_sha256", e.message))
            .collect();
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
    }
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE deployments SET previous_image_sha256 = image_sha256, previous_build_id = build_id,
                image_sha256 = $3, build_id = $4, revision = revision + 1, state = 'pending', exit_code = NULL,
                message = NULL, updated_at = now()
          WHERE id = $1 AND tenant_id = $2",
    )
    .bind(deployment.id)
    .bind(tenant.tenant_id())
    .bind(&image)
    .bind(build_id)
    .execute(&mut *tx)
    .await?;
    let details = serde_json::json!({"from": deployment.image_sha256, "to": hex::encode(&image)});
    restarted(&mut tx, &caller, &tenant, &deployment, "update requested", "deployment.update", details)
        .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(deployment_for(&state, &caller, deployment.id, Role::Viewer).await?.1))
}

/// Roll a deployment back to the image it ran before its last update (operators).
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "Rolling back", body = Deployment),
        (status = 409, description = "Never updated: nothing to roll back to", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/deployments/{deployment_id}/rollback")]
pub async fn rollback_deployment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Operator).await?;
    let Some(previous) = &deployment.previous_image_sha256 else {
        return Err(ApiError::conflict("no-previous-image", "the deployment was never updated"));
    };
    let mut tx = state.db.begin().await?;
    // The two images swap: rolling back twice returns to the update.
    sqlx::query(
        "UPDATE deployments SET image_sha256 = previous_image_sha256, build_id = previous_build_id,
                previous_image_sha256 = image_sha256, previous_build_id = build_id,
                revision = revision + 1, state = 'pending', exit_code = NULL, message = NULL, updated_at = now()
          WHERE id = $1 AND tenant_id = $2 AND previous_image_sha256 IS NOT NULL",
    )
    .bind(deployment.id)
    .bind(tenant.tenant_id())
    .execute(&mut *tx)
    .await?;
    let details = serde_json::json!({"from": deployment.image_sha256, "to": previous});
    restarted(&mut tx, &caller, &tenant, &deployment, "rollback requested", "deployment.rollback", details)
        .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(deployment_for(&state, &caller, deployment.id, Role::Viewer).await?.1))
}

/// The newest build of the tenant's (or a public one) with `image` as an artifact: what the
/// tenant may deploy.
async fn readable_build(
    state: &AppState,
    tenant: &TenantScope,
    image: &[u8],
) -> Result<Option<Uuid>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT b.id FROM build_artifacts a JOIN builds b ON b.id = a.build_id JOIN jobs j ON j.id = b.job_id
          WHERE a.sha256 = $1 AND (j.tenant_id = $2 OR j.visibility = 'public')
          ORDER BY b.finished_at DESC NULLS LAST LIMIT 1",
    )
    .bind(image)
    .bind(tenant.tenant_id())
    .fetch_optional(&state.db)
    .await?)
}

/// [`readable_build`], or the field error a deployment naming `image` gets.
async fn readable_build_with(state: &AppState, tenant: &TenantScope, image: &[u8]) -> Result<Uuid, ApiError> {
    readable_build(state, tenant, image).await?.ok_or_else(|| {
        ApiError::field(
            "image_sha256",
            "no build of this tenant (nor a public one) has an artifact with this hash",
        )
    })
}

/// The net and block devices an image's solo5 manifest declares (operators), so a deployment
/// form can offer one row per device before the deployment is created. The image is one the
/// tenant may deploy: an artifact of its builds or of a public build; any other hash is not
/// found, whether or not another tenant has it. An image that is not a solo5 hvt unikernel has
/// no manifest: 400 `validation-failed` naming `sha256`, as does a malformed hash.
#[utoipa::path(
    tag = "deployments",
    params(
        ("tenant_id" = Uuid, Path, description = "The tenant's id"),
        ("sha256" = String, Path, description = "The image's SHA-256 (hex)"),
    ),
    responses(
        (status = 200, description = "The manifest's devices", body = ImageManifest),
        (status = 404, description = "No build the tenant may deploy has this artifact", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/images/{sha256}/manifest")]
pub async fn get_image_manifest(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, sha256) = path.into_inner();
    let tenant = caller.tenant(&state.db, tenant_id, Role::Operator).await?;
    let sha = super::builds::parse_sha256("sha256", &sha256)?;
    readable_build(&state, &tenant, &sha).await?.ok_or(ApiError::NotFound("image"))?;
    let devices = manifests::devices(&state, &sha).await?.ok_or_else(|| {
        ApiError::field("sha256", "this image is not a solo5 hvt unikernel: it has no manifest to read")
    })?;
    Ok(HttpResponse::Ok().json(ImageManifest { nets: devices.nets, blocks: devices.blocks }))
}

/// Samples an agent keeps per deployment (10 s apart: an hour).
pub const STATS_KEPT: i64 = 360;

/// The running unikernel's latest stats and the last hour of them (viewers): CPU time, memory
/// and its network devices' counters, sampled by its agent every 10 seconds.
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id")),
    responses((status = 200, description = "Latest and recent samples", body = StatsHistory)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/deployments/{deployment_id}/stats")]
pub async fn get_stats(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Viewer).await?;
    let rows: Vec<(DbJson<DeploymentStats>,)> = sqlx::query_as(
        "SELECT s.sample FROM deployment_stats s JOIN deployments d ON d.id = s.deployment_id
          WHERE s.deployment_id = $1 AND d.tenant_id = $2 ORDER BY s.at DESC LIMIT $3",
    )
    .bind(deployment.id)
    .bind(tenant.tenant_id())
    .bind(STATS_KEPT)
    .fetch_all(&state.db)
    .await?;
    let mut history: Vec<DeploymentStats> = rows.into_iter().map(|(s,)| s.0).collect();
    history.reverse();
    Ok(HttpResponse::Ok().json(StatsHistory { latest: history.last().cloned(), history }))
}

/// The deployment's state changes, oldest first, with exit codes.
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id"), PageQuery),
    responses((status = 200, description = "A page of events", body = Page<DeploymentEvent>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/deployments/{deployment_id}/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (_, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Viewer).await?;
    let ks = keyset::<i64>(&q)?;
    // (id, at, state, exit code, message)
    type EventRow = (i64, DateTime<Utc>, String, Option<i32>, Option<String>);
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, at, state::text, exit_code, message FROM deployment_events
          WHERE deployment_id = $1 AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(deployment.id)
    .bind(ks.after)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let paged = page(rows, ks.limit, |row| row.0);
    let events: Page<DeploymentEvent> = Page {
        items: paged
            .items
            .into_iter()
            .map(|(_, at, state, exit_code, message)| DeploymentEvent {
                at,
                state: state_from_db(&state),
                exit_code,
                message,
            })
            .collect(),
        next_cursor: paged.next_cursor,
    };
    Ok(HttpResponse::Ok().json(events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsoleQuery {
    /// The last N lines (at most 1024; default 1024).
    pub count: Option<i64>,
    /// Only lines from this time on.
    pub since: Option<DateTime<Utc>>,
}

/// The deployment's last console lines (up to 1,024 are kept, also after it stopped).
/// `at_ms` is Unix time in milliseconds.
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id"), ConsoleQuery),
    responses((status = 200, description = "Console lines, oldest first", body = Vec<ConsoleLine>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/deployments/{deployment_id}/console")]
pub async fn get_deployment_console(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<ConsoleQuery>,
) -> Result<HttpResponse, ApiError> {
    let count = q.count.unwrap_or(super::agent_protocol::CONSOLE_LINES);
    if !(1..=super::agent_protocol::CONSOLE_LINES).contains(&count) {
        return Err(ApiError::field("count", "must be between 1 and 1024"));
    }
    let (_, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Viewer).await?;
    let mut rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT number, (extract(epoch FROM at) * 1000)::bigint, text FROM deployment_console
          WHERE deployment_id = $1 AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY number DESC LIMIT $3",
    )
    .bind(deployment.id)
    .bind(q.since)
    .bind(count)
    .fetch_all(&state.db)
    .await?;
    rows.reverse();
    let lines: Vec<ConsoleLine> =
        rows.into_iter().map(|(number, at_ms, text)| ConsoleLine { number, at_ms, text }).collect();
    Ok(HttpResponse::Ok().json(lines))
}

/// Follow the deployment's console live (server-sent events, as the build console; resumes
/// after `after` or `Last-Event-ID`; ends with `event: end` when the deployment is destroyed).
#[utoipa::path(
    tag = "deployments",
    params(("deployment_id" = Uuid, Path, description = "The deployment's id"), super::runs::StreamQuery),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = super::ServerSentEvent)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/deployments/{deployment_id}/console/stream")]
pub async fn stream_deployment_console(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<super::runs::StreamQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, deployment) = deployment_for(&state, &caller, path.into_inner(), Role::Viewer).await?;
    let after = super::runs::resume_after(&req, q.after);
    Ok(crate::console_stream::respond(
        &state,
        crate::console_stream::Source::Deployment(deployment.id),
        after,
        q.follow.unwrap_or(true),
    ))
}
