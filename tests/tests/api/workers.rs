//! Real `petrel-worker` processes against a real API: the example jobs built from source in
//! the sandbox, bit-for-bit the same twice and on rebuild (the unikernel then boots in the
//! tender); a worker killed mid-build (the build runs again elsewhere); cancel and timeout
//! reaching the build's processes; an API outage while the result is uploaded; a worker whose
//! network namespace is cut off mid-build (it loses the build, which then runs once, whole);
//! recipes that misbehave fail cleanly.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use petrel_tests::client::PLATFORM;
use petrel_tests::faults::{Netns, assert_invariants};
use petrel_tests::{Api, Client, TestServer, workspace_binary};
use serde_json::{Value, json};
use uuid::Uuid;

/// A `petrel-worker run` child process, killed when dropped.
pub(crate) struct WorkerProcess {
    child: Child,
    dir: tempfile::TempDir,
}

impl WorkerProcess {
    pub(crate) fn start(s: &TestServer, credential: &str, extra: &[&str]) -> WorkerProcess {
        Self::start_in(None, s, credential, extra)
    }

    /// Starts it inside `netns` when given (the API then must listen where the namespace
    /// reaches it: `s.server.url` on the host's end of the link).
    fn start_in(netns: Option<&Netns>, s: &TestServer, credential: &str, extra: &[&str]) -> WorkerProcess {
        let dir = tempfile::Builder::new().prefix("petrel-worker-").tempdir().unwrap();
        std::fs::write(dir.path().join("credential"), credential).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &s.ca_pem).unwrap();
        let program = workspace_binary("petrel-worker");
        let command = match netns {
            Some(netns) => netns.command(program),
            None => Command::new(program),
        };
        let child = Self::spawn(command, s, &dir, extra);
        WorkerProcess { child, dir }
    }

    /// Kills the worker and starts it again on the same work directory.
    fn restart(&mut self, s: &TestServer) {
        self.kill();
        self.child = Self::spawn(Command::new(workspace_binary("petrel-worker")), s, &self.dir, &[]);
    }

    fn spawn(mut command: Command, s: &TestServer, dir: &tempfile::TempDir, extra: &[&str]) -> Child {
        // Each worker's builds run under uids of their own, apart from other tests' workers.
        let uid_base = 200_000 + (std::process::id() % 1000) * 100 + (rand_u32() % 90);
        command
            .arg("run")
            .args(["--api", &s.server.url, "--platform", PLATFORM])
            .arg("--ca")
            .arg(dir.path().join("ca.pem"))
            .arg("--credential-file")
            .arg(dir.path().join("credential"))
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .args(["--uid-base", &uid_base.to_string()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .spawn()
            .expect("start petrel-worker")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Results kept on disk, not yet accepted by the API.
    fn kept_results(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("work/results")).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rand_u32() -> u32 {
    let bytes = *Uuid::new_v4().as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

async fn run_now(admin: &Client, job: Uuid) -> Uuid {
    let r = admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    r.body[0]["build_id"].as_str().unwrap().parse().unwrap()
}

/// Waits (up to `limit`) until the build has finished; returns it.
async fn finished(client: &Client, id: Uuid, limit: Duration) -> Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let b = client.get(&format!("/api/v1/builds/{id}")).await.expect(200).body;
        if !matches!(b["status"].as_str(), Some("queued" | "running")) {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "the build did not finish in {limit:?}: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn status_becomes(client: &Client, id: Uuid, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let b = client.get(&format!("/api/v1/builds/{id}")).await.expect(200).body;
        if b["status"] == status {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "the build never became {status}: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn artifact_paths(artifacts: &Value) -> Vec<String> {
    artifacts
        .as_array()
        .expect("a list of artifacts")
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect()
}

async fn console_text(client: &Client, id: Uuid) -> String {
    let lines = client.get(&format!("/api/v1/builds/{id}/console?limit=200")).await.expect(200).body;
    lines["items"].as_array().unwrap().iter().map(|l| format!("{}\n", l["text"].as_str().unwrap())).collect()
}

/// Processes whose environment holds `marker` (the recipe sets it).
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(env) = std::fs::read(entry.path().join("environ"))
            && env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn the_example_unikernel_builds_reproducibly_rebuilds_verify_and_it_boots() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let recipe = serde_json::to_value(petrel_api::examples::unikernel_recipe()).unwrap();
    let job = api.recipe_job(tenant, "hello-unikernel", recipe, json!({})).await;
    let (_, _, credential) = api.worker("w", None).await;
    let worker = WorkerProcess::start(&s, &credential, &[]);

    let first = run_now(&admin, job).await;
    let b1 = finished(&admin, first, Duration::from_secs(300)).await;
    assert_eq!(b1["status"], "succeeded", "{b1}\n{}", console_text(&admin, first).await);
    assert_eq!(b1["main_binary"]["path"], "bin/hello.hvt");
    assert_eq!(b1["worker"], "w");
    let artifacts = admin.get(&format!("/api/v1/builds/{first}/artifacts")).await.expect(200).body;
    let paths = artifact_paths(&artifacts);
    for expected in ["bin/hello.hvt", "build-environment", "system-packages"] {
        assert!(paths.iter().any(|p| p == expected), "{expected} missing from {paths:?}");
    }
    let inputs = admin.get(&format!("/api/v1/builds/{first}/inputs")).await.expect(200).body;
    let env: Vec<&str> =
        inputs["environment"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert!(env.contains(&"SOURCE_DATE_EPOCH") && env.contains(&"PATH"), "{env:?}");
    assert!(
        inputs["packages"].as_array().unwrap().iter().any(|p| p["name"] == "gcc"),
        "dpkg packages recorded"
    );
    assert!(console_text(&admin, first).await.contains("hello.hvt"), "the console shows the build");

    // Built again: the very same bytes.
    let second = run_now(&admin, job).await;
    let b2 = finished(&admin, second, Duration::from_secs(300)).await;
    assert_eq!(b2["status"], "succeeded");
    assert_eq!(b2["main_binary"]["sha256"], b1["main_binary"]["sha256"], "two builds, one binary");
    drop(worker);

    // `petrel-worker rebuild` re-runs the first build here and checks every artifact.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credential"), &credential).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &s.ca_pem).unwrap();
    let out = tokio::process::Command::new(workspace_binary("petrel-worker"))
        .arg("rebuild")
        .args(["--api", &s.server.url, "--platform", PLATFORM, "--uid-base", "230000"])
        .arg("--ca")
        .arg(dir.path().join("ca.pem"))
        .arg("--credential-file")
        .arg(dir.path().join("credential"))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg(first.to_string())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rebuild failed: {stderr}");
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("the verdict as JSON");
    assert_eq!(verdict["reproducible"], true, "{verdict}");
    let verdicts = admin.get(&format!("/api/v1/builds/{first}/rebuilds")).await.expect(200).body;
    assert_eq!(verdicts[0]["reproducible"], true);

    // The unikernel a worker built runs in Petrel's tender.
    let image_bytes = admin.get_bytes(&format!("/api/v1/builds/{first}/files/bin/hello.hvt")).await;
    let path = dir.path().join("hello.hvt");
    std::fs::write(&path, &image_bytes).unwrap();
    let ran = Command::new(workspace_binary("petrel-hvt"))
        .arg("--mem=2")
        .arg("--")
        .arg(&path)
        .arg("built-by-petrel")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success(), "the tender failed: {stdout} {}", String::from_utf8_lossy(&ran.stderr));
    assert!(stdout.contains("Hello, World") && stdout.contains("built-by-petrel"), "{stdout}");
}

#[tokio::test]
async fn the_example_rust_program_builds_reproducibly_with_its_lock_recorded() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let recipe = serde_json::to_value(petrel_api::examples::rust_recipe()).unwrap();
    let job = api.recipe_job(tenant, "rust-hello", recipe, json!({})).await;
    let (_, _, credential) = api.worker("w", None).await;
    let _worker = WorkerProcess::start(&s, &credential, &["--tool-dir", "rust=auto"]);
    let first = run_now(&admin, job).await;
    let b1 = finished(&admin, first, Duration::from_secs(600)).await;
    assert_eq!(b1["status"], "succeeded", "{b1}\n{}", console_text(&admin, first).await);
    assert_eq!(b1["main_binary"]["path"], "bin/rust-hello");
    let paths =
        artifact_paths(&admin.get(&format!("/api/v1/builds/{first}/artifacts")).await.expect(200).body);
    assert!(paths.contains(&"Cargo.lock".to_string()), "{paths:?}");
    let inputs = admin.get(&format!("/api/v1/builds/{first}/inputs")).await.expect(200).body;
    assert!(
        inputs["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ecosystem"] == "cargo" && p["name"] == "rust-hello"),
        "{inputs}"
    );
    let second = run_now(&admin, job).await;
    let b2 = finished(&admin, second, Duration::from_secs(600)).await;
    assert_eq!(b2["status"], "succeeded");
    assert_eq!(b2["main_binary"]["sha256"], b1["main_binary"]["sha256"], "cargo --locked, twice, one binary");
    // Cargo.lock, build-environment and system-packages make the input id: the same twice.
    assert!(b1["input_id"].is_string(), "{b1}");
    assert_eq!(b2["input_id"], b1["input_id"]);
}

#[tokio::test]
async fn a_worker_killed_mid_build_leaves_no_phantom_and_the_build_runs_elsewhere() {
    let s = TestServer::start_with(|c| c.worker_lease = Duration::from_secs(3)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let marker = format!("PHANTOM_MARKER={}", Uuid::new_v4());
    let (key, value) = marker.split_once('=').unwrap();
    // Long enough that only the kill, not the script's end, stops it within the deadline below.
    let recipe = json!({"script": "echo started\nsleep 20\nmkdir -p \"$PETREL_OUTPUT/bin\"\necho done > \"$PETREL_OUTPUT/bin/result\"",
                        "env": {key: value}});
    let job = api.recipe_job(tenant, "slow", recipe, json!({})).await;
    let (_, _, doomed_credential) = api.worker("doomed", None).await;
    let (_, _, survivor_credential) = api.worker("survivor", None).await;
    let mut doomed = WorkerProcess::start(&s, &doomed_credential, &[]);
    let id = run_now(&admin, job).await;
    let running = status_becomes(&admin, id, "running").await;
    assert_eq!(running["worker"], "doomed");
    doomed.kill();
    // Its sandbox dies with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !processes_with(&marker).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the killed worker's build processes live on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _survivor = WorkerProcess::start(&s, &survivor_credential, &[]);
    let done = finished(&admin, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 2, "the lost attempt counts");
    assert_eq!(done["worker"], "survivor");
    let running = admin.get(&format!("/api/v1/builds?job_id={job}&status=running")).await.expect(200).body;
    assert_eq!(running["items"].as_array().unwrap().len(), 0, "no phantom running build");
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}

#[tokio::test]
async fn cancel_and_timeout_kill_the_builds_processes() {
    let s = TestServer::start_with(|c| c.worker_lease = Duration::from_secs(3)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let marker = format!("CANCEL_MARKER={}", Uuid::new_v4());
    let (key, value) = marker.split_once('=').unwrap();
    let recipe = json!({"script": "echo waiting\nsleep 600 &\nsleep 600", "env": {key: value}});
    let job = api.recipe_job(tenant, "forever", recipe.clone(), json!({})).await;
    let quick = api
        .recipe_job(
            tenant,
            "quick",
            recipe,
            json!({"limits": {"timeout_secs": 2, "memory_mib": 512, "output_mib": 16, "max_attempts": 1}}),
        )
        .await;
    let (_, _, credential) = api.worker("w", None).await;
    let _worker = WorkerProcess::start(&s, &credential, &[]);

    let id = run_now(&admin, job).await;
    status_becomes(&admin, id, "running").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while processes_with(&marker).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the build never started its processes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin.post(&format!("/api/v1/builds/{id}/cancel"), json!({})).await.expect(204);
    // The next heartbeat (a third of the lease) reaches the worker, which kills everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !processes_with(&marker).is_empty() {
        assert!(std::time::Instant::now() < deadline, "cancelled build's processes still run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(finished(&admin, id, Duration::from_secs(5)).await["status"], "cancelled");

    // The worker is free again: a build with a 2 s timeout is stopped at its timeout.
    let timed = run_now(&admin, quick).await;
    let b = finished(&admin, timed, Duration::from_secs(60)).await;
    assert_eq!(b["status"], "timed_out", "{b}");
    assert!(b["result"]["message"].as_str().unwrap().contains("timed out after 2 s"), "{b}");
    assert!(console_text(&admin, timed).await.contains("waiting"));
    assert!(processes_with(&marker).is_empty(), "the timed-out build's processes are gone");
}

#[tokio::test]
async fn a_result_finished_while_the_api_is_down_arrives_when_it_is_back() {
    let mut s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let recipe = json!({"script": "sleep 2\nmkdir -p \"$PETREL_OUTPUT/bin\"\nhead -c 3000000 /dev/urandom > \"$PETREL_OUTPUT/bin/blob\""});
    let job = api.recipe_job(tenant, "during-outage", recipe, json!({})).await;
    let (_, _, credential) = api.worker("w", None).await;
    let worker = WorkerProcess::start(&s, &credential, &[]);
    let id = run_now(&admin, job).await;
    status_becomes(&admin, id, "running").await;
    let paused = s.pause().await;
    // The build finishes meanwhile; the worker keeps its result and retries.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while worker.kept_results() == 0 {
        assert!(std::time::Instant::now() < deadline, "the worker never kept its result");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.resume(paused).await;
    let done = finished(&admin, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["main_binary"]["size"], 3_000_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while worker.kept_results() > 0 {
        assert!(std::time::Instant::now() < deadline, "the accepted result is still kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn recipes_that_misbehave_fail_cleanly_and_the_worker_goes_on() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let (_, _, credential) = api.worker("w", None).await;
    let worker = WorkerProcess::start(&s, &credential, &[]);
    // The worker's own files (its credential among them) are out of the build's reach.
    let credential_path: PathBuf = worker.dir.path().join("credential");
    let cases = [
        ("escape", format!("cat {}", credential_path.display())),
        ("write-outside", "touch /etc/petrel-escaped".to_string()),
        ("memory", "python3 -c 'bytearray(1 << 30)'".to_string()),
        (
            // The API listens on the host's loopback: reachable only without a network namespace.
            "network",
            format!(
                "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {}), 3)'",
                s.server.addr.port()
            ),
        ),
    ];
    for (name, script) in &cases {
        let job = api
            .recipe_job(
                tenant,
                name,
                json!({"script": script}),
                json!({"limits": {"timeout_secs": 60, "memory_mib": 256,
                "output_mib": 16, "max_attempts": 1}}),
            )
            .await;
        let id = run_now(&admin, job).await;
        let b = finished(&admin, id, Duration::from_secs(120)).await;
        assert_eq!(b["status"], "failed", "{name}: {b}\n{}", console_text(&admin, id).await);
        assert_ne!(b["result"], json!({"kind": "exited", "code": 0}));
    }
    assert!(!std::path::Path::new("/etc/petrel-escaped").exists());
    // And a good one still builds.
    let ok = api.recipe_job(tenant, "fine", json!({"script": "echo fine"}), json!({})).await;
    let id = run_now(&admin, ok).await;
    assert_eq!(finished(&admin, id, Duration::from_secs(60)).await["status"], "succeeded");
}

#[tokio::test]
async fn a_worker_killed_mid_upload_comes_back_and_the_build_succeeds_once_and_whole() {
    let s = TestServer::start_with(|c| c.worker_lease = Duration::from_secs(3)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    // Large enough that its upload takes a while on loopback.
    let size = 400_000_000u64;
    let recipe = json!({"script": format!("mkdir -p \"$PETREL_OUTPUT/bin\"\nhead -c {size} /dev/zero > \"$PETREL_OUTPUT/bin/big\"")});
    let job = api.recipe_job(tenant, "big", recipe, json!({})).await;
    let (_, _, credential) = api.worker("w", None).await;
    let mut worker = WorkerProcess::start(&s, &credential, &[]);
    let id = run_now(&admin, job).await;
    let staging = s.data_dir.path().join("staging");
    let uploading = || {
        std::fs::read_dir(&staging)
            .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !uploading() {
        assert!(std::time::Instant::now() < deadline, "the result's upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill();
    // Back on the same work directory: what it kept is sent again (or the build runs again).
    worker.restart(&s);
    let done = finished(&admin, id, Duration::from_secs(180)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["main_binary"]["size"], size, "{done}");
    let builds = admin.get(&format!("/api/v1/builds?job_id={job}")).await.expect(200).body;
    let items = builds["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one build, not two: {builds}");
    let running = admin.get(&format!("/api/v1/builds?job_id={job}&status=running")).await.expect(200).body;
    assert_eq!(running["items"], json!([]));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while worker.kept_results() > 0 {
        assert!(std::time::Instant::now() < deadline, "the accepted result is still kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}

/// A server that listens on the host's end of `netns`' link, with that address in its
/// certificate, so processes in the namespace reach it.
pub(crate) async fn server_for(
    netns: &Netns,
    adjust: impl FnOnce(&mut petrel_api::config::Config),
) -> TestServer {
    let host = netns.host_ip;
    TestServer::start_with(|c| {
        c.listen = std::net::SocketAddr::new(host.into(), 0);
        c.tls = petrel_api::config::Tls::Generated { extra_names: vec![host.to_string()] };
        adjust(c);
    })
    .await
}

#[tokio::test]
async fn a_worker_cut_off_from_the_api_mid_build_loses_it_and_builds_it_once_whole_when_back() {
    let netns = Netns::new();
    let s = server_for(&netns, |c| c.worker_lease = Duration::from_secs(3)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let marker = format!("CUT_MARKER={}", Uuid::new_v4());
    let (key, value) = marker.split_once('=').unwrap();
    // Long enough that the first attempt still runs when the link comes back.
    let lines = 15;
    let script = format!(
        "for i in $(seq 1 {lines}); do echo line-$i; sleep 1; done\nmkdir -p \"$PETREL_OUTPUT/bin\"\necho built > \"$PETREL_OUTPUT/bin/result\""
    );
    let job = api.recipe_job(tenant, "cut", json!({"script": script, "env": {key: value}}), json!({})).await;
    let (_, _, credential) = api.worker("w", None).await;
    let _worker = WorkerProcess::start_in(Some(&netns), &s, &credential, &[]);
    let id = run_now(&admin, job).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !console_text(&admin, id).await.contains("line-2\n") {
        assert!(std::time::Instant::now() < deadline, "the build's console never reached the API");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    netns.cut();
    // No heartbeats: the lease lapses and the build is queued again (the worker cannot know).
    let requeued = status_becomes(&admin, id, "queued").await;
    assert_eq!(requeued["attempt"], 1, "{requeued}");
    assert!(!processes_with(&marker).is_empty(), "the cut-off worker still runs the first attempt");
    netns.restore();

    // Back, the worker learns the build is no longer its own, stops it and claims it afresh.
    let done = finished(&admin, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(done["worker"], "w");
    let builds = admin.get(&format!("/api/v1/builds?job_id={job}")).await.expect(200).body;
    assert_eq!(builds["items"].as_array().unwrap().len(), 1, "one build, not two: {builds}");
    let console = console_text(&admin, id).await;
    let seen: Vec<&str> = console.lines().filter(|l| l.starts_with("line-")).collect();
    let expected: Vec<String> = (1..=lines).map(|i| format!("line-{i}")).collect();
    assert_eq!(seen, expected, "the console, complete and once:\n{console}");
    assert!(processes_with(&marker).is_empty(), "a build process outlived its build");
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}

#[tokio::test]
async fn a_build_that_ends_while_its_worker_is_cut_off_keeps_its_whole_console() {
    let netns = Netns::new();
    // A lease far longer than the cut: the build stays this worker's throughout.
    let s = server_for(&netns, |c| c.worker_lease = Duration::from_secs(120)).await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("t", None).await;
    let marker = format!("CUT_MARKER={}", Uuid::new_v4());
    let (key, value) = marker.split_once('=').unwrap();
    // The first line reaches the API; the rest and the end of the build happen during the cut.
    let lines = 10;
    let script = format!(
        "echo line-1\nsleep 2\nfor i in $(seq 2 {lines}); do echo line-$i; done\nmkdir -p \"$PETREL_OUTPUT/bin\"\necho built > \"$PETREL_OUTPUT/bin/result\""
    );
    let job =
        api.recipe_job(tenant, "cut-at-end", json!({"script": script, "env": {key: value}}), json!({})).await;
    let (_, _, credential) = api.worker("w", None).await;
    let _worker = WorkerProcess::start_in(Some(&netns), &s, &credential, &[]);
    let id = run_now(&admin, job).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !console_text(&admin, id).await.contains("line-1\n") {
        assert!(std::time::Instant::now() < deadline, "the build's console never reached the API");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    netns.cut();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !processes_with(&marker).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the build never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The worker tries to send the rest meanwhile; none of it arrives. The cut outlasts the
    // worker's 30 s request timeout, so its sends fail rather than hang until the link is back.
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert!(
        !console_text(&admin, id).await.contains(&format!("line-{lines}\n")),
        "the cut let lines through"
    );
    netns.restore();

    let done = finished(&admin, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    let console = console_text(&admin, id).await;
    let seen: Vec<&str> = console.lines().filter(|l| l.starts_with("line-")).collect();
    let expected: Vec<String> = (1..=lines).map(|i| format!("line-{i}")).collect();
    assert_eq!(seen, expected, "the console, complete and once:\n{console}");
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}
