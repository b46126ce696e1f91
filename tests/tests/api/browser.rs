//! The SPA in a real headless Chromium against the real API over HTTPS: sign in, see tenants,
//! create a tenant (and see the API's refusal next to the form), create an API token and use
//! it, sign out; run a job and follow its build live, with its treemap, dependency graph and a
//! comparison of two builds. Screenshots of the pages are kept in target/screenshots.

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

#[tokio::test]
async fn run_a_job_follow_its_console_and_see_its_build_treemap_graph_and_comparison() {
    use petrel_tests::Api;
    use serde_json::json;

    let dist = frontend_dist();
    let s = TestServer::start_with(move |c| c.frontend_dir = Some(dist)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let unikernel = serde_json::to_value(petrel_api::examples::unikernel_recipe()).unwrap();
    let rust = serde_json::to_value(petrel_api::examples::rust_recipe()).unwrap();
    let job = api.recipe_job(tenant, "hello-unikernel", unikernel, json!({"visibility": "public"})).await;
    let rust_job = api.recipe_job(tenant, "rust-hello", rust, json!({"visibility": "public"})).await;
    let (_, _, credential) = api.worker("browser-worker", None).await;
    let _worker = super::workers::WorkerProcess::start(&s, &credential, &["--tool-dir", "rust=auto"]);
    let key = std::fs::read_to_string(s.data_dir.path().join("tls/server.key")).unwrap();
    let b = Browser::start(&s.server.url, &key).await;
    b.goto("/login").await;
    b.type_into("input[name=username]", "admin").await;
    b.type_into("input[name=password]", &s.admin_password).await;
    b.click("button[type=submit]").await;
    b.find("[data-testid=tenant-row]").await;

    // The jobs list, then "run now" on the job's page.
    b.goto("/jobs").await;
    b.find("[data-testid=job-row]").await;
    b.wait_for_text("rust-hello").await;
    assert_eq!(b.find_all("[data-testid=job-row]").await.len(), 2);
    b.screenshot("jobs").await;
    b.goto(&format!("/jobs/{job}")).await;
    b.click("[data-testid=run-now]").await;
    let queued = b.find("[data-testid=queued-builds] a").await;
    b.click_element(&queued).await;
    // The build page follows the console live until the build ends.
    b.find("#console .console-line").await;
    b.wait_for_text("hello.hvt").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let status = b.text(&b.find("#build-status").await).await;
        if status.contains("succeeded") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the build page never showed success: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let state = b.find("[data-testid=console-state]").await;
    assert_eq!(b.attribute(&state, "data-state").await.as_deref(), Some("ended"));
    let first = b.current_path().await;
    b.find("[data-testid=artifact-row]").await;
    // The size treemap of the unikernel, drawn as SVG.
    b.find("svg#treemap rect.treemap-cell").await;
    let cells = b.find_all("svg#treemap rect.treemap-cell").await;
    assert!(!cells.is_empty(), "the treemap has cells");
    b.screenshot("build").await;

    // A second build, then the comparison of the two.
    let second =
        admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202).body[0]["build_id"]
            .as_str()
            .unwrap()
            .to_string();
    let first_id = first.trim_start_matches("/builds/").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while admin.get(&format!("/api/v1/builds/{second}")).await.body["status"] != "succeeded" {
        assert!(std::time::Instant::now() < deadline, "the second build did not succeed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    b.goto(&format!("/builds/{first_id}/compare/{second}")).await;
    b.find("[data-testid=compare-summary]").await;
    b.screenshot("compare").await;

    // The Rust job's dependency graph (from its Cargo.lock).
    let rust_build = admin.post(&format!("/api/v1/jobs/{rust_job}/runs"), json!({})).await.expect(202).body
        [0]["build_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while admin.get(&format!("/api/v1/builds/{rust_build}")).await.body["status"] != "succeeded" {
        assert!(std::time::Instant::now() < deadline, "the Rust build did not succeed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    b.goto(&format!("/builds/{rust_build}")).await;
    b.find("svg#dependency-graph rect.graph-node").await;
    b.screenshot("dependency-graph").await;
}
