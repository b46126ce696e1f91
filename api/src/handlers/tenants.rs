//! Tenants and sub-tenants.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use petrel_wire::Page;
use petrel_wire::identity::{CreateTenant, Role, Tenant};
use petrel_wire::page::PageQuery;
use uuid::Uuid;

use super::db_role;
use crate::audit::{self, Actor};
use crate::auth::{Caller, Via};
use crate::error::{ApiError, is_unique_violation};
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;
use crate::validate;

type TenantRow = (Uuid, String, Option<Uuid>, DateTime<Utc>, String);

fn tenant(row: TenantRow, cap: Option<Role>) -> Result<Tenant, ApiError> {
    let (id, name, parent_id, created_at, role) = row;
    let role = db_role(&role)?;
    Ok(Tenant { id, name, parent_id, created_at, my_role: cap.map_or(role, |c| c.min(role)) })
}

/// The tenants you can see: those you are a member of and their sub-tenants (all, for
/// administrators), by name.
#[utoipa::path(
    tag = "tenants",
    params(PageQuery),
    responses((status = 200, description = "A page of tenants", body = Page<Tenant>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants")]
pub async fn list_tenants(
    state: web::Data<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let ks = keyset::<(String, Uuid)>(&q)?;
    let (after_name, after_id) = ks.after.clone().unzip();
    let (rows, cap): (Vec<TenantRow>, Option<Role>) = if caller.is_admin() {
        let rows = sqlx::query_as(
            "SELECT id, name, parent_id, created_at, 'owner' FROM tenants
              WHERE $1::text IS NULL OR (name, id) > ($1, $2)
              ORDER BY name, id LIMIT $3",
        )
        .bind(&after_name)
        .bind(after_id)
        .bind(ks.fetch())
        .fetch_all(&state.db)
        .await?;
        (rows, None)
    } else {
        let (scope, cap) = match &caller.via {
            Via::Token(t) => (t.tenant_id, t.role),
            Via::Session { .. } => (None, None),
        };
        let rows = sqlx::query_as(
            "WITH RECURSIVE mine(id, role) AS (
                 SELECT tenant_id, role FROM memberships WHERE user_id = $1
                 UNION ALL
                 SELECT t.id, m.role FROM tenants t JOIN mine m ON t.parent_id = m.id),
             scope(id) AS (
                 SELECT id FROM tenants WHERE id = $2
                 UNION ALL
                 SELECT t.id FROM tenants t JOIN scope s ON t.parent_id = s.id)
             SELECT t.id, t.name, t.parent_id, t.created_at, max(m.role)::text
               FROM mine m JOIN tenants t ON t.id = m.id
              WHERE ($2::uuid IS NULL OR t.id IN (SELECT id FROM scope))
                AND ($3::text IS NULL OR (t.name, t.id) > ($3, $4))
              GROUP BY t.id
              ORDER BY t.name, t.id LIMIT $5",
        )
        .bind(caller.user_id)
        .bind(scope)
        .bind(&after_name)
        .bind(after_id)
        .bind(ks.fetch())
        .fetch_all(&state.db)
        .await?;
        (rows, cap)
    };
    let tenants = rows.into_iter().map(|r| tenant(r, cap)).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(page(tenants, ks.limit, |t: &Tenant| (t.name.clone(), t.id))))
}

/// Create a tenant. Top-level tenants are created by administrators; owners of a tenant create
/// its sub-tenants, which they then own through inheritance.
#[utoipa::path(
    tag = "tenants",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = Tenant),
        (status = 409, description = "A sibling has that name", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/tenants")]
pub async fn create_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    Json(body): Json<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    validate::label(&body.name).map_err(|m| ApiError::field("name", m))?;
    let my_role = match body.parent_id {
        None => {
            caller.require_admin()?;
            Role::Owner
        }
        Some(parent) => caller.tenant(&state.db, parent, Role::Owner).await?.role(),
    };
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO tenants (id, parent_id, name) VALUES ($1, $2, $3) RETURNING created_at",
    )
    .bind(id)
    .bind(body.parent_id)
    .bind(&body.name)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "tenants_sibling_name") {
            ApiError::conflict(
                "tenant-name-taken",
                format!("a tenant named {:?} exists here already", body.name),
            )
        } else {
            e.into()
        }
    })?;
    let details = serde_json::json!({"name": body.name, "parent_id": body.parent_id});
    audit::record(
        &mut *tx,
        Some(id),
        &Actor::from(&caller),
        "tenant.create",
        Some(id.to_string()),
        details.clone(),
    )
    .await?;
    if let Some(parent) = body.parent_id {
        audit::record(
            &mut *tx,
            Some(parent),
            &Actor::from(&caller),
            "tenant.create_child",
            Some(id.to_string()),
            details,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::Created().json(Tenant {
        id,
        name: body.name,
        parent_id: body.parent_id,
        created_at,
        my_role,
    }))
}

/// One tenant you can see.
#[utoipa::path(
    tag = "tenants",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant", body = Tenant)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}")]
pub async fn get_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    let (id, name, parent_id, created_at): (Uuid, String, Option<Uuid>, DateTime<Utc>) =
        sqlx::query_as("SELECT id, name, parent_id, created_at FROM tenants WHERE id = $1")
            .bind(scope.tenant_id())
            .fetch_optional(&state.db)
            .await?
            .ok_or(ApiError::NotFound("tenant"))?;
    Ok(HttpResponse::Ok().json(Tenant { id, name, parent_id, created_at, my_role: scope.role() }))
}

/// Delete a tenant without sub-tenants, with its memberships and tokens. Sub-tenants are
/// deleted by owners of their parent; top-level tenants by administrators.
#[utoipa::path(
    tag = "tenants",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The tenant still has sub-tenants", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/tenants/{tenant_id}")]
pub async fn delete_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    let parent: Option<Uuid> = sqlx::query_scalar("SELECT parent_id FROM tenants WHERE id = $1")
        .bind(scope.tenant_id())
        .fetch_one(&state.db)
        .await?;
    match parent {
        Some(parent) => {
            caller.tenant(&state.db, parent, Role::Owner).await.map_err(|_| {
                ApiError::forbidden("insufficient-role", "sub-tenants are deleted by owners of their parent")
            })?;
        }
        None => caller.require_admin()?,
    }
    let mut tx = state.db.begin().await?;
    // Lock the row so a concurrent sub-tenant creation cannot slip in between check and delete.
    sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(scope.tenant_id())
        .execute(&mut *tx)
        .await?;
    let has_children: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE parent_id = $1)")
        .bind(scope.tenant_id())
        .fetch_one(&mut *tx)
        .await?;
    if has_children {
        return Err(ApiError::conflict("tenant-has-children", "delete the tenant's sub-tenants first"));
    }
    sqlx::query("DELETE FROM tenants WHERE id = $1").bind(scope.tenant_id()).execute(&mut *tx).await?;
    audit::record(
        &mut *tx,
        parent,
        &Actor::from(&caller),
        "tenant.delete",
        Some(scope.tenant_id().to_string()),
        serde_json::json!({}),
    )
    .await?;
    crate::events::jobs_changed(&mut tx).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
