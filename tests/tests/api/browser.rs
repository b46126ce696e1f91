//! The SPA in a real headless Chromium against the real API over HTTPS: sign in, see tenants,
//! create a tenant (and see the API's refusal next to the form), create an API token and use
//! it, sign out. Screenshots of the pages are kept in target/screenshots.

use petrel_tests::TestServer;
use petrel_tests::browser::{Browser, frontend_dist};

#[tokio::test]
async fn sign_in_manage_tenants_and_tokens_sign_out() {
    let dist = frontend_dist();
    let s = TestServer::start_with(move |c| c.frontend_dir = Some(dist)).await;
    let key = std::fs::read_to_string(s.data_dir.path().join("tls/server.key")).unwrap();
    let b = Browser::start(&s.server.url, &key).await;

    // Signed-out visitors land on the sign-in page.
    b.goto("/tenants").await;
    b.find("input[name=username]").await;
    b.screenshot("login").await;
    b.type_into("input[name=username]", "admin").await;
    b.type_into("input[name=password]", "wrong password!").await;
    b.click("button[type=submit]").await;
    b.wait_for_text("wrong username or password").await;
    b.type_into("input[name=password]", &s.admin_password).await;
    b.click("button[type=submit]").await;
    b.find("[data-testid=tenant-row]").await;
    b.wait_for_text("default").await;
    assert_eq!(b.text(&b.find("[data-testid=whoami]").await).await, "admin");
    assert_eq!(b.current_path().await, "/tenants");

    // Create a tenant; a duplicate name shows the API's message.
    b.type_into("input[name=tenant-name]", "robur").await;
    b.click("form[aria-label='Create a tenant'] button[type=submit]").await;
    b.wait_for_text("robur").await;
    assert_eq!(b.find_all("[data-testid=tenant-row]").await.len(), 2);
    b.type_into("input[name=tenant-name]", "robur").await;
    b.click("form[aria-label='Create a tenant'] button[type=submit]").await;
    b.wait_for_text("a tenant named \"robur\" exists here already").await;
    b.screenshot("tenants").await;

    // The tenant's page lists its members.
    let robur = s.admin().await.get("/api/v1/tenants").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "robur")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&format!("/tenants/{robur}")).await;
    b.wait_for_text("Members").await;
    b.type_into("input[name=member-username]", "admin").await;
    b.click("form[aria-label='Add a member'] button[type=submit]").await;
    b.find("[data-testid=member-row]").await;
    b.screenshot("tenant").await;

    // Create a token: it is shown once and works.
    b.goto("/tokens").await;
    b.type_into("input[name=token-name]", "from the browser").await;
    b.click("form[aria-label='Create a token'] button[type=submit]").await;
    let secret_box = b.find("[data-testid=new-token] code").await;
    let secret = b.text(&secret_box).await;
    assert!(secret.starts_with("petrel_"), "{secret}");
    b.screenshot("tokens").await;
    let me = s.client().with_token(&secret).get("/api/v1/me").await.expect(200);
    assert_eq!(me.body["user"]["username"], "admin");
    b.find("[data-testid=token-row]").await;

    // Sign out: back to the sign-in page, and the session is gone.
    b.click("header button:last-of-type").await;
    b.find("input[name=username]").await;
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE expires_at > now()")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 1, "only the API client's session is left");
}
