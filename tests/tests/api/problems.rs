//! Bad input gets a 4xx `application/problem+json` naming the field, never a 500 or a panic,
//! and writes nothing.

use petrel_tests::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_are_refused_with_a_named_problem() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let raw = |body: &'static str, content_type: &'static str| {
        admin.request(Method::POST, "/api/v1/tenants").header("content-type", content_type).body(body).send()
    };
    let r = petrel_tests::Client::read(raw("{\"name\": ", "application/json").await.unwrap()).await;
    r.expect_problem(400, "malformed-json");
    let r = petrel_tests::Client::read(raw("{\"name\": \"x\"} trailing", "application/json").await.unwrap())
        .await;
    r.expect_problem(400, "malformed-json");
    let r =
        petrel_tests::Client::read(raw("name=x", "application/x-www-form-urlencoded").await.unwrap()).await;
    r.expect_problem(415, "unsupported-media-type");
    let r = petrel_tests::Client::read(raw("{\"name\": \"x\"}", "text/plain").await.unwrap()).await;
    r.expect_problem(415, "unsupported-media-type");

    let unknown = admin.post("/api/v1/tenants", json!({"name": "x", "colour": "blue"})).await;
    let unknown = unknown.expect_problem(400, "validation-failed");
    assert_eq!(unknown.body["errors"][0]["field"], "colour");
    let missing =
        admin.post("/api/v1/users", json!({"username": "x"})).await.expect_problem(400, "validation-failed");
    assert_eq!(missing.body["errors"][0]["field"], "password");
    let wrong_type =
        admin.post("/api/v1/tenants", json!({"name": 5})).await.expect_problem(400, "validation-failed");
    assert_eq!(wrong_type.body["errors"][0]["field"], "name");
    let bad_uuid = admin.post("/api/v1/tenants", json!({"name": "x", "parent_id": "nope"})).await;
    assert_eq!(bad_uuid.expect_problem(400, "validation-failed").body["errors"][0]["field"], "parent_id");
    let bad_enum = admin.post("/api/v1/tokens", json!({"name": "x", "role": "god", "tenant_id": null})).await;
    assert_eq!(bad_enum.expect_problem(400, "validation-failed").body["errors"][0]["field"], "role");
    let bad_name = admin.post("/api/v1/tenants", json!({"name": "Not A Label"})).await;
    assert_eq!(bad_name.expect_problem(400, "validation-failed").body["errors"][0]["field"], "name");

    let tenants: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&s.db.pool).await.unwrap();
    assert_eq!(tenants, 1, "only the default tenant exists: nothing was half-written");
}

#[tokio::test]
async fn oversized_bodies_get_413_whether_declared_or_streamed() {
    let s = TestServer::start_with(|c| c.max_json_bytes = 4096).await;
    let admin = s.admin().await;
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(10_000));
    let declared = admin
        .request(Method::POST, "/api/v1/tenants")
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    petrel_tests::Client::read(declared).await.expect_problem(413, "payload-too-large");
    // Chunked, without a Content-Length.
    let chunks = futures_util::stream::iter(
        big.into_bytes().chunks(1000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let streamed = admin
        .request(Method::POST, "/api/v1/tenants")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    petrel_tests::Client::read(streamed).await.expect_problem(413, "payload-too-large");
}

#[tokio::test]
async fn bad_ids_cursors_limits_and_query_parameters_are_named() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let r = admin.get("/api/v1/tenants/not-a-uuid").await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "tenant_id");
    let t = admin.get("/api/v1/tenants").await.body["items"][0]["id"].as_str().unwrap().to_string();
    let r = admin.get(&format!("/api/v1/tenants/{t}/members/12")).await;
    // Only PUT and DELETE exist on that path; a GET is an unknown route.
    r.expect_problem(404, "not-found");
    let r = admin
        .delete(&format!("/api/v1/tenants/{t}/members/12"))
        .await
        .expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "user_id");
    let r = admin.get("/api/v1/tenants?cursor=garbage").await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "cursor");
    let r = admin.get("/api/v1/tenants?limit=0").await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "limit");
    let r = admin.get("/api/v1/tenants?limit=many").await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "limit");
    let r = admin.get("/api/v1/tenants?sort=name").await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "sort");
    admin.get("/api/v1/nothing-here").await.expect_problem(404, "not-found");
    admin.anonymous().get("/no/such/page").await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn hostile_strings_are_stored_and_returned_verbatim_or_refused() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    for name in ["robert'); DROP TABLE users;--", "\u{0000}", "../../etc/passwd", "é"] {
        admin.post("/api/v1/tenants", json!({"name": name})).await.expect_problem(400, "validation-failed");
    }
    let long = "x".repeat(101);
    let r = admin.post("/api/v1/tokens", json!({"name": long, "admin": true})).await;
    assert_eq!(r.expect_problem(400, "validation-failed").body["errors"][0]["field"], "name");
    let odd = "tab\there 'quotes' \"double\" ünïcödé";
    let r = admin.post("/api/v1/tokens", json!({"name": odd, "admin": true})).await;
    assert_eq!(r.expect_problem(400, "validation-failed").body["errors"][0]["field"], "name");
    // NUL anywhere (PostgreSQL's text cannot hold it) is refused naming the field, also where
    // nothing else checks the string (a sign-in's username), and in query parameters.
    let r = admin
        .anonymous()
        .post("/api/v1/auth/login", json!({"username": "E\u{0000}x", "password": "whatever-it-is"}))
        .await;
    assert_eq!(r.expect_problem(400, "validation-failed").body["errors"][0]["field"], "username");
    let r = admin.post("/api/v1/tenants", json!({"name": "ok", "parent_id": null, "x": ["a\u{0000}"]})).await;
    assert_eq!(r.expect_problem(400, "validation-failed").body["errors"][0]["field"], "x[0]");
    // An escaped backslash before `u0000` is no NUL.
    let r = admin.post("/api/v1/tokens", json!({"name": "a\\u0000b", "admin": true})).await;
    assert_ne!(r.status, 500, "{}", r.text);
    let r = admin.get("/api/v1/builds?platform=x%00").await;
    assert_eq!(r.expect_problem(400, "validation-failed").body["errors"][0]["field"], "platform");
    let fine = "'quotes' \"double\" ünïcödé; DROP TABLE x";
    let r = admin.post("/api/v1/tokens", json!({"name": fine, "admin": true})).await.expect(201);
    assert_eq!(r.body["token"]["name"], fine);
    admin.get("/api/v1/users").await.expect(200);
}

#[tokio::test]
async fn database_failures_are_generic_500s_that_leak_nothing_and_write_nothing() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // Break the database under the running server: the audit log written with every change is gone.
    sqlx::query("DROP TABLE audit_log").execute(&s.db.pool).await.unwrap();
    let r = admin.post("/api/v1/tenants", json!({"name": "doomed"})).await.expect_problem(500, "internal");
    for secret in ["audit_log", "relation", "SQL", "sqlx", "does not exist"] {
        assert!(!r.text.contains(secret), "the error leaks {secret:?}: {}", r.text);
    }
    // The tenant insert ran before the failing audit insert, in the same transaction.
    let doomed: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE name = 'doomed'")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert_eq!(doomed, 0, "a failed change leaves no half-written row");
}

#[tokio::test]
async fn upload_abuse_is_refused_with_a_named_problem_and_writes_nothing_outside_the_store() {
    let s = TestServer::start_with(|c| {
        c.max_artifact_bytes = 1 << 20;
        c.max_json_bytes = 1 << 20;
    })
    .await;
    let admin = s.admin().await;
    let api = petrel_tests::Api { admin: &admin };
    let tenant = api.tenant("abuse", None).await;
    let job = api.job(tenant, "abuse", false).await;
    let upload = petrel_tests::Api::open_upload(&admin, job).await;

    // Paths that try to leave the build: refused, naming the path. Dot segments go encoded
    // inside one segment (a client resolves `..` and `%2E%2E` segments before sending).
    for path in [
        "%2E%2E%2F%2E%2E%2Fescape",
        "a%2F%2E%2E%2F%2E%2E%2Fescape",
        "%2Fescape",
        "x%00y",
        "a//escape",
        "a%5Cescape",
    ] {
        let r = admin.put_artifact(upload, path, b"payload").await;
        assert!(r.status == 400 || r.status == 404, "{path}: {} {}", r.status, r.text);
        assert_eq!(r.content_type, "application/problem+json", "{path}");
        if r.status == 400 {
            assert_eq!(r.body["errors"][0]["field"], "path", "{path}: {}", r.text);
        }
    }
    // A wrong hash.
    let wrong = admin
        .request(Method::PUT, &format!("/api/v1/uploads/{upload}/artifacts/bin/a"))
        .header("x-petrel-sha256", "0".repeat(64))
        .body(b"payload".to_vec())
        .send()
        .await
        .unwrap();
    let wrong = petrel_tests::Client::read(wrong).await.expect_problem(400, "validation-failed");
    assert_eq!(wrong.body["errors"][0]["field"], "x-petrel-sha256");
    // A body that ends before its declared Content-Length (the client gives up half-way).
    let whole = vec![5u8; 768 * 1024];
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&whole));
    let half = futures_util::stream::iter(
        [Ok(whole[..256 * 1024].to_vec()), Ok(whole[256 * 1024..384 * 1024].to_vec())]
            .into_iter()
            .chain([Err(std::io::Error::other("the client gave up"))]),
    );
    let r = admin
        .request(Method::PUT, &format!("/api/v1/uploads/{upload}/artifacts/bin/short"))
        .header("x-petrel-sha256", &sha)
        .header("content-length", whole.len().to_string())
        .body(reqwest::Body::wrap_stream(half))
        .send()
        .await;
    if let Ok(r) = r {
        let r = petrel_tests::Client::read(r).await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
    // An endless body (streamed, no length): cut off at the limit.
    let endless = futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![7u8; 256 * 1024])));
    let r = admin
        .request(Method::PUT, &format!("/api/v1/uploads/{upload}/artifacts/bin/endless"))
        .header("x-petrel-sha256", "0".repeat(64))
        .body(reqwest::Body::wrap_stream(endless))
        .send()
        .await;
    if let Ok(r) = r {
        petrel_tests::Client::read(r).await.expect_problem(413, "payload-too-large");
    }
    // A compressed console that would inflate to 256 MiB.
    let text = "a".repeat(256 << 20);
    let json = format!("{{\"lines\": [{{\"at_ms\": 0, \"text\": \"{text}\"}}]}}");
    drop(text);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, json.as_bytes()).unwrap();
    drop(json);
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "the bomb is small: {}", bomb.len());
    let r = admin
        .request(Method::POST, &format!("/api/v1/uploads/{upload}/console"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let r = petrel_tests::Client::read(r).await;
    assert!(r.status == 413 || r.status == 400 || r.status == 415, "{} {}", r.status, r.text);
    assert_eq!(r.content_type, "application/problem+json");

    // Nothing was kept: no artifact, no staging file, no file named `escape` anywhere. A
    // connection the client dropped is noticed by the server on its own time: its staging file
    // must be gone within a few seconds.
    let open = admin.get(&format!("/api/v1/uploads/{upload}")).await.expect(200);
    assert_eq!(open.body["artifacts"], serde_json::json!([]), "{}", open.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while staging_files(s.data_dir.path()) > 0 {
        assert!(std::time::Instant::now() < deadline, "a staging file outlived its aborted upload");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut stack = vec![s.data_dir.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            assert!(!path.to_string_lossy().contains("escape"), "{} was written", path.display());
            assert!(!path.to_string_lossy().ends_with(".part"), "{} was left behind", path.display());
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !path.ends_with("postgres") {
                stack.push(path);
            }
        }
    }
    admin.get("/readyz").await.expect(200);
}

/// `.part` files anywhere under the data directory (outside PostgreSQL's).
fn staging_files(dir: &std::path::Path) -> usize {
    let mut found = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            found += usize::from(path.to_string_lossy().ends_with(".part"));
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !path.ends_with("postgres") {
                stack.push(path);
            }
        }
    }
    found
}
