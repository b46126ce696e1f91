//! OpenTelemetry end to end: the real `petrel-api`, `petrel-worker` and `petrel-agent`
//! processes export to an OTLP receiver in the test (`petrel_tests::otlp`). A request continues
//! its caller's trace (route template, status, tenant, caller; never a secret) with database
//! spans under it, and is measured; a build through a worker is one trace from the worker's
//! claim to the API's finalize; a deployment's reconcile pass on an agent reaches the API in
//! the same trace; and the named metrics arrive.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use petrel_tests::client::PLATFORM;
use petrel_tests::otlp::{Receiver, Span};
use petrel_tests::{Api, Client, TestDb, workspace_binary};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

const PASSWORD: &str = "telemetry-test-password";
const LIMIT: Duration = Duration::from_secs(60);
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// `petrel-api` on a test database, exporting to `otlp`; killed when dropped.
struct ApiProcess {
    child: Child,
    url: String,
    ca_pem: Vec<u8>,
    log: PathBuf,
    _db: TestDb,
    dir: tempfile::TempDir,
}

impl ApiProcess {
    async fn start(otlp: &Receiver, args: &[&str]) -> ApiProcess {
        let db = TestDb::new().await;
        let socket_dir = petrel_tests::cluster_dir().join("socket");
        let url = format!("postgresql://petrel@localhost:5432/{}?host={}", db.name, socket_dir.display());
        let dir = tempfile::Builder::new().prefix("petrel-otel-").tempdir_in("/tmp").unwrap();
        let log = dir.path().join("api.log");
        let mut child = Command::new(workspace_binary("petrel-api"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("DATABASE_URL", &url)
            .env("PETREL_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            .envs(otlp.env("petrel-api"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn petrel-api");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let serving = tokio::time::timeout(LIMIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("Petrel is serving at ") {
                    return rest.trim_end_matches('/').to_string();
                }
            }
            panic!("petrel-api exited before serving: {}", std::fs::read_to_string(&log).unwrap_or_default());
        })
        .await
        .expect("petrel-api did not print its URL");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ca_pem = std::fs::read(dir.path().join("data/tls/ca.pem")).unwrap();
        ApiProcess { child, url: serving, ca_pem, log, _db: db, dir }
    }

    async fn admin(&self) -> Client {
        let mut admin = Client::new(&self.url, &self.ca_pem);
        admin.login("admin", PASSWORD).await.expect("admin login");
        admin
    }

    fn ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }

    /// Stops it cleanly (it flushes what it has not exported yet).
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let status = tokio::time::timeout(LIMIT, self.child.wait()).await.expect("petrel-api stops").unwrap();
        assert!(status.success(), "a clean stop exits 0: {status:?}");
    }
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        out.push_str(&Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

fn find_span(otlp: &Receiver, pick: impl Fn(&Span) -> bool) -> Option<Span> {
    otlp.spans().into_iter().find(|s| pick(s))
}

#[tokio::test]
async fn a_request_continues_the_callers_trace_with_database_spans_and_is_measured() {
    let otlp = Receiver::start().await;
    let api = ApiProcess::start(&otlp, &["--log-format", "json"]).await;
    let admin = api.admin().await;
    let tenant = Api { admin: &admin }.tenant("traced", None).await;
    let (token_id, token) = Api::token(&admin, tenant, "owner").await;
    let with_token = admin.with_token(&token);

    // A GET with a token, continuing the caller's trace.
    let (trace_id, parent) = (random_hex(16), random_hex(8));
    let r = with_token
        .request(Method::GET, &format!("/api/v1/tenants/{tenant}"))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let server = otlp
        .until("the server span of the GET", LIMIT, |o| {
            find_span(o, |s| s.trace_id == trace_id && s.kind == SERVER)
        })
        .await;
    assert_eq!(server.service, "petrel-api");
    assert_eq!(server.name, "GET /api/v1/tenants/{tenant_id}");
    assert_eq!(server.parent_span_id, parent, "the caller's span is the parent");
    assert_eq!(server.attr("http.route"), Some("/api/v1/tenants/{tenant_id}"));
    assert_eq!(server.attr("http.request.method"), Some("GET"));
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    assert_eq!(server.attr("petrel.tenant_id"), Some(tenant.to_string().as_str()));
    assert_eq!(server.attr("petrel.token_id"), Some(token_id.to_string().as_str()));
    assert!(server.attr("enduser.id").is_some_and(|u| u.parse::<Uuid>().is_ok()), "{server:?}");
    // The token's look-up is a database span under it.
    let db = otlp
        .until("a database span under the request", LIMIT, |o| {
            find_span(o, |s| {
                s.parent_span_id == server.span_id && s.attr("db.system.name") == Some("postgresql")
            })
        })
        .await;
    assert_eq!(
        (db.trace_id.as_str(), db.kind, db.name.as_str()),
        (trace_id.as_str(), CLIENT, "SELECT api_tokens")
    );

    // Without a traceparent a request starts a trace of its own; a 404 is measured too.
    admin.get(&format!("/api/v1/tenants/{}", Uuid::new_v4())).await.expect(404);
    // A POST logs a line (JSON here) that carries its trace id.
    let (post_trace, post_parent) = (random_hex(16), random_hex(8));
    let r = admin
        .request(Method::POST, "/api/v1/tenants")
        .header("traceparent", format!("00-{post_trace}-{post_parent}-01"))
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let duration = |route: &'static str, status: &'static str| {
        move |o: &Receiver| {
            o.points().into_iter().find(|p| {
                p.service == "petrel-api"
                    && p.metric == "http.server.request.duration"
                    && p.attr("http.route") == Some(route)
                    && p.attr("http.response.status_code") == Some(status)
            })
        }
    };
    let ok = otlp.until("the GET's duration", LIMIT, duration("/api/v1/tenants/{tenant_id}", "200")).await;
    assert_eq!(ok.unit, "s");
    assert!(ok.value >= 1.0 && ok.sum.is_some_and(|s| s > 0.0), "{ok:?}");
    assert_eq!(ok.attr("http.request.method"), Some("GET"));
    otlp.until("the 404's duration", LIMIT, duration("/api/v1/tenants/{tenant_id}", "404")).await;
    otlp.until("the POST's duration", LIMIT, duration("/api/v1/tenants", "201")).await;
    otlp.until("the POST's span", LIMIT, |o| find_span(o, |s| s.trace_id == post_trace && s.kind == SERVER))
        .await;

    let log = std::fs::read_to_string(&api.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("\"trace_id\":\"{post_trace}\"")))
        .unwrap_or_else(|| panic!("no log line with the POST's trace id:\n{log}"));
    let line: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");

    // Never a secret: not the token, not the password.
    let raw = otlp.raw();
    assert!(!raw.contains(&token), "the API token was exported");
    assert!(!raw.contains(&token[token.len() - 16..]), "part of the API token was exported");
    assert!(!raw.contains(PASSWORD), "the password was exported");
    assert!(!raw.to_ascii_lowercase().contains("authorization"), "a header was exported");
    api.stop().await;
}

/// `petrel-worker run` exporting to `otlp`; killed when dropped.
fn start_worker(api: &ApiProcess, otlp: &Receiver, credential: &str, dir: &Path) -> Child {
    std::fs::write(dir.join("credential"), credential).unwrap();
    let uid_base = 300_000 + (std::process::id() % 1000) * 100;
    Command::new(workspace_binary("petrel-worker"))
        .arg("run")
        .args(["--api", &api.url, "--platform", PLATFORM])
        .arg("--ca")
        .arg(api.ca_file())
        .arg("--credential-file")
        .arg(dir.join("credential"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .args(["--uid-base", &uid_base.to_string()])
        .env("RUST_LOG", "info")
        .envs(otlp.env("petrel-worker"))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start petrel-worker")
}

#[tokio::test]
async fn a_build_through_a_worker_is_one_trace_across_processes_and_is_measured() {
    let otlp = Receiver::start().await;
    let api = ApiProcess::start(&otlp, &[]).await;
    let admin = api.admin().await;
    let setup = Api { admin: &admin };
    let tenant = setup.tenant("builders", None).await;
    let (_, _, credential) = setup.worker("traced-worker", None).await;
    let script = "mkdir -p \"$PETREL_OUTPUT/bin\" && echo hello > \"$PETREL_OUTPUT/bin/hello\"";
    let job = setup.recipe_job(tenant, "traced", json!({"script": script}), json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let _worker = start_worker(&api, &otlp, &credential, dir.path());
    let run = admin.post(&format!("/api/v1/jobs/{job}/runs"), json!({})).await.expect(202);
    let build_id = run.body[0]["build_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let b = admin.get(&format!("/api/v1/builds/{build_id}")).await.expect(200).body;
        if b["status"] == "succeeded" {
            break;
        }
        assert!(
            matches!(b["status"].as_str(), Some("queued" | "running"))
                && std::time::Instant::now() < deadline,
            "the build did not succeed: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let build = otlp
        .until("the worker's build span", LIMIT, |o| {
            find_span(o, |s| {
                s.service == "petrel-worker"
                    && s.name == "build"
                    && s.attr("petrel.build_id") == Some(&build_id)
            })
        })
        .await;
    assert_eq!(build.attr("petrel.build.outcome"), Some("succeeded"));
    // The API's finalize of the upload is in the build's trace, under the worker's request,
    // under its upload, under the build.
    let finalize = otlp
        .until("the API's finalize in the build's trace", LIMIT, |o| {
            find_span(o, |s| {
                s.service == "petrel-api"
                    && s.trace_id == build.trace_id
                    && s.name == "POST /api/v1/uploads/{upload_id}/finalize"
            })
        })
        .await;
    let chain = otlp.ancestry(&finalize);
    let names: Vec<(&str, &str)> = chain.iter().map(|s| (s.service.as_str(), s.name.as_str())).collect();
    assert_eq!(chain[1].service, "petrel-worker", "{names:?}");
    assert_eq!(chain[1].kind, CLIENT, "{names:?}");
    assert_eq!(chain[1].attr("http.response.status_code"), Some("201"), "{names:?}");
    assert!(names.contains(&("petrel-worker", "upload result")), "{names:?}");
    assert!(chain.iter().any(|s| s.span_id == build.span_id), "{names:?}");
    // So is the claim that brought the build: the API's side of it under the worker's.
    let claim = otlp
        .until("the API's claim in the build's trace", LIMIT, |o| {
            find_span(o, |s| {
                s.service == "petrel-api"
                    && s.trace_id == build.trace_id
                    && s.name == "POST /api/v1/worker/claim"
            })
        })
        .await;
    assert_eq!(claim.attr("petrel.worker.name"), Some("traced-worker"));
    let claim_chain = otlp.ancestry(&claim);
    let root = claim_chain.last().unwrap();
    assert_eq!((root.service.as_str(), root.name.as_str()), ("petrel-worker", "claim build"));
    assert!(
        otlp.ancestry(&build).iter().any(|s| s.span_id == root.span_id),
        "the build runs under its claim"
    );
    // And the claim query is a database span under the API's claim.
    otlp.until("the claim's database span", LIMIT, |o| {
        find_span(o, |s| s.parent_span_id == claim.span_id && s.name == "UPDATE builds (claim)")
    })
    .await;

    let metric = |name: &'static str, pick: fn(&petrel_tests::otlp::Point) -> bool| {
        move |o: &Receiver| {
            o.points().into_iter().find(|p| p.service == "petrel-api" && p.metric == name && pick(p))
        }
    };
    let wait = otlp
        .until(
            "petrel.build.queue.wait",
            LIMIT,
            metric("petrel.build.queue.wait", |p| p.attr("petrel.platform") == Some(PLATFORM)),
        )
        .await;
    assert!(wait.value >= 1.0 && wait.unit == "s", "{wait:?}");
    let duration = otlp
        .until(
            "petrel.build.duration",
            LIMIT,
            metric("petrel.build.duration", |p| p.attr("petrel.build.outcome") == Some("succeeded")),
        )
        .await;
    assert_eq!(duration.attr("petrel.platform"), Some(PLATFORM));
    otlp.until(
        "petrel.build.finished",
        LIMIT,
        metric("petrel.build.finished", |p| {
            p.attr("petrel.build.outcome") == Some("succeeded") && p.value >= 1.0
        }),
    )
    .await;
    let size =
        otlp.until("petrel.upload.size", LIMIT, metric("petrel.upload.size", |p| p.value >= 1.0)).await;
    assert_eq!(size.unit, "By");
    otlp.until("petrel.upload.duration", LIMIT, metric("petrel.upload.duration", |p| p.value >= 1.0)).await;
    otlp.until(
        "petrel.build.queue.depth",
        LIMIT,
        metric("petrel.build.queue.depth", |p| p.attr("petrel.platform") == Some(PLATFORM)),
    )
    .await;
    otlp.until(
        "petrel.worker.heartbeat.age",
        LIMIT,
        metric("petrel.worker.heartbeat.age", |p| {
            p.attr("petrel.worker.name") == Some("traced-worker") && p.value < 60.0
        }),
    )
    .await;
    otlp.until(
        "the HTTP duration of the worker's requests",
        LIMIT,
        metric("http.server.request.duration", |p| p.attr("http.route") == Some("/api/v1/worker/claim")),
    )
    .await;
    api.stop().await;
}

#[tokio::test]
async fn a_deployments_reconcile_pass_on_an_agent_reaches_the_api_in_one_trace_and_its_stats_are_measured() {
    let otlp = Receiver::start().await;
    let api = ApiProcess::start(&otlp, &[]).await;
    let admin = api.admin().await;
    let tenant = Api { admin: &admin }.tenant("ops", None).await;
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 2, "memory_mib": 64, "block_mib": 0, "cpus": [], "bridges": []}),
        )
        .await
        .expect(200);
    let token = admin.post("/api/v1/agents/enrollments", json!({"name": "traced-host"})).await.expect(201);
    let dir = tempfile::tempdir().unwrap();
    let (state, ca) = (dir.path().join("agent"), api.ca_file());
    let enrolled = Command::new(workspace_binary("petrel-agent"))
        .args(["enroll", "--api", &api.url, "--token", token.body["token"].as_str().unwrap()])
        .arg("--ca")
        .arg(&ca)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .await
        .unwrap();
    assert!(enrolled.status.success(), "enroll failed: {}", String::from_utf8_lossy(&enrolled.stderr));
    let _agent = Command::new(workspace_binary("petrel-agent"))
        .args(["run", "--api", &api.url])
        .arg("--ca")
        .arg(&ca)
        .arg("--state-dir")
        .arg(&state)
        .arg("--tender")
        .arg(workspace_binary("petrel-hvt"))
        .args(["--stats-interval", "1"])
        .env("RUST_LOG", "info")
        .envs(otlp.env("petrel-agent"))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start petrel-agent");
    let guests_dir = dir.path().to_path_buf();
    let guests = tokio::task::spawn_blocking(move || crate::kvm::guests(&guests_dir)).await.unwrap();
    let sha = crate::kvm::upload_guest(&admin, tenant, &guests, "bench").await;
    let body = json!({"name": "idle", "image_sha256": sha, "memory_mib": 4, "args": ["idle"],
                      "restart": {"kind": "never"}});
    let id = admin.post(&format!("/api/v1/tenants/{tenant}/deployments"), body).await.expect(201).id();
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let d = admin.get(&format!("/api/v1/deployments/{id}")).await.expect(200).body;
        if d["state"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the deployment never ran: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let id_text = id.to_string();
    let unikernel = |name: &'static str| {
        let id_text = id_text.clone();
        move |o: &Receiver| {
            o.points().into_iter().find(|p| {
                p.service == "petrel-api"
                    && p.metric == name
                    && p.attr("petrel.deployment.id") == Some(id_text.as_str())
                    && p.attr("petrel.agent.name") == Some("traced-host")
            })
        }
    };
    let memory =
        otlp.until("petrel.unikernel.memory.usage", LIMIT, unikernel("petrel.unikernel.memory.usage")).await;
    assert!(memory.value > 1024.0 * 1024.0 && memory.unit == "By", "{memory:?}");
    let cpu = otlp.until("petrel.unikernel.cpu.time", LIMIT, unikernel("petrel.unikernel.cpu.time")).await;
    assert!(matches!(cpu.attr("cpu.mode"), Some("user" | "system")), "{cpu:?}");
    otlp.until("petrel.unikernel.uptime", LIMIT, unikernel("petrel.unikernel.uptime")).await;
    otlp.until("petrel.deployments", LIMIT, |o| {
        o.points().into_iter().find(|p| {
            p.metric == "petrel.deployments"
                && p.attr("petrel.agent.name") == Some("traced-host")
                && p.attr("petrel.deployment.state") == Some("running")
                && p.value == 1.0
        })
    })
    .await;
    otlp.until("petrel.agent.heartbeat.age", LIMIT, |o| {
        o.points().into_iter().find(|p| {
            p.metric == "petrel.agent.heartbeat.age"
                && p.attr("petrel.agent.name") == Some("traced-host")
                && p.value < 60.0
        })
    })
    .await;
    // Destroyed, its supervision on the agent ends and so does its span. The API's side of the
    // image download and of the "running" report are then each under the agent's request,
    // under the deployment's supervision, under the reconcile pass that started it, under the
    // poll that brought the assignment: one trace.
    admin.delete(&format!("/api/v1/deployments/{id}")).await.expect(204);
    for route in ["GET /api/v1/agent/images/{sha256}", "POST /api/v1/agent/deployments/{deployment_id}/state"]
    {
        let served = otlp
            .until(route, LIMIT, |o| {
                find_span(o, |s| {
                    s.service == "petrel-api"
                        && s.name == route
                        && o.ancestry(s).iter().any(|a| a.service == "petrel-agent" && a.name == "reconcile")
                })
            })
            .await;
        let chain = otlp.ancestry(&served);
        let names: Vec<(&str, &str)> = chain.iter().map(|s| (s.service.as_str(), s.name.as_str())).collect();
        assert_eq!((chain[1].service.as_str(), chain[1].kind), ("petrel-agent", CLIENT), "{names:?}");
        assert_eq!(
            names[2..],
            [
                ("petrel-agent", "supervise deployment"),
                ("petrel-agent", "reconcile"),
                ("petrel-agent", "poll assignments")
            ],
            "{names:?}"
        );
        assert_eq!(chain[2].attr("petrel.deployment.id"), Some(id.to_string().as_str()));
        assert_eq!(served.attr("petrel.agent.name"), Some("traced-host"));
        assert!(chain.iter().all(|s| s.trace_id == served.trace_id));
    }
    api.stop().await;
}
