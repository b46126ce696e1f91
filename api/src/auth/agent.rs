//! KVM agents as principals: an agent authenticates with the credential it got at enrollment
//! (`Authorization: Bearer petrela_...`) and may touch only the deployments assigned to it.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use petrel_wire::deployments::AGENT_TOKEN_PREFIX;
use uuid::Uuid;

use super::secret::storage_hash;
use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct AgentPrincipal {
    pub id: Uuid,
    pub name: String,
}

impl FromRequest for AgentPrincipal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = super::app_state(&req)?;
            let credential =
                super::bearer_with_prefix(&req, AGENT_TOKEN_PREFIX).ok_or(ApiError::Unauthenticated(
                    "agents send their credential as `Authorization: Bearer petrela_...`",
                ))?;
            // Every request is a sign of life.
            let row: Option<(Uuid, String)> = sqlx::query_as(
                "UPDATE agents SET last_seen_at = now() WHERE credential_sha256 = $1 AND revoked_at IS NULL
                 RETURNING id, name",
            )
            .bind(storage_hash(credential))
            .fetch_optional(&state.db)
            .await?;
            let (id, name) =
                row.ok_or(ApiError::Unauthenticated("the agent credential is invalid or revoked"))?;
            crate::otel::note_machine(None, Some(&name));
            Ok(AgentPrincipal { id, name })
        })
    }
}
