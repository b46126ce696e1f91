//! User accounts. Administrators create and list them; everyone may read their own.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use petrel_wire::identity::{CreateUser, User};
use petrel_wire::page::PageQuery;
use petrel_wire::{FieldError, Page};
use uuid::Uuid;

use super::auth::load_user;
use crate::audit::{self, Actor};
use crate::auth::{Caller, password};
use crate::error::{ApiError, is_unique_violation};
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;
use crate::validate;

/// List users, by username (administrators).
#[utoipa::path(
    tag = "users",
    params(PageQuery),
    responses((status = 200, description = "A page of users", body = Page<User>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let ks = keyset::<String>(&q)?;
    let rows: Vec<(Uuid, String, bool, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, username, is_admin, created_at FROM users
          WHERE $1::text IS NULL OR username > $1 ORDER BY username LIMIT $2",
    )
    .bind(&ks.after)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let users = rows
        .into_iter()
        .map(|(id, username, is_admin, created_at)| User { id, username, is_admin, created_at })
        .collect();
    Ok(HttpResponse::Ok().json(page(users, ks.limit, |u: &User| u.username.clone())))
}

/// Create a user (administrators).
#[utoipa::path(
    tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 409, description = "The username is taken", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    Json(body): Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let mut errors = Vec::new();
    if let Err(m) = validate::username(&body.username) {
        errors.push(FieldError::new("username", m));
    }
    if let Err(m) = validate::password(&body.password) {
        errors.push(FieldError::new("password", m));
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let hash = password::hash(body.password).await.map_err(ApiError::internal)?;
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    let created: (DateTime<Utc>,) = sqlx::query_as(
        "INSERT INTO users (id, username, password_hash, is_admin) VALUES ($1, $2, $3, $4) RETURNING created_at",
    )
    .bind(id)
    .bind(&body.username)
    .bind(hash)
    .bind(body.is_admin)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "users_username_key") {
            ApiError::conflict("username-taken", format!("the username {:?} is taken", body.username))
        } else {
            e.into()
        }
    })?;
    audit::record(
        &mut *tx,
        None,
        &Actor::from(&caller),
        "user.create",
        Some(id.to_string()),
        serde_json::json!({"username": body.username, "is_admin": body.is_admin}),
    )
    .await?;
    tx.commit().await?;
    let user = User { id, username: body.username, is_admin: body.is_admin, created_at: created.0 };
    Ok(HttpResponse::Created().json(user))
}

/// One user: yourself, or anyone for administrators.
#[utoipa::path(
    tag = "users",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "The user", body = User)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/users/{user_id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user_id = path.into_inner();
    if user_id != caller.user_id && !caller.is_admin() {
        return Err(ApiError::NotFound("user"));
    }
    let user = load_user(&state.db, user_id).await?.ok_or(ApiError::NotFound("user"))?;
    Ok(HttpResponse::Ok().json(user))
}
