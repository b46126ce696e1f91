//! Sign-in, sessions, CSRF, rate limiting, sign-out and password changes, over real HTTPS.

use petrel_tests::{Api, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_secure_cookie_and_me_answers() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let r = c.login("admin", &s.admin_password).await.expect("login");
    let cookie = r.headers.get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("petrel_session="), "{cookie}");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert_eq!(r.body["user"]["username"], "admin");
    assert_eq!(r.body["user"]["is_admin"], true);
    let me = c.get("/api/v1/me").await.expect(200);
    assert_eq!(me.body["auth"], "session");
    assert_eq!(me.body["csrf_token"], r.body["csrf_token"]);
    assert_eq!(me.body["memberships"][0]["tenant_name"], "default");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let wrong = c.login("admin", "not-the-password").await.unwrap_err();
    let unknown = c.login("nobody", "not-the-password").await.unwrap_err();
    let wrong = wrong.expect_problem(401, "unauthenticated");
    let unknown = unknown.expect_problem(401, "unauthenticated");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    c.get("/api/v1/me").await.expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn state_changing_requests_with_a_cookie_need_the_csrf_header() {
    let s = TestServer::start().await;
    let mut c = s.client();
    c.login("admin", &s.admin_password).await.unwrap();
    let csrf = c.csrf.take();
    // Reads do not need it...
    c.get("/api/v1/tenants").await.expect(200);
    // ...changes do, and a wrong one is as bad as none.
    c.post("/api/v1/tenants", json!({"name": "no-csrf"})).await.expect_problem(403, "csrf-failed");
    c.csrf = Some("wrong".into());
    c.post("/api/v1/tenants", json!({"name": "no-csrf"})).await.expect_problem(403, "csrf-failed");
    c.csrf = csrf;
    c.post("/api/v1/tenants", json!({"name": "with-csrf"})).await.expect(201);
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_account_then_per_address() {
    let s = TestServer::start_with(|c| {
        c.login_limits.max_failures_per_user = 3;
        c.login_limits.max_failures_per_ip = 5;
    })
    .await;
    let mut c = s.client();
    for _ in 0..3 {
        c.login("admin", "wrong-password").await.unwrap_err().expect_problem(401, "unauthenticated");
    }
    // The account is locked for the window, even with the right password.
    let limited =
        c.login("admin", &s.admin_password).await.unwrap_err().expect_problem(429, "too-many-requests");
    assert!(limited.headers.get("retry-after").is_some());
    // Other accounts from the same address still work until the address limit is reached.
    for _ in 0..2 {
        c.login("someone-else", "wrong-password").await.unwrap_err().expect_problem(401, "unauthenticated");
    }
    c.login("yet-another", "wrong-password").await.unwrap_err().expect_problem(429, "too-many-requests");
}

#[tokio::test]
async fn expired_sessions_are_refused_and_logout_ends_the_session() {
    let s = TestServer::start().await;
    let mut c = s.client();
    c.login("admin", &s.admin_password).await.unwrap();
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second'")
        .execute(&s.db.pool)
        .await
        .unwrap();
    c.get("/api/v1/me").await.expect_problem(401, "unauthenticated");

    let mut c = s.client();
    c.login("admin", &s.admin_password).await.unwrap();
    c.send(Method::POST, "/api/v1/auth/logout", None).await.expect(204);
    c.get("/api/v1/me").await.expect_problem(401, "unauthenticated");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE expires_at > now()")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_ends_other_sessions() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let (_, mut alice) = api.user("alice").await;
    let mut other = s.client();
    other.login("alice", "alice-password-123").await.unwrap();

    alice
        .put(
            "/api/v1/me/password",
            json!({"current_password": "wrong-one-here", "new_password": "a-new-password-1"}),
        )
        .await
        .expect_problem(400, "validation-failed");
    let short = alice
        .put(
            "/api/v1/me/password",
            json!({"current_password": "alice-password-123", "new_password": "short"}),
        )
        .await
        .expect_problem(400, "validation-failed");
    assert_eq!(short.body["errors"][0]["field"], "new_password");
    alice
        .put(
            "/api/v1/me/password",
            json!({"current_password": "alice-password-123", "new_password": "a-new-password-1"}),
        )
        .await
        .expect(204);
    alice.get("/api/v1/me").await.expect(200);
    other.get("/api/v1/me").await.expect_problem(401, "unauthenticated");
    alice.login("alice", "alice-password-123").await.unwrap_err();
    alice.login("alice", "a-new-password-1").await.unwrap();
}

#[tokio::test]
async fn logins_and_changes_are_audited_with_actor_and_address() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let tenant = Api { admin: &admin }.tenant("audited", None).await;
    let log = admin.get("/api/v1/audit").await.expect(200);
    let actions: Vec<&str> =
        log.body["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"session.login"), "{actions:?}");
    assert!(actions.contains(&"tenant.create"), "{actions:?}");
    let created = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "tenant.create" && e["tenant_id"] == tenant.to_string())
        .unwrap();
    assert_eq!(created["actor_username"], "admin");
    assert_eq!(created["source_ip"], "127.0.0.1");
    let tenant_log = admin.get(&format!("/api/v1/tenants/{tenant}/audit")).await.expect(200);
    assert_eq!(tenant_log.body["items"].as_array().unwrap().len(), 1);
}
