//! Deployment benchmarks: figures printed with their goals (never timed assertions).
//!
//! `cargo bench -p petrel-tests --bench deploy` (needs /dev/kvm; builds the release
//! `petrel-agent` and `petrel-hvt` first). The API runs in-process on a database of the test
//! cluster; a real `petrel-agent` runs the real tender.
//!
//! a. Create → first console line: from sending `POST /tenants/{id}/deployments` (the `hello`
//!    guest) to its first console line arriving on the deployment's event stream, over
//!    `PETREL_BENCH_ROUNDS` (default 30) rounds. Beside it, the same guest started by hand
//!    (`petrel-hvt hello.hvt`, spawn to first line of output): the guest's own boot, which the
//!    goal allows on top of Petrel's 50 ms.
//! b. Memory per running unikernel: `PETREL_BENCH_UNIKERNELS` (default 8) idle unikernels; the
//!    agent's RSS before and with them, and each tender's RSS (guest memory included).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use petrel_tests::{Api, Client, TestServer};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The release binaries of the hypervisor crate, built now.
fn release_binaries(root: &Path) -> PathBuf {
    eprintln!("==> cargo build --release -p petrel-hypervisor --bins");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "petrel-hypervisor", "--bins"])
        .current_dir(root)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the agent and tender failed");
    // target/release/deps/deploy-<hash> -> target/release
    std::env::current_exe().unwrap().parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawn to first line of output of the tender running `image` directly.
fn direct_start(tender: &Path, image: &Path) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(tender)
        .arg("--mem=4")
        .arg(image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run petrel-hvt");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let took = start.elapsed();
    child.wait().unwrap();
    took
}

/// From sending the create to the first `line` event of the deployment's console stream.
/// Also the time the create request itself took.
async fn create_to_first_line(
    admin: &Client,
    tenant: Uuid,
    sha: &str,
    name: &str,
) -> (Duration, Duration, Uuid) {
    let start = Instant::now();
    let body = json!({"name": name, "image_sha256": sha, "memory_mib": 4, "restart": {"kind": "never"}});
    let id = admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201).id();
    let created = start.elapsed();
    let response = admin
        .request(reqwest::Method::GET, &format!("/api/v1/deployments/{id}/console/stream"))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if seen.contains("event: line") {
            return (start.elapsed(), created, id);
        }
    }
    panic!("the console stream ended without a line: {seen}");
}

#[tokio::main]
async fn main() {
    assert!(std::fs::metadata("/dev/kvm").is_ok(), "/dev/kvm is missing: this benchmark needs KVM");
    let rounds: usize = env_or("PETREL_BENCH_ROUNDS", 30);
    let unikernels: usize = env_or("PETREL_BENCH_UNIKERNELS", 8);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let bin = release_binaries(&root);
    let dir = tempfile::tempdir().unwrap();
    let guests = dir.path().join("guests");
    let built = Command::new("make")
        .args(["-s", "-C"])
        .arg(root.join("hypervisor-agent/guests"))
        .arg(format!("OUT={}", guests.display()))
        .status()
        .unwrap();
    assert!(built.success(), "building the guests failed");

    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("bench", None).await;
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 64, "memory_mib": 4096, "block_mib": 0, "cpus": [], "bridges": []}),
        )
        .await
        .expect(200);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &s.ca_pem).unwrap();
    let state = dir.path().join("agent");
    let token = admin.post("/api/v1/agents/enrollments", json!({"name": "bench-host"})).await.expect(201);
    let enrolled = tokio::process::Command::new(bin.join("petrel-agent"))
        .args(["enroll", "--api", &s.server.url, "--token", token.body["token"].as_str().unwrap()])
        .arg("--ca")
        .arg(&ca)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .await
        .unwrap();
    assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));
    let agent = Agent(
        Command::new(bin.join("petrel-agent"))
            .args(["run", "--api", &s.server.url])
            .arg("--ca")
            .arg(&ca)
            .arg("--state-dir")
            .arg(&state)
            .arg("--tender")
            .arg(bin.join("petrel-hvt"))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.get("/api/v1/agents").await.expect(200).body["items"][0]["reachable"] != true {
        assert!(Instant::now() < deadline, "the agent never reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let upload = |name: &'static str| {
        let admin = &admin;
        let guests = &guests;
        async move {
            let bytes = std::fs::read(guests.join(format!("{name}.hvt"))).unwrap();
            let job = Api { admin }.job(tenant, name, false).await;
            Api::build(admin, job, &[(&format!("bin/{name}.hvt"), &bytes)]).await;
            hex::encode(Sha256::digest(&bytes))
        }
    };
    let hello = upload("hello").await;
    let idle = upload("bench").await;

    // a. Create → first console line, and the guest's own start beside it.
    let mut direct: Vec<Duration> =
        (0..rounds).map(|_| direct_start(&bin.join("petrel-hvt"), &guests.join("hello.hvt"))).collect();
    direct.sort();
    // The first round also fetches the image into the agent's cache; it is not counted.
    let (_, _, warm) = create_to_first_line(&admin, tenant, &hello, "warm-up").await;
    admin.delete(&format!("/api/v1/deployments/{warm}")).await.expect(204);
    let mut latencies = Vec::with_capacity(rounds);
    let mut creates = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (took, create, id) =
            create_to_first_line(&admin, tenant, &hello, &format!("hello-{round}")).await;
        latencies.push(took);
        creates.push(create);
        admin.delete(&format!("/api/v1/deployments/{id}")).await.expect(204);
    }
    latencies.sort();
    creates.sort();

    // b. Memory with idle unikernels.
    let agent_pid = agent.0.id();
    let agent_before = status_kib(agent_pid, "VmRSS");
    let mut ids = Vec::new();
    for i in 0..unikernels {
        let body = json!({"name": format!("idle-{i}"), "image_sha256": idle, "memory_mib": 4, "args": ["idle"],
                          "restart": {"kind": "never"}});
        ids.push(admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201).id());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        loop {
            let d = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body;
            let console = admin.get(&format!("/api/v1/deployments/{id}/console")).await.expect(200).text;
            if d["state"] == "running" && console.contains("IDLE") {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never idled: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Let console shipping and heartbeats settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let agent_with = status_kib(agent_pid, "VmRSS");
    let marker = format!("images/{idle}");
    let tender_rss: Vec<u64> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline).contains(&marker).then(|| status_kib(pid, "VmRSS"))
        })
        .collect();
    assert_eq!(tender_rss.len(), unikernels, "one tender per unikernel");
    for id in &ids {
        admin.delete(&format!("/api/v1/deployments/{id}")).await.expect(204);
    }

    let p50 = percentile(&latencies, 0.5);
    let direct50 = percentile(&direct, 0.5);
    let overhead = p50.saturating_sub(direct50);
    let per_unikernel = (agent_with.saturating_sub(agent_before)) as f64 / unikernels as f64;
    let tender_avg = tender_rss.iter().sum::<u64>() as f64 / tender_rss.len() as f64;
    let rows = [
        (
            format!("create → first console line, p50 ({rounds} rounds)"),
            ms(p50),
            "≤ 50 ms + the guest's own start".into(),
        ),
        ("create → first console line, p99".into(), ms(percentile(&latencies, 0.99)), String::new()),
        (
            "of which the create request (admission, placement), p50".into(),
            ms(percentile(&creates, 0.5)),
            String::new(),
        ),
        ("the guest's own start (petrel-hvt by hand), p50".into(), ms(direct50), "(reference)".into()),
        (
            "Petrel's share (p50 minus the guest's start)".into(),
            ms(overhead),
            format!("≤ 50 ms: {}", if overhead <= Duration::from_millis(50) { "met" } else { "MISSED" }),
        ),
        ("agent RSS, idle".into(), format!("{:.1} MiB", agent_before as f64 / 1024.0), String::new()),
        (
            format!("agent RSS with {unikernels} running unikernels"),
            format!("{:.1} MiB", agent_with as f64 / 1024.0),
            String::new(),
        ),
        ("agent memory per running unikernel".into(), format!("{per_unikernel:.0} KiB"), "(reported)".into()),
        (
            "tender RSS per unikernel (4 MiB guest)".into(),
            format!("{:.0} KiB", tender_avg),
            "(reported)".into(),
        ),
    ];
    println!("\n{:<52} {:>12}  goal", "what", "figure");
    println!("{}", "-".repeat(100));
    for (what, figure, goal) in rows {
        println!("{what:<52} {figure:>12}  {goal}");
        petrel_wire::perf::record("deploy", &what, &figure, &goal);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n(2 shared cores, emulated KVM; load average {})",
        load.split_whitespace().next().unwrap_or("?")
    );
    drop(agent);
}
