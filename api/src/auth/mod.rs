//! Who is calling, and what they may touch.
//!
//! Every authenticated handler takes a [`Caller`]. Tenant-owned data is reached only through a
//! [`TenantScope`], which only [`Caller::tenant`] can make: the data-access functions take a scope,
//! so a query that forgets the caller's tenant does not compile.

pub mod agent;
pub mod password;
pub mod read;
pub mod secret;
pub mod session;
pub mod worker;

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use petrel_wire::identity::Role;
use petrel_wire::{CSRF_HEADER, SESSION_COOKIE, TOKEN_PREFIX};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;
use crate::server::AppState;

/// An authenticated request's principal.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub username: String,
    pub(crate) user_is_admin: bool,
    pub via: Via,
    /// The client's address, for the audit log and rate limits.
    pub ip: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Via {
    Session { csrf_token: String, expires_at: DateTime<Utc> },
    Token(TokenGrant),
}

/// What an API token allows.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub role: Option<Role>,
    pub admin: bool,
    pub expires_at: DateTime<Utc>,
}

/// Proof that the caller may act in one tenant with at least some role.
#[derive(Debug, Clone, Copy)]
pub struct TenantScope {
    tenant_id: Uuid,
    role: Role,
}

impl TenantScope {
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
}

impl Caller {
    /// Global administrator rights: an administrator's session, or an administrator token.
    pub fn is_admin(&self) -> bool {
        self.user_is_admin
            && match &self.via {
                Via::Session { .. } => true,
                Via::Token(t) => t.admin,
            }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("admin-required", "this needs administrator rights"))
        }
    }

    pub fn token_id(&self) -> Option<Uuid> {
        match &self.via {
            Via::Token(t) => Some(t.id),
            Via::Session { .. } => None,
        }
    }

    /// The caller's effective role in `tenant_id`, or `None` when the tenant does not exist or
    /// is out of the caller's reach. Memberships are inherited down the tenant tree; a token
    /// is confined to its tenant's subtree and to its own role.
    pub async fn role_in(&self, db: &PgPool, tenant_id: Uuid) -> Result<Option<Role>, ApiError> {
        let row: Option<(Vec<Uuid>, Option<String>)> = sqlx::query_as(
            "WITH RECURSIVE chain(id, parent_id) AS (
                 SELECT id, parent_id FROM tenants WHERE id = $1
                 UNION ALL
                 SELECT t.id, t.parent_id FROM tenants t JOIN chain c ON t.id = c.parent_id)
             SELECT array_agg(c.id),
                    (SELECT max(m.role)::text FROM memberships m
                      WHERE m.user_id = $2 AND m.tenant_id IN (SELECT id FROM chain))
               FROM chain c HAVING count(*) > 0",
        )
        .bind(tenant_id)
        .bind(self.user_id)
        .fetch_optional(db)
        .await?;
        let Some((chain, member_role)) = row else { return Ok(None) };
        if self.is_admin() {
            return Ok(Some(Role::Owner));
        }
        let member_role = member_role.as_deref().and_then(Role::parse);
        // An administrator holds the owner role everywhere, so a tenant token an administrator
        // made acts in that tenant (confined to it and to its own role) like anyone else's.
        let held = if self.user_is_admin { Some(Role::Owner) } else { member_role };
        Ok(match &self.via {
            Via::Session { .. } => member_role,
            Via::Token(grant) => match (grant.tenant_id, grant.role, held) {
                (Some(scope), Some(granted), Some(held)) if chain.contains(&scope) => Some(granted.min(held)),
                _ => None,
            },
        })
    }

    /// A scope for `tenant_id` if the caller holds at least `min` there. Tenants out of reach
    /// answer 404 exactly like tenants that do not exist.
    pub async fn tenant(&self, db: &PgPool, tenant_id: Uuid, min: Role) -> Result<TenantScope, ApiError> {
        match self.role_in(db, tenant_id).await? {
            None => Err(ApiError::NotFound("tenant")),
            Some(role) if role < min => Err(ApiError::forbidden(
                "insufficient-role",
                format!("this needs the {} role in the tenant; you have {}", min.as_str(), role.as_str()),
            )),
            Some(role) => {
                crate::otel::note_tenant(tenant_id);
                Ok(TenantScope { tenant_id, role })
            }
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let ip = client_ip(&req, state.config.trust_forwarded_for);
            if let Some(value) = req.headers().get(header::AUTHORIZATION) {
                let secret = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim)
                    .filter(|s| s.starts_with(TOKEN_PREFIX))
                    .ok_or(ApiError::Unauthenticated(
                        "the Authorization header must be `Bearer petrel_...`",
                    ))?;
                let caller = session::caller_from_token(&state.db, secret, ip)
                    .await?
                    .ok_or(ApiError::Unauthenticated("the API token is invalid, expired or revoked"))?;
                crate::otel::note_user(caller.user_id, caller.token_id());
                return Ok(caller);
            }
            let Some(cookie) = req.cookie(SESSION_COOKIE) else {
                return Err(ApiError::Unauthenticated(
                    "sign in, or send an API token as `Authorization: Bearer ...`",
                ));
            };
            let caller =
                session::caller_from_session(&state.db, cookie.value(), state.config.session_ttl, ip)
                    .await?
                    .ok_or(ApiError::Unauthenticated("the session has expired; sign in again"))?;
            crate::otel::note_user(caller.user_id, None);
            if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
                check_csrf(&req, &caller)?;
            }
            Ok(caller)
        })
    }
}

/// The application state, for extractors.
pub(crate) fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))
}

/// The credential in `Authorization: Bearer <prefix>...`, if the request carries one of that kind.
pub(crate) fn bearer_with_prefix<'a>(req: &'a HttpRequest, prefix: &str) -> Option<&'a str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|s| s.starts_with(prefix))
}

/// State-changing requests made with the session cookie must echo the session's CSRF token in a
/// header, which a cross-site form or image cannot set.
fn check_csrf(req: &HttpRequest, caller: &Caller) -> Result<(), ApiError> {
    let Via::Session { csrf_token, .. } = &caller.via else { return Ok(()) };
    let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if secret::constant_time_eq(sent.as_bytes(), csrf_token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "csrf-failed",
            "state-changing requests with a session cookie need the X-CSRF-Token header from GET /api/v1/me",
        ))
    }
}

pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<String> {
    let info = req.connection_info();
    let ip = if trust_forwarded_for { info.realip_remote_addr() } else { info.peer_addr() };
    ip.map(|s| {
        // realip_remote_addr may carry a port; keep only the address.
        s.parse::<std::net::SocketAddr>().map(|a| a.ip().to_string()).unwrap_or_else(|_| s.to_string())
    })
}
