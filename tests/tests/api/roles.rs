//! The role matrix: every route of the API, called by every kind of principal (anonymous,
//! viewer, operator, owner, another tenant's owner, administrator, a revoked token, an expired
//! session), answers exactly as the roles say. A route missing from this table fails the test, so new routes must be
//! added here.

use std::collections::BTreeSet;

use petrel_tests::client::Resp;
use petrel_tests::{Api, Client, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq)]
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
}

const EVERYONE: [Who; 8] = [
    Who::Anonymous,
    Who::Viewer,
    Who::Operator,
    Who::Owner,
    Who::OtherTenantOwner,
    Who::Admin,
    Who::RevokedToken,
    Who::ExpiredSession,
];

#[derive(Clone, Copy, Debug)]
enum Need {
    AnyUser,
    Admin,
    /// At least this role in tenant A (administrators pass, other tenants get 404).
    Role(u8),
    /// The target is the tenant-A owner's own account.
    SelfOrAdmin,
    /// The target is a token created by the administrator for tenant A.
    TokenOfTenantOwner,
    /// Readable without signing in (public lists).
    Public,
    /// A private object of tenant A read through a route open to anonymous callers: those
    /// without access get 404, never 401.
    ReadPrivate,
    /// The worker protocol: a worker credential, never a user's session or token
    /// (tests/api/workers.rs covers workers themselves).
    Worker,
    /// The agent protocol: an agent credential (tests/api/deployments.rs covers agents).
    Agent,
    /// A top-level tenant's quota: administrators only; members see 403, others 404.
    QuotaSetter,
}

struct Ctx {
    _server: TestServer,
    db: sqlx::PgPool,
    admin: Client,
    tenant_a: Uuid,
    owner_a: Uuid,
    viewer_a: Uuid,
    job_a: Uuid,
    /// A job of tenant A with a recipe (for "run now").
    job_recipe: Uuid,
    build_a: Uuid,
    sha_a: String,
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

/// Top-level tenants are for administrators; the matrix creates sub-tenants of A, which
/// owners may do. Creating a top-level tenant is checked separately below.
async fn prepare(ctx: &Ctx, method: &str, template: &str, n: usize) -> (Method, String, Option<Value>) {
    let api = Api { admin: &ctx.admin };
    let a = ctx.tenant_a;
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
        "/api/v1/users/{user_id}" => (format!("/api/v1/users/{}", ctx.owner_a), None),
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
            (format!("/api/v1/tenants/{a}/members/{}", ctx.viewer_a), Some(json!({"role": "viewer"})))
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
            (format!("/api/v1/jobs/{}", ctx.job_a), Some(json!({"synopsis": "changed"})))
        }
        "/api/v1/jobs/{job_id}" if method == Method::DELETE => {
            let job = api.job(a, &format!("doomed-job-{n}"), false).await;
            (format!("/api/v1/jobs/{job}"), None)
        }
        "/api/v1/jobs/{job_id}/uploads" => (
            format!("/api/v1/jobs/{}/uploads", ctx.job_a),
            Some(
                json!({"platform": "p", "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
                        "result": {"kind": "exited", "code": 0}}),
            ),
        ),
        t if t.starts_with("/api/v1/uploads/{upload_id}") => {
            let upload = Api::open_upload(&ctx.admin, ctx.job_a).await;
            let body = match t {
                "/api/v1/uploads/{upload_id}/console" => Some(json!({"lines": [{"at_ms": 1, "text": "hi"}]})),
                _ if method == Method::POST => Some(json!({})),
                _ => None,
            };
            (t.replace("{upload_id}", &upload.to_string()).replace("{path}", "bin/x.hvt"), body)
        }
        "/api/v1/fleet/packages" => ("/api/v1/fleet/packages?ecosystem=opam&name=mirage".to_string(), None),
        "/api/v1/jobs/{job_id}/runs" => (format!("/api/v1/jobs/{}/runs", ctx.job_recipe), Some(json!({}))),
        "/api/v1/builds/{build_id}/cancel" | "/api/v1/builds/{build_id}/rebuild" => {
            (template.replace("{build_id}", &ctx.build_a.to_string()), Some(json!({})))
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
                .replace("{sha256}", &ctx.sha_a),
            if method == Method::POST { Some(json!({})) } else { None },
        ),
        "/api/v1/tenants/{tenant_id}/deployments" if method == Method::POST => (
            format!("/api/v1/tenants/{a}/deployments"),
            Some(json!({"name": format!("d-{n}"), "image_sha256": ctx.sha_a, "memory_mib": 16})),
        ),
        t if t.starts_with("/api/v1/deployments/{deployment_id}") => {
            let d = deployment_of_a(ctx, n).await;
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
            let b = block_device_of_a(ctx, n).await;
            (t.replace("{block_device_id}", &b.to_string()), None)
        }
        "/api/v1/tenants/{tenant_id}/quota" if method == Method::PUT => (
            format!("/api/v1/tenants/{a}/quota"),
            Some(json!({"unikernels": 0, "memory_mib": 0, "block_mib": 0, "cpus": [], "bridges": []})),
        ),
        t if t.starts_with("/api/v1/worker/") => (
            t.replace("{build_id}", &ctx.build_a.to_string())
                .replace("{rebuild_id}", &ctx.build_a.to_string()),
            if method == Method::POST { Some(json!({})) } else { None },
        ),
        t => (
            t.replace("{tenant_id}", &a.to_string())
                .replace("{job_id}", &ctx.job_a.to_string())
                .replace("{build_id}", &ctx.build_a.to_string())
                .replace("{sha256}", &ctx.sha_a)
                .replace("{left_id}", &ctx.build_a.to_string())
                .replace("{right_id}", &ctx.build_a.to_string())
                .replace("{path}", "bin/a.hvt"),
            None,
        ),
    };
    (method, path, body)
}

/// A deployment of tenant A, made directly in the database (no agent runs here): the routes
/// under test only read or change its row.
async fn deployment_of_a(ctx: &Ctx, n: usize) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO deployments (id, tenant_id, name, image_sha256, memory_mib, restart)
         VALUES ($1, $2, $3, decode($4, 'hex'), 16, '{\"kind\": \"never\"}')",
    )
    .bind(id)
    .bind(ctx.tenant_a)
    .bind(format!("d-{n}"))
    .bind(&ctx.sha_a)
    .execute(&ctx.db)
    .await
    .unwrap();
    id
}

/// A block device of tenant A, made directly in the database (on no agent).
async fn block_device_of_a(ctx: &Ctx, n: usize) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO block_devices (id, tenant_id, name, size_mib) VALUES ($1, $2, $3, 1)")
        .bind(id)
        .bind(ctx.tenant_a)
        .bind(format!("b-{n}"))
        .execute(&ctx.db)
        .await
        .unwrap();
    id
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
            Who::OtherTenantOwner => (404, Some("not-found")),
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
            Who::OtherTenantOwner => (404, Some("not-found")),
            w if rank(w) >= min => (success, None),
            _ => (403, Some("insufficient-role")),
        },
        Need::SelfOrAdmin | Need::TokenOfTenantOwner => match who {
            Who::Admin | Who::Owner => (success, None),
            _ => (404, Some("not-found")),
        },
    }
}

#[tokio::test]
async fn every_route_answers_every_principal_as_the_roles_say() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant_a = api.tenant("tenant-a", None).await;
    let tenant_b = api.tenant("tenant-b", None).await;
    let (owner_a, owner) = api.user("owner-a").await;
    let (viewer_a, viewer) = api.user("viewer-a").await;
    let (_, operator) = api.user("operator-a").await;
    let (_, other) = api.user("owner-b").await;
    api.member(tenant_a, "owner-a", "owner").await;
    api.member(tenant_a, "viewer-a", "viewer").await;
    api.member(tenant_a, "operator-a", "operator").await;
    api.member(tenant_b, "owner-b", "owner").await;
    let anonymous = admin.anonymous();
    let (token_id, token) = Api::token(&owner, tenant_a, "owner").await;
    owner.delete(&format!("/api/v1/tokens/{token_id}")).await.expect(204);
    let revoked = admin.with_token(&token);
    let mut expired = admin.anonymous();
    expired.login("owner-a", "owner-a-password-123").await.expect("login");
    let job_a = api.job(tenant_a, "job-a", false).await;
    let job_recipe: Uuid = admin
        .post(
            &format!("/api/v1/tenants/{tenant_a}/jobs"),
            json!({"name": "with-recipe", "platforms": ["debian-12-x86_64"], "recipe": {"script": "true"}}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let true_elf = std::fs::read("/usr/bin/true").unwrap();
    let opam = include_bytes!("../../../inputs/testdata/opam-switch-mirage4");
    let build = Api::build(&admin, job_a, &[("bin/a.hvt", &true_elf), ("opam-switch", opam)]).await;
    let build_a: Uuid = build["id"].as_str().unwrap().parse().unwrap();
    for kind in ["dependencies", "treemap"] {
        petrel_tests::eventually(&admin, &format!("/api/v1/builds/{build_a}/{kind}")).await;
    }
    let sha_a = build["main_binary"]["sha256"].as_str().unwrap().to_string();
    // The newest session is `expired`'s (the owner signed in twice).
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '1 second'
          WHERE id_hash = (SELECT id_hash FROM sessions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1)",
    )
    .bind(owner_a)
    .execute(&s.db.pool)
    .await
    .unwrap();
    let ctx = Ctx {
        db: s.db.pool.clone(),
        _server: s,
        admin: admin.clone(),
        tenant_a,
        owner_a,
        viewer_a,
        job_a,
        job_recipe,
        build_a,
        sha_a,
    };

    let mut n = 0;
    let mut failures = Vec::new();
    for (method, template, need, success) in ROUTES {
        for who in EVERYONE {
            n += 1;
            let client = match who {
                Who::Anonymous => &anonymous,
                Who::Viewer => &viewer,
                Who::Operator => &operator,
                Who::Owner => &owner,
                Who::OtherTenantOwner => &other,
                Who::Admin => &admin,
                Who::RevokedToken => &revoked,
                Who::ExpiredSession => &expired,
            };
            let (m, path, body) = prepare(&ctx, method, template, n).await;
            let r: Resp = if *template == "/api/v1/uploads/{upload_id}/artifacts/{path}" {
                let upload: Uuid = path.split('/').nth(4).unwrap().parse().unwrap();
                client.put_artifact(upload, "bin/x.hvt", b"bytes").await
            } else {
                client.send(m, &path, body).await
            };
            let (status, code) = expected(who, *need, *success);
            let code_ok = code.is_none_or(|c| r.body["code"] == c);
            if r.status != status || !code_ok {
                failures.push(format!(
                    "{method} {template} as {who:?}: expected {status} {code:?}, got {} {}",
                    r.status, r.text
                ));
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
