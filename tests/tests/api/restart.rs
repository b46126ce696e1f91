//! The real `petrel-api` binary on its embedded PostgreSQL: first start creates the cluster,
//! the CA and the administrator; a clean stop stops the cluster; a restart (after SIGTERM or
//! SIGKILL) keeps every row and the CA.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use petrel_tests::{Api, Client, workspace_binary};

struct Running {
    child: Child,
    url: String,
    fingerprint: String,
}

impl Drop for Running {
    /// A failing test does not leave its server running (a stopped one is left alone).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &Path) -> Running {
    let mut child = Command::new(workspace_binary("petrel-api"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("PETREL_ADMIN_PASSWORD", "restart-test-password")
        .env_remove("DATABASE_URL")
        .env_remove("PETREL_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn petrel-api");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut fingerprint) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while url.is_none() || fingerprint.is_none() {
        assert!(Instant::now() < deadline, "petrel-api did not print its URL");
        let line = lines.next().expect("petrel-api exited before serving").unwrap();
        if let Some(rest) = line.strip_prefix("Petrel is serving at ") {
            url = Some(rest.trim_end_matches('/').to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("CA SHA-256: ") {
            fingerprint = Some(rest.to_string());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running { child, url: url.unwrap(), fingerprint: fingerprint.unwrap() }
}

fn postmaster_running(data_dir: &Path) -> bool {
    data_dir.join("postgres/data/postmaster.pid").exists()
}

fn signal(child: &mut Child, sig: i32) {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, sig) };
    let status = child.wait().unwrap();
    if sig == libc::SIGTERM {
        assert!(status.success(), "clean shutdown exits 0, got {status:?}");
    }
}

#[tokio::test]
async fn data_survives_clean_and_hard_restarts_on_the_embedded_database() {
    let dir = tempfile::Builder::new().prefix("petrel-restart-").tempdir_in("/tmp").unwrap();
    let data = dir.path().join("data");
    let ca = || std::fs::read(data.join("tls/ca.pem")).unwrap();

    let mut api = start(&data);
    assert!(!data.join("initial-admin-password").exists(), "the configured password is used");
    let mut admin = Client::new(&api.url, &ca());
    admin.login("admin", "restart-test-password").await.unwrap();
    let tenant = Api { admin: &admin }.tenant("survivor", None).await;
    let fingerprint = api.fingerprint.clone();
    signal(&mut api.child, libc::SIGTERM);
    assert!(!postmaster_running(&data), "a clean stop stops the embedded PostgreSQL");

    let mut api = start(&data);
    assert_eq!(api.fingerprint, fingerprint, "the CA is kept");
    let mut admin = Client::new(&api.url, &ca());
    admin.login("admin", "restart-test-password").await.unwrap();
    admin.get(&format!("/api/v1/tenants/{tenant}")).await.expect(200);
    Api { admin: &admin }.tenant("second", None).await;
    signal(&mut api.child, libc::SIGKILL);
    assert!(postmaster_running(&data), "after SIGKILL the cluster is still running");

    let mut api = start(&data);
    let mut admin = Client::new(&api.url, &ca());
    admin.login("admin", "restart-test-password").await.unwrap();
    let names: Vec<String> = admin.get("/api/v1/tenants").await.expect(200).body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["default", "second", "survivor"]);
    let ready = admin.get("/readyz").await.expect(200);
    assert_eq!(ready.body["migrations"], true);
    signal(&mut api.child, libc::SIGTERM);
    assert!(!postmaster_running(&data));
}

#[tokio::test]
async fn with_database_url_the_external_server_is_used_and_no_cluster_is_created() {
    let db = petrel_tests::TestDb::empty().await;
    let socket_dir = petrel_tests::cluster_dir().join("socket");
    let url = format!("postgresql://petrel@localhost:5432/{}?host={}", db.name, socket_dir.display());
    let dir = tempfile::Builder::new().prefix("petrel-external-").tempdir_in("/tmp").unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(workspace_binary("petrel-api"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &url)
        .env("PETREL_ADMIN_PASSWORD", "external-test-password")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn petrel-api");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url_line =
        lines.by_ref().map(|l| l.unwrap()).find(|l| l.starts_with("Petrel is serving at ")).unwrap();
    std::thread::spawn(move || for _ in lines {});
    let base = url_line.trim_start_matches("Petrel is serving at ").trim_end_matches('/').to_string();
    let mut admin = Client::new(&base, &std::fs::read(data.join("tls/ca.pem")).unwrap());
    admin.login("admin", "external-test-password").await.unwrap();
    admin.get("/readyz").await.expect(200);
    assert!(!data.join("postgres").exists(), "no embedded cluster with DATABASE_URL");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&db.pool).await.unwrap();
    assert_eq!(users, 1, "the administrator lives in the external database");
    signal(&mut child, libc::SIGTERM);
}

/// A connection pool to the database of the running API's embedded cluster.
async fn embedded_pool(data: &Path) -> sqlx::PgPool {
    use petrel_api::db::embedded::{DATABASE, Durability, EmbeddedPostgres};
    let pg = EmbeddedPostgres::start(&data.join("postgres"), Durability::Durable).await.unwrap();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(pg.connect_options(DATABASE))
        .await
        .unwrap()
}

/// Sets a file's modification time `age` into the past.
fn age_file(path: &Path, age: Duration) {
    let then = std::time::SystemTime::now() - age;
    std::fs::File::options().write(true).open(path).unwrap().set_modified(then).unwrap();
}

#[tokio::test]
async fn an_api_killed_mid_upload_shows_no_partial_artifact_and_the_upload_completes_after() {
    let dir = tempfile::Builder::new().prefix("petrel-killed-upload-").tempdir_in("/tmp").unwrap();
    let data = dir.path().join("data");
    let ca = || std::fs::read(data.join("tls/ca.pem")).unwrap();
    let mut api = start(&data);
    let mut admin = Client::new(&api.url, &ca());
    admin.login("admin", "restart-test-password").await.unwrap();
    let api_steps = Api { admin: &admin };
    let tenant = api_steps.tenant("uploads", None).await;
    let job = api_steps.job(tenant, "big", false).await;
    let upload = Api::open_upload(&admin, job).await;

    // 64 MiB announced, 8 MiB sent, then the API dies with the body half received.
    let body: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let request = admin
        .request(reqwest::Method::PUT, &format!("/api/v1/uploads/{upload}/artifacts/bin/big.hvt"))
        .header("x-petrel-sha256", &sha)
        .header("content-length", body.len().to_string())
        .body(reqwest::Body::wrap_stream(stream));
    let sending = tokio::spawn(request.send());
    for chunk in body[..8 << 20].chunks(1 << 20) {
        tx.send(Ok(chunk.to_vec())).await.unwrap();
    }
    let staging = data.join("staging");
    let parts = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&staging)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".part"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !parts().iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)) {
        assert!(Instant::now() < deadline, "the upload never reached staging");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&mut api.child, libc::SIGKILL);
    assert!(sending.await.unwrap().is_err(), "the request died with the API");
    drop(tx);
    let left = parts();
    assert_eq!(left.len(), 1, "{left:?}");
    // As if it had been abandoned for a while: the next start removes it.
    age_file(&left[0], Duration::from_secs(120));

    let mut api = start(&data);
    assert!(parts().is_empty(), "an abandoned staging file survived the restart: {:?}", parts());
    let mut admin = Client::new(&api.url, &ca());
    admin.login("admin", "restart-test-password").await.unwrap();
    // Nothing of the half upload is visible; the upload is still open and completes.
    let open = admin.get(&format!("/api/v1/uploads/{upload}")).await.expect(200);
    assert_eq!(open.body["state"], "open", "{}", open.text);
    assert_eq!(open.body["artifacts"], serde_json::json!([]), "{}", open.text);
    admin.get(&format!("/api/v1/hash/{sha}")).await.expect_problem(404, "not-found");
    let stored = admin.put_artifact(upload, "bin/big.hvt", &body).await.expect(201);
    assert_eq!(stored.body["sha256"], sha.as_str());
    let build =
        admin.post(&format!("/api/v1/uploads/{upload}/finalize"), serde_json::json!({})).await.expect(201);
    assert_eq!(build.body["main_binary"]["sha256"], sha.as_str());
    let db = embedded_pool(&data).await;
    petrel_tests::faults::assert_invariants(&db, &admin, &data).await;
    signal(&mut api.child, libc::SIGTERM);
}

#[tokio::test]
async fn postgres_restarted_under_load_answers_503_never_500_and_loses_nothing() {
    use petrel_api::db::embedded::{Durability, EmbeddedPostgres};
    let dir = tempfile::Builder::new().prefix("petrel-pg-restart-").tempdir_in("/tmp").unwrap();
    let data = dir.path().join("data");
    let mut api = start(&data);
    let mut admin = Client::new(&api.url, &std::fs::read(data.join("tls/ca.pem")).unwrap());
    admin.login("admin", "restart-test-password").await.unwrap();

    // Load: tenants created one after another, each answer recorded.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (admin, stop) = (admin.clone(), stop.clone());
        async move {
            let mut answers = Vec::new();
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let name = format!("load-{i}");
                let r = admin.post("/api/v1/tenants", serde_json::json!({"name": name})).await;
                answers.push((name, r.status, r.content_type, Instant::now()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The API's own cluster, stopped (fast: open transactions roll back) and started again.
    let pg = EmbeddedPostgres::start(&data.join("postgres"), Durability::Durable).await.unwrap();
    pg.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = Instant::now();
    EmbeddedPostgres::start(&data.join("postgres"), Durability::Durable).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.get("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "the API did not recover from the database restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = load.await.unwrap();

    let unexpected: Vec<_> = answers.iter().filter(|a| a.1 != 201 && a.1 != 503).collect();
    assert!(unexpected.is_empty(), "only 201 or 503 while the database restarts: {unexpected:?}");
    assert!(answers.iter().any(|a| a.1 == 503), "the load never met the outage: {answers:?}");
    assert!(
        answers.iter().filter(|a| a.1 == 503).all(|a| a.2 == "application/problem+json"),
        "503s are problems"
    );
    assert!(answers.iter().any(|a| a.1 == 201 && a.3 > restarted), "nothing was created after the restart");
    // Every 201 is there; nothing appeared that was not asked for.
    let mut existing = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => admin.get(&format!("/api/v1/tenants?limit=200&cursor={c}")).await,
            None => admin.get("/api/v1/tenants?limit=200").await,
        }
        .expect(200);
        for t in page.body["items"].as_array().unwrap() {
            existing.insert(t["name"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    for (name, status, ..) in &answers {
        if *status == 201 {
            assert!(existing.contains(name), "{name} was created (201) but is gone");
        }
    }
    let asked: std::collections::BTreeSet<&str> = answers.iter().map(|a| a.0.as_str()).collect();
    for name in existing.iter().filter(|n| n.starts_with("load-")) {
        assert!(asked.contains(name.as_str()), "{name} appeared from nowhere");
    }
    petrel_tests::faults::assert_invariants(&embedded_pool(&data).await, &admin, &data).await;
    signal(&mut api.child, libc::SIGTERM);
}
