//! builder-web's URLs, as albatross' `update` uses them: `/hash?sha256=` and
//! `/job/:job/build/latest` answer redirects whose Location it parses, then it downloads the
//! main binary. Tenancy and name ambiguity are handled.

use petrel_tests::{Api, Client, TestServer};
use sha2::{Digest, Sha256};

async fn location(c: &Client, path: &str) -> String {
    let r = c.request(reqwest::Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 307, "{path}: {:?}", r.text().await);
    r.headers().get("location").unwrap().to_str().unwrap().to_string()
}

#[tokio::test]
async fn albatross_update_flow_works_unchanged() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let robur = api.tenant("robur", None).await;
    let job = api.job(robur, "hello", true).await;
    let old = Api::build(&admin, job, &[("bin/hello.hvt", b"old image")]).await;
    let new = Api::build(&admin, job, &[("bin/hello.hvt", b"new image")]).await;
    let (old_id, new_id) = (old["id"].as_str().unwrap(), new["id"].as_str().unwrap());
    let anon = admin.anonymous();

    let running = hex::encode(Sha256::digest(b"old image"));
    assert_eq!(
        location(&anon, &format!("/hash?sha256={running}")).await,
        format!("/job/robur:hello/build/{old_id}")
    );
    assert_eq!(location(&anon, "/job/hello/build/latest").await, format!("/job/robur:hello/build/{new_id}"));
    assert_eq!(
        location(&anon, "/job/robur:hello/build/latest?platform=debian-12-x86_64").await,
        format!("/job/robur:hello/build/{new_id}")
    );
    let via_latest = location(&anon, "/job/hello/build/latest/main-binary").await;
    assert_eq!(via_latest, format!("/job/robur:hello/build/{new_id}/main-binary"));
    let file = location(&anon, &via_latest).await;
    assert_eq!(file, format!("/job/robur:hello/build/{new_id}/f/bin/hello.hvt"));
    let r = anon.request(reqwest::Method::GET, &file).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers().get("etag").unwrap().to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"new image");
    let cached =
        anon.request(reqwest::Method::GET, &file).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(cached.status(), 304);

    anon.get("/hash?sha256=zz").await.expect_problem(400, "validation-failed");
    anon.get("/hash").await.expect_problem(400, "validation-failed");
    anon.get(&format!("/hash?sha256={}", hex::encode([0u8; 32]))).await.expect_problem(404, "not-found");
    anon.get("/job/hello/build/latest?platform=freebsd-14").await.expect_problem(404, "not-found");
    anon.get(&format!("/job/other/build/{old_id}/main-binary")).await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn private_jobs_resolve_only_for_their_tenant_and_shared_names_need_qualifying() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let a = api.tenant("alpha", None).await;
    let b = api.tenant("beta", None).await;
    let private = api.job(a, "dns", false).await;
    let build = Api::build(&admin, private, &[("bin/dns.hvt", b"private dns")]).await;
    let sha = hex::encode(Sha256::digest(b"private dns"));
    let anon = admin.anonymous();
    anon.get(&format!("/hash?sha256={sha}")).await.expect_problem(404, "not-found");
    anon.get("/job/dns/build/latest").await.expect_problem(404, "not-found");
    anon.get(&format!("/job/alpha:dns/build/{}/f/bin/dns.hvt", build["id"].as_str().unwrap()))
        .await
        .expect_problem(404, "not-found");
    // The administrator sees both tenants' `dns` jobs: the bare name is ambiguous.
    let public = api.job(b, "dns", true).await;
    Api::build(&admin, public, &[("bin/dns.hvt", b"public dns")]).await;
    admin.get("/job/dns/build/latest").await.expect_problem(409, "ambiguous-job");
    assert!(location(&admin, "/job/alpha:dns/build/latest").await.starts_with("/job/alpha:dns/build/"));
    // Anonymous callers see only the public one, so the bare name is enough for them.
    assert!(location(&anon, "/job/dns/build/latest").await.starts_with("/job/beta:dns/build/"));
}

fn exec_record(uuid: uuid::Uuid, outputs: Vec<(&str, &[u8])>) -> Vec<u8> {
    use petrel_inputs::exec::{ConsoleLine, Exec, ExecJob, ExecOutput, ExecResult};
    let started = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap().to_utc();
    Exec {
        job: ExecJob {
            name: "dns".into(),
            script: "#!/bin/sh\norb build dns".into(),
            platform: Some("ubuntu-20.04".into()),
        },
        uuid: *uuid.as_bytes(),
        console: vec![
            ConsoleLine { delta_ns: 1_000_000, line: "start".into() },
            ConsoleLine { delta_ns: 2_500_000_000, line: "done".into() },
        ],
        started,
        finished: started + chrono::Duration::seconds(90),
        result: ExecResult::Exited(0),
        outputs: outputs.into_iter().map(|(p, d)| ExecOutput { path: p.into(), data: d.to_vec() }).collect(),
    }
    .to_der()
    .unwrap()
}

#[tokio::test]
async fn builder_server_uploads_asn1_records_with_a_token_as_basic_password() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let robur = api.tenant("robur", None).await;
    let (_, token) = Api::token(&admin, robur, "operator").await;
    let (_, viewer_token) = Api::token(&admin, robur, "viewer").await;
    let uuid = uuid::Uuid::new_v4();
    let body =
        exec_record(uuid, vec![("bin/dns.hvt", b"dns unikernel"), ("build-environment", b"OS=ubuntu\n")]);
    let post = |auth: Option<(&str, &str)>, body: Vec<u8>| {
        let mut req = admin.anonymous().request(reqwest::Method::POST, "/upload").body(body);
        if let Some((user, pass)) = auth {
            req = req.basic_auth(user, Some(pass));
        }
        async move { Client::read(req.send().await.unwrap()).await }
    };
    post(None, body.clone()).await.expect_problem(401, "unauthenticated");
    post(Some(("builder", "petrel_wrong")), body.clone()).await.expect_problem(401, "unauthenticated");
    post(Some(("builder", &viewer_token)), body.clone()).await.expect_problem(403, "insufficient-role");
    post(Some(("builder", &token)), body.clone()).await.expect(201);
    post(Some(("builder", &token)), body).await.expect_problem(409, "build-exists");

    let build = admin.get(&format!("/api/v1/builds/{uuid}")).await.expect(200).body;
    assert_eq!(build["job_name"], "dns");
    assert_eq!(build["platform"], "ubuntu-20.04");
    assert_eq!(build["status"], "succeeded");
    assert_eq!(build["main_binary"]["path"], "bin/dns.hvt");
    let console = admin.get(&format!("/api/v1/builds/{uuid}/console")).await.expect(200).body;
    assert_eq!(console["items"][1]["at_ms"], 2500);
    let inputs = admin.get(&format!("/api/v1/builds/{uuid}/inputs")).await.expect(200).body;
    assert_eq!(inputs["environment"][0]["key"], "OS");

    post(Some(("builder", &token)), b"not DER".to_vec()).await.expect_problem(400, "malformed-exec");
    let evil = exec_record(uuid::Uuid::new_v4(), vec![("../../etc/passwd", b"x")]);
    post(Some(("builder", &token)), evil).await.expect_problem(400, "validation-failed");
    let builds: i64 = sqlx::query_scalar("SELECT count(*) FROM builds").fetch_one(&s.db.pool).await.unwrap();
    assert_eq!(builds, 1, "refused uploads leave no build");
}

#[tokio::test]
async fn a_raw_binary_upload_becomes_a_successful_build() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let robur = api.tenant("robur", None).await;
    let (_, token) = Api::token(&admin, robur, "operator").await;
    let bot = admin.with_token(&token);
    let r = bot
        .request(reqwest::Method::POST, "/job/fw/platform/debian-12/upload?binary_name=fw.hvt")
        .body(b"firewall".to_vec());
    let r = Client::read(r.send().await.unwrap()).await.expect(201);
    let location = r.headers.get("location").unwrap().to_str().unwrap().to_string();
    assert!(location.starts_with("/job/robur:fw/build/"), "{location}");
    let file = location_of(&bot, &format!("{location}/main-binary")).await;
    assert!(file.ends_with("/f/bin/fw.hvt"), "{file}");
    let bytes = bot.get_bytes(&file).await;
    assert_eq!(bytes.as_slice(), b"firewall");
    let bad = bot
        .request(reqwest::Method::POST, "/job/fw/platform/debian-12/upload?binary_name=../x")
        .body(b"x".to_vec());
    Client::read(bad.send().await.unwrap()).await.expect_problem(400, "validation-failed");
}

async fn location_of(c: &Client, path: &str) -> String {
    location(c, path).await
}

#[tokio::test]
async fn compare_urls_answer_json_and_comparisons_are_cached() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let robur = api.tenant("robur", None).await;
    let job = api.job(robur, "hello", true).await;
    let a = Api::build(&admin, job, &[("bin/hello.hvt", b"one")]).await;
    let b = Api::build(&admin, job, &[("bin/hello.hvt", b"two!")]).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let anon = admin.anonymous();
    let json =
        anon.request(reqwest::Method::GET, &format!("/compare/{a}/{b}")).header("accept", "application/json");
    let json = Client::read(json.send().await.unwrap()).await.expect(200);
    assert_eq!(json.body["main_binary"]["size_delta"], 1);
    let api_twin = anon.get(&format!("/api/v1/compare/{a}/{b}")).await.expect(200);
    assert_eq!(api_twin.body, json.body);
    let cached: i64 =
        sqlx::query_scalar("SELECT count(*) FROM compare_cache").fetch_one(&s.db.pool).await.unwrap();
    assert_eq!(cached, 1, "computed once, then served from the cache");
    let page = anon.request(reqwest::Method::GET, &format!("/compare/{a}/{b}")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers().get("location").unwrap(), &format!("/builds/{a}/compare/{b}"));
    anon.get(&format!("/compare/{a}/not-a-uuid")).await.expect_problem(400, "validation-failed");
}

#[tokio::test]
async fn cached_public_answers_follow_new_builds_and_visibility_changes_at_once() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let job = api.job(tenant, "hello", true).await;
    let first = Api::build(&admin, job, &[("bin/hello.hvt", b"one")]).await;
    let anon = admin.anonymous();
    let sha = hex::encode(Sha256::digest(b"one"));
    let first_id = first["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(
            location(&anon, "/job/hello/build/latest").await,
            format!("/job/robur:hello/build/{first_id}")
        );
        assert_eq!(
            location(&anon, &format!("/hash?sha256={sha}")).await,
            format!("/job/robur:hello/build/{first_id}")
        );
    }
    // A newer build is the latest at once, however often the old answer was asked for.
    let second = Api::build(&admin, job, &[("bin/hello.hvt", b"two")]).await;
    let second_id = second["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = location(&anon, "/job/hello/build/latest").await;
        if now == format!("/job/robur:hello/build/{second_id}") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cached answer outlived the new build: {now}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Made private: anonymous callers learn nothing any more.
    admin
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/jobs/{job}"),
            Some(serde_json::json!({"visibility": "private"})),
        )
        .await
        .expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // Both answers are dropped by the same notification; the look-up by hash may answer from
    // the database before it arrives, so wait for both.
    loop {
        let by_hash = anon.get(&format!("/hash?sha256={sha}")).await;
        let latest = anon.get("/job/hello/build/latest").await;
        if by_hash.status == 404 && latest.status == 404 {
            latest.expect_problem(404, "not-found");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a private job's build was still revealed: {} {}",
            by_hash.status,
            latest.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
