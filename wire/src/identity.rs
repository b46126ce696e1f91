//! Users, tenants, memberships, sessions and API tokens.

use crate::time::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A member's role in a tenant. Roles are ordered: `viewer` < `operator` < `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything of the tenant.
    Viewer,
    /// Also builds and deploys.
    Operator,
    /// Also manages members, tokens and sub-tenants.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    /// Global administrators manage tenants, users, workers and agents.
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "alice", "password": "correct horse battery", "is_admin": false}))]
pub struct CreateUser {
    /// 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub username: String,
    /// 10 to 1024 characters.
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "correct horse battery", "new_password": "a longer better passphrase"}))]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// A tenant. Tenants form a tree: a tenant may have sub-tenants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The caller's effective role here: inherited down the tree, capped by an API token's role;
    /// `owner` for administrators.
    pub my_role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "robur", "parent_id": null}))]
pub struct CreateTenant {
    /// 1 to 63 characters of `a-z 0-9 -`, not starting with `-`; unique among its siblings.
    pub name: String,
    /// Create a sub-tenant of this tenant (owners may do so); top-level tenants are created by
    /// administrators.
    #[serde(default)]
    pub parent_id: Option<Uuid>,
}

/// A user's membership in a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Membership {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub user_id: Uuid,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "alice", "role": "operator"}))]
pub struct AddMember {
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "operator"}))]
pub struct SetMemberRole {
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "admin", "password": "the password printed at first start"}))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Who the caller is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub memberships: Vec<Membership>,
    /// How this request was authenticated.
    pub auth: AuthKind,
    /// Send this in the `X-CSRF-Token` header with every state-changing request made with the
    /// session cookie. Present for sessions only.
    pub csrf_token: Option<String>,
    /// When the session or token expires.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    Session,
    Token,
}

/// An API token's metadata (the secret is shown only once, at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    /// The tenant (and its sub-tenants) the token acts in; absent for administrator tokens.
    pub tenant_id: Option<Uuid>,
    /// The highest role the token acts with in its tenant.
    pub role: Option<Role>,
    /// Administrator tokens act with the creating administrator's global rights.
    pub admin: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "ci", "tenant_id": "6f1c1c9e-2f0e-4a8e-9d7e-3b9f1a2c4d5e", "role": "operator", "expires_in_days": 90}))]
pub struct CreateToken {
    /// 1 to 100 characters, for people.
    pub name: String,
    /// Required unless `admin` is true.
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
    /// No higher than the creator's own role in the tenant. Required unless `admin` is true.
    #[serde(default)]
    pub role: Option<Role>,
    /// Only administrators may create administrator tokens.
    #[serde(default)]
    pub admin: bool,
    /// 1 to 366 days (default 90).
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

/// A new token; `secret` is shown this once and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: ApiToken,
    /// Send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

/// Answer of `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub database: bool,
    pub migrations: bool,
    /// The newest applied migration version.
    pub schema_version: Option<i64>,
    /// Whether this replica is the one that schedules builds and watches worker leases now.
    pub scheduler: bool,
}
