//! End to end on one machine with real processes: the API, a real `petrel-agent` enrolled with
//! a one-time token, the real `petrel-hvt` tender on /dev/kvm and the project's test guests
//! uploaded as builds. A deployment runs and its console reaches the API; the restart policy
//! restarts a failing unikernel and destroy stops the loop; an agent killed outright takes its
//! tenders with it and, restarted, brings its deployments back; an update to a newer build runs
//! the new image and a rollback the old one; a block device is uploaded, read and written by a
//! guest, survives the agent's death and is downloaded; a network partition between agent and
//! API (the agent in a network namespace whose link is cut) leaves the unikernel running, shows it `unknown`, and heals without a restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use petrel_tests::faults::{Netns, assert_invariants};
use petrel_tests::{Api, Client, TestServer, workspace_binary};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The test guests, built once per test into its own directory.
pub(crate) fn guests(dir: &Path) -> PathBuf {
    assert!(
        std::fs::metadata("/dev/kvm").is_ok(),
        "/dev/kvm is missing: these tests need KVM (they never pass without it)"
    );
    build_guests(dir)
}

/// The test guests without running them (no KVM needed): images with real solo5 manifests.
pub(crate) fn build_guests(dir: &Path) -> PathBuf {
    let out = dir.join("guests");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hypervisor-agent/guests");
    let status =
        Command::new("make").arg("-s").arg("-C").arg(&src).arg(format!("OUT={}", out.display())).status();
    assert!(status.expect("make").success(), "building the test guests failed");
    out
}

struct AgentProcess {
    child: Child,
    state: PathBuf,
    ca: PathBuf,
    api: String,
    /// The network namespace it runs in, if not the host's.
    netns: Option<String>,
}

impl AgentProcess {
    /// Enrolls a new agent through the API and starts it, inside `netns` when given.
    /// (Async: the in-process API must keep serving while the agent enrolls.)
    async fn enroll_and_start(
        s: &TestServer,
        token: &str,
        dir: &Path,
        netns: Option<&Netns>,
    ) -> AgentProcess {
        let state = dir.join("agent");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &s.ca_pem).unwrap();
        let netns = netns.map(|n| n.name.clone());
        let mut enroll = tokio::process::Command::from(Self::command(netns.as_deref()));
        let enrolled = enroll
            .args(["enroll", "--api", &s.server.url, "--token", token])
            .arg("--ca")
            .arg(&ca)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .await
            .unwrap();
        assert!(enrolled.status.success(), "enroll failed: {}", String::from_utf8_lossy(&enrolled.stderr));
        let child = Self::spawn(netns.as_deref(), &s.server.url, &state, &ca);
        AgentProcess { child, state, ca, api: s.server.url.clone(), netns }
    }

    fn command(netns: Option<&str>) -> Command {
        match netns {
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name]).arg(workspace_binary("petrel-agent"));
                command
            }
            None => Command::new(workspace_binary("petrel-agent")),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the agent and starts it again on the same state directory.
    fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.netns.as_deref(), &self.api, &self.state, &self.ca);
    }

    fn spawn(netns: Option<&str>, api: &str, state: &Path, ca: &Path) -> Child {
        Self::command(netns)
            .args(["run", "--api", api])
            .arg("--ca")
            .arg(ca)
            .arg("--state-dir")
            .arg(state)
            .arg("--tender")
            .arg(workspace_binary("petrel-hvt"))
            .args(["--stats-interval", "1"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .spawn()
            .expect("start petrel-agent")
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tenant with a quota, an enrolled running agent, and the guests uploaded as builds.
async fn setup(s: &TestServer, admin: &Client, dir: &Path) -> (Uuid, AgentProcess, PathBuf) {
    setup_in(None, s, admin, dir).await
}

/// [`setup`] with the agent in `netns` when given.
async fn setup_in(
    netns: Option<&Netns>,
    s: &TestServer,
    admin: &Client,
    dir: &Path,
) -> (Uuid, AgentProcess, PathBuf) {
    let api = Api { admin };
    let tenant = api.tenant("ops", None).await;
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 8, "memory_mib": 256, "block_mib": 0, "cpus": [0, 1], "bridges": []}),
        )
        .await
        .expect(200);
    let token = admin.post("/api/v1/agents/enrollments", json!({"name": "kvm-host"})).await.expect(201);
    let agent = AgentProcess::enroll_and_start(s, token.body["token"].as_str().unwrap(), dir, netns).await;
    // Reachable once its first heartbeat carried its inventory.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let agents = admin.get("/api/v1/agents").await.expect(200);
        if agents.body["items"][0]["reachable"] == true
            && agents.body["items"][0]["inventory"]["tender_abi"] == 2
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the agent never reported: {}", agents.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = dir.to_path_buf();
    let guests = tokio::task::spawn_blocking(move || guests(&dir)).await.unwrap();
    (tenant, agent, guests)
}

/// Uploads a guest as a build's main binary; returns its SHA-256.
pub(crate) async fn upload_guest(admin: &Client, tenant: Uuid, guests: &Path, name: &str) -> String {
    let bytes = std::fs::read(guests.join(format!("{name}.hvt"))).unwrap();
    let job = Api { admin }.job(tenant, name, false).await;
    Api::build(admin, job, &[(&format!("bin/{name}.hvt"), &bytes)]).await;
    hex::encode(Sha256::digest(&bytes))
}

async fn deploy(admin: &Client, tenant: Uuid, name: &str, sha: &str, args: &[&str], restart: Value) -> Uuid {
    let body = json!({"name": name, "image_sha256": sha, "memory_mib": 4, "args": args, "restart": restart});
    admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201).id()
}

/// Polls the deployment until `done` holds (a minute at most).
async fn until(admin: &Client, id: Uuid, what: &str, done: impl Fn(&Value, &str) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body;
        let console = admin.get(&format!("/api/v1/deployments/{id}/console")).await.expect(200).body;
        let text: String = console
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("{}\n", l["text"].as_str().unwrap()))
            .collect();
        if done(&d, &text) {
            return d;
        }
        assert!(std::time::Instant::now() < deadline, "never {what}: {d}\nconsole:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn event_states(admin: &Client, id: Uuid) -> Vec<String> {
    let events = admin.get(&format!("/api/v1/deployments/{id}/events?limit=200")).await.expect(200).body;
    events["items"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_deployed_unikernel_runs_on_the_agent_and_its_console_reaches_the_api() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, _agent, guests) = setup(&s, &admin, dir.path()).await;
    let sha = upload_guest(&admin, tenant, &guests, "hello").await;
    let id = deploy(&admin, tenant, "hello", &sha, &["from-petrel"], json!({"kind": "never"})).await;
    let d = until(&admin, id, "exited with its greeting", |d, console| {
        d["state"] == "exited" && console.contains("Hello, World") && console.contains("from-petrel")
    })
    .await;
    assert_eq!(d["exit_code"], 0, "{d}");
    assert_eq!(d["restarts"], 0);
    assert_eq!(event_states(&admin, id).await, ["pending", "running", "exited"]);
}

#[tokio::test]
async fn a_failing_unikernel_is_restarted_by_its_policy_until_destroyed() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, _agent, guests) = setup(&s, &admin, dir.path()).await;
    let sha = upload_guest(&admin, tenant, &guests, "exit").await;
    let looping = deploy(&admin, tenant, "looping", &sha, &["3"], json!({"kind": "on_failure"})).await;
    let final_code = deploy(&admin, tenant, "final", &sha, &["1"], json!({"kind": "on_failure"})).await;
    let d = until(&admin, looping, "restarted twice", |d, _| d["restarts"].as_i64().unwrap_or(0) >= 2).await;
    assert_eq!(d["exit_code"].as_i64().unwrap_or(3), 3, "{d}");
    // Exit 1 is never restarted (albatross' rule).
    let f = until(&admin, final_code, "exited for good", |d, _| d["state"] == "exited").await;
    assert_eq!(f["exit_code"], 1);
    assert_eq!(f["restarts"], 0);
    // Destroy stops the loop: no new events after it is gone.
    admin.delete(&format!("/api/v1/deployments/{looping}")).await.expect(204);
    admin.get(&format!("/api/v1/deployments/{looping}")).await.expect_problem(404, "not-found");
}

#[tokio::test]
async fn an_agent_killed_outright_brings_its_deployments_back_when_restarted() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, mut agent, guests) = setup(&s, &admin, dir.path()).await;
    let sha = upload_guest(&admin, tenant, &guests, "bench").await;
    let id = deploy(&admin, tenant, "idle", &sha, &["idle"], json!({"kind": "on_failure"})).await;
    until(&admin, id, "running and idle", |d, console| d["state"] == "running" && console.contains("IDLE"))
        .await;
    // This test's own agent's image (another test may run the same guest meanwhile).
    let image_marker = dir.path().join("agent/images").join(&sha).display().to_string();
    let tenders = || petrel_tests::processes_running(&[&image_marker]);
    let before = tenders();
    assert_eq!(before.len(), 1, "one tender runs the deployment: {before:?}");
    agent.kill();
    // The tender dies with its agent.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !tenders().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the tender outlived its agent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = tenders();
        if now.len() == 1 && now != before {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the deployment did not come back: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = until(&admin, id, "running again", |d, _| d["state"] == "running").await;
    assert_eq!(d["restarts"], 0, "an agent restart is not the unikernel's failure");
    let states = event_states(&admin, id).await;
    assert_eq!(states.iter().filter(|s| *s == "running").count(), 2, "{states:?}");
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}

#[tokio::test]
async fn a_deployment_updates_to_a_newer_build_and_rolls_back_on_the_agent() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, _agent, guests) = setup(&s, &admin, dir.path()).await;
    // One job, two builds: `exit` first, then `hello` (both without devices, as updates need).
    let job = Api { admin: &admin }.job(tenant, "svc", false).await;
    let image = |name: &str| std::fs::read(guests.join(format!("{name}.hvt"))).unwrap();
    let (old, new) = (image("exit"), image("hello"));
    Api::build(&admin, job, &[("bin/svc.hvt", &old)]).await;
    let old_sha = hex::encode(Sha256::digest(&old));
    let id = deploy(&admin, tenant, "svc", &old_sha, &["7"], json!({"kind": "never"})).await;
    let d = until(&admin, id, "exited 7", |d, console| {
        d["state"] == "exited" && console.contains("exiting with status 7")
    })
    .await;
    assert_eq!(d["exit_code"], 7);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = Api::build(&admin, job, &[("bin/svc.hvt", &new)]).await;
    let new_sha = hex::encode(Sha256::digest(&new));
    let shown = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body;
    assert_eq!(shown["update_available"]["build_id"], newer["id"], "{shown}");

    admin.post(&format!("/api/v1/deployments/{id}/update"), json!({})).await.expect(200);
    let d = until(&admin, id, "ran the update", |d, console| {
        d["state"] == "exited"
            && d["image_sha256"] == new_sha.as_str()
            && console.contains("Command line is: '7'")
    })
    .await;
    assert_eq!(d["exit_code"], 0, "{d}");
    admin.post(&format!("/api/v1/deployments/{id}/rollback"), json!({})).await.expect(200);
    let d = until(&admin, id, "ran the old image again", |d, console| {
        d["state"] == "exited" && console.matches("exiting with status 7").count() == 2
    })
    .await;
    assert_eq!(d["exit_code"], 7, "{d}");
    assert_eq!(d["image_sha256"], old_sha.as_str());
    assert_eq!(
        event_states(&admin, id).await,
        ["pending", "running", "exited", "pending", "running", "exited", "pending", "running", "exited"]
    );
}

#[test]
fn a_net_unikernel_deployed_through_the_api_answers_ping_and_reports_its_traffic() {
    // The API, the agent, its tender and `ping` all in one network namespace with a bridge.
    petrel_tests::in_netns("10.82.1", || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let s = TestServer::start().await;
            let admin = s.admin().await;
            let dir = tempfile::tempdir().unwrap();
            let tenant = Api { admin: &admin }.tenant("web", None).await;
            admin
                .put(
                    &format!("/api/v1/tenants/{tenant}/quota"),
                    json!({"unikernels": 1, "memory_mib": 64, "block_mib": 0, "cpus": [], "bridges": ["br0"]}),
                )
                .await
                .expect(200);
            let token = admin.post("/api/v1/agents/enrollments", json!({"name": "netns-host"})).await.expect(201);
            let _agent = AgentProcess::enroll_and_start(&s, token.body["token"].as_str().unwrap(), dir.path(), None).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while admin.get("/api/v1/agents").await.expect(200).body["items"][0]["inventory"]["bridges"] != json!(["br0"]) {
                assert!(std::time::Instant::now() < deadline, "the agent never reported its bridge");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let guests = guests(dir.path());
            let sha = upload_guest(&admin, tenant, &guests, "net").await;
            let body = json!({"name": "web", "image_sha256": sha, "memory_mib": 8, "args": ["ip=10.82.1.2"],
                              "nets": [{"device": "service0", "bridge": "br0", "mac": "02:00:00:82:01:02"}],
                              "restart": {"kind": "never"}});
            let id = admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201).id();
            until(&admin, id, "serving", |d, console| {
                d["state"] == "running" && console.contains("Serving 10.82.1.2 on 02:00:00:82:01:02")
            })
            .await;
            let ping = tokio::process::Command::new("ping")
                .args(["-n", "-c", "3", "-i", "0.3", "-W", "5", "-w", "30", "10.82.1.2"])
                .output()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&ping.stdout);
            assert!(ping.status.success() && text.contains(" 3 received"), "{text}");
            // Its traffic in the stats the agent sends every second.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let stats = admin.get(&format!("/api/v1/deployments/{id}/stats")).await.expect(200).body;
                let net = &stats["latest"]["nets"][0];
                if net["rx_packets"].as_u64().unwrap_or(0) >= 3 && net["tx_packets"].as_u64().unwrap_or(0) >= 3 {
                    assert_eq!(net["device"], "service0");
                    assert!(stats["latest"]["rss_kib"].as_u64().unwrap() > 1024, "{stats}");
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "no stats with the pings: {stats}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            admin.delete(&format!("/api/v1/deployments/{id}")).await.expect(204);
        })
    });
}

/// Same pattern as hypervisor-agent/guests/blk.c writes.
fn blk_pattern(block: u64, word: u64) -> u64 {
    (block << 32) | (word ^ 0x5a5a)
}

#[tokio::test]
async fn a_block_device_is_uploaded_used_by_the_guest_kept_across_an_agent_kill_and_downloaded() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, mut agent, guests) = setup(&s, &admin, dir.path()).await;
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 8, "memory_mib": 256, "block_mib": 16, "cpus": [0, 1], "bridges": []}),
        )
        .await
        .expect(200);
    let device = admin
        .post(&format!("/api/v1/tenants/{tenant}/block-devices"), json!({"name": "disk", "size_mib": 1}))
        .await
        .expect(201);
    let device_id = device.body["id"].as_str().unwrap().to_string();
    let file = dir.path().join("agent/blocks").join(&device_id);

    // The upload: text at the start of block 0; the agent writes it in, zero-filled.
    let content = b"hello from petrel\n";
    let uploaded = admin
        .request(reqwest::Method::PUT, &format!("/api/v1/block-devices/{device_id}/content"))
        .header("x-petrel-sha256", hex::encode(Sha256::digest(content)))
        .body(content.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status().as_u16(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = admin.get(&format!("/api/v1/block-devices/{device_id}")).await.expect(200).body;
        if d["upload_pending"] == false {
            assert_eq!(d["message"], Value::Null, "{d}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the agent never wrote the upload: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let on_disk = std::fs::read(&file).unwrap();
    assert_eq!(on_disk.len(), 1 << 20);
    assert_eq!(&on_disk[..content.len()], content);
    assert!(on_disk[content.len()..].iter().all(|b| *b == 0));

    // The guest reads the upload and writes its pattern.
    let sha = upload_guest(&admin, tenant, &guests, "blk").await;
    let body = json!({"name": "storage", "image_sha256": sha, "memory_mib": 4,
                      "blocks": [{"device": "storage", "block_device": "disk"}]});
    let id = admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201).id();
    let d =
        until(&admin, id, "exited", |d, console| d["state"] == "exited" && console.contains("SUCCESS")).await;
    assert_eq!(d["exit_code"], 0, "{d}");
    let console = admin.get(&format!("/api/v1/deployments/{id}/console")).await.expect(200).text;
    assert!(console.contains("Block 0 holds: hello from petrel"), "{console}");
    assert!(console.contains("Block size is 512, capacity 1048576"), "{console}");

    // An agent killed outright comes back with the device as the guest left it.
    agent.kill();
    agent.restart();
    let response = loop {
        let response = admin
            .request(reqwest::Method::GET, &format!("/api/v1/block-devices/{device_id}/content"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break response;
        }
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(std::time::Instant::now() < deadline + Duration::from_secs(60), "no copy: {status} {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let named = response.headers()["x-petrel-sha256"].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), named);
    assert_eq!(bytes.len(), 1 << 20);
    let word = |block: usize, word: usize| {
        u64::from_le_bytes(bytes[block * 512 + word * 8..block * 512 + word * 8 + 8].try_into().unwrap())
    };
    // Every 256th block and the last hold the pattern; block 1 stayed as uploaded (zero).
    for block in [0, 256, 1792, 2047] {
        assert_eq!(word(block, 3), blk_pattern(block as u64, 3), "block {block}");
    }
    assert!(bytes[512..1024].iter().all(|b| *b == 0));

    // Deleted once no deployment uses it: the agent removes the file.
    admin.delete(&format!("/api/v1/deployments/{id}")).await.expect(204);
    admin.delete(&format!("/api/v1/block-devices/{device_id}")).await.expect(204);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while file.exists() {
        assert!(std::time::Instant::now() < deadline, "the agent kept the deleted device's file");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn manifests_are_checked_at_create_and_update_and_updates_need_the_same_devices() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, _agent, guests) = setup(&s, &admin, dir.path()).await;
    let image = |name: &str| std::fs::read(guests.join(format!("{name}.hvt"))).unwrap();
    let deployments = format!("/api/v1/tenants/{tenant}/deployments");

    // Refused at creation, as albatross does, naming both sets.
    let net_sha = upload_guest(&admin, tenant, &guests, "net").await;
    let r = admin
        .post(&deployments, json!({"name": "bare", "image_sha256": net_sha, "memory_mib": 4}))
        .await
        .expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "nets", "{}", r.text);
    assert_eq!(
        r.body["errors"][0]["message"],
        "the image's manifest declares net devices [service0] but the deployment attaches []"
    );

    // One job: `exit` (no devices), then `blk` (a block device), then `hello` (no devices).
    let job = Api { admin: &admin }.job(tenant, "svc", false).await;
    let (first, with_block, plain) = (image("exit"), image("blk"), image("hello"));
    Api::build(&admin, job, &[("bin/svc.hvt", &first)]).await;
    let id =
        deploy(&admin, tenant, "svc", &hex::encode(Sha256::digest(&first)), &["0"], json!({"kind": "never"}))
            .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    Api::build(&admin, job, &[("bin/svc.hvt", &with_block)]).await;
    let shown = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body;
    assert_eq!(shown["update_available"], Value::Null, "a build with other devices is no update: {shown}");
    let r = admin
        .post(
            &format!("/api/v1/deployments/{id}/update"),
            json!({"image_sha256": hex::encode(Sha256::digest(&with_block))}),
        )
        .await
        .expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "image_sha256");
    assert!(
        r.body["errors"][0]["message"].as_str().unwrap().contains("block devices [storage]"),
        "{}",
        r.text
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = Api::build(&admin, job, &[("bin/svc.hvt", &plain)]).await;
    let shown = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body;
    assert_eq!(shown["update_available"]["build_id"], newer["id"], "{shown}");
}

#[tokio::test]
async fn an_images_manifest_is_read_for_the_deployment_form_with_the_deploy_visibility() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    // Only read, never run: no KVM needed.
    let guests = tokio::task::spawn_blocking(move || build_guests(&out)).await.unwrap();
    let a = api.tenant("a", None).await;
    let b = api.tenant("b", None).await;
    let (_, owner_b) = api.user("owner-b").await;
    api.member(b, "owner-b", "owner").await;
    let (_, viewer_a) = api.user("viewer-a").await;
    api.member(a, "viewer-a", "viewer").await;
    let manifest = |tenant: Uuid, sha: &str| format!("/api/v1/tenants/{tenant}/images/{sha}/manifest");

    // Each device list, as the manifest declares it.
    let net = upload_guest(&admin, a, &guests, "net").await;
    let r = admin.get(&manifest(a, &net)).await.expect(200);
    assert_eq!(r.body, json!({"nets": ["service0"], "blocks": []}));
    let blk = upload_guest(&admin, a, &guests, "blk").await;
    assert_eq!(
        admin.get(&manifest(a, &blk)).await.expect(200).body,
        json!({"nets": [], "blocks": ["storage"]})
    );
    let hello = upload_guest(&admin, a, &guests, "hello").await;
    assert_eq!(admin.get(&manifest(a, &hello)).await.expect(200).body, json!({"nets": [], "blocks": []}));
    // The upper-case hash works as the create form sends it.
    admin.get(&manifest(a, &net.to_uppercase())).await.expect(200);

    // Not a unikernel: no manifest, and the field says why; a malformed hash likewise.
    let job = api.job(a, "notes", false).await;
    Api::build(&admin, job, &[("bin/notes.hvt", b"not a unikernel")]).await;
    let readme = hex::encode(Sha256::digest(b"not a unikernel"));
    let r = admin.get(&manifest(a, &readme)).await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "sha256");
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("not a solo5"), "{}", r.text);
    let r = admin.get(&manifest(a, "abc")).await.expect_problem(400, "validation-failed");
    assert_eq!(r.body["errors"][0]["field"], "sha256");
    // A hash no build has.
    admin.get(&manifest(a, &"0".repeat(64))).await.expect_problem(404, "not-found");

    // Tenant A's private image is unknown to tenant B, exactly as a hash nobody has.
    let hidden = owner_b.get(&manifest(b, &net)).await.expect_problem(404, "not-found");
    let nowhere = owner_b.get(&manifest(b, &"0".repeat(64))).await.expect_problem(404, "not-found");
    assert_eq!(hidden.body["detail"], nowhere.body["detail"]);
    owner_b.get(&manifest(a, &net)).await.expect_problem(404, "not-found");
    // Deploying takes an operator, and so does this.
    viewer_a.get(&manifest(a, &net)).await.expect_problem(403, "insufficient-role");
    // A public build's image is readable in every tenant, as deploying it is.
    let public = api.job(a, "public-blk", true).await;
    let bytes = std::fs::read(guests.join("blk.hvt")).unwrap();
    Api::build(&admin, public, &[("bin/blk.hvt", &bytes)]).await;
    assert_eq!(owner_b.get(&manifest(b, &blk)).await.expect(200).body["blocks"], json!(["storage"]));
}

#[tokio::test]
async fn a_network_partition_leaves_the_unikernel_running_shows_it_unknown_and_heals() {
    // The agent (and its tenders) in a namespace of its own, whose link to the API is cut.
    let netns = Netns::new();
    let s = super::workers::server_for(&netns, |_| {}).await;
    let admin = s.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let (tenant, _agent, guests) = setup_in(Some(&netns), &s, &admin, dir.path()).await;
    let sha = upload_guest(&admin, tenant, &guests, "bench").await;
    let id = deploy(&admin, tenant, "idle", &sha, &["idle"], json!({"kind": "on_failure"})).await;
    let running = until(&admin, id, "running and idle", |d, console| {
        d["state"] == "running" && console.contains("IDLE")
    })
    .await;
    let tender = |d: &Path| petrel_tests::processes_running(&[&d.display().to_string(), "idle"]);
    let images = dir.path().join("agent/images").join(&sha);
    let before = tender(&images);
    assert_eq!(before.len(), 1, "one tender: {before:?}");

    netns.cut();
    // Without heartbeats the API stops vouching for it: unknown, not running.
    let d = until(&admin, id, "unknown", |d, _| d["state"] == "unknown").await;
    assert_eq!(d["restarts"], 0);
    assert_eq!(tender(&images), before, "the unikernel keeps running through the partition");
    netns.restore();
    let d = until(&admin, id, "running again", |d, _| d["state"] == "running").await;
    assert_eq!(d["restarts"], 0, "a partition is not the unikernel's failure");
    assert_eq!(d["agent_id"], running["agent_id"], "still on its agent");
    assert_eq!(tender(&images), before, "the same tender, never restarted");
    let states = event_states(&admin, id).await;
    assert_eq!(states.iter().filter(|s| *s == "running").count(), 1, "{states:?}");
    assert_invariants(&s.db.pool, &admin, s.data_dir.path()).await;
}
