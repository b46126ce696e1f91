//! KVM agents as principals: an agent authenticates with the credential it got at enrollment
//! (`Authorization: Bearer petrela_...`) and may touch only the deployments assigned to it.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use petrel_wire::deployments::AGENT_TOKEN_PREFIX;
use uuid::Uuid;

use super::secret::storage_hash;
use crate::error::ApiError;
use crate::server::AppState;

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
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal("application state missing"))?
                .clone();
            let credential = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|s| s.starts_with(AGENT_TOKEN_PREFIX))
                .ok_or(ApiError::Unauthenticated(
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
            Ok(AgentPrincipal { id, name })
        })
    }
}
