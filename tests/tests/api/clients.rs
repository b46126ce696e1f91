//! The OpenAPI document as other languages use it: Redocly's linter passes it (and still rejects
//! what issue #8 forbids), and clients generated from it in Python (openapi-python-client) and
//! TypeScript (@hey-api/openapi-ts) drive a live server through tests/clients/*/scenario.*:
//! an API token, a new job, a paginated list of builds, a look-up by hash.
//!
//! The tools are pinned and installed under `$PETREL_TOOLS` by `scripts/setup.sh`; a test without
//! them fails and says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use petrel_tests::{Api, TestServer};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// `$PETREL_TOOLS`, as `scripts/lib.sh` defines it.
fn tools_dir() -> PathBuf {
    std::env::var_os("PETREL_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/petrel-tools")
    })
}

/// A tool `scripts/setup.sh` installs at `relative` under `$PETREL_TOOLS`.
pub(super) fn tool(relative: &str) -> PathBuf {
    let path = tools_dir().join(relative);
    assert!(
        path.is_file(),
        "{} is not installed: run scripts/setup.sh (scripts/test.sh does), with the same PETREL_TOOLS",
        path.display()
    );
    path
}

/// The machine's Node.js (`scripts/setup.sh` checks its version).
fn node() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("node")).find(|c| c.is_file()))
        .expect("node is not on PATH: run scripts/setup.sh (scripts/test.sh does)")
}

/// A file of the repository.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").join(path)
}

/// Runs `command` to completion, two minutes at most.
async fn output(what: &str, command: &mut Command) -> std::process::Output {
    command.kill_on_drop(true).stdin(std::process::Stdio::null());
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within two minutes: {command:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what} ({command:?}): {e}"))
}

/// Runs `command`; panics with its output unless it succeeds, else returns its stdout.
async fn run(what: &str, command: &mut Command) -> String {
    let output = output(what, command).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}): {command:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

/// Runs the linter on `document` with the checked-in configuration; whether it passed, and what
/// it said.
async fn lint(document: &Path) -> (bool, String) {
    let output = output(
        "redocly lint",
        Command::new(tool("node_modules/.bin/redocly"))
            .arg("lint")
            .arg(document)
            .arg("--config")
            .arg(repo("openapi/redocly.yaml"))
            .arg("--format=stylish")
            // Its update check would ask the npm registry, which tests need not reach.
            .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
            .env("NO_COLOR", "1"),
    )
    .await;
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test]
async fn the_document_passes_the_linter() {
    let (ok, output) = lint(&repo("openapi/openapi.json")).await;
    assert!(ok, "redocly lint openapi/openapi.json (config openapi/redocly.yaml) found problems:\n{output}");
}

#[tokio::test]
async fn the_linter_rejects_what_the_issue_forbids() {
    // The checked-in document, broken the ways issue #8 rules out: a reused operationId, an
    // operation without security, an error that is not a problem+json, a request body's example
    // that does not fit its schema.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("openapi/openapi.json")).unwrap())
            .expect("openapi.json is JSON");
    let builds = &mut doc["paths"]["/api/v1/builds"]["get"];
    builds["operationId"] = "get_build".into();
    builds.as_object_mut().unwrap().remove("security");
    builds["responses"]["400"] = serde_json::json!({
        "description": "Plain text",
        "content": {"text/plain": {"schema": {"type": "string"}}}
    });
    doc["components"]["schemas"]["CreateJob"]["example"]["name"] = 5.into();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("openapi.json");
    std::fs::write(&broken, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let (ok, output) = lint(&broken).await;
    assert!(!ok, "redocly lint accepted the broken document:\n{output}");
    const RULES: [&str; 4] = [
        "operation-operationId-unique",
        "security-defined",
        "operation-4xx-problem-details-rfc7807",
        "no-invalid-schema-examples",
    ];
    for rule in RULES {
        assert!(output.contains(rule), "{rule} did not fire:\n{output}");
    }
}

/// A server, and through its API: a tenant, an operator's API token, a job with three builds.
/// The scenarios get the facts to check in their environment (see tests/clients/python/scenario.py).
struct Fixture {
    server: TestServer,
    tenant: uuid::Uuid,
    new_job: String,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Fixture {
    async fn new(new_job: &str) -> Fixture {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let api = Api { admin: &admin };
        let tenant = api.tenant("clients", None).await;
        let (_, ci) = api.user("ci").await;
        api.member(tenant, "ci", "operator").await;
        let (_, token) = Api::token(&ci, tenant, "operator").await;
        let job = api.job(tenant, "built", false).await;
        let mut builds = Vec::new();
        let mut images = Vec::new();
        for i in 0..3 {
            let image = format!("unikernel image {i}").into_bytes();
            let build = Api::build(&admin, job, &[("bin/hello.hvt", &image)]).await;
            builds.push(build["id"].as_str().expect("build id").to_string());
            images.push(image);
        }
        builds.reverse();
        images.reverse();

        let dir = tempfile::Builder::new().prefix("petrel-clients-").tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &server.ca_pem).unwrap();
        let env = vec![
            ("PETREL_URL", server.server.url.clone()),
            ("PETREL_CA_FILE", ca.display().to_string()),
            ("PETREL_TOKEN", token),
            ("PETREL_TENANT_ID", tenant.to_string()),
            ("PETREL_NEW_JOB", new_job.to_string()),
            ("PETREL_JOB_ID", job.to_string()),
            ("PETREL_BUILD_IDS", builds.join(",")),
            ("PETREL_SHA256", hex::encode(Sha256::digest(&images[1]))),
            ("PETREL_SHA256_PATH", "bin/hello.hvt".to_string()),
        ];
        Fixture { server, tenant, new_job: new_job.to_string(), dir, env }
    }

    /// The job the scenario created is there, as the API's own client sees it.
    async fn assert_job_created(&self) {
        let admin = self.server.admin().await;
        let jobs = admin.get(&format!("/api/v1/tenants/{}/jobs", self.tenant)).await.expect(200);
        let names: Vec<&str> =
            jobs.body["items"].as_array().unwrap().iter().filter_map(|j| j["name"].as_str()).collect();
        assert!(names.contains(&self.new_job.as_str()), "the scenario's job is missing: {names:?}");
    }
}

#[tokio::test]
async fn a_generated_python_client_works_against_the_server() {
    let generator = tool("bin/openapi-python-client");
    let python = tool("venv/bin/python");
    let f = Fixture::new("from-python").await;

    let package = f.dir.path().join("petrel_client");
    run(
        "openapi-python-client",
        Command::new(&generator)
            .arg("generate")
            .arg("--path")
            .arg(repo("openapi/openapi.json"))
            .arg("--output-path")
            .arg(&package)
            .arg("--config")
            .arg(repo("tests/clients/python/generator.yaml"))
            .args(["--meta", "none", "--fail-on-warning"]),
    )
    .await;
    let out = run(
        "the Python scenario",
        Command::new(&python)
            .arg(repo("tests/clients/python/scenario.py"))
            .envs(f.env.iter().cloned())
            .env("PYTHONPATH", f.dir.path())
            // Nothing written next to the checked-in script.
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
    .await;
    assert!(out.contains("python client: job"), "{out}");
    f.assert_job_created().await;
}

#[tokio::test]
async fn a_generated_typescript_client_works_against_the_server() {
    let generator = tool("node_modules/.bin/openapi-ts");
    let tsc = tool("node_modules/.bin/tsc");
    let node = node();
    let f = Fixture::new("from-typescript").await;

    let dir = f.dir.path();
    for file in ["scenario.ts", "tsconfig.json"] {
        std::fs::copy(repo(&format!("tests/clients/typescript/{file}")), dir.join(file)).unwrap();
    }
    run(
        "openapi-ts",
        Command::new(&generator)
            .arg("--input")
            .arg(repo("openapi/openapi.json"))
            .arg("--output")
            .arg(dir.join("petrel"))
            .args(["--client", "@hey-api/client-fetch", "--no-log-file"])
            .current_dir(dir),
    )
    .await;
    // Type-checks the scenario against the generated types, then emits CommonJS for Node.
    run("tsc", Command::new(&tsc).arg("-p").arg(dir.join("tsconfig.json")).current_dir(dir)).await;
    let ca = f.env.iter().find(|(k, _)| *k == "PETREL_CA_FILE").map(|(_, v)| v.clone()).unwrap();
    let out = run(
        "the TypeScript scenario",
        Command::new(&node)
            .arg(dir.join("out/scenario.js"))
            .envs(f.env.iter().cloned())
            .env("NODE_EXTRA_CA_CERTS", ca),
    )
    .await;
    assert!(out.contains("typescript client: job"), "{out}");
    f.assert_job_created().await;
}
