//! The role matrix: every route of the API, called by every kind of principal (anonymous,
//! viewer, operator, owner, another tenant's owner, the owners of a sub-tenant and of its
//! sibling, administrator, a revoked token, an expired session), answers exactly as the roles
//! say. A route missing from this table fails the test, so new routes must be added here.
//!
//! It is also the isolation test: four tenants (A, its sub-tenants A1 and A2, and B) each hold a
//! full set of private objects, and no response to a caller who may not see a tenant contains
//! anything naming that tenant's objects; where the caller named one itself, the answer is the
//! one a made-up id gets. Every list operation of the OpenAPI document answers each principal
//! exactly as it did before the objects it may not see were made.

use std::collections::{BTreeMap, BTreeSet};

use petrel_tests::client::Resp;
use petrel_tests::{Api, Client, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    Viewer,
    Operator,
    Owner,
    OtherTenantOwner,
    Admin,
    /// tenant A's owner's API token, revoked.
    RevokedToken,
    /// tenant A's owner's session, expired.
    ExpiredSession,
    /// The owner of A1, a sub-tenant of A.
    SubTenantOwner,
    /// The owner of A2, A1's sibling.
    SiblingOwner,
}

const EVERYONE: [Who; 10] = [
    Who::Anonymous,
    Who::Viewer,
    Who::Operator,
    Who::Owner,
    Who::OtherTenantOwner,
    Who::Admin,
    Who::RevokedToken,
    Who::ExpiredSession,
    Who::SubTenantOwner,
    Who::SiblingOwner,
];

/// The four tenants holding objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tenant {
    A,
    /// A sub-tenant of A (the `SubTenantOwner`'s).
    A1,
    /// A1's sibling (the `SiblingOwner`'s).
    A2,
    /// Another top-level tenant (the `OtherTenantOwner`'s).
    B,
}

/// Whether `who` may see `tenant`'s private objects: members see their tenant's subtree.
fn sees(who: Who, tenant: Tenant) -> bool {
    match who {
        Who::Admin => true,
        Who::Viewer | Who::Operator | Who::Owner => tenant != Tenant::B,
        Who::OtherTenantOwner => tenant == Tenant::B,
        Who::SubTenantOwner => tenant == Tenant::A1,
        Who::SiblingOwner => tenant == Tenant::A2,
        Who::Anonymous | Who::RevokedToken | Who::ExpiredSession => false,
    }
}

/// Callers who may see no object of the target tenant: they are answered as strangers.
fn stranger(who: Who) -> bool {
    matches!(who, Who::OtherTenantOwner | Who::SubTenantOwner | Who::SiblingOwner)
}

#[derive(Clone, Copy, Debug)]
enum Need {
    AnyUser,
    Admin,
    /// At least this role in the target tenant (administrators pass, strangers get 404).
    Role(u8),
    /// The target is the target tenant's owner's own account.
    SelfOrAdmin,
    /// The target is a token created by the administrator for the target tenant.
    TokenOfTenantOwner,
    /// Readable without signing in (public lists).
    Public,
    /// A private object of the target tenant read through a route open to anonymous callers:
    /// those without access get 404, never 401.
    ReadPrivate,
    /// The worker protocol: a worker credential, never a user's session or token
    /// (tests/api/workers.rs covers workers themselves).
    Worker,
    /// The agent protocol: an agent credential (tests/api/deployments.rs covers agents).
    Agent,
    /// A top-level tenant's quota: administrators only; members see 403, others 404.
    QuotaSetter,
}

/// One tenant's private objects, made once and reused by every row (rows that destroy
/// something make their own victim).
struct Objects {
    tenant: Uuid,
    /// Its owner and a viewer: users of this tenant only.
    owner: Uuid,
    viewer: Uuid,
    job: Uuid,
    /// A job with a recipe (for "run now").
    job_recipe: Uuid,
    /// An uploaded, finished build with a main binary and an opam switch.
    build: Uuid,
    sha: String,
    /// Unique strings naming the tenant's objects and its members: ids, names, SHA-256s.
    secrets: Vec<String>,
    /// The tenant's own id and name, which are part of its sub-tenants' own records (their
    /// `parent_id`, their jobs' qualified names).
    identity: Vec<String>,
}

struct Ctx {
    _server: TestServer,
    db: sqlx::PgPool,
    admin: Client,
    a: Objects,
    a1: Objects,
    a2: Objects,
    b: Objects,
}

impl Ctx {
    fn tenants(&self) -> [(Tenant, &Objects); 4] {
        [(Tenant::A, &self.a), (Tenant::A1, &self.a1), (Tenant::A2, &self.a2), (Tenant::B, &self.b)]
    }
}

/// Strings `who` must never be told about: everything of the tenants it cannot see.
fn hidden<'a>(who: Who, tenants: &[(Tenant, &'a Objects)]) -> Vec<&'a str> {
    tenants
        .iter()
        .filter(|(t, _)| !sees(who, *t))
        .flat_map(|(_, o)| o.secrets.iter().chain(&o.identity))
        .map(String::as_str)
        .collect()
}

/// What may not appear in any answer to `who`: what is hidden from it, except its own
/// tenant's ancestors' id and name (its own path names them).
fn unspeakable<'a>(who: Who, tenants: &[(Tenant, &'a Objects)]) -> Vec<&'a str> {
    let ancestors: Vec<&str> = match who {
        Who::SubTenantOwner | Who::SiblingOwner => tenants
            .iter()
            .filter(|(t, _)| *t == Tenant::A)
            .flat_map(|(_, o)| o.identity.iter().map(String::as_str))
            .collect(),
        _ => Vec::new(),
    };
    hidden(who, tenants).into_iter().filter(|s| !ancestors.contains(s)).collect()
}

/// The strings of `forbidden` found in a response (body and headers) that the request did not
/// itself contain.
fn leaks<'a>(r: &Resp, forbidden: &[&'a str], request: &str) -> Vec<&'a str> {
    let headers: Vec<&str> = r.headers.values().filter_map(|v| v.to_str().ok()).collect();
    forbidden
        .iter()
        .copied()
        .filter(|s| !request.contains(s))
        .filter(|s| r.text.contains(s) || headers.iter().any(|h| h.contains(s)))
        .collect()
}

fn rank(who: Who) -> u8 {
    match who {
        Who::Viewer => 1,
        Who::Operator => 2,
        Who::Owner => 3,
        _ => 0,
    }
}

/// (method, path template as in the OpenAPI document, need, status on success)
const ROUTES: &[(&str, &str, Need, u16)] = &[
    ("GET", "/api/v1/me", Need::AnyUser, 200),
    // A wrong current password: authorised callers get the validation error, not 401/403.
    ("PUT", "/api/v1/me/password", Need::AnyUser, 400),
    ("GET", "/api/v1/users", Need::Admin, 200),
    ("POST", "/api/v1/users", Need::Admin, 201),
    ("GET", "/api/v1/users/{user_id}", Need::SelfOrAdmin, 200),
    ("GET", "/api/v1/tenants", Need::AnyUser, 200),
    ("POST", "/api/v1/tenants", Need::Role(3), 201),
    ("GET", "/api/v1/tenants/{tenant_id}", Need::Role(1), 200),
    ("DELETE", "/api/v1/tenants/{tenant_id}", Need::Role(3), 204),
    ("GET", "/api/v1/tenants/{tenant_id}/members", Need::Role(1), 200),
    ("POST", "/api/v1/tenants/{tenant_id}/members", Need::Role(3), 201),
    ("PUT", "/api/v1/tenants/{tenant_id}/members/{user_id}", Need::Role(3), 200),
    ("DELETE", "/api/v1/tenants/{tenant_id}/members/{user_id}", Need::Role(3), 204),
    ("GET", "/api/v1/tokens", Need::AnyUser, 200),
    ("POST", "/api/v1/tokens", Need::Role(1), 201),
    ("DELETE", "/api/v1/tokens/{token_id}", Need::TokenOfTenantOwner, 204),
    ("GET", "/api/v1/tenants/{tenant_id}/tokens", Need::Role(3), 200),
    ("GET", "/api/v1/tenants/{tenant_id}/audit", Need::Role(3), 200),
    ("GET", "/api/v1/audit", Need::Admin, 200),
    ("GET", "/api/v1/jobs", Need::Public, 200),
    ("GET", "/api/v1/tenants/{tenant_id}/jobs", Need::Role(1), 200),
    ("POST", "/api/v1/tenants/{tenant_id}/jobs", Need::Role(2), 201),
    ("GET", "/api/v1/jobs/{job_id}", Need::ReadPrivate, 200),
    ("PATCH", "/api/v1/jobs/{job_id}", Need::Role(2), 200),
    ("DELETE", "/api/v1/jobs/{job_id}", Need::Role(3), 204),
    ("GET", "/api/v1/builds", Need::Public, 200),
    ("GET", "/api/v1/builds/{build_id}", Need::ReadPrivate, 200),
    ("GET", "/api/v1/builds/{build_id}/artifacts", Need::ReadPrivate, 200),
    ("GET", "/api/v1/builds/{build_id}/files/{path}", Need::ReadPrivate, 200),
    ("GET", "/api/v1/builds/{build_id}/console", Need::ReadPrivate, 200),
    ("GET", "/api/v1/builds/{build_id}/inputs", Need::ReadPrivate, 200),
    ("GET", "/api/v1/hash/{sha256}", Need::ReadPrivate, 200),
    ("GET", "/api/v1/compare/{left_id}/{right_id}", Need::ReadPrivate, 200),
    ("GET", "/api/v1/builds/{build_id}/reproducibility", Need::ReadPrivate, 200),
    ("GET", "/api/v1/jobs/{job_id}/reproducibility", Need::ReadPrivate, 200),
    ("GET", "/api/v1/fleet/packages", Need::Public, 200),
    ("GET", "/api/v1/builds/{build_id}/dependencies", Need::ReadPrivate, 200),
    ("GET", "/api/v1/builds/{build_id}/treemap", Need::ReadPrivate, 200),
    ("POST", "/api/v1/jobs/{job_id}/uploads", Need::Role(2), 201),
    ("GET", "/api/v1/uploads/{upload_id}", Need::Role(2), 200),
    ("PUT", "/api/v1/uploads/{upload_id}/artifacts/{path}", Need::Role(2), 201),
    ("POST", "/api/v1/uploads/{upload_id}/console", Need::Role(2), 204),
    ("POST", "/api/v1/uploads/{upload_id}/finalize", Need::Role(2), 201),
    ("DELETE", "/api/v1/uploads/{upload_id}", Need::Role(2), 204),
    ("POST", "/api/v1/jobs/{job_id}/runs", Need::Role(2), 202),
    ("GET", "/api/v1/recipe-templates", Need::Public, 200),
    // build_a is an uploaded, finished build: allowed callers learn that it cannot change.
    ("POST", "/api/v1/builds/{build_id}/cancel", Need::Role(2), 409),
    ("POST", "/api/v1/builds/{build_id}/rebuild", Need::Role(2), 409),
    ("GET", "/api/v1/builds/{build_id}/rebuilds", Need::ReadPrivate, 200),
    ("GET", "/api/v1/builds/{build_id}/console/stream", Need::ReadPrivate, 200),
    ("GET", "/api/v1/workers", Need::Admin, 200),
    ("POST", "/api/v1/workers", Need::Role(3), 201),
    ("DELETE", "/api/v1/workers/{worker_id}", Need::Role(3), 204),
    ("GET", "/api/v1/tenants/{tenant_id}/workers", Need::Role(1), 200),
    ("POST", "/api/v1/worker/hello", Need::Worker, 200),
    ("POST", "/api/v1/worker/claim", Need::Worker, 200),
    ("POST", "/api/v1/worker/builds/{build_id}/heartbeat", Need::Worker, 200),
    ("POST", "/api/v1/worker/builds/{build_id}/console", Need::Worker, 204),
    ("POST", "/api/v1/worker/rebuilds", Need::Worker, 200),
    ("GET", "/api/v1/worker/verdicts/{rebuild_id}", Need::Worker, 200),
    ("POST", "/api/v1/agents/enrollments", Need::Admin, 201),
    ("GET", "/api/v1/agents/enrollments", Need::Admin, 200),
    ("DELETE", "/api/v1/agents/enrollments/{enrollment_id}", Need::Admin, 204),
    ("GET", "/api/v1/agents", Need::Admin, 200),
    // No such agent: administrators learn that, others never get that far.
    ("DELETE", "/api/v1/agents/{agent_id}", Need::Admin, 404),
    ("POST", "/api/v1/agent/heartbeat", Need::Agent, 204),
    ("POST", "/api/v1/agent/assignments", Need::Agent, 200),
    ("GET", "/api/v1/agent/images/{sha256}", Need::Agent, 200),
    ("POST", "/api/v1/agent/deployments/{deployment_id}/state", Need::Agent, 204),
    ("POST", "/api/v1/agent/deployments/{deployment_id}/console", Need::Agent, 204),
    ("POST", "/api/v1/agent/deployments/{deployment_id}/stats", Need::Agent, 204),
    ("GET", "/api/v1/agent/block-devices/{block_device_id}/content", Need::Agent, 200),
    ("POST", "/api/v1/agent/block-devices/{block_device_id}/report", Need::Agent, 204),
    ("PUT", "/api/v1/agent/block-devices/{block_device_id}/export/{number}", Need::Agent, 204),
    ("GET", "/api/v1/tenants/{tenant_id}/block-devices", Need::Role(1), 200),
    // Tenant A has no quota: allowed callers reach admission and are told so.
    ("POST", "/api/v1/tenants/{tenant_id}/block-devices", Need::Role(2), 403),
    ("GET", "/api/v1/block-devices/{block_device_id}", Need::Role(1), 200),
    ("DELETE", "/api/v1/block-devices/{block_device_id}", Need::Role(2), 204),
    // Sent without X-Petrel-Sha256: allowed callers reach the body's checks.
    ("PUT", "/api/v1/block-devices/{block_device_id}/content", Need::Role(2), 400),
    // The device's agent is unreachable (none runs here): allowed callers are told so.
    ("GET", "/api/v1/block-devices/{block_device_id}/content", Need::Role(1), 409),
    ("GET", "/api/v1/tenants/{tenant_id}/deployments", Need::Role(1), 200),
    // Tenant A has no quota: allowed callers reach admission and are told so.
    ("POST", "/api/v1/tenants/{tenant_id}/deployments", Need::Role(2), 403),
    // The role matrix's image is no unikernel: allowed callers learn that it has no manifest.
    ("GET", "/api/v1/tenants/{tenant_id}/images/{sha256}/manifest", Need::Role(2), 400),
    ("GET", "/api/v1/deployments/{deployment_id}", Need::Role(1), 200),
    ("DELETE", "/api/v1/deployments/{deployment_id}", Need::Role(2), 204),
    ("POST", "/api/v1/deployments/{deployment_id}/restart", Need::Role(2), 200),
    // Made without a build, the deployment has no update and was never updated: 409 to those
    // allowed to ask.
    ("POST", "/api/v1/deployments/{deployment_id}/update", Need::Role(2), 409),
    ("POST", "/api/v1/deployments/{deployment_id}/rollback", Need::Role(2), 409),
    ("GET", "/api/v1/deployments/{deployment_id}/stats", Need::Role(1), 200),
    ("GET", "/api/v1/deployments/{deployment_id}/events", Need::Role(1), 200),
    ("GET", "/api/v1/deployments/{deployment_id}/console", Need::Role(1), 200),
    ("GET", "/api/v1/deployments/{deployment_id}/console/stream", Need::Role(1), 200),
    ("GET", "/api/v1/tenants/{tenant_id}/quota", Need::Role(1), 200),
    // Tenant A is top-level: only administrators set its quota.
    ("PUT", "/api/v1/tenants/{tenant_id}/quota", Need::QuotaSetter, 200),
];

/// Public routes and the session routes covered by tests/auth.rs.
const ELSEWHERE: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    // Authenticated by a one-time enrollment token (tests/api/deployments.rs).
    ("POST", "/api/v1/agents/enroll"),
];

/// Top-level tenants are for administrators; the matrix creates sub-tenants of the target
/// tenant, which owners may do. Creating a top-level tenant is checked separately below.
async fn prepare(
    ctx: &Ctx,
    o: &Objects,
    method: &str,
    template: &str,
    n: usize,
) -> (Method, String, Option<Value>) {
    let api = Api { admin: &ctx.admin };
    let a = o.tenant;
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (path, body) = match template {
        "/api/v1/me/password" => (
            template.to_string(),
            Some(json!({"current_password": "not-my-password", "new_password": "whatever-new-1"})),
        ),
        "/api/v1/users" if method == Method::POST => (
            template.to_string(),
            Some(json!({"username": format!("new-user-{n}"), "password": "a-long-password"})),
        ),
        "/api/v1/users/{user_id}" => (format!("/api/v1/users/{}", o.owner), None),
        "/api/v1/tenants" if method == Method::POST => {
            (template.to_string(), Some(json!({"name": format!("sub-{n}"), "parent_id": a})))
        }
        "/api/v1/tenants/{tenant_id}" if method == Method::DELETE => {
            let child = api.tenant(&format!("doomed-{n}"), Some(a)).await;
            (format!("/api/v1/tenants/{child}"), None)
        }
        "/api/v1/tenants/{tenant_id}/members" if method == Method::POST => {
            let name = format!("joiner-{n}");
            api.user(&name).await;
            (format!("/api/v1/tenants/{a}/members"), Some(json!({"username": name, "role": "viewer"})))
        }
        "/api/v1/tenants/{tenant_id}/members/{user_id}" if method == Method::PUT => {
            (format!("/api/v1/tenants/{a}/members/{}", o.viewer), Some(json!({"role": "viewer"})))
        }
        "/api/v1/tenants/{tenant_id}/members/{user_id}" => {
            let name = format!("leaver-{n}");
            let (id, _) = api.user(&name).await;
            api.member(a, &name, "viewer").await;
            (format!("/api/v1/tenants/{a}/members/{id}"), None)
        }
        "/api/v1/tokens" if method == Method::POST => {
            (template.to_string(), Some(json!({"name": "t", "tenant_id": a, "role": "viewer"})))
        }
        "/api/v1/tokens/{token_id}" => {
            let (id, _) = Api::token(&ctx.admin, a, "viewer").await;
            (format!("/api/v1/tokens/{id}"), None)
        }
        "/api/v1/tenants/{tenant_id}/jobs" if method == Method::POST => {
            (format!("/api/v1/tenants/{a}/jobs"), Some(json!({"name": format!("job-{n}")})))
        }
        "/api/v1/jobs/{job_id}" if method == Method::PATCH => {
            (format!("/api/v1/jobs/{}", o.job), Some(json!({"synopsis": "changed"})))
        }
        "/api/v1/jobs/{job_id}" if method == Method::DELETE => {
            let job = api.job(a, &format!("doomed-job-{n}"), false).await;
            (format!("/api/v1/jobs/{job}"), None)
        }
        "/api/v1/jobs/{job_id}/uploads" => (
            format!("/api/v1/jobs/{}/uploads", o.job),
            Some(
                json!({"platform": "p", "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
                        "result": {"kind": "exited", "code": 0}}),
            ),
        ),
        t if t.starts_with("/api/v1/uploads/{upload_id}") => {
            let upload = Api::open_upload(&ctx.admin, o.job).await;
            let body = match t {
                "/api/v1/uploads/{upload_id}/console" => Some(json!({"lines": [{"at_ms": 1, "text": "hi"}]})),
                _ if method == Method::POST => Some(json!({})),
                _ => None,
            };
            (t.replace("{upload_id}", &upload.to_string()).replace("{path}", "bin/x.hvt"), body)
        }
        "/api/v1/fleet/packages" => ("/api/v1/fleet/packages?ecosystem=opam&name=mirage".to_string(), None),
        "/api/v1/jobs/{job_id}/runs" => (format!("/api/v1/jobs/{}/runs", o.job_recipe), Some(json!({}))),
        "/api/v1/builds/{build_id}/cancel" | "/api/v1/builds/{build_id}/rebuild" => {
            (template.replace("{build_id}", &o.build.to_string()), Some(json!({})))
        }
        "/api/v1/workers" if method == Method::POST => {
            (template.to_string(), Some(json!({"name": format!("worker-{n}"), "tenant_id": a})))
        }
        "/api/v1/workers/{worker_id}" => {
            let created = ctx
                .admin
                .post("/api/v1/workers", json!({"name": format!("doomed-worker-{n}"), "tenant_id": a}))
                .await
                .expect(201);
            (format!("/api/v1/workers/{}", created.body["worker"]["id"].as_str().unwrap()), None)
        }
        "/api/v1/agents/enrollments" if method == Method::POST => {
            (template.to_string(), Some(json!({"name": format!("agent-{n}")})))
        }
        "/api/v1/agents/enrollments/{enrollment_id}" => {
            let created = ctx
                .admin
                .post("/api/v1/agents/enrollments", json!({"name": format!("doomed-agent-{n}")}))
                .await
                .expect(201);
            (format!("/api/v1/agents/enrollments/{}", created.body["id"].as_str().unwrap()), None)
        }
        "/api/v1/agents/{agent_id}" => (format!("/api/v1/agents/{}", Uuid::new_v4()), None),
        t if t.starts_with("/api/v1/agent/") => (
            t.replace("{deployment_id}", &Uuid::new_v4().to_string())
                .replace("{block_device_id}", &Uuid::new_v4().to_string())
                .replace("{number}", "1")
                .replace("{sha256}", &o.sha),
            if method == Method::POST { Some(json!({})) } else { None },
        ),
        "/api/v1/tenants/{tenant_id}/deployments" if method == Method::POST => (
            format!("/api/v1/tenants/{a}/deployments"),
            Some(json!({"name": format!("d-{n}"), "image_sha256": o.sha, "memory_mib": 16})),
        ),
        t if t.starts_with("/api/v1/deployments/{deployment_id}") => {
            let d = deployment_of(ctx, o, n).await;
            let path = t.replace("{deployment_id}", &d.to_string());
            // A live deployment's stream never ends by itself.
            let path = if t.ends_with("/stream") { format!("{path}?follow=false") } else { path };
            (path, if method == Method::POST { Some(json!({})) } else { None })
        }
        "/api/v1/tenants/{tenant_id}/block-devices" if method == Method::POST => (
            format!("/api/v1/tenants/{a}/block-devices"),
            Some(json!({"name": format!("b-{n}"), "size_mib": 1})),
        ),
        t if t.starts_with("/api/v1/block-devices/{block_device_id}") => {
            let b = block_device_of(ctx, o.tenant, n).await;
            (t.replace("{block_device_id}", &b.to_string()), None)
        }
        "/api/v1/tenants/{tenant_id}/quota" if method == Method::PUT => (
            format!("/api/v1/tenants/{a}/quota"),
            Some(json!({"unikernels": 0, "memory_mib": 0, "block_mib": 0, "cpus": [], "bridges": []})),
        ),
        t if t.starts_with("/api/v1/worker/") => (
            t.replace("{build_id}", &o.build.to_string()).replace("{rebuild_id}", &o.build.to_string()),
            if method == Method::POST { Some(json!({})) } else { None },
        ),
        t => (
            t.replace("{tenant_id}", &a.to_string())
                .replace("{job_id}", &o.job.to_string())
                .replace("{build_id}", &o.build.to_string())
                .replace("{sha256}", &o.sha)
                .replace("{left_id}", &o.build.to_string())
                .replace("{right_id}", &o.build.to_string())
                .replace("{path}", "bin/a.hvt"),
            None,
        ),
    };
    (method, path, body)
}

/// A deployment of the target tenant, made directly in the database (no agent runs here): the
/// routes under test only read or change its row.
async fn deployment_of(ctx: &Ctx, o: &Objects, n: usize) -> Uuid {
    insert_deployment(&ctx.db, o.tenant, &format!("d-{n}"), &o.sha, None).await
}

async fn insert_deployment(
    db: &sqlx::PgPool,
    tenant: Uuid,
    name: &str,
    sha: &str,
    build: Option<Uuid>,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO deployments (id, tenant_id, name, image_sha256, build_id, memory_mib, restart)
         VALUES ($1, $2, $3, decode($4, 'hex'), $5, 16, '{\"kind\": \"never\"}')",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .bind(sha)
    .bind(build)
    .execute(db)
    .await
    .unwrap();
    id
}

/// A block device of `tenant`, made directly in the database (on no agent).
async fn block_device_of(ctx: &Ctx, tenant: Uuid, n: usize) -> Uuid {
    insert_block_device(&ctx.db, tenant, &format!("b-{n}")).await
}

async fn insert_block_device(db: &sqlx::PgPool, tenant: Uuid, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO block_devices (id, tenant_id, name, size_mib) VALUES ($1, $2, $3, 1)")
        .bind(id)
        .bind(tenant)
        .bind(name)
        .execute(db)
        .await
        .unwrap();
    id
}

/// Makes `tag`'s private objects in `tenant` (whose owner and viewer exist), through the API
/// as an administrator where it can, directly in the database where no agent runs.
async fn objects(
    s: &TestServer,
    admin: &Client,
    tenant: Uuid,
    tag: &str,
    owner: (Uuid, &str),
    viewer: (Uuid, &str),
) -> Objects {
    let api = Api { admin };
    let job = api.job(tenant, &format!("{tag}-job"), false).await;
    let job_recipe = admin
        .post(
            &format!("/api/v1/tenants/{tenant}/jobs"),
            json!({"name": format!("{tag}-recipe"), "platforms": ["debian-12-x86_64"], "visibility": "private",
                   "recipe": {"script": "true"}}),
        )
        .await
        .expect(201)
        .id();
    // Each tenant's binary differs (so do their SHA-256s); the opam switch is shared, so the
    // fleet search finds every tenant's build.
    let mut binary = std::fs::read("/usr/bin/true").unwrap();
    binary.extend_from_slice(tag.as_bytes());
    let opam = include_bytes!("../../../inputs/testdata/opam-switch-mirage4");
    let build = Api::build(admin, job, &[("bin/a.hvt", &binary), ("opam-switch", opam)]).await;
    let build_id: Uuid = build["id"].as_str().unwrap().parse().unwrap();
    for kind in ["dependencies", "treemap"] {
        petrel_tests::eventually(admin, &format!("/api/v1/builds/{build_id}/{kind}")).await;
    }
    let sha = build["main_binary"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&binary)));
    let worker = admin
        .post("/api/v1/workers", json!({"name": format!("{tag}-worker"), "tenant_id": tenant}))
        .await
        .expect(201)
        .body["worker"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = admin
        .post(
            "/api/v1/tokens",
            json!({"name": format!("{tag}-token"), "tenant_id": tenant, "role": "viewer"}),
        )
        .await
        .expect(201)
        .body["token"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deployment =
        insert_deployment(&s.db.pool, tenant, &format!("{tag}-deployment"), &sha, Some(build_id)).await;
    let disk = insert_block_device(&s.db.pool, tenant, &format!("{tag}-disk")).await;
    let child = api.tenant(&format!("{tag}-child"), Some(tenant)).await;
    let upload = Api::open_upload(admin, job).await;
    let mut secrets: Vec<String> =
        [job, job_recipe, build_id, deployment, disk, child, upload, owner.0, viewer.0]
            .iter()
            .map(Uuid::to_string)
            .collect();
    secrets.extend([worker, token, sha.clone(), owner.1.to_string(), viewer.1.to_string()]);
    secrets.extend(
        ["job", "recipe", "worker", "token", "deployment", "disk", "child"]
            .map(|kind| format!("{tag}-{kind}")),
    );
    Objects {
        tenant,
        owner: owner.0,
        viewer: viewer.0,
        job,
        job_recipe,
        build: build_id,
        sha,
        secrets,
        identity: vec![tenant.to_string(), format!("{tag}-tenant")],
    }
}

fn expected(who: Who, need: Need, success: u16) -> (u16, Option<&'static str>) {
    // Dead credentials are refused wherever they are sent, public routes included: the
    // caller learns that its token or session is no good rather than seeing less.
    if matches!(who, Who::RevokedToken | Who::ExpiredSession) {
        return (401, Some("unauthenticated"));
    }
    match (need, who) {
        (Need::Public, _) => return (success, None),
        (Need::ReadPrivate, Who::Admin | Who::Owner | Who::Operator | Who::Viewer) => return (success, None),
        (Need::ReadPrivate, _) => return (404, Some("not-found")),
        (Need::Worker | Need::Agent, _) => return (401, Some("unauthenticated")),
        (_, Who::Anonymous) => return (401, Some("unauthenticated")),
        _ => {}
    }
    match need {
        Need::Public | Need::ReadPrivate | Need::Worker | Need::Agent => unreachable!("answered above"),
        Need::QuotaSetter => match who {
            Who::Admin => (success, None),
            w if stranger(w) => (404, Some("not-found")),
            _ => (403, Some("insufficient-role")),
        },
        Need::AnyUser => (success, None),
        Need::Admin => {
            if who == Who::Admin {
                (success, None)
            } else {
                (403, Some("admin-required"))
            }
        }
        Need::Role(min) => match who {
            Who::Admin => (success, None),
            w if stranger(w) => (404, Some("not-found")),
            w if rank(w) >= min => (success, None),
            _ => (403, Some("insufficient-role")),
        },
        Need::SelfOrAdmin | Need::TokenOfTenantOwner => match who {
            Who::Admin | Who::Owner => (success, None),
            _ => (404, Some("not-found")),
        },
    }
}

/// Sends a prepared request (artifacts go up raw, with their SHA-256).
async fn call(client: &Client, template: &str, m: Method, path: &str, body: Option<Value>) -> Resp {
    if template == "/api/v1/uploads/{upload_id}/artifacts/{path}" {
        let upload: Uuid = path.split('/').nth(4).unwrap().parse().unwrap();
        client.put_artifact(upload, "bin/x.hvt", b"bytes").await
    } else {
        client.send(m, path, body).await
    }
}

/// A made-up stand-in for a hidden string of the same kind: a fresh id, SHA-256 or name.
fn ghost(real: &str) -> String {
    if real.parse::<Uuid>().is_ok() {
        Uuid::new_v4().to_string()
    } else if real.len() == 64 && real.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::encode(sha2::Sha256::digest(Uuid::new_v4().as_bytes()))
    } else {
        format!("ghost-{}", Uuid::new_v4().simple())
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Values for the required query parameters of list operations; a required parameter missing
/// here fails the test.
const QUERY: &[(&str, &str)] = &[("ecosystem", "opam"), ("name", "mirage")];

/// A list operation of the OpenAPI document: a GET answering a page (`items`) whose only path
/// parameter, if any, is a tenant's id; or any GET of a tenant by its id (counts such as its
/// quota usage).
struct ListOp {
    template: String,
    /// Required query parameters, filled in.
    query: String,
    paged: bool,
    /// Query parameters naming an object (`job_id`).
    filters: Vec<String>,
}

/// Query parameters that filter a list by an object's id, filled with each tenant's object.
const ID_FILTERS: &[&str] = &["job_id"];

fn list_operations() -> Vec<ListOp> {
    let doc: Value = serde_json::from_str(&petrel_api::routes::openapi_json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(r) => &schemas[r.rsplit('/').next().unwrap()],
            None => schema,
        };
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_path: Vec<&str> =
            params.iter().filter(|p| p["in"] == "path").filter_map(|p| p["name"].as_str()).collect();
        // Lists under one object (a build's console, a deployment's events) are rows of the matrix.
        if in_path.iter().any(|p| *p != "tenant_id") {
            continue;
        }
        // A tenant's own reads count too (its quota usage adds up its subtree's deployments).
        if schema["properties"].get("items").is_none() && in_path.is_empty() {
            continue;
        }
        let mut query = Vec::new();
        for p in params.iter().filter(|p| p["in"] == "query" && p["required"] == true) {
            let name = p["name"].as_str().unwrap();
            let value = QUERY
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no value for the required query parameter {name} of GET {path}"))
                .1;
            query.push(format!("{name}={}", encode(value)));
        }
        let paged = params.iter().any(|p| p["in"] == "query" && p["name"] == "cursor");
        let mut filters = Vec::new();
        for p in params.iter().filter(|p| p["in"] == "query" && p["schema"]["format"] == "uuid") {
            let name = p["name"].as_str().unwrap();
            assert!(ID_FILTERS.contains(&name), "no object for the query parameter {name} of GET {path}");
            filters.push(name.to_string());
        }
        ops.push(ListOp { template: path.clone(), query: query.join("&"), paged, filters });
    }
    ops
}

/// Every list operation as `who` sees it, its tenant id being `home`: the whole list, then
/// page by page, one item a page, following the cursors.
async fn lists(client: &Client, home: Uuid, ops: &[ListOp]) -> BTreeMap<String, Vec<Resp>> {
    let mut seen = BTreeMap::new();
    for op in ops {
        let path = op.template.replace("{tenant_id}", &home.to_string());
        let join = |extra: &str| {
            let q: Vec<&str> = [op.query.as_str(), extra].into_iter().filter(|s| !s.is_empty()).collect();
            if q.is_empty() { path.clone() } else { format!("{path}?{}", q.join("&")) }
        };
        let mut answers = vec![client.get(&join("")).await];
        if op.paged {
            let mut cursor: Option<String> = None;
            for _ in 0..100 {
                let extra = match &cursor {
                    Some(c) => format!("limit=1&cursor={}", encode(c)),
                    None => "limit=1".to_string(),
                };
                let r = client.get(&join(&extra)).await;
                cursor = r.body["next_cursor"].as_str().map(str::to_string);
                answers.push(r);
                if cursor.is_none() {
                    break;
                }
            }
            assert!(cursor.is_none(), "GET {path} pages on past 100 items");
        }
        seen.insert(op.template.clone(), answers);
    }
    seen
}

type Snapshot = BTreeMap<Who, BTreeMap<String, Vec<Resp>>>;

/// Every principal's lists (`home` gives the tenant whose lists it reads).
async fn snapshot(principals: &[(Who, &Client, Uuid)], ops: &[ListOp]) -> Snapshot {
    let mut all = BTreeMap::new();
    for (who, client, home) in principals {
        all.insert(*who, lists(client, *home, ops).await);
    }
    all
}

/// After `made`'s objects appeared: principals who cannot see them answer as before, nothing
/// hidden from anyone appears in a list, and the tenant's owner does see something new (the
/// comparison is not blind).
fn compare(
    made: Tenant,
    owner: Who,
    before: &Snapshot,
    after: &Snapshot,
    tenants: &[(Tenant, &Objects)],
    failures: &mut Vec<String>,
) {
    for (who, now) in after {
        for (template, answers) in now {
            for r in answers {
                let leaked = leaks(r, &unspeakable(*who, tenants), "");
                if !leaked.is_empty() {
                    failures.push(format!("GET {template} as {who:?} lists {leaked:?}: {}", r.text));
                }
            }
            let Some(then) = before.get(who).and_then(|b| b.get(template)) else { continue };
            let same = then.len() == answers.len()
                && then.iter().zip(answers).all(|(x, y)| x.status == y.status && x.text == y.text);
            if !sees(*who, made) && !same {
                let texts =
                    |rs: &[Resp]| rs.iter().map(|r| format!("{} {}", r.status, r.text)).collect::<Vec<_>>();
                failures.push(format!(
                    "GET {template} as {who:?} changed when {made:?}'s objects were made: {:?} became {:?}",
                    texts(then),
                    texts(answers)
                ));
            }
        }
    }
    if let (Some(then), Some(now)) = (before.get(&owner), after.get(&owner)) {
        let texts = |s: &BTreeMap<String, Vec<Resp>>| {
            s.values().flat_map(|rs| rs.iter().map(|r| r.text.clone())).collect::<Vec<_>>()
        };
        assert_ne!(
            texts(then),
            texts(now),
            "{owner:?}'s lists did not change when {made:?}'s objects were made"
        );
    }
}

/// A user named `name`, member of `tenant` with `role`, signed in.
async fn member(api: &Api<'_>, tenant: Uuid, name: &str, role: &str) -> (Uuid, Client) {
    let (id, client) = api.user(name).await;
    api.member(tenant, name, role).await;
    (id, client)
}

#[tokio::test]
async fn every_route_answers_every_principal_as_the_roles_say() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let ops = list_operations();
    assert!(
        ops.iter().any(|o| o.template == "/api/v1/tenants/{tenant_id}/jobs") && ops.iter().any(|o| o.paged),
        "the list operations were not found in the OpenAPI document"
    );

    // The principals first: their lists are taken before any tenant's objects exist.
    let tenant_a = api.tenant("alpha-tenant", None).await;
    let tenant_a1 = api.tenant("charlie-tenant", Some(tenant_a)).await;
    let tenant_a2 = api.tenant("delta-tenant", Some(tenant_a)).await;
    let (owner_a, owner) = member(&api, tenant_a, "alpha-owner", "owner").await;
    let (viewer_a, viewer) = member(&api, tenant_a, "alpha-viewer", "viewer").await;
    let (_, operator) = member(&api, tenant_a, "alpha-operator", "operator").await;
    let (owner_a1, sub_owner) = member(&api, tenant_a1, "charlie-owner", "owner").await;
    let (viewer_a1, _) = member(&api, tenant_a1, "charlie-viewer", "viewer").await;
    let (owner_a2, sibling_owner) = member(&api, tenant_a2, "delta-owner", "owner").await;
    let (viewer_a2, _) = member(&api, tenant_a2, "delta-viewer", "viewer").await;
    let anonymous = admin.anonymous();
    let (token_id, token) = Api::token(&owner, tenant_a, "owner").await;
    owner.delete(&format!("/api/v1/tokens/{token_id}")).await.expect(204);
    let revoked = admin.with_token(&token);
    let mut expired = admin.anonymous();
    expired.login("alpha-owner", "alpha-owner-password-123").await.expect("login");
    // The newest session is `expired`'s (the owner signed in twice).
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '1 second'
          WHERE id_hash = (SELECT id_hash FROM sessions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1)",
    )
    .bind(owner_a)
    .execute(&s.db.pool)
    .await
    .unwrap();
    let mut principals: Vec<(Who, &Client, Uuid)> = vec![
        (Who::Anonymous, &anonymous, tenant_a),
        (Who::Viewer, &viewer, tenant_a),
        (Who::Operator, &operator, tenant_a),
        (Who::Owner, &owner, tenant_a),
        (Who::RevokedToken, &revoked, tenant_a),
        (Who::ExpiredSession, &expired, tenant_a),
        (Who::SubTenantOwner, &sub_owner, tenant_a1),
        (Who::SiblingOwner, &sibling_owner, tenant_a2),
    ];
    let mut failures = Vec::new();
    let before = snapshot(&principals, &ops).await;

    // Then each tenant's objects, one tenant at a time, each followed by everyone's lists.
    let tenant_b = api.tenant("bravo-tenant", None).await;
    let (owner_b, other) = member(&api, tenant_b, "bravo-owner", "owner").await;
    let (viewer_b, _) = member(&api, tenant_b, "bravo-viewer", "viewer").await;
    let b =
        objects(&s, &admin, tenant_b, "bravo", (owner_b, "bravo-owner"), (viewer_b, "bravo-viewer")).await;
    principals.push((Who::OtherTenantOwner, &other, tenant_b));
    let with_b = snapshot(&principals, &ops).await;
    compare(Tenant::B, Who::OtherTenantOwner, &before, &with_b, &[(Tenant::B, &b)], &mut failures);
    let a1 =
        objects(&s, &admin, tenant_a1, "charlie", (owner_a1, "charlie-owner"), (viewer_a1, "charlie-viewer"))
            .await;
    let with_a1 = snapshot(&principals, &ops).await;
    compare(
        Tenant::A1,
        Who::SubTenantOwner,
        &with_b,
        &with_a1,
        &[(Tenant::B, &b), (Tenant::A1, &a1)],
        &mut failures,
    );
    let a2 =
        objects(&s, &admin, tenant_a2, "delta", (owner_a2, "delta-owner"), (viewer_a2, "delta-viewer")).await;
    let with_a2 = snapshot(&principals, &ops).await;
    let known = [(Tenant::B, &b), (Tenant::A1, &a1), (Tenant::A2, &a2)];
    compare(Tenant::A2, Who::SiblingOwner, &with_a1, &with_a2, &known, &mut failures);
    let mut a =
        objects(&s, &admin, tenant_a, "alpha", (owner_a, "alpha-owner"), (viewer_a, "alpha-viewer")).await;
    // The operator is a user of A only, too.
    a.secrets.push("alpha-operator".into());
    let with_a = snapshot(&principals, &ops).await;
    let known = [(Tenant::B, &b), (Tenant::A1, &a1), (Tenant::A2, &a2), (Tenant::A, &a)];
    compare(Tenant::A, Who::Owner, &with_a2, &with_a, &known, &mut failures);

    let ctx = Ctx { db: s.db.pool.clone(), _server: s, admin: admin.clone(), a, a1, a2, b };
    let tenants = ctx.tenants();
    let client_of = |who: Who| match who {
        Who::Anonymous => &anonymous,
        Who::Viewer => &viewer,
        Who::Operator => &operator,
        Who::Owner => &owner,
        Who::OtherTenantOwner => &other,
        Who::Admin => &admin,
        Who::RevokedToken => &revoked,
        Who::ExpiredSession => &expired,
        Who::SubTenantOwner => &sub_owner,
        Who::SiblingOwner => &sibling_owner,
    };
    // Everyone against A's objects; then strangers against the objects of B and of each
    // sub-tenant, answered as another tenant's owner is answered about A's.
    let mut passes: Vec<(Who, &Objects, Who)> = EVERYONE.iter().map(|w| (*w, &ctx.a, *w)).collect();
    passes.extend([
        (Who::Owner, &ctx.b, Who::OtherTenantOwner),
        (Who::SiblingOwner, &ctx.a1, Who::OtherTenantOwner),
        (Who::SubTenantOwner, &ctx.a2, Who::OtherTenantOwner),
    ]);
    let mut n = 0;
    for (method, template, need, success) in ROUTES {
        for (who, target, judged_as) in &passes {
            n += 1;
            let client = client_of(*who);
            let (m, path, body) = prepare(&ctx, target, method, template, n).await;
            assert!(!path.contains('{'), "the matrix does not know how to fill the parameters of {path}");
            let request = format!("{path} {}", body.as_ref().map(Value::to_string).unwrap_or_default());
            let r = call(client, template, m.clone(), &path, body.clone()).await;
            let (status, code) = expected(*judged_as, *need, *success);
            let code_ok = code.is_none_or(|c| r.body["code"] == c);
            if r.status != status || !code_ok {
                failures.push(format!(
                    "{method} {template} as {who:?} on {:?}: expected {status} {code:?}, got {} {}",
                    target.identity[1], r.status, r.text
                ));
            }
            let leaked = leaks(&r, &unspeakable(*who, &tenants), &request);
            if !leaked.is_empty() {
                failures.push(format!("{method} {template} as {who:?} leaks {leaked:?}: {}", r.text));
            }
            // Naming a hidden object must get the answer a made-up one gets, byte for byte.
            let named: Vec<&str> =
                hidden(*who, &tenants).into_iter().filter(|s| request.contains(s)).collect();
            if named.is_empty() {
                continue;
            }
            let swaps: Vec<(&str, String)> = named.iter().map(|s| (*s, ghost(s))).collect();
            let swap =
                |text: &str| swaps.iter().fold(text.to_string(), |t, (real, fake)| t.replace(real, fake));
            let ghost_body = body.as_ref().map(|b| serde_json::from_str(&swap(&b.to_string())).unwrap());
            let g = call(client, template, m, &swap(&path), ghost_body).await;
            if g.status != r.status || g.content_type != r.content_type || g.text != swap(&r.text) {
                failures.push(format!(
                    "{method} {template} as {who:?} tells {named:?} from made-up ones: {} {} vs {} {}",
                    r.status, r.text, g.status, g.text
                ));
            }
        }
    }
    // Filtering a list by a hidden object's id answers as filtering by a made-up one.
    for op in ops.iter().filter(|op| !op.filters.is_empty()) {
        assert!(!op.template.contains('{'), "GET {} filters by id under a tenant", op.template);
        for who in EVERYONE {
            for (tenant, o) in tenants.iter().filter(|(t, _)| !sees(who, *t)) {
                for filter in &op.filters {
                    let real = match filter.as_str() {
                        "job_id" => o.job.to_string(),
                        f => unreachable!("{f} is not in ID_FILTERS"),
                    };
                    let fake = ghost(&real);
                    let with = |id: &str| {
                        let q: Vec<String> = [op.query.clone(), format!("{filter}={id}")]
                            .into_iter()
                            .filter(|q| !q.is_empty())
                            .collect();
                        format!("{}?{}", op.template, q.join("&"))
                    };
                    let r = client_of(who).get(&with(&real)).await;
                    let g = client_of(who).get(&with(&fake)).await;
                    if r.status != g.status || r.text.replace(&real, &fake) != g.text {
                        failures.push(format!(
                            "GET {} as {who:?} filtered by {tenant:?}'s {filter}: {} {} vs {} {}",
                            op.template, r.status, r.text, g.status, g.text
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn only_administrators_create_top_level_tenants() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("mine", None).await;
    let (_, owner) = api.user("owner").await;
    api.member(tenant, "owner", "owner").await;
    owner.post("/api/v1/tenants", json!({"name": "rogue"})).await.expect_problem(403, "admin-required");
    admin.post("/api/v1/tenants", json!({"name": "blessed"})).await.expect(201);
}

#[tokio::test]
async fn the_matrix_covers_every_operation_of_the_openapi_document() {
    let doc: Value = serde_json::from_str(&petrel_api::routes::openapi_json()).unwrap();
    let mut in_doc = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            in_doc.insert((method.to_uppercase(), path.clone()));
        }
    }
    let covered: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .chain(ELSEWHERE.iter().map(|(m, p)| (m.to_string(), p.to_string())))
        .collect();
    let missing: Vec<_> = in_doc.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&in_doc).collect();
    assert!(missing.is_empty(), "operations without a row in the role matrix: {missing:?}");
    assert!(stale.is_empty(), "matrix rows for operations that no longer exist: {stale:?}");
}
