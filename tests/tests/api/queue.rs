//! The build queue and the worker protocol, spoken by the test as workers would: scheduling,
//! "run now" without duplicates, long-poll claims woken by NOTIFY, exclusive claims under
//! contention, leases that lapse and re-queue, cancel through the heartbeat, the live console,
//! results uploaded with the worker's credential, rebuild verdicts, tenant-private workers and
//! one scheduler among several replicas.

use std::collections::BTreeSet;
use std::time::Duration;

use petrel_tests::client::{PLATFORM, Resp};
use petrel_tests::{Api, Client, TestServer};
use serde_json::{Value, json};
use uuid::Uuid;

fn recipe() -> Value {
    json!({"script": "echo hello"})
}

async fn claim(worker: &Client, wait_secs: i32) -> Resp {
    worker.post("/api/v1/worker/claim", json!({"platform": PLATFORM, "wait_secs": wait_secs})).await
}

async fn build(client: &Client, id: Uuid) -> Value {
    client.get(&format!("/api/v1/builds/{id}")).await.expect(200).body
}

/// Polls the build until `done` holds, for at most a minute.
async fn build_until(client: &Client, id: Uuid, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let b = build(client, id).await;
        if done(&b) {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "the build never became {what}: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads a claimed build's result as its worker: one artifact, exit 0.
async fn upload_result(worker: &Client, job: Uuid, build_id: Uuid, files: &[(&str, &[u8])]) -> Resp {
    let now = chrono::Utc::now();
    let upload = worker
        .post(
            &format!("/api/v1/jobs/{job}/uploads"),
            json!({"platform": PLATFORM, "build_id": build_id, "started_at": now, "finished_at": now,
                   "result": {"kind": "exited", "code": 0}}),
        )
        .await;
    if upload.status != 201 {
        return upload;
    }
    let upload = upload.id();
    for (path, data) in files {
        worker.put_artifact(upload, path, data).await.expect(201);
    }
    worker.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await
}

fn claimed_id(r: &Resp) -> Uuid {
    r.body["build_id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no claim: {}", r.text))
}

#[tokio::test]
async fn run_now_queues_once_per_platform_and_a_waiting_worker_gets_it_at_once() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.recipe_job(tenant, "hello", recipe(), json!({})).await;
    let (_, worker, _) = api.worker("w1", None).await;
    worker
        .post("/api/v1/worker/hello", json!({"platform": PLATFORM, "concurrency": 2, "version": "test"}))
        .await
        .expect(200);

    // The worker waits first; the build is queued while it waits.
    let waiting = tokio::spawn({
        let worker = worker.clone();
        async move { claim(&worker, 30).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    assert_eq!(first.body[0]["new"], true);
    let claimed = waiting.await.unwrap().expect(200);
    assert_eq!(claimed.body["build_id"], first.body[0]["build_id"]);
    assert_eq!(claimed.body["attempt"], 1);
    assert_eq!(claimed.body["recipe"]["script"], "echo hello");
    assert_eq!(claimed.body["limits"]["timeout_secs"], 3600);
    let b = build(&admin, claimed_id(&claimed)).await;
    assert_eq!(b["status"], "running");
    assert_eq!(b["worker"], "w1");

    // While one runs, asking again queues a new build; asking once more does not.
    let second = admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    let again = admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    assert_eq!(second.body[0]["new"], true);
    assert_eq!(again.body[0]["new"], false, "a queued job is not queued twice");
    assert_eq!(second.body[0]["build_id"], again.body[0]["build_id"]);
    assert_ne!(second.body[0]["build_id"], first.body[0]["build_id"]);

    // Nothing for another platform, after the wait.
    worker
        .post("/api/v1/worker/claim", json!({"platform": "freebsd-14-amd64", "wait_secs": 0}))
        .await
        .expect(204);
    // Bad requests name the field.
    let bad = worker.post("/api/v1/worker/claim", json!({"platform": PLATFORM, "wait_secs": 61})).await;
    assert_eq!(bad.expect_problem(400, "validation-failed").body["errors"][0]["field"], "wait_secs");
    let bad = admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({"platforms": ["nope"]})).await;
    assert_eq!(bad.expect_problem(400, "validation-failed").body["errors"][0]["field"], "platforms[0]");
    let plain = api.job(tenant, "no-recipe", false).await;
    admin.post(&format!("/api/v1/jobs/{plain}/runs"), json!({})).await.expect_problem(409, "no-recipe");
    // A user's token is not a worker credential, and a worker credential is not a user.
    admin
        .post("/api/v1/worker/claim", json!({"platform": PLATFORM}))
        .await
        .expect_problem(401, "unauthenticated");
    worker.get("/api/v1/me").await.expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn four_workers_never_claim_the_same_build() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let mut queued = BTreeSet::new();
    for i in 0..24 {
        let job = api.recipe_job(tenant, &format!("job-{i}"), recipe(), json!({})).await;
        let r = admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
        queued.insert(r.body[0]["build_id"].as_str().unwrap().to_string());
    }
    let mut handles = Vec::new();
    for w in 0..4 {
        let (_, worker, _) = api.worker(&format!("w{w}"), None).await;
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let r = claim(&worker, 0).await;
                if r.status == 204 {
                    return mine;
                }
                mine.push(r.expect(200).body["build_id"].as_str().unwrap().to_string());
            }
        }));
    }
    let mut claimed = Vec::new();
    for h in handles {
        claimed.extend(h.await.unwrap());
    }
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), distinct.len(), "a build was claimed twice: {claimed:?}");
    assert_eq!(distinct, queued, "every queued build was claimed exactly once");
}

#[tokio::test]
async fn a_lapsed_lease_requeues_the_build_and_counts_the_attempt_until_the_limit() {
    let s = TestServer::start_with(|c| c.worker_lease = Duration::from_secs(2)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api
        .recipe_job(
            tenant,
            "flaky",
            recipe(),
            json!({"limits": {"timeout_secs": 60, "memory_mib": 256,
            "output_mib": 10, "max_attempts": 2}}),
        )
        .await;
    let (_, vanishing, _) = api.worker("vanishing", None).await;
    let (_, steady, _) = api.worker("steady", None).await;
    admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    let first = claim(&vanishing, 0).await.expect(200);
    let id = claimed_id(&first);
    // The worker vanishes (no heartbeat): the server queues the build again by itself.
    let requeued = build_until(&admin, id, "queued again", |b| b["status"] == "queued").await;
    assert_eq!(requeued["attempt"], 1);
    // Its late heartbeat tells it to stop.
    let lease = vanishing.post(&format!("/api/v1/worker/builds/{id}/heartbeat"), json!({})).await.expect(200);
    assert_eq!(lease.body["cancel"], true);
    // After the backoff, another worker gets it as attempt 2 and keeps it with heartbeats.
    let second = claim(&steady, 30).await.expect(200);
    assert_eq!(claimed_id(&second), id);
    assert_eq!(second.body["attempt"], 2);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let lease =
            steady.post(&format!("/api/v1/worker/builds/{id}/heartbeat"), json!({})).await.expect(200);
        assert_eq!(lease.body["cancel"], false);
    }
    assert_eq!(build(&admin, id).await["status"], "running", "heartbeats keep the lease");
    // The old worker's result is refused: the build is another worker's now.
    upload_result(&vanishing, job, id, &[("bin/x", b"x")]).await.expect_problem(404, "not-found");
    // The second attempt is lost too: max_attempts is 2, so the build fails for good.
    let failed = build_until(&admin, id, "failed", |b| b["status"] == "failed").await;
    assert_eq!(failed["result"]["kind"], "message");
    assert!(failed["result"]["message"].as_str().unwrap().contains("worker was lost"), "{failed}");
    let r = admin.get(&format!("/api/v1/builds?job_id={job}&status=running")).await.expect(200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0, "no phantom running build");
}

#[tokio::test]
async fn a_late_result_is_taken_while_no_other_worker_has_the_build() {
    let s = TestServer::start_with(|c| c.worker_lease = Duration::from_secs(2)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.recipe_job(tenant, "slow-upload", recipe(), json!({})).await;
    let (_, worker, _) = api.worker("w", None).await;
    admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    let id = claimed_id(&claim(&worker, 0).await.expect(200));
    build_until(&admin, id, "queued again", |b| b["status"] == "queued").await;
    let done = upload_result(&worker, job, id, &[("bin/hello", b"hello")]).await.expect(201);
    assert_eq!(done.body["status"], "succeeded");
    assert_eq!(done.body["id"], id.to_string());
    assert_eq!(done.body["main_binary"]["path"], "bin/hello");
}

#[tokio::test]
async fn cancel_reaches_the_worker_and_ends_the_console_stream() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.recipe_job(tenant, "long", recipe(), json!({"visibility": "public"})).await;
    let (_, worker, _) = api.worker("w", None).await;
    admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    let id = claimed_id(&claim(&worker, 0).await.expect(200));

    // Anyone may follow a public build's console live.
    let follower = admin.anonymous();
    let stream =
        tokio::spawn(async move { follower.get(&format!("/api/v1/builds/{id}/console/stream")).await });
    worker
        .post(
            &format!("/api/v1/worker/builds/{id}/console"),
            json!({"lines": [{"at_ms": 1, "text": "step 1"}, {"at_ms": 2, "text": "step 2"}]}),
        )
        .await
        .expect(204);
    worker
        .post(
            &format!("/api/v1/worker/builds/{id}/console"),
            json!({"lines": [{"at_ms": 3, "text": "step 3"}]}),
        )
        .await
        .expect(204);
    let lines = admin.get(&format!("/api/v1/builds/{id}/console")).await.expect(200);
    let texts: Vec<&str> =
        lines.body["items"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["step 1", "step 2", "step 3"]);

    admin.post(&format!("/api/v1/builds/{id}/cancel"), json!({})).await.expect(204);
    let lease = worker.post(&format!("/api/v1/worker/builds/{id}/heartbeat"), json!({})).await.expect(200);
    assert_eq!(lease.body["cancel"], true, "the next heartbeat says stop");
    worker
        .post(
            &format!("/api/v1/worker/builds/{id}/console"),
            json!({"lines": [{"at_ms": 4, "text": "late"}]}),
        )
        .await
        .expect_problem(404, "not-found");
    upload_result(&worker, job, id, &[("bin/x", b"x")]).await.expect_problem(409, "build-not-held");
    let b = build(&admin, id).await;
    assert_eq!(b["status"], "cancelled");
    admin.post(&format!("/api/v1/builds/{id}/cancel"), json!({})).await.expect_problem(409, "build-finished");

    let streamed =
        tokio::time::timeout(Duration::from_secs(30), stream).await.expect("the stream ends").unwrap();
    assert_eq!(streamed.status, 200);
    assert!(streamed.content_type.starts_with("text/event-stream"), "{}", streamed.content_type);
    for text in ["step 1", "step 2", "step 3"] {
        assert!(streamed.text.contains(&format!("\"text\":\"{text}\"")), "{}", streamed.text);
    }
    assert!(streamed.text.contains("id: 3\nevent: line\n"), "{}", streamed.text);
    assert!(streamed.text.trim_end().ends_with("event: end\ndata: \"cancelled\""), "{}", streamed.text);
    // A reconnecting follower resumes after the last line it saw.
    let resumed = admin.get(&format!("/api/v1/builds/{id}/console/stream?after=2")).await.expect(200);
    assert!(!resumed.text.contains("step 2") && resumed.text.contains("step 3"), "{}", resumed.text);
}

#[tokio::test]
async fn a_worker_uploads_its_build_and_rebuilds_get_verdicts() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.recipe_job(tenant, "repro", recipe(), json!({})).await;
    let (_, worker, _) = api.worker("w", None).await;
    let (_, other, _) = api.worker("other", None).await;
    admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    let id = claimed_id(&claim(&worker, 0).await.expect(200));
    // Only the holder may upload it.
    upload_result(&other, job, id, &[("bin/a", b"a")]).await.expect_problem(404, "not-found");
    let original =
        upload_result(&worker, job, id, &[("bin/a", b"same"), ("doc/readme", b"r")]).await.expect(201);
    assert_eq!(original.body["status"], "succeeded");
    assert_eq!(original.body["attempt"], 1);
    assert_eq!(original.body["worker"], "w");

    // A rebuild with the same bytes is reproducible.
    let r = admin.post(&format!("/api/v1/builds/{id}/rebuild"), json!({})).await.expect(202);
    let rebuild = r.body["build_id"].as_str().unwrap().parse::<Uuid>().unwrap();
    let c = claim(&worker, 5).await.expect(200);
    assert_eq!(claimed_id(&c), rebuild);
    assert_eq!(c.body["rebuild_of"], id.to_string());
    assert_eq!(c.body["recipe"]["script"], "echo hello", "the original's recipe");
    upload_result(&worker, job, rebuild, &[("bin/a", b"same"), ("doc/readme", b"r")]).await.expect(201);
    // A second one differs in one file and lacks another.
    let r = admin.post(&format!("/api/v1/builds/{id}/rebuild"), json!({})).await.expect(202);
    let second = r.body["build_id"].as_str().unwrap().parse::<Uuid>().unwrap();
    claim(&worker, 5).await.expect(200);
    upload_result(&worker, job, second, &[("bin/a", b"different")]).await.expect(201);

    let verdicts = admin.get(&format!("/api/v1/builds/{id}/rebuilds")).await.expect(200).body;
    let verdicts = verdicts.as_array().unwrap();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0]["rebuild_id"], rebuild.to_string());
    assert_eq!(verdicts[0]["reproducible"], true);
    assert_eq!(verdicts[0]["differences"], json!([]));
    assert_eq!(verdicts[1]["reproducible"], false);
    let diffs = verdicts[1]["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert_eq!(diffs[0]["path"], "bin/a");
    assert!(diffs[0]["original_sha256"].is_string() && diffs[0]["rebuild_sha256"].is_string());
    assert_eq!(diffs[1]["path"], "doc/readme");
    assert!(diffs[1]["rebuild_sha256"].is_null());
    let w = worker.get(&format!("/api/v1/worker/verdicts/{second}")).await.expect(200);
    assert_eq!(w.body["reproducible"], false);
    other.get(&format!("/api/v1/worker/verdicts/{second}")).await.expect_problem(404, "not-found");
    // Uploaded builds (no recipe) and unfinished ones cannot be rebuilt.
    let plain = api.job(tenant, "plain", false).await;
    let uploaded = Api::build(&admin, plain, &[("bin/x", b"x")]).await;
    let uploaded = uploaded["id"].as_str().unwrap();
    admin
        .post(&format!("/api/v1/builds/{uploaded}/rebuild"), json!({}))
        .await
        .expect_problem(409, "not-rebuildable");
}

#[tokio::test]
async fn tenant_private_workers_run_only_their_tenants_builds() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let a = api.tenant("a", None).await;
    let a_child = api.tenant("a-child", Some(a)).await;
    let b = api.tenant("b", None).await;
    let (_, owner_a) = api.user("owner-a").await;
    api.member(a, "owner-a", "owner").await;
    // Owners register private workers for their tenant; only administrators add shared ones.
    owner_a
        .post("/api/v1/workers", json!({"name": "shared-by-owner"}))
        .await
        .expect_problem(403, "admin-required");
    owner_a
        .post("/api/v1/workers", json!({"name": "for-b", "tenant_id": b}))
        .await
        .expect_problem(404, "not-found");
    let r = owner_a.post("/api/v1/workers", json!({"name": "a-private", "tenant_id": a})).await.expect(201);
    let private = admin.with_token(r.body["credential"].as_str().unwrap());
    let listed = owner_a.get(&format!("/api/v1/tenants/{a}/workers")).await.expect(200);
    assert_eq!(listed.body["items"][0]["name"], "a-private");

    let job_b = api.recipe_job(b, "b-job", recipe(), json!({})).await;
    admin.post(&format!("/api/v1/jobs/{job_b}/runs"), json!({})).await.expect(202);
    claim(&private, 0).await.expect(204);
    let job_child = api.recipe_job(a_child, "child-job", recipe(), json!({})).await;
    let queued = admin.post(&format!("/api/v1/jobs/{job_child}/runs"), json!({})).await.expect(202);
    let got = claim(&private, 0).await.expect(200);
    assert_eq!(got.body["build_id"], queued.body[0]["build_id"], "sub-tenants' builds are the tenant's");

    // Revoking the credential shuts the worker out and frees what it held.
    let worker_id = r.body["worker"]["id"].as_str().unwrap();
    owner_a.delete(&format!("/api/v1/workers/{worker_id}")).await.expect(204);
    claim(&private, 0).await.expect_problem(401, "unauthenticated");
    let id = claimed_id(&got);
    build_until(&admin, id, "queued again", |b| b["status"] == "queued").await;
}

#[tokio::test]
async fn scheduled_jobs_are_queued_by_the_scheduler() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.recipe_job(tenant, "hourly", recipe(), json!({"schedule": "hourly"})).await;
    let (_, worker, _) = api.worker("w", None).await;
    // A new scheduled job is due at once; the scheduler queues it and wakes the worker.
    let got = claim(&worker, 30).await.expect(200);
    assert_eq!(got.body["job_id"], job.to_string());
    let j = admin.get(&format!("/api/v1/jobs/{job}")).await.expect(200).body;
    let next: chrono::DateTime<chrono::Utc> = j["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(next > chrono::Utc::now() + chrono::Duration::minutes(55), "next run in an hour: {next}");
    // Manual-only jobs are never queued by the scheduler.
    api.recipe_job(tenant, "manual", recipe(), json!({"schedule": "never"})).await;
    claim(&worker, 3).await.expect(204);
}

#[tokio::test]
async fn exactly_one_replica_schedules_and_another_takes_over_when_it_stops() {
    let first = TestServer::start().await;
    // A second replica on the same database.
    let data_dir = tempfile::tempdir().unwrap();
    let config = petrel_api::config::Config::for_data_dir(
        data_dir.path().to_path_buf(),
        petrel_api::config::Database::Embedded,
    );
    let second = petrel_api::server::start(config, first.db.pool.clone()).await.unwrap();
    let second_ca = std::fs::read(&second.local_ca.as_ref().unwrap().cert_path).unwrap();
    let second_client = Client::new(&second.url, &second_ca);
    let first_client = first.client();
    let leaders = || async {
        let a = first_client.get("/readyz").await.expect(200).body["scheduler"] == true;
        let b = second_client.get("/readyz").await.expect(200).body["scheduler"] == true;
        (a, b)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (a, b) = loop {
        let (a, b) = leaders().await;
        if a || b {
            break (a, b);
        }
        assert!(std::time::Instant::now() < deadline, "no replica became the scheduler");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(a != b, "exactly one scheduler: {a} {b}");
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(leaders().await, (a, b), "the role stays put while its holder lives");
    }
    // Stop the leader: the other takes over.
    let survivor = if a {
        first.server.stop().await;
        second_client
    } else {
        second.stop().await;
        first_client
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while survivor.get("/readyz").await.expect(200).body["scheduler"] != true {
        assert!(std::time::Instant::now() < deadline, "the survivor never took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_template_recipe_is_rendered_for_the_platform_it_is_claimed_on() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let listed = admin.anonymous().get("/api/v1/recipe-templates").await.expect(200);
    assert!(listed.body.as_array().unwrap().iter().any(|t| t["name"] == "make"), "{}", listed.text);
    let bad = admin
        .post(
            &format!("/api/v1/tenants/{tenant}/jobs"),
            json!({"name": "bad", "platforms": [PLATFORM], "recipe": {"template": {"name": "make", "vars": {"OOPS": "1"}}}}),
        )
        .await;
    let fields: Vec<&str> =
        bad.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["recipe.template.vars.TARGET", "recipe.template.vars.OOPS"], "{}", bad.text);
    let job = api
        .recipe_job(
            tenant,
            "templated",
            json!({"template": {"name": "make", "vars": {"TARGET": "hello.hvt"}}}),
            json!({}),
        )
        .await;
    let (_, worker, _) = api.worker("w", None).await;
    admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    let c = claim(&worker, 0).await.expect(200);
    assert!(c.body["recipe"]["template"].is_null(), "{}", c.text);
    let script = c.body["recipe"]["script"].as_str().unwrap();
    assert!(script.starts_with("make  'hello.hvt'\n"), "{script}");
    assert!(script.contains("cp 'hello.hvt' \"$PETREL_OUTPUT/bin/\""), "{script}");
}
