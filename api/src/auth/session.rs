//! Browser sessions and API-token look-ups.

use std::time::Duration;

use chrono::{DateTime, Utc};
use petrel_wire::identity::Role;
use sqlx::PgPool;
use uuid::Uuid;

use super::secret::{random_secret, storage_hash};
use super::{Caller, TokenGrant, Via};
use crate::error::ApiError;

/// Activity refreshes `last_seen_at` and the expiry at most this often, not on every request.
const TOUCH_INTERVAL_SECS: i64 = 60;

pub struct NewSession {
    /// The cookie value (only its hash is stored).
    pub cookie: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn create(
    db: &PgPool,
    user_id: Uuid,
    ttl: Duration,
    ip: Option<&str>,
) -> Result<NewSession, ApiError> {
    let cookie = random_secret();
    let csrf_token = random_secret();
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, expires_at, source_ip)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
         RETURNING expires_at",
    )
    .bind(storage_hash(&cookie))
    .bind(user_id)
    .bind(&csrf_token)
    .bind(ttl.as_secs() as f64)
    .bind(ip)
    .fetch_one(db)
    .await?;
    // Expired sessions are of no use to anyone; sweep them while we are here.
    sqlx::query("DELETE FROM sessions WHERE expires_at < now() - interval '1 day'").execute(db).await?;
    Ok(NewSession { cookie, csrf_token, expires_at })
}

pub async fn delete(db: &PgPool, cookie: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(storage_hash(cookie)).execute(db).await?;
    Ok(())
}

#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "SELECT sessions", db.system.name = "postgresql"))]
pub async fn caller_from_session(
    db: &PgPool,
    cookie: &str,
    ttl: Duration,
    ip: Option<String>,
) -> Result<Option<Caller>, ApiError> {
    let row: Option<(Uuid, String, bool, String, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE sessions s
            SET last_seen_at = now(), expires_at = now() + make_interval(secs => $2)
           FROM users u
          WHERE s.id_hash = $1 AND u.id = s.user_id AND s.expires_at > now()
            AND s.last_seen_at < now() - make_interval(secs => $3)
         RETURNING u.id, u.username, u.is_admin, s.csrf_token, s.expires_at",
    )
    .bind(storage_hash(cookie))
    .bind(ttl.as_secs() as f64)
    .bind(TOUCH_INTERVAL_SECS as f64)
    .fetch_optional(db)
    .await?;
    let row = match row {
        Some(row) => Some(row),
        // Seen recently (or not at all): a plain read.
        None => {
            sqlx::query_as(
                "SELECT u.id, u.username, u.is_admin, s.csrf_token, s.expires_at
                   FROM sessions s JOIN users u ON u.id = s.user_id
                  WHERE s.id_hash = $1 AND s.expires_at > now()",
            )
            .bind(storage_hash(cookie))
            .fetch_optional(db)
            .await?
        }
    };
    Ok(row.map(|(user_id, username, is_admin, csrf_token, expires_at)| Caller {
        user_id,
        username,
        user_is_admin: is_admin,
        via: Via::Session { csrf_token, expires_at },
        ip,
    }))
}

type TokenRow = (Uuid, String, bool, Uuid, Option<Uuid>, Option<String>, bool, DateTime<Utc>);

#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "SELECT api_tokens", db.system.name = "postgresql"))]
pub async fn caller_from_token(
    db: &PgPool,
    secret: &str,
    ip: Option<String>,
) -> Result<Option<Caller>, ApiError> {
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT u.id, u.username, u.is_admin, t.id, t.tenant_id, t.role::text, t.admin, t.expires_at
           FROM api_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.secret_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()",
    )
    .bind(storage_hash(secret))
    .fetch_optional(db)
    .await?;
    let Some((user_id, username, is_admin, token_id, tenant_id, role, admin, expires_at)) = row else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = now()
          WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
    )
    .bind(token_id)
    .bind(TOUCH_INTERVAL_SECS as f64)
    .execute(db)
    .await?;
    Ok(Some(Caller {
        user_id,
        username,
        user_is_admin: is_admin,
        via: Via::Token(TokenGrant {
            id: token_id,
            tenant_id,
            role: role.as_deref().and_then(Role::parse),
            admin,
            expires_at,
        }),
        ip,
    }))
}
