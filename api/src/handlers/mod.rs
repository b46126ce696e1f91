//! Request handlers, one module per resource. Each handler carries its `utoipa::path`.

pub mod agent_protocol;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod builds;
pub mod compare;
pub mod compat;
pub mod deployments;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod members;
pub mod quotas;
pub mod reproducibility;
pub mod runs;
pub mod templates;
pub mod tenants;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod visualizations;
pub mod worker_protocol;
pub mod workers;

use petrel_wire::identity::Role;

use crate::error::ApiError;

/// A role as the database spells it (`member_role::text`).
pub(crate) fn db_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| ApiError::internal(format!("unknown role {s:?} in the database")))
}

// Raw bytes in a request or response body: `{"type": "string", "format": "binary"}`, which
// generated clients turn into a byte stream (a `Vec<u8>` would be described as an array of
// integers).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary, description = "Raw bytes")]
pub struct Binary(#[allow(dead_code)] Vec<u8>);
