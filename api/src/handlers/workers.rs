//! Registering build workers: administrators register shared-pool workers, tenant owners
//! register tenant-private ones. The credential is shown once and stored as a hash.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use petrel_wire::identity::Role;
use petrel_wire::page::PageQuery;
use petrel_wire::workers::{CreateWorker, CreatedWorker, Worker};
use petrel_wire::{FieldError, Page};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::Caller;
use crate::auth::worker::new_credential;
use crate::error::{ApiError, is_unique_violation};
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;

#[derive(sqlx::FromRow)]
struct WorkerRow {
    id: Uuid,
    name: String,
    tenant_id: Option<Uuid>,
    platform: Option<String>,
    concurrency: Option<i32>,
    version: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
    running: i64,
    revoked: bool,
    created_at: DateTime<Utc>,
}

const WORKER_COLUMNS: &str =
    "w.id, w.name, w.tenant_id, w.platform, w.concurrency, w.version, w.last_seen_at,
     (SELECT count(*) FROM builds b WHERE b.worker_id = w.id AND b.status = 'running') AS running,
     w.revoked_at IS NOT NULL AS revoked, w.created_at";

impl From<WorkerRow> for Worker {
    fn from(r: WorkerRow) -> Worker {
        Worker {
            id: r.id,
            name: r.name,
            tenant_id: r.tenant_id,
            platform: r.platform,
            concurrency: r.concurrency,
            version: r.version,
            last_seen_at: r.last_seen_at,
            running: r.running,
            revoked: r.revoked,
            created_at: r.created_at,
        }
    }
}

async fn worker_page(
    state: &AppState,
    tenant_id: Option<Uuid>,
    q: &PageQuery,
) -> Result<Page<Worker>, ApiError> {
    let ks = keyset::<String>(q)?;
    let rows: Vec<WorkerRow> = sqlx::query_as(&format!(
        "SELECT {WORKER_COLUMNS} FROM workers w
          WHERE ($1::uuid IS NULL OR w.tenant_id = $1) AND ($2::text IS NULL OR w.name > $2)
          ORDER BY w.name LIMIT $3"
    ))
    .bind(tenant_id)
    .bind(ks.after.as_deref())
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    Ok(page(rows.into_iter().map(Worker::from).collect(), ks.limit, |w: &Worker| w.name.clone()))
}

/// Every worker, shared and tenant-private, by name (administrators).
#[utoipa::path(
    tag = "workers",
    params(PageQuery),
    responses((status = 200, description = "A page of workers", body = Page<Worker>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/workers")]
pub async fn list_workers(
    state: web::Data<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    Ok(HttpResponse::Ok().json(worker_page(&state, None, &q).await?))
}

/// The tenant's private workers, by name (viewers).
#[utoipa::path(
    tag = "workers",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), PageQuery),
    responses((status = 200, description = "A page of workers", body = Page<Worker>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/workers")]
pub async fn list_tenant_workers(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    Ok(HttpResponse::Ok().json(worker_page(&state, Some(tenant.tenant_id()), &q).await?))
}

/// Register a worker: shared (administrators) or private to a tenant (its owners). The answer
/// holds its credential, shown this once.
#[utoipa::path(
    tag = "workers",
    request_body = CreateWorker,
    responses(
        (status = 201, description = "Registered", body = CreatedWorker),
        (status = 409, description = "A worker of that name exists", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/workers")]
pub async fn create_worker(
    state: web::Data<AppState>,
    caller: Caller,
    Json(body): Json<CreateWorker>,
) -> Result<HttpResponse, ApiError> {
    let tenant = match body.tenant_id {
        Some(tenant_id) => Some(caller.tenant(&state.db, tenant_id, Role::Owner).await?),
        None => {
            caller.require_admin()?;
            None
        }
    };
    if let Err(m) = crate::validate::job_name(&body.name) {
        return Err(ApiError::fields(vec![FieldError::new("name", m)]));
    }
    let id = Uuid::new_v4();
    let (credential, hash) = new_credential();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO workers (id, name, tenant_id, credential_sha256, created_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&body.name)
    .bind(tenant.map(|t| t.tenant_id()))
    .bind(&hash)
    .bind(caller.user_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "workers_name_key") {
            ApiError::conflict("worker-name-taken", format!("a worker named {:?} exists", body.name))
        } else {
            e.into()
        }
    })?;
    audit::record(
        &mut *tx,
        tenant.map(|t| t.tenant_id()),
        &Actor::from(&caller),
        "worker.create",
        Some(id.to_string()),
        serde_json::json!({"name": body.name}),
    )
    .await?;
    let row: WorkerRow = sqlx::query_as(&format!("SELECT {WORKER_COLUMNS} FROM workers w WHERE w.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(CreatedWorker { worker: row.into(), credential }))
}

/// Revoke a worker's credential (administrators, or owners of its tenant). Builds it holds
/// are queued again at once.
#[utoipa::path(
    tag = "workers",
    params(("worker_id" = Uuid, Path, description = "The worker's id")),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/workers/{worker_id}")]
pub async fn revoke_worker(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let worker_id = path.into_inner();
    let tenant_id: Option<Option<Uuid>> = sqlx::query_scalar("SELECT tenant_id FROM workers WHERE id = $1")
        .bind(worker_id)
        .fetch_optional(&state.db)
        .await?;
    let tenant_id = match tenant_id {
        None => return Err(ApiError::NotFound("worker")),
        Some(None) => {
            // Shared workers are administrators' business; others learn nothing of them.
            if !caller.is_admin() {
                return Err(ApiError::NotFound("worker"));
            }
            None
        }
        Some(Some(tenant_id)) => Some(
            caller
                .tenant(&state.db, tenant_id, Role::Owner)
                .await
                .map_err(|e| match e {
                    ApiError::NotFound(_) => ApiError::NotFound("worker"),
                    other => other,
                })?
                .tenant_id(),
        ),
    };
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE workers SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1")
        .bind(worker_id)
        .execute(&mut *tx)
        .await?;
    // Its leases end now: the scheduler re-queues the builds within a tick.
    sqlx::query("UPDATE builds SET lease_expires_at = now() WHERE worker_id = $1 AND status = 'running'")
        .bind(worker_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        tenant_id,
        &Actor::from(&caller),
        "worker.revoke",
        Some(worker_id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
