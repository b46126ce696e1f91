//! schemathesis (pinned in scripts/deps/python.txt) walks every operation of the checked-in
//! spec against a live server with an administrator's token, bounded in time: examples, the
//! spec's edge cases, random fuzzing and stateful sequences that follow the spec's links. It
//! fails on any 5xx, any status code, content type, header or body the spec does not
//! describe, a deleted object still answering, or authentication that is ignored.
//!
//! Left out on purpose: operations that would take the token or session away mid-run
//! (revoking tokens, signing out, changing the password), the endless live streams, and the
//! checks that the API refuses exactly what the spec's schemas refuse (its validation is
//! stricter than JSON Schema says: names, patterns, existence of referenced objects).

use petrel_tests::{Api, TestServer};
use serde_json::json;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_spec() {
    let st = super::clients::tool("bin/schemathesis");
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    // Something to find: a tenant with a job, a build and a quota.
    let tenant = api.tenant("fuzzed", None).await;
    let job = api.job(tenant, "fuzzed-job", true).await;
    Api::build(&admin, job, &[("bin/fuzzed.hvt", b"not a unikernel")]).await;
    let token = admin
        .post("/api/v1/tokens", json!({"name": "schemathesis", "admin": true}))
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &s.ca_pem).unwrap();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let out = tokio::process::Command::new(st)
        .arg("run")
        .arg(&spec)
        .args(["--url", &s.server.url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .arg("--tls-verify")
        .arg(&ca)
        .args(["--max-examples", "10", "--max-time", "90", "--seed", "1", "--request-timeout", "20"])
        .args(["--exclude-operation-id", "revoke_token"])
        .args(["--exclude-operation-id", "logout"])
        .args(["--exclude-operation-id", "change_password"])
        .args(["--exclude-path-regex", "/stream$"])
        // Hypothesis' own health checks judge the generator (too slow on a busy machine, too
        // many examples filtered for the artifact path), not the API.
        .args(["--suppress-health-check", "all"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
             response_schema_conformance,use_after_free,ensure_resource_availability,ignored_auth",
        ])
        .args(["--no-color", "--report-dir"])
        .arg(dir.path().join("report"))
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir.path())
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran: operations were tested and cases generated.
    assert!(stdout.contains("Tested:"), "{stdout}");
    assert!(!stdout.contains("Tested: 0"), "{stdout}");
}
