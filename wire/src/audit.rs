//! The audit log.

use crate::time::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who changed what, when and from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The tenant the change belongs to; absent for global events (users, tenants' creation).
    pub tenant_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub actor_username: Option<String>,
    /// Set when the change was made with an API token.
    pub actor_token_id: Option<Uuid>,
    /// A dotted verb such as `token.create` or `membership.delete`.
    pub action: String,
    /// What was changed, e.g. the token's or user's id.
    pub target: Option<String>,
    /// The client's address.
    pub source_ip: Option<String>,
    #[schema(value_type = Object)]
    #[cfg(feature = "full")]
    pub details: serde_json::Value,
    /// The same JSON as text (see `lean`).
    #[schema(value_type = Object)]
    #[cfg(not(feature = "full"))]
    pub details: crate::lean::RawJson,
}
