//! API benchmarks: figures with their goals, printed as a table (never timed assertions).
//!
//! `cargo bench -p petrel-tests --bench api` (needs `wrk`, from `scripts/setup.sh`; builds the
//! release `petrel-api` first). The server is the real `petrel-api` release binary, run as a
//! child process on a database of the test cluster, so its RSS and CPU are its own and not the
//! load generator's or the seeding code's.
//!
//! a. builder-web's `GET /hash?sha256=` and `GET /job/<job>/build/latest` (both 307), a job's
//!    build list (`/api/v1/builds?job_id=&limit=50`) and finished builds' console streams, with
//!    1,000,000 public, successful builds over 1,000 jobs, under a bounded `wrk` load on loopback
//!    HTTPS: requests/s, p50, p99, errors, and the server's RSS before and after.
//! b. A 1 GiB artifact through the staged upload protocol and back, against `cp` of the same
//!    file on the same disk, with the server's peak RSS meanwhile.
//!
//! Environment: `PETREL_BENCH_BUILDS` (default 1000000), `PETREL_BENCH_SECONDS` (per load run,
//! default 20), `PETREL_BENCH_CONNECTIONS` (default 16), `PETREL_BENCH_FILE_MIB` (default 1024),
//! `PETREL_BENCH_API` (a `petrel-api` binary to use instead of building one), `PETREL_BENCH_ONLY`
//! (`lookups` or `transfer`), `PETREL_BENCH_EXTRA_SQL` (run after seeding, e.g. to try an index).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use petrel_tests::{Api, Client, TestDb, cluster};
use serde_json::json;
use sha2::{Digest, Sha256};

const ADMIN_PASSWORD: &str = "bench-admin-password-1";
const MIB: f64 = 1024.0 * 1024.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One line of the result table.
struct Row {
    what: String,
    figure: String,
    goal: String,
    verdict: &'static str,
}

fn row(
    what: impl Into<String>,
    figure: impl Into<String>,
    goal: impl Into<String>,
    met: Option<bool>,
) -> Row {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    };
    Row { what: what.into(), figure: figure.into(), goal: goal.into(), verdict }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rows = rt.block_on(run());
    let w0 = rows.iter().map(|r| r.what.len()).max().unwrap_or(0).max(4);
    let w1 = rows.iter().map(|r| r.figure.len()).max().unwrap_or(0).max(6);
    let w2 = rows.iter().map(|r| r.goal.len()).max().unwrap_or(0).max(4);
    println!();
    println!("{:w0$}  {:w1$}  {:w2$}  verdict", "what", "figure", "goal");
    println!("{}", "-".repeat(w0 + w1 + w2 + 13));
    for r in &rows {
        println!("{:w0$}  {:w1$}  {:w2$}  {}", r.what, r.figure, r.goal, r.verdict);
        petrel_wire::perf::record("api", &r.what, &r.figure, &format!("{} {}", r.goal, r.verdict));
    }
    let (load1, _) = loadavg();
    println!("\n(2 shared cores; 1-minute load average at the end: {load1})");
}

async fn run() -> Vec<Row> {
    let binary = build_petrel_api();
    let wrk = which("wrk").unwrap_or_else(|| panic!("wrk is not installed: run scripts/setup.sh"));
    let mut rows = Vec::new();
    let only = std::env::var("PETREL_BENCH_ONLY").unwrap_or_default();
    if only != "transfer" {
        lookups(&binary, &wrk, &mut rows).await;
    }
    if only != "lookups" {
        transfer(&binary, &mut rows).await;
    }
    rows
}

/// The release `petrel-api`, built (or found up to date) by cargo next to this benchmark; or
/// the binary `PETREL_BENCH_API` names (to compare builds).
fn build_petrel_api() -> PathBuf {
    if let Some(path) = std::env::var_os("PETREL_BENCH_API") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    eprintln!("==> cargo build --release -p petrel-api");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "petrel-api", "--bin", "petrel-api"])
        .current_dir(&root)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building petrel-api failed");
    // target/release/deps/api-<hash> -> target/release/petrel-api
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("petrel-api");
    assert!(path.is_file(), "{} is missing after the build", path.display());
    path
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

fn loadavg() -> (String, String) {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace();
    (it.next().unwrap_or("?").into(), it.next().unwrap_or("?").into())
}

/// `petrel-api` as a child process on a database of the test cluster.
struct ApiProcess {
    child: Child,
    url: String,
    ca_pem: Vec<u8>,
    data_dir: tempfile::TempDir,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; SIGTERM lets it shut down cleanly.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ApiProcess {
    async fn start(binary: &Path, db: &TestDb) -> ApiProcess {
        let pg = cluster().await;
        let data_dir = tempfile::Builder::new().prefix("petrel-bench-").tempdir_in(bench_dir()).unwrap();
        let log = std::fs::File::create(data_dir.path().join("api.log")).unwrap();
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env("PETREL_DATABASE_URL", pg.url(&db.name))
            .env("PETREL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start petrel-api");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("Petrel is serving at ") {
                        break rest.trim_end_matches('/').to_string();
                    }
                }
                _ => panic!(
                    "petrel-api ended before serving:\n{}",
                    std::fs::read_to_string(data_dir.path().join("api.log")).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the child never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let ca_pem = std::fs::read(data_dir.path().join("tls/ca.pem")).expect("CA");
        ApiProcess { child, url, ca_pem, data_dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
    fn status_kib(&self, field: &str) -> u64 {
        status_kib(self.pid(), field)
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Removes a benchmark's database (a million builds would otherwise stay in the test cluster).
async fn drop_database(db: TestDb) {
    use sqlx::{Connection, Executor};
    db.pool.close().await;
    let mut admin =
        sqlx::PgConnection::connect_with(&cluster().await.connect_options("postgres")).await.unwrap();
    admin.execute(format!("DROP DATABASE {} WITH (FORCE)", db.name).as_str()).await.unwrap();
}

/// Benchmark files go under the target directory's disk, not a tmpfs.
fn bench_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().join("bench-tmp");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fills the database with `n` public, successful builds over 1,000 jobs of one tenant, each with
/// one artifact of its own content (`sha256(int8send(i))`).
async fn seed(pool: &sqlx::PgPool, n: i64) -> Duration {
    let started = Instant::now();
    let tenant = uuid::Uuid::from_u128(0xbe4c);
    let statements = [
        "SET synchronous_commit = off".to_string(),
        format!("INSERT INTO tenants (id, name) VALUES ('{tenant}', 'bench')"),
        format!(
            "INSERT INTO jobs (id, tenant_id, name, platforms, visibility)
             SELECT md5('job' || j)::uuid, '{tenant}', 'job-' || lpad(j::text, 4, '0'),
                    ARRAY['debian-12-x86_64'], 'public'
               FROM generate_series(0, 999) j"
        ),
        format!(
            "INSERT INTO blobs (sha256, size, stored)
             SELECT sha256(int8send(i)), 1000 + i % 5000, true FROM generate_series(0, {n} - 1) i"
        ),
        format!(
            "INSERT INTO builds (id, tenant_id, job_id, platform, status, result_kind, result_code,
                                 queued_at, started_at, finished_at, main_binary)
             SELECT md5('build' || i)::uuid, '{tenant}', md5('job' || (i % 1000))::uuid, 'debian-12-x86_64',
                    'succeeded', 'exited', 0, t - interval '1 minute', t - interval '1 minute', t, 'bin/app.hvt'
               FROM generate_series(0, {n} - 1) i,
                    LATERAL (SELECT timestamptz '2024-01-01 00:00:00Z' + i * interval '30 seconds' AS t) x"
        ),
        format!(
            "INSERT INTO build_artifacts (build_id, path, sha256, size)
             SELECT md5('build' || i)::uuid, 'bin/app.hvt', sha256(int8send(i)), 1000 + i % 5000
               FROM generate_series(0, {n} - 1) i"
        ),
        "VACUUM ANALYZE".to_string(),
    ];
    let mut conn = pool.acquire().await.unwrap();
    for s in statements {
        sqlx::raw_sql(&s).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    started.elapsed()
}

const WRK_LUA: &str = r#"
-- Requests a random line of the paths file; counts answers other than the expected status.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  expected = tonumber(args[2])
  unexpected = 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
function response(status, headers, body)
  if status ~= expected then unexpected = unexpected + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("unexpected") end
  local e = summary.errors
  io.write(string.format("PETREL requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d unexpected=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max, bad,
    e.connect + e.read + e.write + e.timeout))
end
"#;

struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    requests: u64,
}

fn run_wrk(
    wrk: &Path,
    url: &str,
    (paths, expected): (&Path, u16),
    script: &Path,
    seconds: u64,
    connections: u32,
) -> WrkResult {
    let out = Command::new(wrk)
        .args([
            "-t",
            "1",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .arg("--")
        .arg(paths)
        .arg(expected.to_string())
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.starts_with("PETREL ")).unwrap_or_else(|| panic!("wrk: {text}"));
    let get = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    let requests = get("requests");
    WrkResult {
        rps: requests as f64 / (get("duration_us") as f64 / 1e6),
        p50_ms: get("p50_us") as f64 / 1000.0,
        p99_ms: get("p99_us") as f64 / 1000.0,
        max_ms: get("max_us") as f64 / 1000.0,
        errors: get("unexpected") + get("socket_errors"),
        requests,
    }
}

/// Prints the plan of the query a handler runs, for the report.
async fn explain(pool: &sqlx::PgPool, label: &str, sql: &str) {
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"))
        .fetch_all(pool)
        .await
        .unwrap();
    eprintln!("--- {label}\n{}", lines.join("\n"));
}

async fn lookups(binary: &Path, wrk: &Path, rows: &mut Vec<Row>) {
    let n: i64 = env_or("PETREL_BENCH_BUILDS", 1_000_000);
    let seconds: u64 = env_or("PETREL_BENCH_SECONDS", 20);
    let connections: u32 = env_or("PETREL_BENCH_CONNECTIONS", 16);
    let db = TestDb::new().await;
    eprintln!("==> seeding {n} builds");
    let took = seed(&db.pool, n).await;
    rows.push(row(format!("seed {n} builds (SQL)"), format!("{:.1} s", took.as_secs_f64()), "", None));
    if let Ok(sql) = std::env::var("PETREL_BENCH_EXTRA_SQL") {
        eprintln!("==> {sql}");
        sqlx::raw_sql(&sql).execute(&db.pool).await.expect("PETREL_BENCH_EXTRA_SQL");
    }

    let api = ApiProcess::start(binary, &db).await;
    let work = tempfile::tempdir_in(bench_dir()).unwrap();
    let script = work.path().join("paths.lua");
    std::fs::write(&script, WRK_LUA).unwrap();
    // 100,000 random existing hashes, and every job.
    let hashes: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT encode(sha256(int8send((random() * ({n} - 1))::bigint)), 'hex') FROM generate_series(1, 100000)"
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let hash_paths = work.path().join("hash.txt");
    std::fs::write(&hash_paths, hashes.iter().map(|h| format!("/hash?sha256={h}\n")).collect::<String>())
        .unwrap();
    let job_paths = work.path().join("latest.txt");
    std::fs::write(
        &job_paths,
        (0..1000).map(|j| format!("/job/job-{j:04}/build/latest\n")).collect::<String>(),
    )
    .unwrap();

    // Correctness first: one of each answers 307 to the right place.
    let client = Client::new(&api.url, &api.ca_pem);
    let r = client.get(&format!("/hash?sha256={}", hashes[0])).await;
    assert_eq!(r.status, 307, "{}", r.text);
    let r = client.get("/job/job-0007/build/latest").await;
    assert_eq!(r.status, 307, "{}", r.text);
    let expected: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM builds WHERE job_id = md5('job7')::uuid ORDER BY finished_at DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let location = r.headers["location"].to_str().unwrap();
    assert_eq!(location, format!("/job/bench:job-0007/build/{expected}"), "the newest build of job-0007");

    // The build list of a job (keyset pages over a million builds) and finished builds'
    // console streams (server-sent events that end at once).
    let job_ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM jobs").fetch_all(&db.pool).await.unwrap();
    let list_paths = work.path().join("list.txt");
    std::fs::write(
        &list_paths,
        job_ids.iter().map(|j| format!("/api/v1/builds?job_id={j}&limit=50\n")).collect::<String>(),
    )
    .unwrap();
    let build_ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM builds TABLESAMPLE SYSTEM (1) LIMIT 1000")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let stream_paths = work.path().join("stream.txt");
    std::fs::write(
        &stream_paths,
        build_ids
            .iter()
            .map(|b| format!("/api/v1/builds/{b}/console/stream?follow=false\n"))
            .collect::<String>(),
    )
    .unwrap();
    let r = client.get(&format!("/api/v1/builds?job_id={}&limit=50", job_ids[0])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let per_job = usize::try_from(n / 1000).unwrap_or(0).min(50);
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(per_job), "{}", r.text);

    let rss_before = api.status_kib("VmRSS");
    // RSS after each load, and after the first load once more: memory is flat when the
    // repeat leaves it where the first round did.
    let mut rss_after_each = Vec::new();
    let loads = [
        ("GET /hash?sha256= (307)", (hash_paths.as_path(), 307)),
        ("GET /job/<job>/build/latest (307)", (job_paths.as_path(), 307)),
        ("GET /api/v1/builds?job_id=&limit=50 (200)", (list_paths.as_path(), 200)),
        ("GET /api/v1/builds/<id>/console/stream (200)", (stream_paths.as_path(), 200)),
    ];
    for (label, paths) in loads {
        eprintln!("==> wrk {label}: {seconds} s, {connections} connections");
        // A short warm-up fills the pool and the statement caches.
        run_wrk(wrk, &api.url, paths, &script, 2, connections);
        let r = run_wrk(wrk, &api.url, paths, &script, seconds, connections);
        // The look-ups have goals; the list and the streams are reported.
        let lookup = label.ends_with("(307)");
        rows.push(row(
            format!("{label} req/s"),
            format!("{:.0} ({} requests)", r.rps, r.requests),
            if lookup { ">= 5000" } else { "" },
            lookup.then_some(r.rps >= 5000.0),
        ));
        rows.push(row(
            format!("{label} p50 / p99 / max"),
            format!("{:.2} / {:.2} / {:.1} ms", r.p50_ms, r.p99_ms, r.max_ms),
            if lookup { "p99 <= 10 ms" } else { "" },
            lookup.then_some(r.p99_ms <= 10.0),
        ));
        rows.push(row(format!("{label} errors"), r.errors.to_string(), "0", Some(r.errors == 0)));
        rss_after_each.push(api.status_kib("VmRSS"));
    }
    let first_round = api.status_kib("VmRSS");
    eprintln!("==> the four loads once more ({seconds} s each)");
    for (_, paths) in loads {
        run_wrk(wrk, &api.url, paths, &script, seconds, connections);
    }
    let second_round = api.status_kib("VmRSS");
    let hwm = api.status_kib("VmHWM");
    let mib = |kib: u64| format!("{:.0}", kib as f64 / 1024.0);
    rows.push(row(
        "server RSS before / after each load / peak",
        format!(
            "{} / {} / {} MiB",
            mib(rss_before),
            rss_after_each.iter().map(|k| mib(*k)).collect::<Vec<_>>().join(", "),
            mib(hwm)
        ),
        "",
        None,
    ));
    rows.push(row(
        "server RSS after the loads / after them again",
        format!("{} / {} MiB", mib(first_round), mib(second_round)),
        "flat (+< 8 MiB)",
        Some(second_round <= first_round + 8 * 1024),
    ));

    // The plans behind the figures.
    let h = &hashes[1];
    explain(
        &db.pool,
        "find_by_hash (handlers/builds.rs)",
        &format!(
            "SELECT a.build_id, a.path, bl.stored
               FROM build_artifacts a JOIN builds b ON b.id = a.build_id JOIN jobs j ON j.id = b.job_id
               JOIN blobs bl ON bl.sha256 = a.sha256
              WHERE (j.visibility = 'public' OR false OR j.tenant_id = ANY('{{}}'::uuid[])) AND a.sha256 = '\\x{h}'
              ORDER BY b.finished_at DESC NULLS LAST, b.id DESC LIMIT 1"
        ),
    )
    .await;
    explain(
        &db.pool,
        "newest_success (handlers/compat.rs)",
        "SELECT id FROM builds WHERE job_id = md5('job7')::uuid AND status = 'succeeded'
            AND (NULL::text IS NULL OR platform = NULL::text)
          ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1",
    )
    .await;
    explain(
        &db.pool,
        "resolve_job (handlers/compat.rs)",
        "SELECT j.id, p.path || ':' || j.name, j.name = 'job-0007' FROM jobs j JOIN tenant_paths p ON p.id = j.tenant_id
          WHERE (j.visibility = 'public') AND (j.name = 'job-0007' OR p.path || ':' || j.name = 'job-0007')",
    )
    .await;
    drop(api);
    drop_database(db).await;
}

/// Samples a process's RSS every 10 ms until stopped; returns the highest seen.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(status_kib(pid, "VmRSS")));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(status_kib(pid, "VmRSS"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssSampler { stop, peak, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// Writes `mib` MiB of non-repeating bytes; returns their SHA-256.
fn make_file(path: &Path, mib: usize) -> Vec<u8> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut hash = Sha256::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for w in buf.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            w.copy_from_slice(&seed.to_le_bytes());
        }
        hash.update(&buf);
        f.write_all(&buf).unwrap();
    }
    f.into_inner().unwrap().sync_all().unwrap();
    hash.finalize().to_vec()
}

fn http(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}

async fn transfer(binary: &Path, rows: &mut Vec<Row>) {
    let mib: usize = env_or("PETREL_BENCH_FILE_MIB", 1024);
    let bytes = (mib as u64) << 20;
    let db = TestDb::new().await;
    let api = ApiProcess::start(binary, &db).await;
    let work = tempfile::tempdir_in(bench_dir()).unwrap();
    let src = work.path().join("artifact.img");
    eprintln!("==> writing a {mib} MiB file");
    let sha = make_file(&src, mib);

    // The baselines, best of three (one copy swings with the writeback of the file just
    // made): cp on the same disk, from the page cache as the upload reads it and as downloads
    // are served; and cp with the copy flushed to disk, as the server flushes an upload before
    // it answers, which is what an upload is compared with.
    let dst = api.data_dir.path().join("cp-copy.img");
    let copy = |sync: bool| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                assert!(Command::new("cp").arg(&src).arg(&dst).status().unwrap().success());
                if sync {
                    std::fs::File::open(&dst).unwrap().sync_all().unwrap();
                }
                let took = t.elapsed();
                std::fs::remove_file(&dst).unwrap();
                took
            })
            .min()
            .unwrap()
    };
    let cp_rate = mbps(bytes, copy(false));
    let cp_sync_rate = mbps(bytes, copy(true));
    rows.push(row(
        format!("cp {mib} MiB (same disk, best of 3)"),
        format!("{cp_rate:.0} MB/s"),
        "baseline",
        None,
    ));
    rows.push(row(
        format!("cp {mib} MiB + fsync (best of 3)"),
        format!("{cp_sync_rate:.0} MB/s"),
        "baseline of uploads",
        None,
    ));

    let mut admin = Client::new(&api.url, &api.ca_pem);
    admin.login("admin", ADMIN_PASSWORD).await.expect("admin login");
    let a = Api { admin: &admin };
    let tenant = a.tenant("bench", None).await;
    let job = a.job(tenant, "big", true).await;
    let (_, token) = Api::token(&admin, tenant, "operator").await;
    let upload = Api::open_upload(&admin, job).await;
    let http = http(&api.ca_pem);

    let rss_idle = api.status_kib("VmRSS");
    let sampler = RssSampler::start(api.pid());
    let file = tokio::fs::File::open(&src).await.unwrap();
    let body = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    eprintln!("==> uploading {mib} MiB");
    let t = Instant::now();
    let r = http
        .put(format!("{}/api/v1/uploads/{upload}/artifacts/disk.img", api.url))
        .bearer_auth(&token)
        .header("x-petrel-sha256", hex::encode(&sha))
        .header("content-type", "application/octet-stream")
        .header("content-length", bytes.to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let up = t.elapsed();
    let up_peak = sampler.finish();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let build = admin.post(&format!("/api/v1/uploads/{upload}/finalize"), json!({})).await.expect(201).body;
    let build_id = build["id"].as_str().unwrap().to_string();

    let rss_before_get = api.status_kib("VmRSS");
    let sampler = RssSampler::start(api.pid());
    eprintln!("==> downloading {mib} MiB");
    let t = Instant::now();
    let r = http.get(format!("{}/api/v1/builds/{build_id}/files/disk.img", api.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    use base64::Engine;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(&sha)));
    let mut got = 0u64;
    let mut head = Vec::new();
    // The last chunks, holding at least the last MiB.
    let mut tail = std::collections::VecDeque::new();
    let mut tail_len = 0usize;
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        got += chunk.len() as u64;
        if head.len() < 1 << 20 {
            head.extend_from_slice(&chunk[..chunk.len().min((1 << 20) - head.len())]);
        }
        tail_len += chunk.len();
        tail.push_back(chunk);
        while tail.front().is_some_and(|c| tail_len - c.len() >= 1 << 20) {
            tail_len -= tail.pop_front().unwrap().len();
        }
    }
    let down = t.elapsed();
    let down_peak = sampler.finish();
    assert_eq!(got, bytes, "downloaded length");
    // Spot-check the content (the full hash is the ETag; hashing here would slow the client).
    let mut f = std::fs::File::open(&src).unwrap();
    let mut first = vec![0u8; head.len()];
    f.read_exact(&mut first).unwrap();
    assert!(first == head, "the first MiB differs");
    let tail: Vec<u8> = tail.iter().flat_map(|c| c.iter().copied()).collect();
    let mut last = vec![0u8; tail.len()];
    use std::io::Seek;
    f.seek(std::io::SeekFrom::End(-(tail.len() as i64))).unwrap();
    f.read_exact(&mut last).unwrap();
    assert!(last == tail, "the last MiB differs");

    // Browsers and `curl --compressed` ask for gzip: the Compress middleware then deflates the
    // artifact on the fly.
    eprintln!("==> downloading {mib} MiB with Accept-Encoding: gzip");
    let t = Instant::now();
    let r = http
        .get(format!("{}/api/v1/builds/{build_id}/files/disk.img", api.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let encoding = r.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_string());
    let length = r.headers().get("content-length").map(|v| v.to_str().unwrap().to_string());
    let mut gz_bytes = 0u64;
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        gz_bytes += chunk.unwrap().len() as u64;
    }
    let gz = t.elapsed();

    let up_rate = mbps(bytes, up);
    let down_rate = mbps(bytes, down);
    rows.push(row(
        format!("upload {mib} MiB (PUT, HTTPS)"),
        format!("{up_rate:.0} MB/s = {:.0} % of cp + fsync", 100.0 * up_rate / cp_sync_rate),
        ">= 70 % of cp + fsync",
        Some(up_rate >= 0.7 * cp_sync_rate),
    ));
    rows.push(row(
        format!("download {mib} MiB (GET, HTTPS)"),
        format!("{down_rate:.0} MB/s = {:.0} % of cp", 100.0 * down_rate / cp_rate),
        ">= 70 % of cp",
        Some(down_rate >= 0.7 * cp_rate),
    ));
    let gz_rate = mbps(bytes, gz);
    rows.push(row(
        format!("download {mib} MiB, Accept-Encoding: gzip"),
        format!(
            "{gz_rate:.0} MB/s, content-encoding {}, content-length {}, {:.0} MiB sent",
            encoding.as_deref().unwrap_or("none"),
            length.as_deref().unwrap_or("none"),
            gz_bytes as f64 / MIB
        ),
        "as identity",
        Some(gz_rate >= 0.7 * down_rate),
    ));
    let flat = |peak: u64, base: u64| peak.saturating_sub(base) < 128 * 1024;
    rows.push(row(
        "server RSS idle / peak during upload",
        format!("{:.0} / {:.0} MiB", rss_idle as f64 / 1024.0, up_peak as f64 / 1024.0),
        "flat (+< 128 MiB)",
        Some(flat(up_peak, rss_idle)),
    ));
    rows.push(row(
        "server RSS before / peak during download",
        format!("{:.0} / {:.0} MiB", rss_before_get as f64 / 1024.0, down_peak as f64 / 1024.0),
        "flat (+< 128 MiB)",
        Some(flat(down_peak, rss_before_get)),
    ));
    drop(api);
    drop_database(db).await;
}
