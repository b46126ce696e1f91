//! Tenant quotas for deployments (albatross' policies): set by administrators, or by owners of
//! the parent tenant for its sub-tenants; they nest.

use actix_web::{HttpResponse, get, put, web};
use petrel_wire::FieldError;
use petrel_wire::deployments::{Quota, QuotaUsage};
use petrel_wire::identity::Role;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;
use crate::server::AppState;

/// The tenant's quota (if it has its own) and its usage, sub-tenants included (viewers).
#[utoipa::path(
    tag = "deployments",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    responses((status = 200, description = "Quota and usage", body = QuotaUsage)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/quota")]
pub async fn get_quota(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    let quota: Option<crate::deploy::QuotaLimits> = sqlx::query_as(
        "SELECT unikernels, memory_mib, block_mib, cpus, bridges FROM quotas WHERE tenant_id = $1",
    )
    .bind(tenant.tenant_id())
    .fetch_optional(&state.db)
    .await?;
    let (unikernels, memory_mib, block_mib): (i64, i64, i64) = sqlx::query_as(
        "WITH RECURSIVE sub(id) AS (SELECT $1::uuid UNION ALL SELECT t.id FROM tenants t JOIN sub ON t.parent_id = sub.id)
         SELECT (SELECT count(*) FROM deployments WHERE tenant_id IN (SELECT id FROM sub) AND state <> 'stopped'),
                (SELECT coalesce(sum(memory_mib), 0)::bigint FROM deployments
                  WHERE tenant_id IN (SELECT id FROM sub) AND state <> 'stopped'),
                (SELECT coalesce(sum(size_mib), 0)::bigint FROM block_devices WHERE tenant_id IN (SELECT id FROM sub))",
    )
    .bind(tenant.tenant_id())
    .fetch_one(&state.db)
    .await?;
    Ok(HttpResponse::Ok().json(QuotaUsage {
        quota: quota.map(Quota::from),
        unikernels,
        memory_mib,
        block_mib,
    }))
}

/// Set a tenant's quota: administrators for any tenant, owners of the parent for sub-tenants.
/// It must fit inside the nearest ancestor's quota and hold every sub-tenant's.
#[utoipa::path(
    tag = "deployments",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    request_body = Quota,
    responses((status = 200, description = "The quota", body = Quota)),
    security(("bearer" = []), ("session" = []))
)]
#[put("/tenants/{tenant_id}/quota")]
pub async fn set_quota(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(body): Json<Quota>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id = path.into_inner();
    // Seeing the tenant at all comes first (404 for others), then the right to limit it.
    let tenant = caller.tenant(&state.db, tenant_id, Role::Viewer).await?;
    let parent: Option<Uuid> = sqlx::query_scalar("SELECT parent_id FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&state.db)
        .await?;
    if !caller.is_admin() {
        match parent {
            Some(parent) if caller.role_in(&state.db, parent).await? == Some(Role::Owner) => {}
            _ => {
                return Err(ApiError::forbidden(
                    "insufficient-role",
                    "quotas are set by administrators, or by owners of the parent tenant",
                ));
            }
        }
    }
    let mut errors = Vec::new();
    if body.unikernels < 0 {
        errors.push(FieldError::new("unikernels", "must not be negative"));
    }
    if body.memory_mib < 0 {
        errors.push(FieldError::new("memory_mib", "must not be negative"));
    }
    if body.block_mib < 0 {
        errors.push(FieldError::new("block_mib", "must not be negative"));
    }
    if body.cpus.iter().any(|c| !(0..4096).contains(c)) {
        errors.push(FieldError::new("cpus", "CPU ids are 0 to 4095"));
    }
    if body.bridges.iter().any(|b| crate::validate::platform(b).is_err() || b.len() > 15) {
        errors.push(FieldError::new("bridges", "interface names of at most 15 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let mut tx = state.db.begin().await?;
    crate::deploy::check_nesting(&mut tx, tenant.tenant_id(), &body).await?;
    sqlx::query(
        "INSERT INTO quotas (tenant_id, unikernels, memory_mib, block_mib, cpus, bridges) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id) DO UPDATE SET unikernels = $2, memory_mib = $3, block_mib = $4, cpus = $5, bridges = $6",
    )
    .bind(tenant.tenant_id())
    .bind(body.unikernels)
    .bind(body.memory_mib)
    .bind(body.block_mib)
    .bind(&body.cpus)
    .bind(&body.bridges)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "quota.set",
        Some(tenant.tenant_id().to_string()),
        serde_json::to_value(&body).unwrap_or_default(),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(body))
}
