//! Tenants, tokens, workers and agents.

use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use super::{Ctx, Page, body, paged};
use crate::error::CliError;
use crate::output::Column;

const TENANT: &[Column] =
    &[("ID", "/id"), ("NAME", "/name"), ("PARENT", "/parent_id"), ("MY ROLE", "/my_role")];
const TOKEN: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("TENANT", "/tenant_id"),
    ("ROLE", "/role"),
    ("ADMIN", "/admin"),
    ("EXPIRES", "/expires_at"),
    ("REVOKED", "/revoked_at"),
];
const WORKER: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("TENANT", "/tenant_id"),
    ("PLATFORM", "/platform"),
    ("RUNNING", "/running"),
    ("LAST SEEN", "/last_seen_at"),
    ("REVOKED", "/revoked"),
];

const ENROLLMENT: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("STATE", "/state"),
    ("CREATED", "/created_at"),
    ("EXPIRES", "/expires_at"),
    ("USED", "/used_at"),
];
const AGENT: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("REACHABLE", "/reachable"),
    ("DEPLOYMENTS", "/deployments"),
    ("LAST SEEN", "/last_seen_at"),
    ("REVOKED", "/revoked"),
];

#[derive(Subcommand)]
pub enum Tenant {
    /// Tenants you belong to (all of them for administrators).
    List(Page),
    Show {
        id: Uuid,
    },
    /// A top-level tenant (administrators) or a sub-tenant (`--parent`, its owners).
    Create {
        name: String,
        #[arg(long)]
        parent: Option<Uuid>,
    },
    Delete {
        id: Uuid,
    },
}

pub async fn tenant(ctx: &Ctx, command: Tenant) -> Result<(), CliError> {
    match command {
        Tenant::List(page) => {
            let list = paged!(ctx.api.list_tenants(), page).send().await?;
            ctx.out.list(&list.into_inner(), TENANT);
        }
        Tenant::Show { id } => {
            ctx.out.object(&ctx.api.get_tenant().tenant_id(id).send().await?.into_inner(), TENANT)
        }
        Tenant::Create { name, parent } => {
            let created = ctx
                .api
                .create_tenant()
                .body(body::<crate::generated::types::CreateTenant>(
                    json!({ "name": name, "parent_id": parent }),
                )?)
                .send()
                .await?
                .into_inner();
            ctx.out.done(&created, &format!("Created tenant {} ({})", created.name, created.id));
        }
        Tenant::Delete { id } => {
            ctx.api.delete_tenant().tenant_id(id).send().await?;
            ctx.out.done(&json!({ "deleted": id }), &format!("Deleted tenant {id}"));
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Token {
    /// Your tokens, or a tenant's (`--tenant`, its owners).
    List {
        #[arg(long)]
        tenant: Option<Uuid>,
        #[command(flatten)]
        page: Page,
    },
    /// A new token; its secret is printed once.
    Create {
        name: String,
        #[arg(long)]
        tenant: Option<Uuid>,
        /// viewer, operator or owner (no higher than your own).
        #[arg(long)]
        role: Option<String>,
        /// An administrator token (administrators only).
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    Revoke {
        id: Uuid,
    },
}

pub async fn token(ctx: &Ctx, command: Token) -> Result<(), CliError> {
    match command {
        Token::List { tenant: None, page } => {
            let list = paged!(ctx.api.list_my_tokens(), page).send().await?;
            ctx.out.list(&list.into_inner(), TOKEN);
        }
        Token::List { tenant: Some(tenant), page } => {
            let list = paged!(ctx.api.list_tenant_tokens().tenant_id(tenant), page).send().await?;
            ctx.out.list(&list.into_inner(), TOKEN);
        }
        Token::Create { name, tenant, role, admin, expires_in_days } => {
            let request = json!({
                "name": name, "tenant_id": tenant, "role": role, "admin": admin,
                "expires_in_days": expires_in_days,
            });
            let created = ctx
                .api
                .create_token()
                .body(body::<crate::generated::types::CreateToken>(request)?)
                .send()
                .await?;
            let created = created.into_inner();
            ctx.out.done(&created, &created.secret);
        }
        Token::Revoke { id } => {
            ctx.api.revoke_token().token_id(id).send().await?;
            ctx.out.done(&json!({ "revoked": id }), &format!("Revoked token {id}"));
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Worker {
    /// The shared pool (administrators) or a tenant's private workers (`--tenant`).
    List {
        #[arg(long)]
        tenant: Option<Uuid>,
        #[command(flatten)]
        page: Page,
    },
    /// Register a worker; its credential is printed once (give it to `petrel-worker`).
    Create {
        name: String,
        /// A tenant-private worker (tenant owners may register these).
        #[arg(long)]
        tenant: Option<Uuid>,
    },
    /// Revoke a worker's credential; what it held is queued again.
    Revoke { id: Uuid },
}

pub async fn worker(ctx: &Ctx, command: Worker) -> Result<(), CliError> {
    match command {
        Worker::List { tenant: None, page } => {
            let list = paged!(ctx.api.list_workers(), page).send().await?;
            ctx.out.list(&list.into_inner(), WORKER);
        }
        Worker::List { tenant: Some(tenant), page } => {
            let list = paged!(ctx.api.list_tenant_workers().tenant_id(tenant), page).send().await?;
            ctx.out.list(&list.into_inner(), WORKER);
        }
        Worker::Create { name, tenant } => {
            let request =
                body::<crate::generated::types::CreateWorker>(json!({ "name": name, "tenant_id": tenant }))?;
            let created = ctx.api.create_worker().body(request).send().await?.into_inner();
            ctx.out.done(&created, &created.credential);
        }
        Worker::Revoke { id } => {
            ctx.api.revoke_worker().worker_id(id).send().await?;
            ctx.out.done(&json!({ "revoked": id }), &format!("Revoked worker {id}"));
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Agent {
    List(Page),
    /// A one-time enrollment token for a new agent (`petrel-agent enroll`); printed once.
    Enroll {
        name: String,
    },
    /// Revoke an agent's credential.
    Revoke {
        id: Uuid,
    },
    /// Enrollment tokens, newest first, with their state (never the secret).
    Enrollments(Page),
    /// Revoke an enrollment token no agent used yet.
    RevokeEnrollment {
        id: Uuid,
    },
}

pub async fn agent(ctx: &Ctx, command: Agent) -> Result<(), CliError> {
    match command {
        Agent::List(page) => {
            let list = paged!(ctx.api.list_agents(), page).send().await?;
            ctx.out.list(&list.into_inner(), AGENT);
        }
        Agent::Enroll { name } => {
            let request = body::<crate::generated::types::CreateEnrollment>(json!({ "name": name }))?;
            let created = ctx.api.create_enrollment().body(request).send().await?.into_inner();
            ctx.out.done(&created, &created.token);
        }
        Agent::Revoke { id } => {
            ctx.api.revoke_agent().agent_id(id).send().await?;
            ctx.out.done(&json!({ "revoked": id }), &format!("Revoked agent {id}"));
        }
        Agent::Enrollments(page) => {
            let list = paged!(ctx.api.list_enrollments(), page).send().await?;
            ctx.out.list(&list.into_inner(), ENROLLMENT);
        }
        Agent::RevokeEnrollment { id } => {
            ctx.api.revoke_enrollment().enrollment_id(id).send().await?;
            ctx.out.done(&json!({ "revoked": id }), &format!("Revoked enrollment token {id}"));
        }
    }
    Ok(())
}
