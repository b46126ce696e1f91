//! The real `petrel-api` SIGKILLed inside a transaction, deterministically: the test holds a
//! lock the transaction's last statement needs (the audit row every write records), sees in
//! `pg_stat_activity` that the API's backend waits there after its other writes, kills the
//! API, releases the lock and checks that nothing of the transaction is visible. Then the API
//! starts again on the same data directory and database, the operation succeeds once, and the
//! invariants of [`petrel_tests::faults::assert_invariants`] hold.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petrel_tests::faults::assert_invariants;
use petrel_tests::{Api, Client, TestDb, workspace_binary};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const PASSWORD: &str = "faults-test-password";

/// `petrel-api` on the test's own database (so the test can lock rows in it) and data directory.
struct ApiProcess {
    child: Child,
    url: String,
}

impl ApiProcess {
    fn start(db: &TestDb, data: &Path) -> ApiProcess {
        let socket_dir = petrel_tests::cluster_dir().join("socket");
        let url = format!("postgresql://petrel@localhost:5432/{}?host={}", db.name, socket_dir.display());
        let mut child = Command::new(workspace_binary("petrel-api"))
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", url)
            .env("PETREL_ADMIN_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn petrel-api");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .by_ref()
            .map(|l| l.unwrap())
            .find(|l| l.starts_with("Petrel is serving at "))
            .expect("petrel-api exited before serving");
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = line.trim_start_matches("Petrel is serving at ").trim_end_matches('/').to_string();
        ApiProcess { child, url }
    }

    async fn admin(&self, data: &Path) -> Client {
        let mut admin = Client::new(&self.url, &std::fs::read(data.join("tls/ca.pem")).unwrap());
        admin.login("admin", PASSWORD).await.expect("admin login");
        admin
    }

    fn kill(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Holds the audit table so that writes wait at their audit row: SHARE conflicts with the ROW
/// EXCLUSIVE an INSERT takes, while reads go on.
async fn hold_audit(db: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = db.begin().await.unwrap();
    sqlx::query("LOCK TABLE audit_log IN SHARE MODE").execute(&mut *lock).await.unwrap();
    lock
}

/// The backend of the API's transaction once it waits for its audit row (while `sent` is still
/// pending), after checking that it wrote before.
async fn waiting_at_audit<T: std::fmt::Debug>(db: &PgPool, sent: &tokio::task::JoinHandle<T>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (pid, wrote) = loop {
        let waiting: Option<(i32, bool)> = sqlx::query_as(
            "SELECT pid, backend_xid IS NOT NULL FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
                AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO audit_log%'",
        )
        .fetch_optional(db)
        .await
        .unwrap();
        if let Some(found) = waiting {
            break found;
        }
        assert!(!sent.is_finished(), "the request ended without waiting for the lock");
        assert!(Instant::now() < deadline, "the API's transaction never reached its audit row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(wrote, "the transaction has written before its audit row (it holds a transaction id)");
    pid
}

/// Sends `request` and kills the API while the request's transaction waits for its audit row,
/// all its other writes done; returns once that transaction is gone from the database.
async fn kill_inside_transaction(db: &PgPool, api: &mut ApiProcess, request: reqwest::RequestBuilder) {
    let lock = hold_audit(db).await;
    let sent = tokio::spawn(request.send());
    let pid = waiting_at_audit(db, &sent).await;
    api.kill();
    assert!(sent.await.unwrap().is_err(), "the request died with the API");
    lock.rollback().await.unwrap();
    // The backend runs the INSERT, finds its client gone and rolls everything back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
            .bind(pid)
            .fetch_one(db)
            .await
            .unwrap();
        if !alive {
            break;
        }
        assert!(Instant::now() < deadline, "the killed API's backend {pid} lives on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(db: &PgPool, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(id).fetch_one(db).await.unwrap()
}

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("petrel-faults-").tempdir_in("/tmp").unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

#[tokio::test]
async fn an_api_killed_inside_the_finalize_transaction_shows_no_half_build_and_finalizes_after() {
    let db = TestDb::new().await;
    let (_dir, data) = data_dir();
    let mut api = ApiProcess::start(&db, &data);
    let admin = api.admin(&data).await;
    let steps = Api { admin: &admin };
    let tenant = steps.tenant("uploads", None).await;
    let job = steps.job(tenant, "app", false).await;
    let binary: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    let upload = Api::open_upload(&admin, job).await;
    admin.put_artifact(upload, "bin/app.hvt", &binary).await.expect(201);
    admin.put_artifact(upload, "README.md", b"the readme").await.expect(201);
    // An upload abandoned at the same time: its blob must not outlive the clean-up.
    let abandoned = Api::open_upload(&admin, job).await;
    admin.put_artifact(abandoned, "bin/other.hvt", b"abandoned bytes").await.expect(201);
    let build_id: Uuid = sqlx::query_scalar("SELECT build_id FROM uploads WHERE id = $1")
        .bind(upload)
        .fetch_one(&db.pool)
        .await
        .unwrap();

    let finalize =
        admin.request(reqwest::Method::POST, &format!("/api/v1/uploads/{upload}/finalize")).json(&json!({}));
    kill_inside_transaction(&db.pool, &mut api, finalize).await;
    // Nothing of the transaction: no build, no artifacts, no console, the upload still open.
    assert_eq!(count(&db.pool, "SELECT count(*) FROM builds WHERE job_id = $1", job).await, 0);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM build_artifacts WHERE build_id = $1", build_id).await,
        0
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM audit_log WHERE target = $1::text", build_id).await, 0);
    let state: String = sqlx::query_scalar("SELECT state FROM uploads WHERE id = $1")
        .bind(upload)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(state, "open");

    let mut api = ApiProcess::start(&db, &data);
    let admin = api.admin(&data).await;
    let open = admin.get(&format!("/api/v1/uploads/{upload}")).await.expect(200);
    assert_eq!(open.body["state"], "open", "{}", open.text);
    assert_eq!(open.body["artifacts"].as_array().map(Vec::len), Some(2), "{}", open.text);
    admin.get(&format!("/api/v1/builds/{build_id}")).await.expect_problem(404, "not-found");
    let built = admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(201);
    assert_eq!(built.id(), build_id);
    let again = admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(200);
    assert_eq!(again.id(), build_id, "a retry answers the same build");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM builds WHERE job_id = $1", job).await, 1);
    let file = admin.get_bytes(&format!("/api/v1/builds/{build_id}/files/bin/app.hvt")).await;
    assert_eq!(Sha256::digest(&file), Sha256::digest(&binary));
    admin.delete(&format!("/api/v1/uploads/{abandoned}")).await.expect(204);

    assert_invariants(&db.pool, &admin, &data).await;
    let gone = petrel_tests::faults::blob_dir(&data);
    let abandoned_sha = hex::encode(Sha256::digest(b"abandoned bytes"));
    assert!(
        !gone.join(&abandoned_sha[..2]).join(&abandoned_sha).exists(),
        "the abandoned blob was collected"
    );
    api.kill();
}

#[tokio::test]
async fn an_api_killed_inside_a_deployment_admission_counts_nothing_and_the_retry_succeeds_once() {
    let db = TestDb::new().await;
    let (_dir, data) = data_dir();
    let mut api = ApiProcess::start(&db, &data);
    let admin = api.admin(&data).await;
    let steps = Api { admin: &admin };
    let tenant = steps.tenant("ops", None).await;
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 2, "memory_mib": 64, "block_mib": 0, "cpus": [0, 1], "bridges": []}),
        )
        .await
        .expect(200);
    let (agent_id, agent) = super::deployments::agent(&admin, "kvm-1", &[]).await;
    let job = steps.job(tenant, "img", false).await;
    Api::build(&admin, job, &[("bin/unikernel.hvt", b"an image")]).await;
    let sha = hex::encode(Sha256::digest(b"an image"));
    let body =
        json!({"name": "web", "image_sha256": sha, "memory_mib": 32, "restart": {"kind": "on_failure"}});
    let generation = |db: &PgPool| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT generation::bigint FROM agents WHERE id = $1")
                .bind(agent_id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let before = generation(&db.pool).await;

    let create =
        admin.request(reqwest::Method::POST, &format!("/api/v1/tenants/{tenant}/deployments")).json(&body);
    kill_inside_transaction(&db.pool, &mut api, create).await;
    assert_eq!(count(&db.pool, "SELECT count(*) FROM deployments WHERE tenant_id = $1", tenant).await, 0);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployment_events").fetch_one(&db.pool).await.unwrap();
    assert_eq!(events, 0, "no event of the lost deployment");
    assert_eq!(generation(&db.pool).await, before, "the agent's assignments did not change");

    let mut api = ApiProcess::start(&db, &data);
    let admin = api.admin(&data).await;
    let usage = admin.get(&format!("/api/v1/tenants/{tenant}/quota")).await.expect(200);
    assert_eq!(
        (&usage.body["unikernels"], &usage.body["memory_mib"]),
        (&json!(0), &json!(0)),
        "{}",
        usage.text
    );
    // The agent is still there and reachable through the new process.
    admin
        .with_token(agent.bearer.as_deref().unwrap())
        .post("/api/v1/agent/heartbeat", json!({}))
        .await
        .expect(204);
    let path = format!("/api/v1/tenants/{tenant}/deployments");
    let created = admin.post(&path, body.clone()).await.expect(201);
    admin.post(&path, body).await.expect_problem(409, "deployment-name-taken");
    let usage = admin.get(&format!("/api/v1/tenants/{tenant}/quota")).await.expect(200);
    assert_eq!(
        (&usage.body["unikernels"], &usage.body["memory_mib"]),
        (&json!(1), &json!(32)),
        "{}",
        usage.text
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM deployments WHERE tenant_id = $1", tenant).await, 1);
    assert_eq!(created.body["agent_id"], agent_id.to_string(), "{}", created.text);
    assert_eq!(generation(&db.pool).await, before + 1);

    assert_invariants(&db.pool, &admin, &data).await;
    api.kill();
}

/// The checks the fault tests rely on do fail when what they look for is there.
#[tokio::test]
async fn the_invariants_catch_a_stray_blob_a_partial_artifact_and_a_build_stuck_running() {
    use futures_util::FutureExt;
    let s = petrel_tests::TestServer::start().await;
    let admin = s.admin().await;
    let steps = Api { admin: &admin };
    let tenant = steps.tenant("t", None).await;
    let job = steps.job(tenant, "j", false).await;
    Api::build(&admin, job, &[("bin/x", b"some bytes")]).await;
    let data = s.data_dir.path();
    assert_invariants(&s.db.pool, &admin, data).await;
    let fails = |expected: &'static str| {
        let (db, admin) = (s.db.pool.clone(), admin.clone());
        async move {
            let outcome =
                std::panic::AssertUnwindSafe(assert_invariants(&db, &admin, data)).catch_unwind().await;
            let panic = outcome.expect_err("the invariants held");
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(message.contains(expected), "expected {expected:?}, got {message:?}");
        }
    };

    let stray = petrel_tests::faults::blob_dir(data).join("ab").join(format!("ab{}", "0".repeat(62)));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"nobody's").unwrap();
    fails("blob files without a stored row").await;
    std::fs::remove_file(&stray).unwrap();

    let sha = hex::encode(Sha256::digest(b"some bytes"));
    let file = petrel_tests::faults::blob_dir(data).join(&sha[..2]).join(&sha);
    std::fs::write(&file, b"some").unwrap();
    fails("partial file").await;
    std::fs::write(&file, b"some bytes").unwrap();

    // A run nobody claimed, marked running without a lease (which the reaper leaves alone).
    let recipe = steps.recipe_job(tenant, "r", json!({"script": "true"}), json!({})).await;
    let run = admin.post(&format!("/api/v1/jobs/{recipe}/runs"), json!({})).await.expect(202);
    let id: Uuid = run.body[0]["build_id"].as_str().unwrap().parse().unwrap();
    let set = |status: &'static str| {
        let db = s.db.pool.clone();
        async move {
            sqlx::query("UPDATE builds SET status = $2::build_status WHERE id = $1")
                .bind(id)
                .bind(status)
                .execute(&db)
                .await
                .unwrap();
        }
    };
    set("running").await;
    fails("builds running without a live lease").await;
    set("queued").await;
    assert_invariants(&s.db.pool, &admin, data).await;
}

/// The other side: the database ends the API's connection inside a transaction (as a fast
/// shutdown or restart does, SQLSTATE 57P01). The request answers 503, a problem to retry,
/// not 500; nothing of it is kept and the retry succeeds.
#[tokio::test]
async fn a_database_connection_ended_inside_a_transaction_answers_503_and_keeps_nothing() {
    let s = petrel_tests::TestServer::start().await;
    let admin = s.admin().await;
    let lock = hold_audit(&s.db.pool).await;
    let sent = tokio::spawn({
        let admin = admin.clone();
        async move { admin.post("/api/v1/tenants", json!({"name": "doomed"})).await }
    });
    let pid = waiting_at_audit(&s.db.pool, &sent).await;
    let ended: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&s.db.pool).await.unwrap();
    assert!(ended);
    lock.rollback().await.unwrap();
    sent.await.unwrap().expect_problem(503, "unavailable");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE name = 'doomed'")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    Api { admin: &admin }.tenant("doomed", None).await;
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}

/// A clean-up pass deletes an unreferenced blob's row inside a transaction, then its object,
/// then commits: killed between the last two it leaves the row, still marked stored, without
/// the object (made here by removing the object, as the pass had). An upload of the same
/// content then must store it again, not trust the row.
#[tokio::test]
async fn a_clean_up_killed_before_its_commit_leaves_no_artifact_without_its_file() {
    let s = petrel_tests::TestServer::start().await;
    let admin = s.admin().await;
    let steps = Api { admin: &admin };
    let tenant = steps.tenant("t", None).await;
    let job = steps.job(tenant, "j", false).await;
    let bytes = b"content uploaded, abandoned, and uploaded again";
    let abandoned = Api::open_upload(&admin, job).await;
    admin.put_artifact(abandoned, "bin/app", bytes).await.expect(201);
    admin.delete(&format!("/api/v1/uploads/{abandoned}")).await.expect(204);
    let sha = hex::encode(Sha256::digest(bytes));
    std::fs::remove_file(petrel_tests::faults::blob_dir(s.data_dir.path()).join(&sha[..2]).join(&sha))
        .unwrap();

    let build = Api::build(&admin, job, &[("bin/app", bytes)]).await;
    let id = build["id"].as_str().unwrap();
    let file = admin
        .request(reqwest::Method::GET, &format!("/api/v1/builds/{id}/files/bin/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(&file.bytes().await.unwrap()[..], bytes);
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}
