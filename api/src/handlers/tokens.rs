//! API tokens: created by a user for one tenant with a role no higher than their own (or, by
//! administrators, with administrator rights), shown once, stored as a hash, revocable.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use petrel_wire::identity::{ApiToken, CreateToken, CreatedToken, Role};
use petrel_wire::page::PageQuery;
use petrel_wire::{FieldError, Page, TOKEN_PREFIX};
use uuid::Uuid;

use super::db_role;
use crate::audit::{self, Actor};
use crate::auth::Caller;
use crate::auth::secret::{random_secret, storage_hash};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;
use crate::validate;

const DEFAULT_EXPIRY_DAYS: i64 = 90;
const MAX_EXPIRY_DAYS: i64 = 366;

type TokenRow = (
    Uuid,
    String,
    Uuid,
    Option<Uuid>,
    Option<String>,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const TOKEN_COLUMNS: &str =
    "id, name, user_id, tenant_id, role::text, admin, created_at, expires_at, last_used_at, revoked_at";

fn token(row: TokenRow) -> Result<ApiToken, ApiError> {
    let (id, name, user_id, tenant_id, role, admin, created_at, expires_at, last_used_at, revoked_at) = row;
    Ok(ApiToken {
        id,
        name,
        user_id,
        tenant_id,
        role: role.as_deref().map(db_role).transpose()?,
        admin,
        created_at,
        expires_at,
        last_used_at,
        revoked_at,
    })
}

/// Your own tokens, newest first (revoked and expired ones included, marked as such).
#[utoipa::path(
    tag = "tokens",
    params(PageQuery),
    responses((status = 200, description = "A page of tokens", body = Page<ApiToken>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tokens")]
pub async fn list_my_tokens(
    state: web::Data<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let ks = keyset::<(DateTime<Utc>, Uuid)>(&q)?;
    let (after_at, after_id) = ks.after.unzip();
    let rows: Vec<TokenRow> = sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens
          WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
          ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(caller.user_id)
    .bind(after_at)
    .bind(after_id)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let tokens = rows.into_iter().map(token).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(page(tokens, ks.limit, |t: &ApiToken| (t.created_at, t.id))))
}

/// Create a token. The secret is in the answer, this once.
#[utoipa::path(
    tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, description = "Created", body = CreatedToken)),
    security(("bearer" = []), ("session" = []))
)]
#[post("/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    Json(body): Json<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Vec::new();
    if let Err(m) = validate::display_name(&body.name) {
        errors.push(FieldError::new("name", m));
    }
    let days = body.expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        errors.push(FieldError::new("expires_in_days", format!("must be between 1 and {MAX_EXPIRY_DAYS}")));
    }
    if body.admin {
        if body.tenant_id.is_some() || body.role.is_some() {
            errors.push(FieldError::new("admin", "administrator tokens have no tenant_id or role"));
        }
    } else {
        if body.tenant_id.is_none() {
            errors.push(FieldError::new("tenant_id", "is required (unless admin is true)"));
        }
        if body.role.is_none() {
            errors.push(FieldError::new("role", "is required (unless admin is true)"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let (tenant_id, role) = match (body.admin, body.tenant_id, body.role) {
        (true, _, _) => {
            caller.require_admin()?;
            (None, None)
        }
        (false, Some(tenant_id), Some(role)) => {
            let scope = caller.tenant(&state.db, tenant_id, Role::Viewer).await?;
            if role > scope.role() {
                return Err(ApiError::forbidden(
                    "role-too-high",
                    format!("a token's role cannot exceed yours ({})", scope.role().as_str()),
                ));
            }
            (Some(tenant_id), Some(role))
        }
        _ => unreachable!("validated above"),
    };
    let secret = format!("{TOKEN_PREFIX}{}", random_secret());
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    let row: TokenRow = sqlx::query_as(&format!(
        "INSERT INTO api_tokens (id, user_id, tenant_id, name, role, admin, secret_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5::member_role, $6, $7, now() + make_interval(days => $8))
         RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(id)
    .bind(caller.user_id)
    .bind(tenant_id)
    .bind(&body.name)
    .bind(role.map(Role::as_str))
    .bind(body.admin)
    .bind(storage_hash(&secret))
    .bind(days as i32)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        tenant_id,
        &Actor::from(&caller),
        "token.create",
        Some(id.to_string()),
        serde_json::json!({"name": body.name, "role": role, "admin": body.admin, "expires_in_days": days}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(CreatedToken { token: token(row)?, secret }))
}

/// Revoke a token: your own, any of a tenant you own, or any (administrators).
#[utoipa::path(
    tag = "tokens",
    params(("token_id" = Uuid, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked (revoking twice is harmless)")),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/tokens/{token_id}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let token_id = path.into_inner();
    let row: Option<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT user_id, tenant_id FROM api_tokens WHERE id = $1")
            .bind(token_id)
            .fetch_optional(&state.db)
            .await?;
    let Some((owner, tenant_id)) = row else { return Err(ApiError::NotFound("token")) };
    let allowed = owner == caller.user_id
        || caller.is_admin()
        || match tenant_id {
            Some(t) => caller.role_in(&state.db, t).await? == Some(Role::Owner),
            None => false,
        };
    if !allowed {
        return Err(ApiError::NotFound("token"));
    }
    let mut tx = state.db.begin().await?;
    let revoked =
        sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(token_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if revoked > 0 {
        audit::record(
            &mut *tx,
            tenant_id,
            &Actor::from(&caller),
            "token.revoke",
            Some(token_id.to_string()),
            serde_json::json!({"owner": owner}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every token acting in the tenant, newest first (owners).
#[utoipa::path(
    tag = "tokens",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), PageQuery),
    responses((status = 200, description = "A page of tokens", body = Page<ApiToken>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/tokens")]
pub async fn list_tenant_tokens(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.tenant(&state.db, path.into_inner(), Role::Owner).await?;
    let ks = keyset::<(DateTime<Utc>, Uuid)>(&q)?;
    let (after_at, after_id) = ks.after.unzip();
    let rows: Vec<TokenRow> = sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens
          WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
          ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(scope.tenant_id())
    .bind(after_at)
    .bind(after_id)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let tokens = rows.into_iter().map(token).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(page(tokens, ks.limit, |t: &ApiToken| (t.created_at, t.id))))
}
