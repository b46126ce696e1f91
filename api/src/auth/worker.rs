//! Build workers as principals: a worker authenticates with its own credential
//! (`Authorization: Bearer petrelw_...`), never with a user's token, and may touch only the
//! builds it holds.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use petrel_wire::workers::WORKER_TOKEN_PREFIX;
use sqlx::PgPool;
use uuid::Uuid;

use super::TenantScope;
use super::secret::{random_secret, storage_hash};
use crate::audit::Actor;
use crate::error::ApiError;

/// An authenticated worker.
#[derive(Debug, Clone)]
pub struct WorkerPrincipal {
    pub id: Uuid,
    pub name: String,
    /// Tenant-private workers run their tenant's (and sub-tenants') builds only.
    pub tenant_id: Option<Uuid>,
    pub ip: Option<String>,
}

/// A new worker credential and what is stored of it.
pub fn new_credential() -> (String, Vec<u8>) {
    let credential = format!("{WORKER_TOKEN_PREFIX}{}", random_secret());
    let hash = storage_hash(&credential);
    (credential, hash)
}

/// The worker credential in a request, if it carries one (and not a user's token or session).
pub fn credential_in(req: &HttpRequest) -> Option<&str> {
    super::bearer_with_prefix(req, WORKER_TOKEN_PREFIX)
}

impl WorkerPrincipal {
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "UPDATE workers (authenticate)", db.system.name = "postgresql"))]
    pub async fn authenticate(db: &PgPool, credential: &str, ip: Option<String>) -> Result<Self, ApiError> {
        let row: Option<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
            "UPDATE workers SET last_seen_at = now()
              WHERE credential_sha256 = $1 AND revoked_at IS NULL
              RETURNING id, name, tenant_id",
        )
        .bind(storage_hash(credential))
        .fetch_optional(db)
        .await?;
        let (id, name, tenant_id) =
            row.ok_or(ApiError::Unauthenticated("the worker credential is invalid or revoked"))?;
        Ok(WorkerPrincipal { id, name, tenant_id, ip })
    }

    /// The scope of a build this worker holds (claimed, still running, not handed to another
    /// worker); 404 for any other build, so workers learn nothing of builds not theirs.
    pub async fn held_build(&self, db: &PgPool, build_id: Uuid) -> Result<TenantScope, ApiError> {
        let tenant_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT tenant_id FROM builds WHERE id = $1 AND worker_id = $2 AND status = 'running'",
        )
        .bind(build_id)
        .bind(self.id)
        .fetch_optional(db)
        .await?;
        let tenant_id = tenant_id.ok_or(ApiError::NotFound("build"))?;
        Ok(TenantScope { tenant_id, role: petrel_wire::identity::Role::Operator })
    }

    /// The scope for uploading the result of `build_id` (of job `job_id`): the build must be
    /// one this worker holds, or held until its lease lapsed and not claimed by another since
    /// (a late result is still taken), or (to retry a finalized upload) one it finished.
    pub async fn build_for_upload(
        &self,
        db: &PgPool,
        build_id: Uuid,
        job_id: Uuid,
        finalized: bool,
    ) -> Result<TenantScope, ApiError> {
        let row: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT tenant_id, status::text FROM builds WHERE id = $1 AND job_id = $2 AND worker_id = $3",
        )
        .bind(build_id)
        .bind(job_id)
        .bind(self.id)
        .fetch_optional(db)
        .await?;
        match row {
            None => Err(ApiError::NotFound("build")),
            Some((tenant_id, status)) if status == "running" || status == "queued" || finalized => {
                Ok(TenantScope { tenant_id, role: petrel_wire::identity::Role::Operator })
            }
            Some((_, status)) => Err(ApiError::conflict(
                "build-not-held",
                format!("the build is {status} and no longer this worker's: discard the result"),
            )),
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            user_id: None,
            username: Some(format!("worker:{}", self.name)),
            token_id: None,
            ip: self.ip.clone(),
        }
    }
}

impl FromRequest for WorkerPrincipal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = super::app_state(&req)?;
            let credential = credential_in(&req).ok_or(ApiError::Unauthenticated(
                "workers send their credential as `Authorization: Bearer petrelw_...`",
            ))?;
            let ip = super::client_ip(&req, state.config.trust_forwarded_for);
            let worker = WorkerPrincipal::authenticate(&state.db, credential, ip).await?;
            crate::otel::note_machine(Some(&worker.name), None);
            Ok(worker)
        })
    }
}
