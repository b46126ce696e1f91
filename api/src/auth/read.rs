//! Read access to jobs and builds: public jobs are readable by anyone (signed in or not);
//! private ones by the members of their tenant and its ancestors (and administrators).
//! Queries take a [`ReadScope`] and filter with [`ReadScope::SQL`], so no query can forget it.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use petrel_wire::SESSION_COOKIE;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Caller, Via};
use crate::error::ApiError;

/// The caller, if the request carries credentials; invalid credentials are still a 401.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let anonymous =
            req.headers().get(header::AUTHORIZATION).is_none() && req.cookie(SESSION_COOKIE).is_none();
        if anonymous {
            return Box::pin(async { Ok(MaybeCaller(None)) });
        }
        let caller = Caller::from_request(req, payload);
        Box::pin(async move { caller.await.map(|c| MaybeCaller(Some(c))) })
    }
}

/// Which tenants' private rows the caller may read.
#[derive(Debug, Clone)]
pub struct ReadScope {
    all: bool,
    tenants: Vec<Uuid>,
}

impl ReadScope {
    /// The condition every read query of jobs (aliased `j`) includes, with `$1` = all and
    /// `$2` = tenant ids (bind them with [`ReadScope::bind`]'s values).
    pub const SQL: &'static str = "(j.visibility = 'public' OR $1::boolean OR j.tenant_id = ANY($2::uuid[]))";

    pub fn anonymous() -> ReadScope {
        ReadScope { all: false, tenants: Vec::new() }
    }

    pub async fn of(caller: Option<&Caller>, db: &PgPool) -> Result<ReadScope, ApiError> {
        let Some(caller) = caller else { return Ok(ReadScope::anonymous()) };
        if caller.is_admin() {
            return Ok(ReadScope { all: true, tenants: Vec::new() });
        }
        Ok(ReadScope { all: false, tenants: caller.readable_tenants(db).await? })
    }

    pub fn all(&self) -> bool {
        self.all
    }

    pub fn tenants(&self) -> &[Uuid] {
        &self.tenants
    }

    pub fn can_read_tenant(&self, tenant: Uuid) -> bool {
        self.all || self.tenants.contains(&tenant)
    }
}

/// What a member of one tenant reads there (the tenant's own rows, private or public).
impl From<&super::TenantScope> for ReadScope {
    fn from(tenant: &super::TenantScope) -> ReadScope {
        ReadScope { all: false, tenants: vec![tenant.tenant_id()] }
    }
}

impl Caller {
    /// Every tenant where the caller holds at least the viewer role (memberships inherited
    /// down the tree; a token confined to its subtree).
    pub async fn readable_tenants(&self, db: &PgPool) -> Result<Vec<Uuid>, ApiError> {
        let scope = match &self.via {
            Via::Token(t) => t.tenant_id,
            Via::Session { .. } => None,
        };
        if self.user_is_admin
            && let Some(scope) = scope
        {
            // An administrator's tenant token reads that tenant's subtree (see `role_in`).
            return Ok(sqlx::query_scalar(
                "WITH RECURSIVE scope(id) AS (
                     SELECT id FROM tenants WHERE id = $1
                     UNION
                     SELECT t.id FROM tenants t JOIN scope s ON t.parent_id = s.id)
                 SELECT id FROM scope",
            )
            .bind(scope)
            .fetch_all(db)
            .await?);
        }
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE mine(id) AS (
                 SELECT tenant_id FROM memberships WHERE user_id = $1
                 UNION
                 SELECT t.id FROM tenants t JOIN mine m ON t.parent_id = m.id),
             scope(id) AS (
                 SELECT id FROM tenants WHERE id = $2
                 UNION
                 SELECT t.id FROM tenants t JOIN scope s ON t.parent_id = s.id)
             SELECT id FROM mine WHERE $2::uuid IS NULL OR id IN (SELECT id FROM scope)",
        )
        .bind(self.user_id)
        .bind(scope)
        .fetch_all(db)
        .await?)
    }
}
