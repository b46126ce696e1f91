//! Builds through the staged upload protocol: streamed, hash-verified artifacts, recorded
//! inputs parsed into rows, nothing visible before finalize, idempotent retries, limits, clean-up
//! of interrupted uploads, downloads with ETags, and tenancy on reads and hash look-ups.

use std::time::Duration;

use petrel_tests::{Api, TestServer};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

const OPAM_SWITCH: &[u8] = include_bytes!("../../../inputs/testdata/opam-switch-mirage4");
const ENVIRONMENT: &[u8] =
    b"HOME=/home/builder\nPATH=/usr/bin:/bin\nSOURCE_DATE_EPOCH=1589138087\nOS=debian\n";
const SYSTEM_PACKAGES: &[u8] = b"gcc=4:12.2.0-3\nlibgmp-dev=2:6.2.1+dfsg1-1.1\nmake=4.3-4.1\n";

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[tokio::test]
async fn an_upload_becomes_a_build_with_artifacts_console_and_inputs() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("robur", None).await;
    let job = api.job(tenant, "hello", true).await;
    let upload = Api::open_upload(&admin, job).await;
    let binary = b"\x7fELF pretend unikernel".repeat(1000);
    for (path, data) in [
        ("bin/hello.hvt", binary.as_slice()),
        ("opam-switch", OPAM_SWITCH),
        ("build-environment", ENVIRONMENT),
        ("system-packages", SYSTEM_PACKAGES),
    ] {
        let r = admin.put_artifact(upload, path, data).await.expect(201);
        assert_eq!(r.body["sha256"], sha(data));
    }
    admin
        .post(
            &format!("/api/v1/uploads/{upload}/console"),
            json!({"lines": [{"at_ms": 0, "text": "building"}, {"at_ms": 1500, "text": "done"}]}),
        )
        .await
        .expect(204);
    // Nothing is visible before finalize.
    let listed = admin.get(&format!("/api/v1/builds?job_id={job}")).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 0);

    let build = admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(201).body;
    assert_eq!(build["status"], "succeeded");
    assert_eq!(build["result"], json!({"kind": "exited", "code": 0}));
    assert_eq!(build["main_binary"]["path"], "bin/hello.hvt");
    assert_eq!(build["main_binary"]["size"], binary.len());
    let mut id = Sha256::new();
    for f in [OPAM_SWITCH, ENVIRONMENT, SYSTEM_PACKAGES] {
        id.update(Sha256::digest(f));
    }
    assert_eq!(build["input_id"], hex::encode(id.finalize()), "builder-web's input_id rule");
    let build_id = build["id"].as_str().unwrap();

    // Anyone may read a public job's builds.
    let anon = admin.anonymous();
    let inputs = anon.get(&format!("/api/v1/builds/{build_id}/inputs")).await.expect(200);
    let env = inputs.body["environment"].as_array().unwrap();
    assert!(env.contains(&json!({"key": "SOURCE_DATE_EPOCH", "value": "1589138087"})));
    let packages = inputs.body["packages"].as_array().unwrap();
    assert!(packages.contains(&json!({"ecosystem": "debian", "name": "make", "version": "4.3-4.1"})));
    assert!(packages.iter().any(|p| p["ecosystem"] == "opam"), "opam packages recorded");
    let console = anon.get(&format!("/api/v1/builds/{build_id}/console")).await.expect(200);
    assert_eq!(console.body["items"][1], json!({"number": 1, "at_ms": 1500, "text": "done"}));
    let artifacts = anon.get(&format!("/api/v1/builds/{build_id}/artifacts")).await.expect(200);
    assert_eq!(artifacts.body.as_array().unwrap().len(), 4);

    let file = anon
        .request(Method::GET, &format!("/api/v1/builds/{build_id}/files/bin/hello.hvt"))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let etag = file.headers().get("etag").unwrap().to_str().unwrap().to_string();
    assert_eq!(file.bytes().await.unwrap().as_ref(), binary.as_slice());
    let again = anon
        .request(Method::GET, &format!("/api/v1/builds/{build_id}/files/bin/hello.hvt"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let text = anon.get(&format!("/api/v1/builds/{build_id}/files/system-packages")).await.expect(200);
    assert!(text.content_type.starts_with("text/plain"));
    anon.get(&format!("/api/v1/builds/{build_id}/files/nope")).await.expect_problem(404, "not-found");

    let found = anon.get(&format!("/api/v1/hash/{}", sha(&binary))).await.expect(200);
    assert_eq!(found.body["build"]["id"], build_id);
    assert_eq!(found.body["path"], "bin/hello.hvt");
}

#[tokio::test]
async fn retries_are_harmless_and_finalize_is_idempotent() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", false).await;
    let build_id = uuid::Uuid::new_v4();
    let open = json!({"platform": "debian-12-x86_64", "build_id": build_id, "started_at": "2026-11-26T10:00:00Z",
                      "finished_at": "2026-11-26T10:01:00Z", "result": {"kind": "exited", "code": 2}});
    let first = admin.post(&format!("/api/v1/jobs/{job}/uploads"), open.clone()).await.expect(201);
    let upload = first.id();
    admin.put_artifact(upload, "bin/a", b"one").await.expect(201);
    // The connection dropped; the client opens again and re-sends.
    let again = admin.post(&format!("/api/v1/jobs/{job}/uploads"), open.clone()).await.expect(200);
    assert_eq!(again.id(), upload);
    assert_eq!(again.body["artifacts"][0]["path"], "bin/a");
    admin.put_artifact(upload, "bin/a", b"one").await.expect(201);
    let built = admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(201);
    assert_eq!(built.body["status"], "failed", "exit code 2 is a failure");
    let rebuilt = admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(200);
    assert_eq!(rebuilt.body["id"], built.body["id"]);
    admin.post(&format!("/api/v1/jobs/{job}/uploads"), open).await.expect_problem(409, "build-exists");
    admin.put_artifact(upload, "bin/b", b"late").await.expect_problem(409, "upload-finalized");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM build_artifacts").fetch_one(&s.db.pool).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn wrong_hashes_sizes_paths_and_oversized_bodies_are_refused_and_leave_nothing() {
    let s = TestServer::start_with(|c| {
        c.max_artifact_bytes = 1000;
        c.max_build_bytes = 1500;
    })
    .await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", false).await;
    let upload = Api::open_upload(&admin, job).await;
    let put = |path: &str, sha: Option<String>, body: Vec<u8>| {
        let mut req =
            admin.request(Method::PUT, &format!("/api/v1/uploads/{upload}/artifacts/{path}")).body(body);
        if let Some(sha) = sha {
            req = req.header("x-petrel-sha256", sha);
        }
        async move { petrel_tests::Client::read(req.send().await.unwrap()).await }
    };
    let r =
        put("bin/a", Some(sha(b"other")), b"data".to_vec()).await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "x-petrel-sha256");
    let r = put("bin/a", None, b"data".to_vec()).await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "x-petrel-sha256");
    let r = put("bin/a", Some("xyz".into()), b"data".to_vec()).await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "x-petrel-sha256");
    for bad in ["bin//a", "bin/%00a", "bin/a%5Cb"] {
        let r = put(bad, Some(sha(b"x")), b"x".to_vec()).await.expect_problem(400, "validation-failed");
        assert_eq!(r.body["errors"][0]["field"], "path", "{bad}");
    }
    let big = vec![7u8; 2000];
    put("bin/big", Some(sha(&big)), big.clone()).await.expect_problem(413, "payload-too-large");
    // Two artifacts within the per-artifact limit but over the per-build one.
    admin.put_artifact(upload, "a", &[1u8; 900]).await.expect(201);
    admin.put_artifact(upload, "b", &[2u8; 900]).await.expect_problem(413, "payload-too-large");
    let blobs: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs").fetch_one(&s.db.pool).await.unwrap();
    assert_eq!(blobs, 1, "only the accepted artifact is stored");
    let staging = std::fs::read_dir(s.data_dir.path().join("staging")).unwrap().count();
    assert_eq!(staging, 0, "refused bodies leave no staging files");
}

#[tokio::test]
async fn aborted_uploads_leave_no_build_and_no_blob_after_clean_up() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", false).await;
    let kept = Api::build(&admin, job, &[("bin/kept", b"kept bytes")]).await;
    let upload = Api::open_upload(&admin, job).await;
    admin.put_artifact(upload, "bin/lost", b"lost bytes").await.expect(201);
    admin.put_artifact(upload, "bin/shared", b"kept bytes").await.expect(201);
    admin.delete(&format!("/api/v1/uploads/{upload}")).await.expect(204);
    admin
        .post(&format!("/api/v1/uploads/{upload}/finalize"), json!({}))
        .await
        .expect_problem(409, "upload-aborted");

    let store = petrel_api::store::BlobStore::open(
        &s.data_dir.path().join("artifacts").to_string_lossy(),
        &s.data_dir.path().join("staging"),
    )
    .unwrap();
    let report = petrel_api::maintenance::collect_garbage(&s.db.pool, &store, Duration::ZERO).await.unwrap();
    assert!(report.ran);
    assert_eq!(report.blobs_deleted, 1);
    let lost = Sha256::digest(b"lost bytes");
    assert!(!store.exists(&lost).await.unwrap(), "the aborted upload's blob is gone from the store");
    assert!(store.exists(&Sha256::digest(b"kept bytes")).await.unwrap(), "a blob a build uses stays");
    let builds: i64 = sqlx::query_scalar("SELECT count(*) FROM builds").fetch_one(&s.db.pool).await.unwrap();
    assert_eq!(builds, 1);
    let build_id = kept["id"].as_str().unwrap();
    admin.get(&format!("/api/v1/builds/{build_id}/files/bin/kept")).await.expect(200);
}

#[tokio::test]
async fn private_builds_and_their_hashes_resolve_only_for_their_tenant() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let mine = api.tenant("mine", None).await;
    let theirs = api.tenant("theirs", None).await;
    let (_, me) = api.user("me").await;
    let (_, them) = api.user("them").await;
    api.member(mine, "me", "viewer").await;
    api.member(theirs, "them", "owner").await;
    let secret_job = api.job(mine, "secret", false).await;
    let build = Api::build(&admin, secret_job, &[("bin/s", b"secret unikernel")]).await;
    let build_id = build["id"].as_str().unwrap();
    let hash = sha(b"secret unikernel");
    me.get(&format!("/api/v1/builds/{build_id}")).await.expect(200);
    me.get(&format!("/api/v1/hash/{hash}")).await.expect(200);
    for outsider in [&them, &admin.anonymous()] {
        outsider.get(&format!("/api/v1/builds/{build_id}")).await.expect_problem(404, "not-found");
        outsider
            .get(&format!("/api/v1/builds/{build_id}/files/bin/s"))
            .await
            .expect_problem(404, "not-found");
        outsider.get(&format!("/api/v1/hash/{hash}")).await.expect_problem(404, "not-found");
        outsider.get(&format!("/api/v1/jobs/{secret_job}")).await.expect_problem(404, "not-found");
        let listed = outsider.get("/api/v1/builds").await.expect(200);
        assert!(!listed.text.contains(build_id));
    }
    // Their own identical artifact resolves to their own build.
    let their_job = api.job(theirs, "copy", false).await;
    let theirs_build = Api::build(&admin, their_job, &[("bin/s", b"secret unikernel")]).await;
    let found = them.get(&format!("/api/v1/hash/{hash}")).await.expect(200);
    assert_eq!(found.body["build"]["id"], theirs_build["id"]);
    me.get("/api/v1/hash/not-hex").await.expect_problem(400, "validation-failed");
}

#[tokio::test]
async fn recorded_inputs_that_do_not_parse_are_refused_at_finalize_and_can_be_fixed() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", false).await;
    let upload = Api::open_upload(&admin, job).await;
    admin.put_artifact(upload, "build-environment", b"NOT A VALID LINE\n").await.expect(201);
    let r = admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await;
    let r = r.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "artifacts/build-environment");
    admin.put_artifact(upload, "build-environment", ENVIRONMENT).await.expect(201);
    admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(201);
}

#[tokio::test]
async fn two_builds_compare_both_ways() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", true).await;
    let left = Api::build(
        &admin,
        job,
        &[
            ("bin/a.hvt", b"left binary"),
            ("build-environment", ENVIRONMENT),
            ("system-packages", SYSTEM_PACKAGES),
            ("opam-switch", OPAM_SWITCH),
        ],
    )
    .await;
    let right = Api::build(
        &admin,
        job,
        &[
            ("bin/a.hvt", b"right binary, longer"),
            (
                "build-environment",
                b"HOME=/home/builder\nPATH=/usr/bin:/bin\nSOURCE_DATE_EPOCH=1589138087\nOS=freebsd\nNEW=1\n",
            ),
            ("system-packages", b"gcc=4:12.2.0-3\nmake=4.4-1\n"),
            ("opam-switch", OPAM_SWITCH),
        ],
    )
    .await;
    let (l, r) = (left["id"].as_str().unwrap(), right["id"].as_str().unwrap());
    let forward = admin.anonymous().get(&format!("/api/v1/compare/{l}/{r}")).await.expect(200).body;
    assert_eq!(forward["environment"]["only_right"][0]["key"], "NEW");
    assert_eq!(forward["environment"]["changed"][0]["left"], "debian");
    assert_eq!(forward["environment"]["changed"][0]["right"], "freebsd");
    assert_eq!(forward["system_packages"]["only_left"][0]["name"], "libgmp-dev");
    assert_eq!(forward["system_packages"]["changed"][0]["left"], "4.3-4.1");
    assert_eq!(forward["artifacts"]["changed"][0]["path"], "bin/a.hvt");
    assert_eq!(forward["main_binary"]["size_delta"], 9);
    let backward = admin.anonymous().get(&format!("/api/v1/compare/{r}/{l}")).await.expect(200).body;
    assert_eq!(backward["environment"]["only_left"][0]["key"], "NEW");
    assert_eq!(backward["main_binary"]["size_delta"], -9);
}

#[tokio::test]
async fn retention_drops_old_contents_but_keeps_metadata_and_hashes() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", true).await;
    admin
        .send(Method::PATCH, &format!("/api/v1/jobs/{job}"), Some(json!({"retention": {"keep_last": 1}})))
        .await
        .expect(200);
    let old = Api::build(&admin, job, &[("bin/a.hvt", b"old image"), ("shared", b"common bytes")]).await;
    Api::build(&admin, job, &[("bin/a.hvt", b"middle image")]).await;
    let new = Api::build(&admin, job, &[("bin/a.hvt", b"new image"), ("shared", b"common bytes")]).await;
    let store = petrel_api::store::BlobStore::open(
        &s.data_dir.path().join("artifacts").to_string_lossy(),
        &s.data_dir.path().join("staging"),
    )
    .unwrap();
    let report = petrel_api::maintenance::collect_garbage(&s.db.pool, &store, Duration::ZERO).await.unwrap();
    assert_eq!(report.builds_expired, 2);
    assert_eq!(report.blobs_expired, 2, "the old and middle images; the shared bytes stay");
    let old_id = old["id"].as_str().unwrap();
    admin.get(&format!("/api/v1/builds/{old_id}/files/bin/a.hvt")).await.expect_problem(410, "gone");
    admin.get(&format!("/api/v1/builds/{old_id}/files/shared")).await.expect(200);
    let found = admin.get(&format!("/api/v1/hash/{}", sha(b"old image"))).await.expect(200);
    assert_eq!(found.body["build"]["id"], old_id);
    assert_eq!(found.body["available"], false);
    let old_view = admin.get(&format!("/api/v1/builds/{old_id}")).await.expect(200);
    assert_eq!(old_view.body["main_binary"]["available"], false);
    let new_id = new["id"].as_str().unwrap();
    admin.get(&format!("/api/v1/builds/{new_id}/files/bin/a.hvt")).await.expect(200);
    // Uploading expired content again stores it again.
    let again = Api::build(&admin, job, &[("bin/a.hvt", b"old image")]).await;
    admin.get(&format!("/api/v1/builds/{}/files/bin/a.hvt", again["id"].as_str().unwrap())).await.expect(200);
}

#[tokio::test]
async fn reproducibility_and_fleet_search_follow_inputs_and_outputs() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", true).await;
    let other_env: &[u8] = b"HOME=/home/builder\nOS=debian\nSOURCE_DATE_EPOCH=1\n";
    let inputs = |env: &'static [u8], bin: &'static [u8]| {
        vec![
            ("bin/a.hvt", bin),
            ("build-environment", env),
            ("system-packages", SYSTEM_PACKAGES),
            ("opam-switch", OPAM_SWITCH),
        ]
    };
    let a = Api::build(&admin, job, &inputs(ENVIRONMENT, b"image S")).await;
    let b = Api::build(&admin, job, &inputs(ENVIRONMENT, b"image S")).await;
    let c = Api::build(&admin, job, &inputs(other_env, b"image S")).await;
    let d = Api::build(&admin, job, &inputs(ENVIRONMENT, b"image T")).await;
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    let r =
        admin.anonymous().get(&format!("/api/v1/builds/{}/reproducibility", id(&a))).await.expect(200).body;
    let ids = |key: &str| {
        r[key].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids("same_input_same_output"), [id(&b)]);
    assert_eq!(ids("other_input_same_output"), [id(&c)]);
    assert_eq!(ids("same_input_other_output"), [id(&d)]);
    assert_eq!(r["same_input_other_output"][0]["compare"], format!("/api/v1/compare/{}/{}", id(&a), id(&d)));
    let summary = admin.get(&format!("/api/v1/jobs/{job}/reproducibility")).await.expect(200).body;
    assert_eq!(summary["builds"], 4);
    assert_eq!(summary["inputs"], 2);
    assert_eq!(summary["unreproducible_inputs"], 1);
    assert_eq!(summary["single_build_inputs"], 1);

    // A private build of another tenant with the same package stays out of outsiders' results.
    let secret = api.tenant("secret", None).await;
    let hidden = api.job(secret, "hidden", false).await;
    Api::build(&admin, hidden, &[("system-packages", SYSTEM_PACKAGES)]).await;
    let anon = admin.anonymous();
    let hits =
        anon.get("/api/v1/fleet/packages?ecosystem=debian&name=make&version=4.3-4.1").await.expect(200).body;
    assert_eq!(hits["items"].as_array().unwrap().len(), 4);
    let all = admin.get("/api/v1/fleet/packages?ecosystem=debian&name=make").await.expect(200).body;
    assert_eq!(all["items"].as_array().unwrap().len(), 5, "administrators see every tenant");
    let paged = admin.get("/api/v1/fleet/packages?ecosystem=debian&name=make&limit=2").await.expect(200).body;
    let cursor = paged["next_cursor"].as_str().unwrap();
    let next = admin
        .get(&format!("/api/v1/fleet/packages?ecosystem=debian&name=make&limit=2&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(next.body["items"].as_array().unwrap().len(), 2);
    let opam = anon.get("/api/v1/fleet/packages?ecosystem=opam&name=mirage").await.expect(200).body;
    assert_eq!(opam["items"][0]["version"], "4.4.1");
    anon.get("/api/v1/fleet/packages?ecosystem=npm&name=x").await.expect_problem(400, "validation-failed");
    anon.get("/api/v1/fleet/packages?name=x").await.expect_problem(400, "validation-failed");
}

#[tokio::test]
async fn dependency_graphs_and_treemaps_are_computed_in_the_background() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let job = api.job(tenant, "j", true).await;
    // A small real ELF with symbols.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hello.c");
    std::fs::write(&src, "int counter; int add(int a, int b) { return a + b + counter; }\nint main(void) { return add(1, 2); }\n").unwrap();
    let out = dir.path().join("hello");
    let status = std::process::Command::new("gcc").arg("-O1").arg("-o").arg(&out).arg(&src).status().unwrap();
    assert!(status.success(), "gcc failed");
    let elf = std::fs::read(&out).unwrap();
    let build = Api::build(&admin, job, &[("bin/hello", &elf), ("opam-switch", OPAM_SWITCH)]).await;
    let id = build["id"].as_str().unwrap();
    let anon = admin.anonymous();
    let graph = petrel_tests::eventually(&anon, &format!("/api/v1/builds/{id}/dependencies")).await.body;
    assert_eq!(graph["root"], "hello");
    let nodes: Vec<&str> =
        graph["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert!(nodes.contains(&"ocaml-solo5"), "{nodes:?}");
    let treemap = petrel_tests::eventually(&anon, &format!("/api/v1/builds/{id}/treemap")).await.body;
    assert_eq!(treemap["root"]["kind"], "root");
    assert!(treemap["root"]["size"].as_u64().unwrap() > 0);
    assert!(treemap.to_string().contains("\"add\""), "the function symbol is in the tree");
    // A build with nothing to draw from has no visualizations.
    let plain = Api::build(&admin, job, &[("notes.txt", b"no binary")]).await;
    let plain = plain["id"].as_str().unwrap();
    anon.get(&format!("/api/v1/builds/{plain}/treemap")).await.expect_problem(404, "not-found");
    anon.get(&format!("/api/v1/builds/{plain}/dependencies")).await.expect_problem(404, "not-found");
    // Same inputs, computed once.
    Api::build(&admin, job, &[("bin/hello", &elf), ("opam-switch", OPAM_SWITCH)]).await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM visualizations").fetch_one(&s.db.pool).await.unwrap();
    assert_eq!(stored, 2);
}
