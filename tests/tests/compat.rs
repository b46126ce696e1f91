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
