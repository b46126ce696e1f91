//! Build-queue benchmarks: figures printed with their goals (never timed assertions).
//!
//! `cargo bench -p petrel-tests --bench queue` (the API in-process, release build, on a database
//! of the test cluster; workers speak the protocol over loopback HTTPS).
//!
//! a. Enqueue-to-claim latency: a worker waits in its long-poll; "run now" is asked; the time
//!    from sending that request to the worker receiving its claim (so it includes the run-now
//!    request itself). p50 and p99 over `PETREL_BENCH_ROUNDS` (default 300).
//! b. `PETREL_BENCH_BUILDS` (default 1000) trivial builds through 4 workers, each claiming,
//!    uploading a one-file result and finalizing: builds/s, and a check that no build was
//!    claimed twice (every build claimed once, attempt 1, succeeded).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use petrel_tests::client::PLATFORM;
use petrel_tests::{Api, Client, TestServer};
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let rounds: usize = env_or("PETREL_BENCH_ROUNDS", 300);
    let builds: usize = env_or("PETREL_BENCH_BUILDS", 1000);
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let tenant = api.tenant("bench", None).await;
    let job = api.recipe_job(tenant, "trivial", json!({"script": "true"}), json!({})).await;

    // a. Latency.
    let (_, worker, _) = api.worker("latency", None).await;
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let waiting = tokio::spawn({
            let worker = worker.clone();
            async move {
                let r =
                    worker.post("/api/v1/worker/claim", json!({"platform": PLATFORM, "wait_secs": 30})).await;
                (Instant::now(), r)
            }
        });
        // Let the claim park in its wait before the build is asked for.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let asked = Instant::now();
        admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
        let (claimed_at, claim) = waiting.await.unwrap();
        let claim = claim.expect(200);
        latencies.push(claimed_at - asked);
        // Finish it, so the next "run now" queues a new build.
        let id: Uuid = claim.body["build_id"].as_str().unwrap().parse().unwrap();
        admin.post(&format!("/api/v1/builds/{id}/cancel"), json!({})).await.expect(204);
    }
    latencies.sort();
    let p50 = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);

    // b. Throughput through 4 workers, with jobs enough that every build is its own queue entry.
    let jobs_needed = builds;
    let mut job_ids = Vec::with_capacity(jobs_needed);
    for i in 0..jobs_needed {
        job_ids.push(api.recipe_job(tenant, &format!("t-{i}"), json!({"script": "true"}), json!({})).await);
    }
    let mut queued = BTreeSet::new();
    for j in &job_ids {
        let r = admin.post(&format!("/api/v1/jobs/{j}/runs"), json!({})).await.expect(202);
        queued.insert(r.body[0]["build_id"].as_str().unwrap().to_string());
    }
    let claimed: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (_, worker, _) = api.worker(&format!("w{w}"), None).await;
        let claimed = claimed.clone();
        tasks.push(tokio::spawn(async move { work(worker, claimed).await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let claimed = claimed.lock().await.clone();
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    let mut all_succeeded_once = true;
    for id in distinct.iter().take(50) {
        let b = admin.get(&format!("/api/v1/builds/{id}")).await.expect(200).body;
        all_succeeded_once &= b["status"] == "succeeded" && b["attempt"] == 1;
    }

    petrel_wire::perf::record(
        "queue",
        &format!("enqueue-to-claim latency ({rounds} rounds)"),
        &format!("p50 {:.1} ms, p99 {:.1} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3),
        "p50 <= 20 ms",
    );
    petrel_wire::perf::record(
        "queue",
        &format!("{builds} trivial builds through 4 workers"),
        &format!("{:.0} builds/s", builds as f64 / elapsed.as_secs_f64()),
        "no double claim",
    );
    println!();
    println!("| what | figure | goal |");
    println!("|---|---|---|");
    println!(
        "| enqueue-to-claim latency ({rounds} rounds, loopback HTTPS) | p50 {:.1} ms, p99 {:.1} ms | p50 <= 20 ms: {} |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        if p50 <= Duration::from_millis(20) { "met" } else { "MISSED" }
    );
    println!(
        "| {builds} trivial builds through 4 workers | {:.1} s, {:.0} builds/s | |",
        elapsed.as_secs_f64(),
        builds as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| claims | {} claimed, {} distinct, {} queued; sample all succeeded on attempt 1: {} | no double claim: {} |",
        claimed.len(),
        distinct.len(),
        queued.len(),
        all_succeeded_once,
        if claimed.len() == distinct.len() && distinct == queued && all_succeeded_once {
            "met"
        } else {
            "MISSED"
        }
    );
}

/// A protocol-level worker: claim, upload one small artifact, finalize, until nothing is left.
async fn work(worker: Client, claimed: Arc<Mutex<Vec<String>>>) {
    loop {
        let r = worker.post("/api/v1/worker/claim", json!({"platform": PLATFORM, "wait_secs": 0})).await;
        if r.status == 204 {
            return;
        }
        let r = r.expect(200);
        let build_id = r.body["build_id"].as_str().unwrap().to_string();
        let job_id = r.body["job_id"].as_str().unwrap().to_string();
        claimed.lock().await.push(build_id.clone());
        let now = chrono::Utc::now();
        let upload = worker
            .post(
                &format!("/api/v1/jobs/{job_id}/uploads"),
                json!({"platform": PLATFORM, "build_id": build_id, "started_at": now, "finished_at": now,
                       "result": {"kind": "exited", "code": 0}}),
            )
            .await
            .expect(201)
            .id();
        worker.put_artifact(upload, "bin/out", build_id.as_bytes()).await.expect(201);
        worker.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(201);
    }
}
