//! API tokens: shown once, stored as a hash, scoped to a tenant subtree and a role no higher
//! than the creator's, expiring, revocable, with last-used times.

use petrel_tests::{Api, TestServer};
use serde_json::json;

#[tokio::test]
async fn a_token_is_shown_once_stored_hashed_and_works_as_bearer() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("acme", None).await;
    let (_, alice) = api.user("alice").await;
    api.member(tenant, "alice", "operator").await;
    let (id, secret) = Api::token(&alice, tenant, "operator").await;
    assert!(secret.starts_with("petrel_"));

    // Neither the list nor the database holds the secret.
    let listed = alice.get("/api/v1/tokens").await.expect(200);
    assert!(!listed.text.contains(&secret));
    assert_eq!(listed.body["items"][0]["id"], id.to_string());
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM api_tokens WHERE id = $1")
        .bind(id)
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&secret));

    let bot = alice.with_token(&secret);
    let me = bot.get("/api/v1/me").await.expect(200);
    assert_eq!(me.body["auth"], "token");
    assert_eq!(me.body["user"]["username"], "alice");
    // Bearer requests need no CSRF token.
    bot.post("/api/v1/tokens", json!({"name": "child", "tenant_id": tenant, "role": "viewer"}))
        .await
        .expect(201);
    let used = alice.get("/api/v1/tokens").await.expect(200);
    let row =
        used.body["items"].as_array().unwrap().iter().find(|t| t["id"] == id.to_string()).unwrap().clone();
    assert!(row["last_used_at"].is_string(), "{row}");
}

#[tokio::test]
async fn a_token_cannot_exceed_its_creators_role_nor_act_outside_its_tenant() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let acme = api.tenant("acme", None).await;
    let sub = api.tenant("acme-lab", Some(acme)).await;
    let other = api.tenant("other", None).await;
    let (_, bob) = api.user("bob").await;
    api.member(acme, "bob", "operator").await;
    api.member(other, "bob", "owner").await;

    let too_high = bob.post("/api/v1/tokens", json!({"name": "x", "tenant_id": acme, "role": "owner"})).await;
    too_high.expect_problem(403, "role-too-high");
    bob.post("/api/v1/tokens", json!({"name": "x", "admin": true}))
        .await
        .expect_problem(403, "admin-required");

    let (_, secret) = Api::token(&bob, acme, "viewer").await;
    let bot = bob.with_token(&secret);
    // Its tenant and sub-tenants are visible, with the token's role...
    let listed = bot.get("/api/v1/tenants").await.expect(200);
    let names: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "acme-lab"]);
    assert!(listed.body["items"].as_array().unwrap().iter().all(|t| t["my_role"] == "viewer"));
    bot.get(&format!("/api/v1/tenants/{sub}")).await.expect(200);
    // ...capped at viewer even where bob is more...
    bot.get(&format!("/api/v1/tenants/{acme}/tokens")).await.expect_problem(403, "insufficient-role");
    // ...and bob's other tenant does not exist for it.
    bot.get(&format!("/api/v1/tenants/{other}")).await.expect_problem(404, "not-found");
    bob.get(&format!("/api/v1/tenants/{other}")).await.expect(200);
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("acme", None).await;
    let (expiring, expiring_secret) = Api::token(&admin, tenant, "viewer").await;
    let (revoked, revoked_secret) = Api::token(&admin, tenant, "viewer").await;
    admin.with_token(&expiring_secret).get("/api/v1/me").await.expect(200);
    admin.with_token(&revoked_secret).get("/api/v1/me").await.expect(200);

    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(expiring)
        .execute(&s.db.pool)
        .await
        .unwrap();
    admin.with_token(&expiring_secret).get("/api/v1/me").await.expect_problem(401, "unauthenticated");

    admin.delete(&format!("/api/v1/tokens/{revoked}")).await.expect(204);
    admin.delete(&format!("/api/v1/tokens/{revoked}")).await.expect(204);
    admin.with_token(&revoked_secret).get("/api/v1/me").await.expect_problem(401, "unauthenticated");
    let listed = admin.get("/api/v1/tokens").await.expect(200);
    let row = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == revoked.to_string())
        .unwrap()
        .clone();
    assert!(row["revoked_at"].is_string());

    let garbage = admin.with_token("petrel_not-a-real-token");
    garbage.get("/api/v1/me").await.expect_problem(401, "unauthenticated");
    let basic = admin
        .anonymous()
        .request(reqwest::Method::GET, "/api/v1/me")
        .basic_auth("admin", Some("x"))
        .send()
        .await
        .unwrap();
    let basic = petrel_tests::Client::read(basic).await;
    basic.expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn token_creation_validates_every_field() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let r = admin
        .post("/api/v1/tokens", json!({"name": "", "expires_in_days": 0}))
        .await
        .expect_problem(400, "validation-failed");
    let fields: Vec<&str> =
        r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "expires_in_days", "tenant_id", "role"]);
    let r = admin
        .post("/api/v1/tokens", json!({"name": "x", "role": "superuser", "tenant_id": uuid::Uuid::new_v4()}))
        .await;
    let r = r.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "role");
    // An admin token acts with global rights.
    let created = admin.post("/api/v1/tokens", json!({"name": "ops", "admin": true})).await.expect(201);
    let ops = admin.with_token(created.body["secret"].as_str().unwrap());
    ops.get("/api/v1/users").await.expect(200);
}
