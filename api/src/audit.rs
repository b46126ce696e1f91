//! The audit log: who changed what, when and from where. Written in the same transaction as the
//! change it records, so the log and the data never disagree.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;

/// Who acted.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub token_id: Option<Uuid>,
    pub ip: Option<String>,
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Self {
        Actor {
            user_id: Some(c.user_id),
            username: Some(c.username.clone()),
            token_id: c.token_id(),
            ip: c.ip.clone(),
        }
    }
}

pub async fn record(
    db: impl PgExecutor<'_>,
    tenant_id: Option<Uuid>,
    actor: &Actor,
    action: &str,
    target: Option<String>,
    details: Value,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor_user_id, actor_username, actor_token_id, action, target, source_ip, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant_id)
    .bind(actor.user_id)
    .bind(&actor.username)
    .bind(actor.token_id)
    .bind(action)
    .bind(target)
    .bind(&actor.ip)
    .bind(details)
    .execute(db)
    .await?;
    Ok(())
}
