//! The SPA in a real headless Chromium against the real API over HTTPS: sign in, see tenants,
//! create a tenant (and see the API's refusal next to the form), create an API token and use
//! it, sign out; run a job and follow its build live, with its treemap, dependency graph and a
//! comparison of two builds; see deployments with their console, stats and history, update,
//! roll back and destroy one; create one with the form (its device rows drawn from the image's
//! manifest, the API's messages next to the fields, the quota's refusal), see quotas as bars and
//! change one, see agents' health, create, list and revoke enrollment tokens; create, upload and
//! delete block devices and attach one in the form (its row from the image's manifest).
//! Screenshots of the pages are kept in target/screenshots.

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
    b.sign_in("admin", &s.admin_password).await;

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

#[tokio::test]
async fn see_deployments_their_console_stats_and_history_update_roll_back_and_destroy() {
    use petrel_tests::Api;
    use serde_json::json;

    let dist = frontend_dist();
    let s = TestServer::start_with(move |c| c.frontend_dir = Some(dist)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 4, "memory_mib": 256, "block_mib": 0, "cpus": [], "bridges": []}),
        )
        .await
        .expect(200);
    // An agent speaking the protocol from here: no KVM needed to show what agents report.
    let (_, agent) = super::deployments::agent(&admin, "kvm-1", &[]).await;
    let job = api.job(tenant, "web", false).await;
    let v1 = Api::build(&admin, job, &[("bin/web.hvt", b"web v1")]).await;
    let sha1 = v1["main_binary"]["sha256"].as_str().unwrap().to_string();
    let body = json!({"name": "web", "image_sha256": sha1, "memory_mib": 32, "restart": {"kind": "never"}});
    let id = admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201).id();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let v2 = Api::build(&admin, job, &[("bin/web.hvt", b"web v2")]).await;
    let sha2 = v2["main_binary"]["sha256"].as_str().unwrap().to_string();
    let assigned =
        agent.post("/api/v1/agent/assignments", json!({"generation": 0, "wait_secs": 0})).await.expect(200);
    let revision = assigned.body["deployments"][0]["revision"].as_i64().unwrap();
    agent
        .post(
            &format!("/api/v1/agent/deployments/{id}/state"),
            json!({"revision": revision, "state": "running"}),
        )
        .await
        .expect(204);
    let lines =
        json!({"lines": [{"at_ms": 0, "text": "booting web"}, {"at_ms": 1, "text": "serving on :80"}]});
    agent.post(&format!("/api/v1/agent/deployments/{id}/console"), lines).await.expect(204);
    for (i, rss) in [9000, 9500, 9800].iter().enumerate() {
        let at = chrono::Utc::now() + chrono::Duration::seconds(10 * i as i64);
        let sample = json!({"at": at, "uptime_ms": 10_000 * i, "cpu_user_ms": 100 * i, "cpu_system_ms": 20 * i,
                            "rss_kib": rss, "nets": []});
        agent.post(&format!("/api/v1/agent/deployments/{id}/stats"), sample).await.expect(204);
    }

    let key = std::fs::read_to_string(s.data_dir.path().join("tls/server.key")).unwrap();
    let b = Browser::start(&s.server.url, &key).await;
    b.sign_in("admin", &s.admin_password).await;
    b.goto("/deployments").await;
    b.select("select[name=deployment-tenant]", "robur").await;
    b.find("[data-testid=deployment-row] [data-testid=update-available]").await;
    b.wait_for_text("running").await;
    b.screenshot("deployments").await;
    b.goto(&format!("/deployments/{id}")).await;
    b.find("#console .console-line").await;
    b.wait_for_text("serving on :80").await;
    b.find("svg[data-testid=memory-chart] polyline").await;
    b.find("svg[data-testid=cpu-chart] polyline").await;
    b.find("[data-testid=event-row]").await;
    b.find("[data-testid=update-available] a").await;
    b.screenshot("deployment").await;

    // Update to the newer build, then roll back: the page follows.
    b.click("[data-testid=update]").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while shown_image(&b).await != sha2 {
        assert!(std::time::Instant::now() < deadline, "the page never showed the update");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.click("[data-testid=rollback]").await;
    while shown_image(&b).await != sha1 {
        assert!(std::time::Instant::now() < deadline, "the page never showed the rollback");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.click("[data-testid=destroy]").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while b.current_path().await != "/deployments" {
        assert!(std::time::Instant::now() < deadline, "destroy did not return to the list");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    admin.get(&format!("/api/v1/deployments/{id}")).await.expect_problem(404, "not-found");
}

async fn shown_image(b: &Browser) -> String {
    b.text(&b.find("[data-testid=deployment-image]").await).await
}

#[tokio::test]
async fn create_a_deployment_with_the_form_see_quotas_as_bars_and_enroll_an_agent() {
    use petrel_tests::Api;
    use serde_json::json;

    let dist = frontend_dist();
    let s = TestServer::start_with(move |c| c.frontend_dir = Some(dist)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let lab = api.tenant("lab", Some(tenant)).await;
    let quota = |unikernels: i32, memory: i64, cpus: &[i32]| json!({"unikernels": unikernels, "memory_mib": memory, "block_mib": 0, "cpus": cpus, "bridges": ["br0"]});
    admin.put(&format!("/api/v1/tenants/{tenant}/quota"), quota(2, 64, &[0, 1])).await.expect(200);
    admin.put(&format!("/api/v1/tenants/{lab}/quota"), quota(1, 32, &[0])).await.expect(200);
    // An agent speaking the protocol from here, with the bridge.
    let (_, _agent) = super::deployments::agent(&admin, "kvm-1", &["br0"]).await;
    // A real solo5 image whose manifest declares one net device, `service0`.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    let guests = tokio::task::spawn_blocking(move || super::kvm::build_guests(&out)).await.unwrap();
    let job = api.job(tenant, "web", false).await;
    let image = std::fs::read(guests.join("net.hvt")).unwrap();
    let build = Api::build(&admin, job, &[("bin/web.hvt", &image)]).await;
    let sha = build["main_binary"]["sha256"].as_str().unwrap().to_string();

    let key = std::fs::read_to_string(s.data_dir.path().join("tls/server.key")).unwrap();
    let b = Browser::start(&s.server.url, &key).await;
    b.sign_in("admin", &s.admin_password).await;

    // Agents: the enrolled one with its health and inventory; an enrollment token shown once.
    b.goto("/agents").await;
    b.find("[data-testid=agent-row]").await;
    b.wait_for_text("kvm-1").await;
    b.wait_for_attribute("[data-testid=agent-row] [data-health]", "data-health", "reachable").await;
    b.wait_for_text_in("[data-testid=agent-row]", "br0").await;
    b.type_into("form[aria-label='Create an enrollment token'] input[name=name]", "kvm-2").await;
    b.click("form[aria-label='Create an enrollment token'] button[type=submit]").await;
    let token = b.text(&b.find("[data-testid=new-enrollment] code").await).await;
    assert!(token.starts_with("petrele_"), "{token}");
    // Listed, unused, without its secret; a second one is revoked from the list.
    b.wait_for_text_in("[data-testid=enrollment-row]", "kvm-2").await;
    b.type_into("form[aria-label='Create an enrollment token'] input[name=name]", "kvm-3").await;
    b.click("form[aria-label='Create an enrollment token'] button[type=submit]").await;
    b.wait_for_text_in("[data-testid=enrollments]", "kvm-3").await;
    assert_eq!(b.find_all("[data-testid=enrollment-row] [data-state=unused]").await.len(), 2);
    assert!(!b.text(&b.find("[data-testid=enrollments]").await).await.contains("petrele_"));
    b.screenshot("agents").await;
    b.click("button[aria-label='Revoke the enrollment token for kvm-3']").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while b.text(&b.find("[data-testid=enrollments]").await).await.contains("kvm-3") {
        assert!(std::time::Instant::now() < deadline, "the revoked token stayed listed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(b.find_all("[data-testid=new-enrollment]").await.is_empty(), "its secret is no longer shown");
    let listed = admin.get("/api/v1/agents/enrollments").await.expect(200);
    let names: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kvm-2", "kvm-1"], "kvm-3 revoked");
    // A name the API refuses shows its message next to the field.
    b.type_into("form[aria-label='Create an enrollment token'] input[name=name]", "no spaces allowed").await;
    b.click("form[aria-label='Create an enrollment token'] button[type=submit]").await;
    b.wait_for_text_in("[data-error-for=name]", " ").await;
    // The token works (once); the page does not show it again.
    let inventory = json!({"cpus": 2, "memory_mib": 1024, "bridges": ["br0"], "block_mib": 0,
                           "tender_version": "petrel-hvt test", "tender_abi": 2});
    admin
        .anonymous()
        .post("/api/v1/agents/enroll", json!({"token": token, "inventory": inventory}))
        .await
        .expect(201);
    b.goto("/agents").await;
    b.wait_for_text("kvm-2").await;
    assert_eq!(b.find_all("[data-testid=agent-row]").await.len(), 2);
    assert!(b.find_all("[data-testid=new-enrollment]").await.is_empty(), "the token is shown once");
    // Its token is used now: no revoke button any more.
    b.wait_for_attribute("[data-testid=enrollment-row] [data-state]", "data-state", "used").await;
    assert!(b.find_all("[data-revoke-token]").await.is_empty());

    // The form: invalid fields get the API's messages next to them.
    b.goto("/deployments").await;
    b.select("select[name=deployment-tenant]", "robur").await;
    b.click("[data-testid=new-deployment]").await;
    b.select("#deploy-tenant", "robur").await;
    b.find("form[aria-label='Create a deployment']").await;
    // Picking the build fills in its image, and a row for each device its manifest declares,
    // on the tenant's allowed bridge.
    b.click(&format!("#f-build option[value='{sha}']")).await;
    b.wait_for_property("#f-image_sha256", "value", &sha).await;
    b.wait_for_property("input[name=net-device]", "value", "service0").await;
    b.wait_for_property("select[name=net-bridge]", "value", "br0").await;
    b.wait_for_text_in("#manifest-note", "network devices: service0; block devices: none").await;
    assert_eq!(b.find_all("[data-row=nets]").await.len(), 1);
    assert!(b.find_all("[data-row=blocks]").await.is_empty());
    b.screenshot("deployment-form-manifest").await;
    b.type_into("#f-name", "Not Valid!").await;
    b.type_into("#f-memory_mib", "0").await;
    b.click("form[aria-label='Create a deployment'] button[type=submit]").await;
    b.wait_for_text_in("[data-error-for=memory_mib]", "between 1 and").await;
    assert!(!b.text(&b.find("[data-error-for=name]").await).await.is_empty(), "the name's message");
    assert_eq!(b.attribute(&b.find("#f-name").await, "aria-invalid").await.as_deref(), Some("true"));
    b.screenshot("deployment-form-errors").await;

    // Over the quota (64 MiB): the quota's message, and the field's.
    b.type_into("#f-name", "web").await;
    b.type_into("#f-memory_mib", "128").await;
    b.click("form[aria-label='Create a deployment'] button[type=submit]").await;
    b.wait_for_text_in("[data-testid=quota-exceeded]", "quota").await;
    b.wait_for_text_in("[data-error-for=memory_mib]", "exceeds tenant").await;
    assert_eq!(b.text(&b.find("[data-error-for=name]").await).await, "", "the name is fine now");
    b.screenshot("deployment-form-quota").await;

    // Within the quota, with the manifest's network device on the allowed bridge: the
    // deployment's page.
    b.type_into("#f-memory_mib", "32").await;
    b.type_into("#f-args", "--ipv4=10.0.0.2/24\n--hello").await;
    b.click("form[aria-label='Create a deployment'] button[type=submit]").await;
    b.find("[data-testid=deployment-facts]").await;
    let path = b.current_path().await;
    let id = path.trim_start_matches("/deployments/");
    let created = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200);
    assert_eq!(created.body["name"], "web");
    assert_eq!(created.body["memory_mib"], 32);
    assert_eq!(created.body["nets"], json!([{"device": "service0", "bridge": "br0", "mac": null}]));
    assert_eq!(created.body["args"], json!(["--ipv4=10.0.0.2/24", "--hello"]));

    // Quotas: usage against each limit as bars, the sub-tenant with its own.
    b.goto(&format!("/quotas?tenant={tenant}")).await;
    b.wait_for_attribute("[data-testid=quota-unikernels]", "aria-valuenow", "1").await;
    let unikernels = b.find("[data-testid=quota-unikernels]").await;
    assert_eq!(b.attribute(&unikernels, "role").await.as_deref(), Some("meter"));
    assert_eq!(b.attribute(&unikernels, "aria-valuemax").await.as_deref(), Some("2"));
    let memory = b.find("[data-testid=quota-memory]").await;
    assert_eq!(b.attribute(&memory, "aria-valuenow").await.as_deref(), Some("32"));
    assert_eq!(b.attribute(&memory, "aria-valuemax").await.as_deref(), Some("64"));
    b.wait_for_text_in("[data-testid=sub-tenant-quota]", "lab").await;
    b.find("[data-testid=sub-memory-lab]").await;
    b.screenshot("quotas").await;
    // Changing it: a refused value shows its message; a good one is saved and drawn.
    b.type_into("#f-memory_mib", "-5").await;
    b.click("form[aria-label='Change the quota'] button[type=submit]").await;
    b.wait_for_text_in("[data-error-for=memory_mib]", "must not be negative").await;
    b.type_into("#f-memory_mib", "16").await;
    b.click("form[aria-label='Change the quota'] button[type=submit]").await;
    // Smaller than the sub-tenant's quota: the API names the field.
    b.wait_for_text_in("[data-error-for=memory_mib]", "sub-tenant").await;
    b.type_into("#f-memory_mib", "128").await;
    b.click("form[aria-label='Change the quota'] button[type=submit]").await;
    b.find("[data-testid=quota-saved]").await;
    b.wait_for_attribute("[data-testid=quota-memory]", "aria-valuemax", "128").await;
    let saved = admin.get(&format!("/api/v1/tenants/{tenant}/quota")).await.expect(200);
    assert_eq!(saved.body["quota"]["memory_mib"], 128);
    // At a phone's width.
    b.set_window_size(390, 844).await;
    b.screenshot("quotas-phone").await;
    b.goto(&format!("/deployments/new?tenant={tenant}")).await;
    b.find("#f-name").await;
    b.screenshot("deployment-form-phone").await;
}

#[tokio::test]
async fn create_upload_and_delete_block_devices_see_their_quota_bar_and_attach_one_in_the_form() {
    use petrel_tests::Api;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    let dist = frontend_dist();
    let s = TestServer::start_with(move |c| c.frontend_dir = Some(dist)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let limits = json!({"unikernels": 2, "memory_mib": 64, "block_mib": 64, "cpus": [], "bridges": []});
    admin.put(&format!("/api/v1/tenants/{tenant}/quota"), limits).await.expect(200);
    // An agent speaking the protocol from here, with 1024 MiB of block storage.
    let (_, agent) = super::deployments::agent(&admin, "kvm-1", &[]).await;
    // A real solo5 image whose manifest declares one block device, `storage`.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    let guests = tokio::task::spawn_blocking(move || super::kvm::build_guests(&out)).await.unwrap();
    let job = api.job(tenant, "db", false).await;
    let image = std::fs::read(guests.join("blk.hvt")).unwrap();
    let build = Api::build(&admin, job, &[("bin/db.hvt", &image)]).await;
    let sha = build["main_binary"]["sha256"].as_str().unwrap().to_string();

    let key = std::fs::read_to_string(s.data_dir.path().join("tls/server.key")).unwrap();
    let b = Browser::start(&s.server.url, &key).await;
    b.sign_in("admin", &s.admin_password).await;

    // Nothing yet; the block storage bar at 0 of 64 MiB.
    b.goto(&format!("/quotas?tenant={tenant}")).await;
    let bar = b.find("[data-testid=quota-block]").await;
    assert_eq!(b.attribute(&bar, "role").await.as_deref(), Some("meter"));
    assert_eq!(b.attribute(&bar, "aria-valuenow").await.as_deref(), Some("0"));
    assert_eq!(b.attribute(&bar, "aria-valuemax").await.as_deref(), Some("64"));

    // Created with the form (from the navigation); the API's messages next to the fields.
    b.click("nav a[href='/block-devices']").await;
    b.select("select[name=block-tenant]", "robur").await;
    let form = "form[aria-label='Create a block device']";
    b.type_into(&format!("{form} #f-name"), "Bad Name").await;
    b.type_into(&format!("{form} #f-size_mib"), "0").await;
    b.click(&format!("{form} button[type=submit]")).await;
    b.wait_for_text_in("[data-error-for=size_mib]", "between 1 and").await;
    assert!(!b.text(&b.find("[data-error-for=name]").await).await.is_empty(), "the name's message");
    b.type_into(&format!("{form} #f-name"), "data").await;
    b.type_into(&format!("{form} #f-size_mib"), "16").await;
    b.click(&format!("{form} button[type=submit]")).await;
    b.wait_for_text_in("[data-testid=block-device-row]", "data").await;
    b.wait_for_text_in("[data-testid=block-device-row]", "16 MiB").await;
    assert_eq!(b.text(&b.find("[data-error-for=name]").await).await, "", "the name is fine now");
    let row = b.find("[data-testid=block-device-row] [data-testid=block-name]").await;
    assert_eq!(b.text(&row).await, "data");
    let created = admin.get(&format!("/api/v1/tenants/{tenant}/block-devices")).await.expect(200);
    let id = created.body["items"][0]["id"].as_str().unwrap().to_string();
    let download = b.find("[data-testid=block-device-row] a[download]").await;
    assert_eq!(
        b.attribute(&download, "href").await.as_deref(),
        Some(format!("/api/v1/block-devices/{id}/content").as_str())
    );

    // Over the quota (64 MiB, 16 in use): the quota's message, and the size's.
    b.type_into(&format!("{form} #f-name"), "big").await;
    b.type_into(&format!("{form} #f-size_mib"), "100").await;
    b.click(&format!("{form} button[type=submit]")).await;
    b.wait_for_text_in("[data-testid=quota-exceeded]", "quota").await;
    b.wait_for_text_in("[data-error-for=size_mib]", "64 MiB allowed, 16 MiB in use").await;
    assert_eq!(b.find_all("[data-testid=block-device-row]").await.len(), 1);

    // Uploading a file: hashed in the browser, sent with its SHA-256; pending until the agent
    // wrote it, and the agent gets exactly its bytes.
    let content = b"hello from the browser\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disk.img");
    std::fs::write(&file, content).unwrap();
    b.type_into("[data-testid=block-device-row] input[type=file]", file.to_str().unwrap()).await;
    b.find("[data-testid=upload-pending]").await;
    let fetched = agent
        .request(reqwest::Method::GET, &format!("/api/v1/agent/block-devices/{id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.headers()["x-petrel-sha256"], hex::encode(Sha256::digest(content)));
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), content);
    b.screenshot("block-devices").await;

    // The quota's bar counts it.
    b.goto(&format!("/quotas?tenant={tenant}")).await;
    b.wait_for_attribute("[data-testid=quota-block]", "aria-valuenow", "16").await;
    b.wait_for_text_in("[data-testid=quota-usage]", "16 MiB of 64 MiB").await;

    // The deployment form: a block device row backed by it; the API's message (the upload is
    // not written yet) in the row.
    b.goto(&format!("/deployments/new?tenant={tenant}")).await;
    b.find("form[aria-label='Create a deployment']").await;
    b.wait_for_text_in("#blocks-available", "data").await;
    // Typing the image's SHA-256 draws the manifest's block device row.
    b.type_into("#f-image_sha256", &sha).await;
    b.wait_for_property("input[name=block-device]", "value", "storage").await;
    assert!(b.find_all("[data-row=nets]").await.is_empty());
    b.type_into("#f-name", "db").await;
    b.select("select[name=block-name]", "data").await;
    b.select("select[name=block-sector]", "4096").await;
    b.click("form[aria-label='Create a deployment'] button[type=submit]").await;
    b.wait_for_text_in("[data-row=blocks] [data-row-field=block_device]", "upload").await;
    let field = b.find("select[name=block-name]").await;
    assert_eq!(b.attribute(&field, "aria-invalid").await.as_deref(), Some("true"));

    // Deleted: gone from the list and from the quota's usage.
    b.goto(&format!("/block-devices?tenant={tenant}")).await;
    b.find("[data-testid=block-device-row]").await;
    b.click("[data-testid=block-device-row] button[data-delete]").await;
    b.wait_for_text("Nothing here yet").await;
    assert!(b.find_all("[data-testid=block-device-row]").await.is_empty());
    admin.get(&format!("/api/v1/block-devices/{id}")).await.expect_problem(404, "not-found");
    b.goto(&format!("/quotas?tenant={tenant}")).await;
    b.wait_for_attribute("[data-testid=quota-block]", "aria-valuenow", "0").await;
}
