//! Deployments and the agent protocol, spoken by the test as an agent would: enrollment,
//! quotas (nested, atomic under 100 concurrent creates, refusals naming the limit and by how
//! much), placement, assignments woken at once, images only for what is assigned, state
//! history, the console ring and its live stream, unreachable agents, tenant isolation.

use std::time::Duration;

use petrel_tests::{Api, Client, TestServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn inventory(bridges: &[&str]) -> Value {
    json!({"cpus": 2, "memory_mib": 1024, "bridges": bridges, "block_mib": 1024,
           "tender_version": "petrel-hvt test", "tender_abi": 2})
}

/// Enrolls an agent; returns (its id, a client that sends its credential).
pub(super) async fn agent(admin: &Client, name: &str, bridges: &[&str]) -> (Uuid, Client) {
    let enrollment = admin.post("/api/v1/agents/enrollments", json!({"name": name})).await.expect(201);
    let token = enrollment.body["token"].as_str().unwrap().to_string();
    let enrolled = admin
        .anonymous()
        .post("/api/v1/agents/enroll", json!({"token": token, "inventory": inventory(bridges)}))
        .await
        .expect(201);
    // The token works once.
    admin
        .anonymous()
        .post("/api/v1/agents/enroll", json!({"token": token, "inventory": inventory(bridges)}))
        .await
        .expect_problem(401, "unauthenticated");
    let id = enrolled.body["agent_id"].as_str().unwrap().parse().unwrap();
    (id, admin.with_token(enrolled.body["credential"].as_str().unwrap()))
}

async fn quota(admin: &Client, tenant: Uuid, unikernels: i32, memory: i64, bridges: &[&str]) {
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": unikernels, "memory_mib": memory, "block_mib": 0, "cpus": [0, 1], "bridges": bridges}),
        )
        .await
        .expect(200);
}

/// An image: a build's main binary in `tenant`; returns its SHA-256.
async fn image(admin: &Client, tenant: Uuid, bytes: &[u8]) -> String {
    let api = Api { admin };
    let job = api.job(tenant, &format!("img-{}", &hex::encode(Sha256::digest(bytes))[..8]), false).await;
    Api::build(admin, job, &[("bin/unikernel.hvt", bytes)]).await;
    hex::encode(Sha256::digest(bytes))
}

fn create_body(name: &str, sha: &str, memory: i64) -> Value {
    json!({"name": name, "image_sha256": sha, "memory_mib": memory, "restart": {"kind": "on_failure"}})
}

#[tokio::test]
async fn an_agent_gets_its_assignments_at_once_and_reports_state_and_console() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let (agent_id, agent) = agent(&admin, "kvm-1", &["br0"]).await;
    let listed = admin.get("/api/v1/agents").await.expect(200);
    assert_eq!(listed.body["items"][0]["reachable"], true);
    assert_eq!(listed.body["items"][0]["inventory"]["bridges"], json!(["br0"]));
    let sha = image(&admin, tenant, b"unikernel image").await;
    // No quota, no deployments.
    admin
        .post(&format!("/api/v1/tenants/{tenant}/deployments"), create_body("hello", &sha, 32))
        .await
        .expect_problem(403, "no-quota");
    quota(&admin, tenant, 4, 256, &["br0"]).await;

    // The agent waits; the deployment's creation wakes it.
    let first =
        agent.post("/api/v1/agent/assignments", json!({"generation": 0, "wait_secs": 0})).await.expect(200);
    let generation = first.body["generation"].as_i64().unwrap();
    assert_eq!(first.body["deployments"], json!([]));
    let waiting = tokio::spawn({
        let agent = agent.clone();
        async move {
            agent.post("/api/v1/agent/assignments", json!({"generation": generation, "wait_secs": 30})).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut body = create_body("hello", &sha, 32);
    body["nets"] = json!([{"device": "service", "bridge": "br0"}]);
    body["args"] = json!(["--hello=world"]);
    let created = admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201);
    let id: Uuid = created.body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(created.body["state"], "pending");
    assert_eq!(created.body["agent_id"], agent_id.to_string());
    assert!(created.body["build_id"].is_string(), "the image's build is known: {}", created.text);
    let assigned = waiting.await.unwrap().expect(200);
    assert!(assigned.body["generation"].as_i64().unwrap() > generation);
    let a = &assigned.body["deployments"][0];
    assert_eq!(a["deployment_id"], id.to_string());
    assert_eq!(a["name"], "robur.hello");
    assert_eq!(a["args"], json!(["--hello=world"]));
    assert_eq!(a["nets"][0]["device"], "service");
    assert_eq!(a["restart"]["kind"], "on_failure");
    let revision = a["revision"].as_i64().unwrap();

    // The image, for what is assigned only.
    let bytes = agent.get_bytes(&format!("/api/v1/agent/images/{sha}")).await;
    assert_eq!(bytes.as_slice(), b"unikernel image");
    let other = image(&admin, tenant, b"not deployed").await;
    agent.get(&format!("/api/v1/agent/images/{other}")).await.expect_problem(404, "not-found");

    // State and console.
    let follower = tokio::spawn({
        let admin = admin.clone();
        async move { admin.get(&format!("/api/v1/deployments/{id}/console/stream")).await }
    });
    agent
        .post(
            &format!("/api/v1/agent/deployments/{id}/state"),
            json!({"revision": revision, "state": "running"}),
        )
        .await
        .expect(204);
    agent
        .post(
            &format!("/api/v1/agent/deployments/{id}/console"),
            json!({"lines": [{"at_ms": 1, "text": "Hello, World"}, {"at_ms": 2, "text": "SUCCESS"}]}),
        )
        .await
        .expect(204);
    let d = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200);
    assert_eq!(d.body["state"], "running");
    let console = admin.get(&format!("/api/v1/deployments/{id}/console?count=1")).await.expect(200);
    assert_eq!(console.body.as_array().unwrap().len(), 1);
    assert_eq!(console.body[0]["text"], "SUCCESS");
    // It ends, is restarted by its policy, and the history says so.
    for state in ["restarting", "running"] {
        agent
            .post(
                &format!("/api/v1/agent/deployments/{id}/state"),
                json!({"revision": revision, "state": state, "exit_code": if state == "restarting" { json!(2) } else { Value::Null }}),
            )
            .await
            .expect(204);
    }
    // A report about an older revision is ignored.
    agent
        .post(
            &format!("/api/v1/agent/deployments/{id}/state"),
            json!({"revision": revision - 1, "state": "failed"}),
        )
        .await
        .expect(204);
    let d = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200);
    assert_eq!(d.body["state"], "running");
    assert_eq!(d.body["restarts"], 1);
    let history = admin.get(&format!("/api/v1/deployments/{id}/events")).await.expect(200);
    let states: Vec<&str> =
        history.body["items"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "running", "restarting", "running"]);
    assert_eq!(history.body["items"][2]["exit_code"], 2);

    // Restart: a new revision for the agent.
    let restarted = admin.post(&format!("/api/v1/deployments/{id}/restart"), json!({})).await.expect(200);
    assert_eq!(restarted.body["state"], "pending");
    let again = agent
        .post("/api/v1/agent/assignments", json!({"generation": assigned.body["generation"], "wait_secs": 5}))
        .await
        .expect(200);
    assert_eq!(again.body["deployments"][0]["revision"].as_i64().unwrap(), revision + 1);

    // An agent that stops heartbeating leaves its deployments unknown, not running.
    sqlx::query("UPDATE agents SET last_seen_at = now() - interval '5 minutes' WHERE id = $1")
        .bind(agent_id)
        .execute(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body["state"], "unknown");
    agent.post("/api/v1/agent/heartbeat", json!({})).await.expect(204);
    assert_eq!(admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body["state"], "pending");

    // Destroyed: gone from the assignments; the console stream ends.
    admin.delete(&format!("/api/v1/deployments/{id}")).await.expect(204);
    let after = agent
        .post("/api/v1/agent/assignments", json!({"generation": again.body["generation"], "wait_secs": 5}))
        .await
        .expect(200);
    assert_eq!(after.body["deployments"], json!([]));
    agent
        .post(
            &format!("/api/v1/agent/deployments/{id}/state"),
            json!({"revision": revision + 1, "state": "exited"}),
        )
        .await
        .expect_problem(404, "not-found");
    let streamed =
        tokio::time::timeout(Duration::from_secs(30), follower).await.expect("the stream ends").unwrap();
    assert!(streamed.text.contains("Hello, World") && streamed.text.contains("SUCCESS"), "{}", streamed.text);
    assert!(streamed.text.trim_end().ends_with("event: end\ndata: \"destroyed\""), "{}", streamed.text);
}

#[tokio::test]
async fn enrollment_tokens_are_listed_without_their_secret_and_revoked_while_unused() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // Used (agent enrolled), unused, then revoked.
    let (_, _agent) = agent(&admin, "kvm-used", &[]).await;
    let unused = admin.post("/api/v1/agents/enrollments", json!({"name": "kvm-new"})).await.expect(201);
    let doomed = admin.post("/api/v1/agents/enrollments", json!({"name": "kvm-doomed"})).await.expect(201);
    let listed = admin.get("/api/v1/agents/enrollments").await.expect(200);
    assert!(!listed.text.contains("petrele_"), "secrets never leave the server: {}", listed.text);
    let items = listed.body["items"].as_array().unwrap();
    let by_name =
        |name: &str| items.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name}")).clone();
    assert_eq!(by_name("kvm-used")["state"], "used");
    assert!(by_name("kvm-used")["used_at"].is_string());
    assert_eq!(by_name("kvm-new")["state"], "unused");
    assert_eq!(by_name("kvm-new")["id"], unused.body["id"]);
    assert_eq!(by_name("kvm-new")["used_at"], Value::Null);
    assert_eq!(by_name("kvm-new")["expires_at"], unused.body["expires_at"]);
    // Newest first.
    let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kvm-doomed", "kvm-new", "kvm-used"]);

    // Revoked: gone from the list, and no agent can enroll with it.
    let doomed_id = doomed.body["id"].as_str().unwrap();
    admin.delete(&format!("/api/v1/agents/enrollments/{doomed_id}")).await.expect(204);
    admin.delete(&format!("/api/v1/agents/enrollments/{doomed_id}")).await.expect_problem(404, "not-found");
    let enroll = json!({"token": doomed.body["token"], "inventory": inventory(&[])});
    admin.anonymous().post("/api/v1/agents/enroll", enroll).await.expect_problem(401, "unauthenticated");
    // A used one is the agent's history: refused, and kept.
    let used_id = by_name("kvm-used")["id"].as_str().unwrap().to_string();
    let r = admin.delete(&format!("/api/v1/agents/enrollments/{used_id}")).await;
    assert!(r.expect_problem(409, "enrollment-used").text.contains("revoke the agent"));
    let audit = admin.get("/api/v1/audit").await.expect(200);
    let revoked =
        audit.body["items"].as_array().unwrap().iter().find(|e| e["action"] == "agent.enrollment.revoke");
    assert_eq!(revoked.expect("audited")["target"], doomed_id);

    // Keyset pages, newest first, every token once.
    let page1 = admin.get("/api/v1/agents/enrollments?limit=1").await.expect(200);
    assert_eq!(page1.body["items"][0]["name"], "kvm-new");
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = admin.get(&format!("/api/v1/agents/enrollments?limit=1&cursor={cursor}")).await.expect(200);
    assert_eq!(page2.body["items"][0]["name"], "kvm-used");
    assert_eq!(page2.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn quotas_nest_name_the_limit_and_hold_under_concurrent_creates() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let parent = api.tenant("parent", None).await;
    let child = api.tenant("child", Some(parent)).await;
    let (_, owner) = api.user("parent-owner").await;
    api.member(parent, "parent-owner", "owner").await;
    let (_agent_id, _agent) = agent(&admin, "kvm-1", &["br0", "br1"]).await;
    let sha = image(&admin, child, b"image").await;
    quota(&admin, parent, 10, 1000, &["br0"]).await;
    // Owners of the parent set the child's quota, within the parent's.
    let too_big = owner
        .put(
            &format!("/api/v1/tenants/{child}/quota"),
            json!({"unikernels": 11, "memory_mib": 100, "block_mib": 0, "cpus": [0], "bridges": ["br1"]}),
        )
        .await;
    let fields: Vec<&str> =
        too_big.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["unikernels", "bridges"], "{}", too_big.text);
    owner
        .put(
            &format!("/api/v1/tenants/{child}/quota"),
            json!({"unikernels": 10, "memory_mib": 300, "block_mib": 0, "cpus": [0], "bridges": ["br0"]}),
        )
        .await
        .expect(200);
    // The child's owner may not raise its own quota (only administrators set top-level ones).
    owner
        .put(
            &format!("/api/v1/tenants/{parent}/quota"),
            json!({"unikernels": 99, "memory_mib": 99999, "block_mib": 0, "cpus": [0], "bridges": ["br0"]}),
        )
        .await
        .expect_problem(403, "insufficient-role");

    // Over the child's memory: refused, naming the limit and by how much.
    let r = admin.post(&format!("/api/v1/tenants/{child}/deployments"), create_body("big", &sha, 400)).await;
    let r = r.expect_problem(403, "quota-exceeded");
    assert_eq!(r.body["errors"][0]["field"], "memory_mib");
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("by 100 MiB") && message.contains("parent:child"), "{message}");
    let mut bad_bridge = create_body("bridged", &sha, 10);
    bad_bridge["nets"] = json!([{"device": "service", "bridge": "br1"}]);
    let r = admin.post(&format!("/api/v1/tenants/{child}/deployments"), bad_bridge).await;
    assert_eq!(r.expect_problem(403, "quota-exceeded").body["errors"][0]["field"], "nets");
    let r = admin
        .post(
            &format!("/api/v1/tenants/{child}/deployments"),
            json!({"name": "Bad Name", "image_sha256": "zz",
        "memory_mib": 0}),
        )
        .await;
    let fields: Vec<&str> =
        r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["image_sha256", "name", "memory_mib"], "{}", r.text);

    // 100 concurrent creates of 10 MiB against 10 unikernels: exactly 10 get in.
    let mut handles = Vec::new();
    for i in 0..100 {
        let admin = admin.clone();
        let body = create_body(&format!("d{i}"), &sha, 10);
        handles.push(tokio::spawn(async move {
            admin.post(&format!("/api/v1/tenants/{child}/deployments"), body).await
        }));
    }
    let mut created = 0;
    for h in handles {
        let r = h.await.unwrap();
        match r.status {
            201 => created += 1,
            403 => assert_eq!(r.body["code"], "quota-exceeded", "{}", r.text),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(created, 10, "the quota holds under concurrency");
    let usage = admin.get(&format!("/api/v1/tenants/{parent}/quota")).await.expect(200);
    assert_eq!(usage.body["unikernels"], 10, "the child's deployments count against the parent");
    assert_eq!(usage.body["memory_mib"], 100);
}

#[tokio::test]
async fn other_tenants_deployments_consoles_and_images_stay_hidden() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let a = api.tenant("a", None).await;
    let b = api.tenant("b", None).await;
    let (_, owner_b) = api.user("owner-b").await;
    api.member(b, "owner-b", "owner").await;
    let (_, _agent) = agent(&admin, "kvm-1", &[]).await;
    quota(&admin, a, 2, 100, &[]).await;
    quota(&admin, b, 2, 100, &[]).await;
    let sha_a = image(&admin, a, b"a's image").await;
    let d = admin
        .post(&format!("/api/v1/tenants/{a}/deployments"), create_body("mine", &sha_a, 16))
        .await
        .expect(201);
    let id = d.body["id"].as_str().unwrap();
    for path in ["", "/events", "/console", "/console/stream?follow=false"] {
        owner_b.get(&format!("/api/v1/deployments/{id}{path}")).await.expect_problem(404, "not-found");
    }
    owner_b.delete(&format!("/api/v1/deployments/{id}")).await.expect_problem(404, "not-found");
    owner_b.get(&format!("/api/v1/tenants/{a}/deployments")).await.expect_problem(404, "not-found");
    // Another tenant's private image cannot be deployed by hash.
    let r = admin.post(&format!("/api/v1/tenants/{b}/deployments"), create_body("theirs", &sha_a, 16)).await;
    assert_eq!(r.expect_problem(400, "validation-failed").body["errors"][0]["field"], "image_sha256");
    // No agent with the bridge: a clear refusal.
    let mut bridged = create_body("bridged", &sha_a, 16);
    bridged["nets"] = json!([{"device": "service", "bridge": "br9"}]);
    quota(&admin, a, 2, 100, &["br9"]).await;
    admin.post(&format!("/api/v1/tenants/{a}/deployments"), bridged).await.expect_problem(409, "no-capacity");
}

#[tokio::test]
async fn updates_roll_back_restarts_change_arguments_and_stats_are_kept() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let (_, agent) = agent(&admin, "kvm-1", &["br0"]).await;
    quota(&admin, tenant, 4, 256, &["br0"]).await;
    let job = api.job(tenant, "web", false).await;
    let v1 = Api::build(&admin, job, &[("bin/web.hvt", b"web v1")]).await;
    let sha1 = v1["main_binary"]["sha256"].as_str().unwrap().to_string();
    let created = admin
        .post(&format!("/api/v1/tenants/{tenant}/deployments"), create_body("web", &sha1, 32))
        .await
        .expect(201);
    let id = created.id();
    let path = format!("/api/v1/deployments/{id}");
    assert_eq!(created.body["update_available"], Value::Null);
    admin.post(&format!("{path}/update"), json!({})).await.expect_problem(409, "no-update");
    admin.post(&format!("{path}/rollback"), json!({})).await.expect_problem(409, "no-previous-image");

    // A newer build of the job: the update is offered, with the compare link.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v2 = Api::build(&admin, job, &[("bin/web.hvt", b"web v2")]).await;
    let sha2 = v2["main_binary"]["sha256"].as_str().unwrap().to_string();
    let shown = admin.get(&path).await.expect(200);
    let update = &shown.body["update_available"];
    assert_eq!(update["image_sha256"], sha2.as_str(), "{}", shown.text);
    assert_eq!(update["build_id"], v2["id"]);
    assert_eq!(
        update["compare"],
        format!("/api/v1/compare/{}/{}", v1["id"].as_str().unwrap(), v2["id"].as_str().unwrap())
    );
    let listed = admin.get(&format!("/api/v1/tenants/{tenant}/deployments")).await.expect(200);
    assert_eq!(listed.body["items"][0]["update_available"]["image_sha256"], sha2.as_str());
    let revision = |agent: Client| async move {
        let a = agent
            .post("/api/v1/agent/assignments", json!({"generation": 0, "wait_secs": 0}))
            .await
            .expect(200);
        let d = a.body["deployments"][0].clone();
        (d["revision"].as_i64().unwrap(), d)
    };
    let (r1, _) = revision(agent.clone()).await;

    // Update (to the available build): a new revision on the new image, the old one kept.
    let updated = admin.post(&format!("{path}/update"), json!({})).await.expect(200);
    assert_eq!(updated.body["image_sha256"], sha2.as_str());
    assert_eq!(updated.body["build_id"], v2["id"]);
    assert_eq!(updated.body["previous_image_sha256"], sha1.as_str());
    assert_eq!(updated.body["update_available"], Value::Null);
    assert_eq!(updated.body["state"], "pending");
    let (r2, assigned) = revision(agent.clone()).await;
    assert!(r2 > r1);
    assert_eq!(assigned["image_sha256"], sha2.as_str());
    admin
        .post(&format!("{path}/update"), json!({"image_sha256": sha2}))
        .await
        .expect_problem(409, "same-image");
    admin
        .post(&format!("{path}/update"), json!({"image_sha256": "00".repeat(32)}))
        .await
        .expect_problem(400, "validation-failed");

    // Roll back, and back again: the images swap.
    let back = admin.post(&format!("{path}/rollback"), json!({})).await.expect(200);
    assert_eq!(back.body["image_sha256"], sha1.as_str());
    assert_eq!(back.body["previous_image_sha256"], sha2.as_str());
    assert_eq!(back.body["update_available"]["image_sha256"], sha2.as_str());
    let (r3, assigned) = revision(agent.clone()).await;
    assert!(r3 > r2);
    assert_eq!(assigned["image_sha256"], sha1.as_str());

    // Restart with new arguments and memory; more memory than the quota is refused.
    let restarted = admin
        .post(&format!("{path}/restart"), json!({"args": ["--port=8080"], "memory_mib": 64}))
        .await
        .expect(200);
    assert_eq!(restarted.body["args"], json!(["--port=8080"]));
    assert_eq!(restarted.body["memory_mib"], 64);
    let (r4, assigned) = revision(agent.clone()).await;
    assert!(r4 > r3);
    assert_eq!(assigned["memory_mib"], 64);
    assert_eq!(assigned["args"], json!(["--port=8080"]));
    let over = admin.post(&format!("{path}/restart"), json!({"memory_mib": 512})).await;
    let over = over.expect_problem(403, "quota-exceeded");
    assert!(over.text.contains("memory"), "{}", over.text);
    admin
        .post(&format!("{path}/restart"), json!({"memory_mib": 0}))
        .await
        .expect_problem(400, "validation-failed");
    // No body at all: restarted as it is.
    let plain = admin.request(reqwest::Method::POST, &format!("{path}/restart")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(admin.get(&path).await.expect(200).body["memory_mib"], 64);
    let events = admin.get(&format!("{path}/events")).await.expect(200);
    let messages: Vec<&str> =
        events.body["items"].as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(
        messages.contains(&"update requested") && messages.contains(&"rollback requested"),
        "{messages:?}"
    );

    // Stats from the agent: the latest and the history, oldest first.
    let stats = admin.get(&format!("{path}/stats")).await.expect(200);
    assert_eq!(stats.body, json!({"latest": null, "history": []}));
    for (i, rss) in [1000, 2000, 3000].iter().enumerate() {
        let at = chrono::Utc::now() + chrono::Duration::seconds(i as i64);
        let sample = json!({"at": at, "uptime_ms": 1000 * i, "cpu_user_ms": 5, "cpu_system_ms": 1, "rss_kib": rss,
                            "nets": [{"device": "service", "rx_bytes": 10, "tx_bytes": 20, "rx_packets": 1, "tx_packets": 2}]});
        agent.post(&format!("/api/v1/agent/deployments/{id}/stats"), sample).await.expect(204);
    }
    let stats = admin.get(&format!("{path}/stats")).await.expect(200);
    assert_eq!(stats.body["latest"]["rss_kib"], 3000);
    let history: Vec<i64> =
        stats.body["history"].as_array().unwrap().iter().map(|s| s["rss_kib"].as_i64().unwrap()).collect();
    assert_eq!(history, [1000, 2000, 3000]);
    agent
        .post(&format!("/api/v1/agent/deployments/{id}/stats"), json!({"at": chrono::Utc::now()}))
        .await
        .expect_problem(400, "validation-failed");
    // Another tenant's owner sees none of it.
    let other = api.tenant("other", None).await;
    let (_, stranger) = api.user("stranger").await;
    api.member(other, "stranger", "owner").await;
    stranger.get(&format!("{path}/stats")).await.expect_problem(404, "not-found");
    stranger.post(&format!("{path}/rollback"), json!({})).await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn the_fleet_search_names_the_running_deployments_of_a_package() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    agent(&admin, "kvm-1", &["br0"]).await;
    quota(&admin, tenant, 4, 256, &["br0"]).await;
    let job = api.job(tenant, "dns", true).await;
    let lock: &[u8] = b"version = 3\n\n[[package]]\nname = \"dns\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"ring\"\nversion = \"0.17.8\"\n";
    let build = Api::build(&admin, job, &[("bin/dns.hvt", b"dns image"), ("Cargo.lock", lock)]).await;
    let sha = build["main_binary"]["sha256"].as_str().unwrap().to_string();
    let search = "/api/v1/fleet/packages?ecosystem=cargo&name=ring&version=0.17.8";
    let hits = admin.get(search).await.expect(200).body;
    assert_eq!(hits["items"][0]["build_id"], build["id"]);
    assert_eq!(hits["items"][0]["deployments"], json!([]));
    assert_eq!(admin.get(&format!("{search}&deployed=true")).await.expect(200).body["items"], json!([]));

    let created = admin
        .post(&format!("/api/v1/tenants/{tenant}/deployments"), create_body("resolver", &sha, 32))
        .await
        .expect(201);
    let hits = admin.get(&format!("{search}&deployed=true")).await.expect(200).body;
    let deployed = &hits["items"][0]["deployments"];
    assert_eq!(deployed[0]["deployment_id"], created.body["id"], "{hits}");
    assert_eq!(deployed[0]["name"], "resolver");
    assert_eq!(deployed[0]["state"], "pending");
    // The build is public, its deployments are not: strangers see the build only.
    let anonymous = admin.anonymous().get(search).await.expect(200).body;
    assert_eq!(anonymous["items"][0]["deployments"], json!([]));
    assert_eq!(
        admin.anonymous().get(&format!("{search}&deployed=true")).await.expect(200).body["items"],
        json!([])
    );
    // Destroyed: no longer running anywhere.
    admin.delete(&format!("/api/v1/deployments/{}", created.id())).await.expect(204);
    assert_eq!(admin.get(&format!("{search}&deployed=true")).await.expect(200).body["items"], json!([]));
}

/// PUTs raw bytes as a block device's contents (with their SHA-256 unless `sha` overrides it).
async fn upload_block(
    client: &Client,
    id: &str,
    data: &[u8],
    sha: Option<&str>,
) -> petrel_tests::client::Resp {
    let sha = sha.map(str::to_owned).unwrap_or_else(|| hex::encode(Sha256::digest(data)));
    let request = client
        .request(reqwest::Method::PUT, &format!("/api/v1/block-devices/{id}/content"))
        .header("x-petrel-sha256", sha)
        .header("content-type", "application/octet-stream")
        .body(data.to_vec());
    Client::read(request.send().await.unwrap()).await
}

/// The agent's current assignments.
async fn assignments(agent: &Client) -> Value {
    agent.post("/api/v1/agent/assignments", json!({"generation": 0, "wait_secs": 0})).await.expect(200).body
}

#[tokio::test]
async fn block_devices_are_admitted_placed_uploaded_attached_copied_and_kept_apart() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let (agent_id, agent) = agent(&admin, "kvm-1", &["br0"]).await;
    let blocks = format!("/api/v1/tenants/{tenant}/block-devices");
    admin.post(&blocks, json!({"name": "data", "size_mib": 64})).await.expect_problem(403, "no-quota");
    quota(&admin, tenant, 4, 256, &["br0"]).await;
    // A quota without block storage allows none (albatross' policies).
    let r = admin
        .post(&blocks, json!({"name": "data", "size_mib": 64}))
        .await
        .expect_problem(403, "quota-exceeded");
    assert_eq!(r.body["errors"][0]["field"], "size_mib");
    let limits =
        json!({"unikernels": 4, "memory_mib": 256, "block_mib": 100, "cpus": [0, 1], "bridges": ["br0"]});
    admin.put(&format!("/api/v1/tenants/{tenant}/quota"), limits).await.expect(200);
    let r = admin
        .post(&blocks, json!({"name": "Bad Name", "size_mib": 0}))
        .await
        .expect_problem(400, "validation-failed");
    let fields: Vec<&str> =
        r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "size_mib"]);

    let data = admin.post(&blocks, json!({"name": "data", "size_mib": 64})).await.expect(201);
    let id = data.body["id"].as_str().unwrap().to_string();
    assert_eq!(data.body["agent_id"], agent_id.to_string());
    assert_eq!(data.body["attached_to"], Value::Null);
    assert_eq!(data.body["upload_pending"], false);
    let r = admin
        .post(&blocks, json!({"name": "more", "size_mib": 64}))
        .await
        .expect_problem(403, "quota-exceeded");
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("by 28 MiB") && message.contains("100 MiB allowed, 64 MiB in use"), "{message}");
    admin
        .post(&blocks, json!({"name": "data", "size_mib": 1}))
        .await
        .expect_problem(409, "block-device-name-taken");
    let usage = admin.get(&format!("/api/v1/tenants/{tenant}/quota")).await.expect(200);
    assert_eq!(usage.body["block_mib"], 64);
    // The agent is told to keep it.
    let assigned = assignments(&agent).await;
    assert_eq!(
        assigned["block_devices"],
        json!([{"id": id, "size_mib": 64, "content_version": 0,
        "applied_version": 0, "export_requested": 0, "export_version": 0}])
    );

    // Uploads: checked against their hash and the device's size.
    let tiny = admin.post(&blocks, json!({"name": "tiny", "size_mib": 1})).await.expect(201);
    let tiny_id = tiny.body["id"].as_str().unwrap();
    upload_block(&admin, tiny_id, &vec![1u8; (1 << 20) + 1], None)
        .await
        .expect_problem(413, "payload-too-large");
    let r = upload_block(&admin, tiny_id, b"abc", Some(&"0".repeat(64)))
        .await
        .expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "x-petrel-sha256");
    admin.delete(&format!("/api/v1/block-devices/{tiny_id}")).await.expect(204);
    let content = b"hello from an upload\n";
    let uploaded = upload_block(&admin, &id, content, None).await.expect(202);
    assert_eq!(uploaded.body["upload_pending"], true);

    // Not attachable until the agent wrote it.
    let sha = image(&admin, tenant, b"a unikernel with storage").await;
    let mut with_block = create_body("db", &sha, 32);
    with_block["blocks"] = json!([{"device": "storage", "block_device": "data", "sector_size": 4096}]);
    let deployments = format!("/api/v1/tenants/{tenant}/deployments");
    let r = admin.post(&deployments, with_block.clone()).await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "blocks[0].block_device");
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("upload"), "{}", r.text);

    // The agent fetches the upload, writes it and says so.
    let assigned = assignments(&agent).await;
    assert_eq!(assigned["block_devices"][0]["content_version"], 1);
    let fetched = agent
        .request(reqwest::Method::GET, &format!("/api/v1/agent/block-devices/{id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.headers()["x-petrel-sha256"], hex::encode(Sha256::digest(content)));
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), content);
    agent
        .post(&format!("/api/v1/agent/block-devices/{id}/report"), json!({"applied_version": 1}))
        .await
        .expect(204);
    assert_eq!(
        admin.get(&format!("/api/v1/block-devices/{id}")).await.expect(200).body["upload_pending"],
        false
    );
    // Written: the upload is no longer offered.
    agent.get(&format!("/api/v1/agent/block-devices/{id}/content")).await.expect_problem(404, "not-found");

    // Attached: the deployment is pinned to the device's agent.
    for (blocks, field) in [
        (json!([{"device": "storage", "block_device": "nope"}]), "blocks[0].block_device"),
        (json!([{"device": "storage", "block_device": "data", "sector_size": 100}]), "blocks[0].sector_size"),
        (
            json!([{"device": "storage", "block_device": "data"}, {"device": "storage", "block_device": "data"}]),
            "blocks[1].device",
        ),
    ] {
        let mut body = create_body("bad", &sha, 32);
        body["blocks"] = blocks;
        let r = admin.post(&deployments, body).await.expect_problem(400, "validation-failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
    }
    let created = admin.post(&deployments, with_block.clone()).await.expect(201);
    let deployment = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["agent_id"], agent_id.to_string());
    assert_eq!(
        created.body["blocks"],
        json!([{"device": "storage", "block_device": "data", "sector_size": 4096}])
    );
    let assigned = assignments(&agent).await;
    assert_eq!(
        assigned["deployments"][0]["blocks"],
        json!([{"device": "storage", "block_device_id": id, "sector_size": 4096}])
    );
    assert_eq!(
        admin.get(&format!("/api/v1/block-devices/{id}")).await.expect(200).body["attached_to"],
        deployment
    );
    // A device backs one deployment; it is neither overwritten, deleted nor copied meanwhile.
    with_block["name"] = json!("db2");
    let r = admin.post(&deployments, with_block).await.expect_problem(400, "validation-failed");
    assert!(
        r.body["errors"][0]["message"].as_str().unwrap().contains("backs deployment \"db\""),
        "{}",
        r.text
    );
    upload_block(&admin, &id, b"x", None).await.expect_problem(409, "block-device-attached");
    admin.delete(&format!("/api/v1/block-devices/{id}")).await.expect_problem(409, "block-device-attached");
    admin
        .get(&format!("/api/v1/block-devices/{id}/content"))
        .await
        .expect_problem(409, "block-device-in-use");

    // Other tenants see nothing of it.
    let other = api.tenant("other", None).await;
    let (_, owner) = api.user("owner-other").await;
    api.member(other, "owner-other", "owner").await;
    for path in ["", "/content"] {
        owner.get(&format!("/api/v1/block-devices/{id}{path}")).await.expect_problem(404, "not-found");
    }
    upload_block(&owner, &id, b"x", None).await.expect_problem(404, "not-found");
    owner.delete(&format!("/api/v1/block-devices/{id}")).await.expect_problem(404, "not-found");
    owner.get(&format!("/api/v1/tenants/{tenant}/block-devices")).await.expect_problem(404, "not-found");
    let mut theirs = create_body("theirs", &image(&admin, other, b"other image").await, 16);
    theirs["blocks"] = json!([{"device": "storage", "block_device": "data"}]);
    quota(&admin, other, 2, 100, &[]).await;
    let r = owner
        .post(&format!("/api/v1/tenants/{other}/deployments"), theirs)
        .await
        .expect_problem(400, "validation-failed");
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("no block device named"), "{}", r.text);

    // Once the deployment is gone, a download asks the agent for a copy and streams it.
    admin.delete(&format!("/api/v1/deployments/{deployment}")).await.expect(204);
    let download = tokio::spawn({
        let admin = admin.clone();
        let id = id.clone();
        async move {
            let response = admin
                .request(reqwest::Method::GET, &format!("/api/v1/block-devices/{id}/content"))
                .send()
                .await
                .unwrap();
            let sha = response.headers().get("x-petrel-sha256").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), sha, response.bytes().await.unwrap())
        }
    });
    let mut device = json!(null);
    for _ in 0..100 {
        device = assignments(&agent).await["block_devices"][0].clone();
        if device["export_requested"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(device["export_requested"], 1, "{device}");
    let copy = b"the device's bytes".to_vec();
    let stored = agent
        .request(reqwest::Method::PUT, &format!("/api/v1/agent/block-devices/{id}/export/1"))
        .header("x-petrel-sha256", hex::encode(Sha256::digest(&copy)))
        .body(copy.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status().as_u16(), 204);
    let (status, sha, bytes) = download.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(sha, Some(hex::encode(Sha256::digest(&copy))));
    assert_eq!(bytes.as_ref(), copy.as_slice());
    // A copy the agent cannot make is a clear refusal.
    let failing = tokio::spawn({
        let admin = admin.clone();
        let id = id.clone();
        async move { admin.get(&format!("/api/v1/block-devices/{id}/content")).await }
    });
    for _ in 0..100 {
        if assignments(&agent).await["block_devices"][0]["export_requested"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent
        .post(
            &format!("/api/v1/agent/block-devices/{id}/report"),
            json!({"failed_export": 2, "message": "disk on fire"}),
        )
        .await
        .expect(204);
    let r = failing.await.unwrap().expect_problem(409, "export-failed");
    assert!(r.body["detail"].as_str().unwrap().contains("disk on fire"), "{}", r.text);

    // Deleted: its agent drops it and the quota is free again.
    admin.delete(&format!("/api/v1/block-devices/{id}")).await.expect(204);
    assert_eq!(assignments(&agent).await["block_devices"], json!([]));
    assert_eq!(admin.get(&format!("/api/v1/tenants/{tenant}/quota")).await.expect(200).body["block_mib"], 0);
    admin.get(&format!("/api/v1/block-devices/{id}")).await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn concurrent_block_device_creates_never_exceed_the_block_quota_of_any_ancestor() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let parent = api.tenant("parent", None).await;
    let child = api.tenant("child", Some(parent)).await;
    agent(&admin, "kvm-1", &[]).await;
    let limits = |block: i64| json!({"unikernels": 1, "memory_mib": 64, "block_mib": block, "cpus": [], "bridges": []});
    admin.put(&format!("/api/v1/tenants/{parent}/quota"), limits(100)).await.expect(200);
    admin.put(&format!("/api/v1/tenants/{child}/quota"), limits(100)).await.expect(200);
    // The parent's own device counts against it as the child's do.
    admin
        .post(&format!("/api/v1/tenants/{parent}/block-devices"), json!({"name": "own", "size_mib": 30}))
        .await
        .expect(201);
    let creates = (0..20).map(|i| {
        let admin = admin.clone();
        async move {
            admin
                .post(
                    &format!("/api/v1/tenants/{child}/block-devices"),
                    json!({"name": format!("d{i}"), "size_mib": 10}),
                )
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(creates).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 7, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 403), "{statuses:?}");
    let usage = admin.get(&format!("/api/v1/tenants/{parent}/quota")).await.expect(200);
    assert_eq!(usage.body["block_mib"], 100);
}
