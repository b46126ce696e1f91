//! Sign-in, sign-out, and the caller's own account.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use petrel_wire::SESSION_COOKIE;
use petrel_wire::identity::{AuthKind, ChangePassword, LoginRequest, Me, Membership, User};
use sqlx::PgPool;
use uuid::Uuid;

use super::db_role;
use crate::audit::{self, Actor};
use crate::auth::{Caller, Via, client_ip, password, session};
use crate::error::ApiError;
use crate::extract::Json;
use crate::server::AppState;
use crate::validate;

/// Sign in with a username and password. Sets the `petrel_session` cookie (HttpOnly, Secure,
/// SameSite=Strict) and answers who you are, with the CSRF token to send on changes. Failed
/// attempts are limited per account and per client address.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = Me),
        (status = 401, description = "Wrong username or password", body = petrel_wire::Problem,
         content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = petrel_wire::Problem,
         content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, state.config.trust_forwarded_for).unwrap_or_else(|| "unknown".into());
    let limits = &state.config.login_limits;
    let window = limits.window.as_secs_f64();
    let (user_failures, ip_failures): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM login_attempts
                  WHERE username = $1 AND NOT succeeded AND at > now() - make_interval(secs => $3)
                    AND at > COALESCE((SELECT max(at) FROM login_attempts WHERE username = $1 AND succeeded), '-infinity')),
                (SELECT count(*) FROM login_attempts
                  WHERE source_ip = $2 AND NOT succeeded AND at > now() - make_interval(secs => $3))",
    )
    .bind(&body.username)
    .bind(&ip)
    .bind(window)
    .fetch_one(&state.db)
    .await?;
    if user_failures >= i64::from(limits.max_failures_per_user)
        || ip_failures >= i64::from(limits.max_failures_per_ip)
    {
        return Err(ApiError::TooManyRequests {
            detail: "too many failed sign-in attempts; wait before trying again".into(),
            retry_after_secs: limits.window.as_secs(),
        });
    }
    let user: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1")
            .bind(&body.username)
            .fetch_optional(&state.db)
            .await?;
    let verified = password::verify(body.password, user.as_ref().map(|(_, h)| h.clone())).await;
    sqlx::query("INSERT INTO login_attempts (username, source_ip, succeeded) VALUES ($1, $2, $3)")
        .bind(&body.username)
        .bind(&ip)
        .bind(verified)
        .execute(&state.db)
        .await?;
    let actor = Actor {
        user_id: user.as_ref().map(|(id, _)| *id),
        username: Some(body.username.clone()),
        token_id: None,
        ip: Some(ip.clone()),
    };
    let Some((user_id, _)) = user.filter(|_| verified) else {
        if actor.user_id.is_some() {
            audit::record(
                &state.db,
                None,
                &actor,
                "session.login_failed",
                actor.user_id.map(|u| u.to_string()),
                serde_json::json!({}),
            )
            .await?;
        }
        return Err(ApiError::Unauthenticated("wrong username or password"));
    };
    let new = session::create(&state.db, user_id, state.config.session_ttl, Some(&ip)).await?;
    audit::record(&state.db, None, &actor, "session.login", Some(user_id.to_string()), serde_json::json!({}))
        .await?;
    let who =
        load_me(&state.db, user_id, AuthKind::Session, Some(new.csrf_token), Some(new.expires_at)).await?;
    let cookie = Cookie::build(SESSION_COOKIE, new.cookie)
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(who))
}

/// Sign out: ends this session and clears its cookie.
#[utoipa::path(
    tag = "auth",
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "Called with an API token, not a session (revoke tokens instead)", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("session" = []))
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let Via::Session { .. } = caller.via else {
        return Err(ApiError::BadRequest {
            code: "not-a-session",
            detail: "this request used an API token; revoke it with DELETE /api/v1/tokens/{id} instead"
                .into(),
            errors: vec![],
        });
    };
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        session::delete(&state.db, cookie.value()).await?;
    }
    audit::record(
        &state.db,
        None,
        &Actor::from(&caller),
        "session.logout",
        Some(caller.user_id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    let mut gone = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// Who you are: your account, your memberships, and for sessions the CSRF token.
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "The caller", body = Me)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let (kind, csrf, expires) = match &caller.via {
        Via::Session { csrf_token, expires_at } => {
            (AuthKind::Session, Some(csrf_token.clone()), Some(*expires_at))
        }
        Via::Token(t) => (AuthKind::Token, None, Some(t.expires_at)),
    };
    Ok(HttpResponse::Ok().json(load_me(&state.db, caller.user_id, kind, csrf, expires).await?))
}

/// Change your password. Ends every other session of yours.
#[utoipa::path(
    tag = "auth",
    request_body = ChangePassword,
    responses((status = 204, description = "Changed")),
    security(("session" = []))
)]
#[put("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    Json(body): Json<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    if !matches!(caller.via, Via::Session { .. }) {
        return Err(ApiError::forbidden(
            "session-required",
            "passwords are changed from a signed-in session",
        ));
    }
    validate::password(&body.new_password).map_err(|m| ApiError::field("new_password", m))?;
    let current: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(caller.user_id)
        .fetch_one(&state.db)
        .await?;
    if !password::verify(body.current_password, Some(current)).await {
        return Err(ApiError::field("current_password", "is not your current password"));
    }
    let hash = password::hash(body.new_password).await.map_err(ApiError::internal)?;
    let keep = req.cookie(SESSION_COOKIE).map(|c| crate::auth::secret::storage_hash(c.value()));
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(caller.user_id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash IS DISTINCT FROM $2")
        .bind(caller.user_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        None,
        &Actor::from(&caller),
        "user.password_change",
        Some(caller.user_id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn load_user(db: &PgPool, user_id: Uuid) -> Result<Option<User>, ApiError> {
    let row: Option<(Uuid, String, bool, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, username, is_admin, created_at FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, username, is_admin, created_at)| User { id, username, is_admin, created_at }))
}

async fn load_me(
    db: &PgPool,
    user_id: Uuid,
    auth: AuthKind,
    csrf_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Me, ApiError> {
    let user =
        load_user(db, user_id).await?.ok_or(ApiError::Unauthenticated("the account no longer exists"))?;
    let rows: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT t.id, t.name, m.role::text, m.created_at
           FROM memberships m JOIN tenants t ON t.id = m.tenant_id
          WHERE m.user_id = $1 ORDER BY t.name, t.id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    let memberships = rows
        .into_iter()
        .map(|(tenant_id, tenant_name, role, created_at)| {
            Ok(Membership {
                tenant_id,
                tenant_name,
                user_id,
                username: user.username.clone(),
                role: db_role(&role)?,
                created_at,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Me { user, memberships, auth, csrf_token, expires_at })
}
