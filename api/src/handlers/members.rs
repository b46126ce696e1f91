//! Who belongs to a tenant, with which role. Owners manage members; members read the list.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use petrel_wire::Page;
use petrel_wire::identity::{AddMember, Membership, Role, SetMemberRole};
use petrel_wire::page::PageQuery;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::db_role;
use crate::audit::{self, Actor};
use crate::auth::{Caller, TenantScope};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;

/// The tenant's direct members, by username.
#[utoipa::path(
    tag = "members",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), PageQuery),
    responses((status = 200, description = "A page of memberships", body = Page<Membership>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/members")]
pub async fn list_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    let ks = keyset::<String>(&q)?;
    let rows: Vec<(Uuid, String, Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT t.id, t.name, u.id, u.username, m.role::text, m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id
          WHERE m.tenant_id = $1 AND ($2::text IS NULL OR u.username > $2)
          ORDER BY u.username LIMIT $3",
    )
    .bind(scope.tenant_id())
    .bind(&ks.after)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let members = rows
        .into_iter()
        .map(|(tenant_id, tenant_name, user_id, username, role, created_at)| {
            Ok(Membership { tenant_id, tenant_name, user_id, username, role: db_role(&role)?, created_at })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(HttpResponse::Ok().json(page(members, ks.limit, |m: &Membership| m.username.clone())))
}

/// Add a user to the tenant by username (owners).
#[utoipa::path(
    tag = "members",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    request_body = AddMember,
    responses(
        (status = 201, description = "Added", body = Membership),
        (status = 409, description = "Already a member", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/tenants/{tenant_id}/members")]
pub async fn add_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(body): Json<AddMember>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.tenant(&state.db, path.into_inner(), Role::Owner).await?;
    let user: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(&body.username)
        .fetch_optional(&state.db)
        .await?;
    let user_id = user.ok_or_else(|| ApiError::field("username", "no user has this name"))?;
    let mut tx = state.db.begin().await?;
    let inserted: Option<DateTime<Utc>> = sqlx::query_scalar(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3::member_role)
         ON CONFLICT DO NOTHING RETURNING created_at",
    )
    .bind(scope.tenant_id())
    .bind(user_id)
    .bind(body.role.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let created_at = inserted.ok_or_else(|| {
        ApiError::conflict("already-member", "the user is a member already; change the role with PUT")
    })?;
    audit::record(
        &mut *tx,
        Some(scope.tenant_id()),
        &Actor::from(&caller),
        "membership.create",
        Some(user_id.to_string()),
        serde_json::json!({"username": body.username, "role": body.role}),
    )
    .await?;
    let tenant_name = tenant_name(&mut tx, &scope).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(Membership {
        tenant_id: scope.tenant_id(),
        tenant_name,
        user_id,
        username: body.username,
        role: body.role,
        created_at,
    }))
}

/// Change a member's role (owners). A tenant keeps at least one direct owner.
#[utoipa::path(
    tag = "members",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), ("user_id" = Uuid, Path, description = "The member's user id")),
    request_body = SetMemberRole,
    responses(
        (status = 200, description = "Changed", body = Membership),
        (status = 409, description = "This would leave the tenant without an owner", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[put("/tenants/{tenant_id}/members/{user_id}")]
pub async fn set_member_role(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    Json(body): Json<SetMemberRole>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, user_id) = path.into_inner();
    let scope = caller.tenant(&state.db, tenant_id, Role::Owner).await?;
    let mut tx = state.db.begin().await?;
    let owners = lock_members(&mut tx, &scope).await?;
    let Some((_, previous)) = owners.iter().find(|(u, _)| *u == user_id).cloned() else {
        return Err(ApiError::NotFound("membership"));
    };
    if previous == Role::Owner && body.role != Role::Owner {
        keep_an_owner(&owners, &caller)?;
    }
    let (username, created_at): (String, DateTime<Utc>) = sqlx::query_as(
        "UPDATE memberships m SET role = $3::member_role FROM users u
          WHERE m.tenant_id = $1 AND m.user_id = $2 AND u.id = m.user_id
         RETURNING u.username, m.created_at",
    )
    .bind(scope.tenant_id())
    .bind(user_id)
    .bind(body.role.as_str())
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        Some(scope.tenant_id()),
        &Actor::from(&caller),
        "membership.update",
        Some(user_id.to_string()),
        serde_json::json!({"username": username, "from": previous, "to": body.role}),
    )
    .await?;
    let tenant_name = tenant_name(&mut tx, &scope).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(Membership {
        tenant_id: scope.tenant_id(),
        tenant_name,
        user_id,
        username,
        role: body.role,
        created_at,
    }))
}

/// Remove a member (owners). A tenant keeps at least one direct owner.
#[utoipa::path(
    tag = "members",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), ("user_id" = Uuid, Path, description = "The member's user id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, description = "This would leave the tenant without an owner", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/tenants/{tenant_id}/members/{user_id}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, user_id) = path.into_inner();
    let scope = caller.tenant(&state.db, tenant_id, Role::Owner).await?;
    let mut tx = state.db.begin().await?;
    let members = lock_members(&mut tx, &scope).await?;
    let Some((_, previous)) = members.iter().find(|(u, _)| *u == user_id).cloned() else {
        return Err(ApiError::NotFound("membership"));
    };
    if previous == Role::Owner {
        keep_an_owner(&members, &caller)?;
    }
    sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
        .bind(scope.tenant_id())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        Some(scope.tenant_id()),
        &Actor::from(&caller),
        "membership.delete",
        Some(user_id.to_string()),
        serde_json::json!({"role": previous}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The tenant's members and roles, locked until the transaction ends so two owners demoting
/// each other at once cannot both succeed.
async fn lock_members(
    tx: &mut Transaction<'_, Postgres>,
    scope: &TenantScope,
) -> Result<Vec<(Uuid, Role)>, ApiError> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT user_id, role::text FROM memberships WHERE tenant_id = $1 FOR UPDATE")
            .bind(scope.tenant_id())
            .fetch_all(&mut **tx)
            .await?;
    rows.into_iter().map(|(u, r)| Ok((u, db_role(&r)?))).collect()
}

fn keep_an_owner(members: &[(Uuid, Role)], caller: &Caller) -> Result<(), ApiError> {
    let owners = members.iter().filter(|(_, r)| *r == Role::Owner).count();
    if owners <= 1 && !caller.is_admin() {
        return Err(ApiError::conflict("last-owner", "a tenant keeps at least one direct owner"));
    }
    Ok(())
}

async fn tenant_name(tx: &mut Transaction<'_, Postgres>, scope: &TenantScope) -> Result<String, ApiError> {
    Ok(sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(scope.tenant_id())
        .fetch_one(&mut **tx)
        .await?)
}
