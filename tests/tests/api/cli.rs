//! The `petrel` CLI (built on the client generated from openapi.json) against a real server:
//! login and its stored configuration, every resource's commands, `--json` shapes, and the
//! documented exit codes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use petrel_tests::{Api, TestServer, workspace_binary};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

struct Run {
    /// The command line, for failure messages.
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "petrel {} failed: {}\n{}", self.args, self.stderr, self.stdout);
        self
    }

    fn json(self) -> Value {
        let text = self.ok().stdout;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    fn fails_with(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "petrel {}: expected exit {code}: {}\n{}",
            self.args, self.stderr, self.stdout
        );
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {}", self.stderr);
        self
    }
}

/// The CLI with `home` as its configuration directory and no `PETREL_*` from outside; `env`
/// adds variables.
async fn petrel(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(workspace_binary("petrel"));
    command.args(args).env("XDG_CONFIG_HOME", home).env_remove("PETREL_URL");
    command.env_remove("PETREL_TOKEN").env_remove("PETREL_CA");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().await.expect("run petrel");
    Run {
        args: args.join(" "),
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ca_fingerprint(ca_pem: &[u8]) -> String {
    let text = std::str::from_utf8(ca_pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A server, a tenant, an operator token of it, and the environment for the CLI to use them.
struct Setup {
    server: TestServer,
    tenant: Uuid,
    token: String,
    ca_file: tempfile::NamedTempFile,
    home: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let server = TestServer::start().await;
        let admin = server.admin().await;
        let api = Api { admin: &admin };
        let tenant = api.tenant("acme", None).await;
        // A user of this tenant only, so "the caller's tenant" is unambiguous.
        let (_, olivia) = api.user("olivia").await;
        api.member(tenant, "olivia", "operator").await;
        let (_, token) = Api::token(&olivia, tenant, "operator").await;
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), &server.ca_pem).unwrap();
        Setup { server, tenant, token, ca_file, home: tempfile::tempdir().unwrap() }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_as(&self.token, args).await
    }

    /// Runs the CLI in the background (for commands that wait on something the test does).
    fn spawn(&self, args: &[&str]) -> tokio::task::JoinHandle<Run> {
        let (home, url, token) =
            (self.home.path().to_owned(), self.server.server.url.clone(), self.token.clone());
        let ca = self.ca_file.path().display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::spawn(async move {
            let env =
                [("PETREL_URL", url.as_str()), ("PETREL_TOKEN", token.as_str()), ("PETREL_CA", ca.as_str())];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            petrel(&home, &env, &args).await
        })
    }

    async fn run_as(&self, token: &str, args: &[&str]) -> Run {
        let ca = self.ca_file.path().display().to_string();
        let env =
            [("PETREL_URL", self.server.server.url.as_str()), ("PETREL_TOKEN", token), ("PETREL_CA", &ca)];
        petrel(self.home.path(), &env, args).await
    }
}

#[tokio::test]
async fn login_pins_the_ca_by_fingerprint_and_stores_a_private_config() {
    let setup = Setup::new().await;
    let home = setup.home.path();
    let url = setup.server.server.url.clone();
    let fingerprint = ca_fingerprint(&setup.server.ca_pem);

    // Before login nothing works, and says how to fix it.
    petrel(home, &[], &["whoami"]).await.fails_with(5, "petrel login");

    // A fingerprint that is not the server's CA: refused, nothing stored.
    let wrong = "AB:".repeat(31) + "AB";
    petrel(home, &[], &["login", "--url", &url, "--token", &setup.token, "--ca-fingerprint", &wrong])
        .await
        .fails_with(7, "fingerprint");
    assert!(!home.join("petrel/config.json").exists());
    // A bad token: refused by the API, nothing stored.
    petrel(home, &[], &["login", "--url", &url, "--token", "petrel_wrong", "--ca-fingerprint", &fingerprint])
        .await
        .fails_with(5, "401");
    assert!(!home.join("petrel/config.json").exists());

    let out = petrel(
        home,
        &[],
        &["login", "--url", &url, "--token", &setup.token, "--ca-fingerprint", &fingerprint],
    )
    .await
    .ok();
    assert!(out.stdout.contains("Signed in"), "{}", out.stdout);
    let config = home.join("petrel/config.json");
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(stored["url"], url.as_str());
    assert!(stored["ca_pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));

    // Later commands use the stored URL, token and CA.
    let me = petrel(home, &[], &["whoami", "--json"]).await.json();
    assert_eq!(me["auth"], "token");
    assert_eq!(me["memberships"][0]["tenant_id"], setup.tenant.to_string());
    let table = petrel(home, &[], &["whoami"]).await.ok().stdout;
    assert!(table.contains("acme") && table.contains("operator"), "{table}");

    petrel(home, &[], &["logout"]).await.ok();
    assert!(!config.exists());
    petrel(home, &[], &["whoami"]).await.fails_with(5, "not logged in");
}

#[tokio::test]
async fn jobs_uploads_downloads_lookups_and_compare() {
    let setup = Setup::new().await;
    let tenant = setup.tenant.to_string();
    let job = setup
        .run(&["job", "create", "hello", "--tenant", &tenant, "--platform", "debian-12", "--json"])
        .await
        .json();
    let job_id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["platforms"], json!(["debian-12"]));
    let jobs = setup.run(&["job", "list", "--tenant", &tenant, "--json"]).await.json();
    assert_eq!(jobs["items"][0]["id"], job_id.as_str());
    let shown = setup.run(&["job", "show", &job_id]).await.ok().stdout;
    assert!(shown.contains("acme:hello"), "{shown}");

    // Upload two builds made elsewhere, each with a main binary and a console.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("hello.hvt");
    let contents: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&binary, &contents).unwrap();
    let sha = hex::encode(Sha256::digest(&contents));
    let readme = dir.path().join("README");
    std::fs::write(&readme, "first").unwrap();
    let console = dir.path().join("console.txt");
    std::fs::write(&console, "compiling\nlinking\n").unwrap();
    let bin_spec = format!("{}=bin/hello.hvt", binary.display());
    let readme_path = readme.display().to_string();
    let console_path = console.display().to_string();
    let args = [
        "build",
        "upload",
        "--job",
        &job_id,
        "--platform",
        "debian-12",
        "--console",
        &console_path,
        &bin_spec,
        &readme_path,
        "--json",
    ];
    let first = setup.run(&args).await.json();
    let first_id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["main_binary"]["sha256"], sha.as_str());
    std::fs::write(&readme, "second").unwrap();
    let second = setup.run(&args).await.json();
    let second_id = second["id"].as_str().unwrap().to_string();

    let builds =
        setup.run(&["build", "list", "--job", &job_id, "--status", "succeeded", "--json"]).await.json();
    assert_eq!(builds["items"].as_array().unwrap().len(), 2);
    let page = setup.run(&["build", "list", "--job", &job_id, "--limit", "1", "--json"]).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().expect("a next page").to_string();
    let rest =
        setup.run(&["build", "list", "--job", &job_id, "--limit", "1", "--cursor", &cursor, "--json"]).await;
    assert_ne!(rest.json()["items"][0]["id"], page["items"][0]["id"]);

    let artifacts = setup.run(&["build", "artifacts", &first_id]).await.ok().stdout;
    assert!(artifacts.contains("bin/hello.hvt") && artifacts.contains(&sha), "{artifacts}");
    let shown = setup.run(&["build", "show", &first_id]).await.ok().stdout;
    assert!(shown.contains("succeeded") && shown.contains("bin/hello.hvt"), "{shown}");

    // Download the main binary (verified), and a named artifact.
    let target = dir.path().join("downloaded");
    let target_arg = target.display().to_string();
    let got = setup.run(&["build", "download", &first_id, "-o", &target_arg, "--json"]).await.json();
    assert_eq!(got["sha256"], sha.as_str());
    assert_eq!(std::fs::read(&target).unwrap(), contents);
    setup.run(&["build", "download", &second_id, "README", "-o", &target_arg]).await.ok();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "second");
    setup.run(&["build", "download", &first_id, "no/such/file"]).await.fails_with(2, "no artifact");

    let found = setup.run(&["lookup", &sha, "--json"]).await.json();
    assert_eq!(found["path"], "bin/hello.hvt");
    assert!([first_id.as_str(), second_id.as_str()].contains(&found["build"]["id"].as_str().unwrap()));

    let log = setup.run(&["build", "log", &first_id]).await.ok().stdout;
    assert_eq!(log, "compiling\nlinking\n");
    let followed = setup.run(&["build", "log", "--follow", &first_id]).await.ok().stdout;
    assert_eq!(followed, log, "a finished build's followed log ends");

    let comparison = setup.run(&["build", "compare", &first_id, &second_id, "--json"]).await.json();
    assert_eq!(comparison["summary"]["artifacts"]["changed"], 1, "{comparison}");
    let table = setup.run(&["build", "compare", &first_id, &second_id]).await.ok().stdout;
    assert!(table.contains("total differences: 1"), "{table}");

    // A job with a script runs (queued for workers) and its build is cancelled.
    let script = dir.path().join("build.sh");
    std::fs::write(&script, "echo hi\n").unwrap();
    let script_arg = script.display().to_string();
    let scripted = setup
        .run(&[
            "job",
            "create",
            "scripted",
            "--tenant",
            &tenant,
            "--platform",
            "debian-12",
            "--script",
            &script_arg,
            "--schedule",
            "never",
            "--json",
        ])
        .await
        .json();
    let scripted_id = scripted["id"].as_str().unwrap().to_string();
    let queued = setup.run(&["job", "run", &scripted_id, "--json"]).await.json();
    let queued_build = queued[0]["build_id"].as_str().unwrap().to_string();
    setup.run(&["build", "cancel", &queued_build]).await.ok();
    let cancelled = setup.run(&["build", "show", &queued_build, "--json"]).await.json();
    assert_eq!(cancelled["status"], "cancelled");
    let scheduled = setup.run(&["job", "schedule", &scripted_id, "daily"]).await.ok().stdout;
    assert!(scheduled.contains("daily"), "{scheduled}");
    // Deleting a job takes an owner.
    setup.run(&["job", "delete", &scripted_id]).await.fails_with(5, "owner");
}

#[tokio::test]
async fn errors_map_to_documented_exit_codes() {
    let setup = Setup::new().await;
    let tenant = setup.tenant.to_string();
    let help = setup.run(&["--help"]).await.ok().stdout;
    assert!(help.contains("Exit codes"), "{help}");
    setup.run(&["build", "frobnicate"]).await.fails_with(2, "unrecognized subcommand");
    setup.run(&["build", "show", &Uuid::new_v4().to_string()]).await.fails_with(4, "not-found");
    // A validation error names the field.
    setup.run(&["job", "create", "Not A Name!", "--tenant", &tenant]).await.fails_with(3, "name:");
    // An operator cannot set quotas: 403.
    setup
        .run(&["quota", "set", "--tenant", &tenant, "--unikernels", "1", "--memory-mib", "64"])
        .await
        .fails_with(5, "403");
    let env = [
        ("PETREL_URL", setup.server.server.url.as_str()),
        ("PETREL_TOKEN", "petrel_not_a_token"),
        ("PETREL_CA", &*setup.ca_file.path().display().to_string()),
    ];
    petrel(setup.home.path(), &env, &["whoami"]).await.fails_with(5, "401");
    // Nothing listens there: unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = [
        ("PETREL_URL", &*format!("https://{closed}")),
        ("PETREL_TOKEN", setup.token.as_str()),
        ("PETREL_CA", &*setup.ca_file.path().display().to_string()),
    ];
    petrel(setup.home.path(), &env, &["whoami"]).await.fails_with(6, "cannot reach");
    // Without the CA the server's certificate is not trusted: unreachable, not accepted.
    let env = [("PETREL_URL", setup.server.server.url.as_str()), ("PETREL_TOKEN", setup.token.as_str())];
    petrel(setup.home.path(), &env, &["whoami"]).await.fails_with(6, "certificate");

    let completions = setup.run(&["completions", "bash"]).await.ok().stdout;
    assert!(completions.contains("complete") && completions.contains("petrel"), "{completions}");
}

#[tokio::test]
async fn quotas_deployments_tokens_workers_and_agents() {
    let setup = Setup::new().await;
    let tenant = setup.tenant.to_string();
    let admin = setup.server.admin().await;
    let admin_token = admin
        .post("/api/v1/tokens", json!({"name": "cli-admin", "admin": true}))
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let set = setup
        .run_as(
            &admin_token,
            &[
                "quota",
                "set",
                "--tenant",
                &tenant,
                "--unikernels",
                "2",
                "--memory-mib",
                "64",
                "--bridge",
                "br0",
                "--json",
            ],
        )
        .await
        .json();
    assert_eq!(set["memory_mib"], 64);
    let usage = setup.run(&["quota", "show", "--json"]).await.json();
    assert_eq!(usage["quota"]["unikernels"], 2);
    assert_eq!(usage["memory_mib"], 0);

    // An image to deploy: a build's main binary, uploaded with the CLI.
    let job = setup.run(&["job", "create", "unikernel", "--json"]).await.json();
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("u.hvt");
    std::fs::write(&binary, b"not really a unikernel").unwrap();
    let spec = format!("{}=bin/u.hvt", binary.display());
    let job_id = job["id"].as_str().unwrap();
    let build =
        setup.run(&["build", "upload", "--job", job_id, "--platform", "hvt", &spec, "--json"]).await.json();
    let image = build["main_binary"]["sha256"].as_str().unwrap().to_string();

    // Over the memory quota: refused with the limit named; within it but no agent: 409.
    setup
        .run(&["deploy", "create", "big", "--image", &image, "--memory-mib", "128", "--net", "service=br0"])
        .await
        .fails_with(5, "memory");
    setup
        .run(&["deploy", "create", "small", "--image", &image, "--memory-mib", "32", "--net", "service=br0"])
        .await
        .fails_with(3, "no-capacity");
    let deployments = setup.run(&["deploy", "list", "--json"]).await.json();
    assert_eq!(deployments["items"], json!([]));
    setup.run(&["deploy", "show", &Uuid::new_v4().to_string()]).await.fails_with(4, "not-found");

    // Tokens: create (secret printed once), list, revoke.
    let created =
        setup.run(&["token", "create", "ci", "--tenant", &tenant, "--role", "viewer", "--json"]).await.json();
    let token_id = created["token"]["id"].as_str().unwrap().to_string();
    assert!(created["secret"].as_str().unwrap().starts_with("petrel_"));
    let listed = setup.run(&["token", "list", "--tenant", &tenant]).await;
    assert_eq!(listed.code, 5, "an operator may not list the tenant's tokens: {}", listed.stderr);
    let mine = setup.run(&["token", "list", "--json"]).await.json();
    assert!(mine["items"].as_array().unwrap().iter().any(|t| t["id"] == token_id.as_str()), "{mine}");
    setup.run(&["token", "revoke", &token_id]).await.ok();

    // Workers and agents (administrators).
    let worker = setup.run_as(&admin_token, &["worker", "create", "builder-1", "--json"]).await.json();
    assert!(worker["credential"].as_str().unwrap().starts_with("petrelw_"));
    let workers = setup.run_as(&admin_token, &["worker", "list"]).await.ok().stdout;
    assert!(workers.contains("builder-1"), "{workers}");
    let enrollment = setup.run_as(&admin_token, &["agent", "enroll", "kvm-1", "--json"]).await.json();
    assert!(enrollment["token"].as_str().unwrap().starts_with("petrele_"));
    let agents = setup.run_as(&admin_token, &["agent", "list", "--json"]).await.json();
    assert_eq!(agents["items"], json!([]));
    // The token listed (never its secret), then revoked.
    let listed = setup.run_as(&admin_token, &["agent", "enrollments"]).await.ok().stdout;
    assert!(
        listed.contains("kvm-1") && listed.contains("unused") && !listed.contains("petrele_"),
        "{listed}"
    );
    let id = enrollment["id"].as_str().unwrap();
    setup.run_as(&admin_token, &["agent", "revoke-enrollment", id]).await.ok();
    let listed = setup.run_as(&admin_token, &["agent", "enrollments", "--json"]).await.json();
    assert_eq!(listed["items"], json!([]));
    setup.run(&["worker", "list"]).await.fails_with(5, "403");

    let tenants = setup.run_as(&admin_token, &["tenant", "list", "--json"]).await.json();
    assert!(tenants["items"].as_array().unwrap().iter().any(|t| t["name"] == "acme"));
    let sub =
        setup.run_as(&admin_token, &["tenant", "create", "lab", "--parent", &tenant, "--json"]).await.json();
    assert_eq!(sub["parent_id"], tenant.as_str());
}

#[tokio::test]
async fn deployments_update_roll_back_restart_and_show_stats() {
    let setup = Setup::new().await;
    let admin = setup.server.admin().await;
    let tenant = setup.tenant.to_string();
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 2, "memory_mib": 128, "block_mib": 0, "cpus": [], "bridges": ["br0"]}),
        )
        .await
        .expect(200);
    // An agent with room, enrolled through the API (its protocol is not the CLI's business).
    let enrollment = admin.post("/api/v1/agents/enrollments", json!({"name": "kvm-1"})).await.expect(201);
    let inventory = json!({"cpus": 2, "memory_mib": 1024, "bridges": ["br0"], "block_mib": 0,
                           "tender_version": "petrel-hvt test", "tender_abi": 2});
    let enrolled = admin
        .anonymous()
        .post("/api/v1/agents/enroll", json!({"token": enrollment.body["token"], "inventory": inventory}))
        .await
        .expect(201);
    let agent = admin.with_token(enrolled.body["credential"].as_str().unwrap());

    let job = setup.run(&["job", "create", "web", "--platform", "hvt", "--json"]).await.json();
    let job_id = job["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let upload = |version: &'static [u8]| {
        let file = dir.path().join("web.hvt");
        std::fs::write(&file, version).unwrap();
        format!("{}=bin/web.hvt", file.display())
    };
    let spec = upload(b"web v1");
    let lock = dir.path().join("Cargo.lock");
    std::fs::write(&lock, "version = 3\n\n[[package]]\nname = \"ring\"\nversion = \"0.17.8\"\n").unwrap();
    let lock = lock.display().to_string();
    let v1 = setup
        .run(&["build", "upload", "--job", &job_id, "--platform", "hvt", &spec, &lock, "--json"])
        .await
        .json();
    let sha1 = v1["main_binary"]["sha256"].as_str().unwrap().to_string();
    let created = setup
        .run(&[
            "deploy",
            "create",
            "web",
            "--image",
            &sha1,
            "--memory-mib",
            "32",
            "--net",
            "service=br0",
            "--json",
        ])
        .await
        .json();
    let id = created["id"].as_str().unwrap().to_string();
    setup.run(&["deploy", "update", &id]).await.fails_with(3, "no-update");
    // Which running unikernels contain ring 0.17.8: this one.
    let fleet =
        setup.run(&["fleet", "cargo", "ring", "--version", "0.17.8", "--deployed", "--json"]).await.json();
    assert_eq!(fleet["items"][0]["deployments"][0]["deployment_id"], id.as_str(), "{fleet}");
    let table = setup.run(&["fleet", "cargo", "ring", "--deployed"]).await.ok().stdout;
    assert!(table.contains("RUNNING AS") && table.contains(" web"), "{table}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let spec = upload(b"web v2");
    let v2 =
        setup.run(&["build", "upload", "--job", &job_id, "--platform", "hvt", &spec, "--json"]).await.json();
    let sha2 = v2["main_binary"]["sha256"].as_str().unwrap().to_string();
    let shown = setup.run(&["deploy", "show", &id]).await.ok().stdout;
    assert!(shown.contains(&format!("update available  {sha2}")), "{shown}");

    let updated = setup.run(&["deploy", "update", &id, "--json"]).await.json();
    assert_eq!(updated["image_sha256"], sha2.as_str());
    assert_eq!(updated["previous_image_sha256"], sha1.as_str());
    let back = setup.run(&["deploy", "rollback", &id]).await.ok().stdout;
    assert!(back.contains(&format!("back to {sha1}")), "{back}");
    let restarted = setup
        .run(&["deploy", "restart", &id, "--arg", "--port=80", "--memory-mib", "64", "--json"])
        .await
        .json();
    assert_eq!(restarted["args"], json!(["--port=80"]));
    assert_eq!(restarted["memory_mib"], 64);
    setup.run(&["deploy", "restart", &id, "--memory-mib", "1000"]).await.fails_with(5, "quota");

    agent
        .post(
            &format!("/api/v1/agent/deployments/{id}/stats"),
            json!({"at": chrono::Utc::now(), "uptime_ms": 5000, "cpu_user_ms": 7, "cpu_system_ms": 3, "rss_kib": 4321,
                   "nets": [{"device": "service", "rx_bytes": 100, "tx_bytes": 200, "rx_packets": 1, "tx_packets": 2}]}),
        )
        .await
        .expect(204);
    let stats = setup.run(&["deploy", "stats", &id, "--json"]).await.json();
    assert_eq!(stats["latest"]["rss_kib"], 4321);
    let table = setup.run(&["deploy", "stats", &id]).await.ok().stdout;
    assert!(table.contains("4321") && table.contains("RSS KIB"), "{table}");
    let events = setup.run(&["deploy", "events", &id]).await.ok().stdout;
    assert!(events.contains("update requested") && events.contains("rollback requested"), "{events}");
    // The console: what is kept, then followed until the deployment is destroyed.
    let console = format!("/api/v1/agent/deployments/{id}/console");
    let ship = |text: &'static str| agent.post(&console, json!({"lines": [{"at_ms": 0, "text": text}]}));
    ship("booting").await.expect(204);
    assert_eq!(setup.run(&["deploy", "console", &id]).await.ok().stdout, "booting\n");
    let follower = {
        let (home, ca) = (setup.home.path().to_path_buf(), setup.ca_file.path().display().to_string());
        let (url, token, id) = (setup.server.server.url.clone(), setup.token.clone(), id.clone());
        tokio::spawn(async move {
            let env =
                [("PETREL_URL", url.as_str()), ("PETREL_TOKEN", token.as_str()), ("PETREL_CA", ca.as_str())];
            petrel(&home, &env, &["deploy", "console", "--follow", &id]).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    ship("serving").await.expect(204);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    setup.run(&["deploy", "destroy", &id]).await.ok();
    let followed = tokio::time::timeout(std::time::Duration::from_secs(30), follower).await.unwrap().unwrap();
    assert_eq!(followed.ok().stdout, "booting\nserving\n");
}

#[tokio::test]
async fn block_devices_are_created_uploaded_downloaded_and_deleted() {
    let setup = Setup::new().await;
    let tenant = setup.tenant.to_string();
    let admin = setup.server.admin().await;
    admin
        .put(
            &format!("/api/v1/tenants/{tenant}/quota"),
            json!({"unikernels": 1, "memory_mib": 64, "block_mib": 8, "cpus": [], "bridges": []}),
        )
        .await
        .expect(200);
    // The test speaks for the agent that keeps the device.
    let (_, agent) = super::deployments::agent(&admin, "kvm-1", &[]).await;
    setup.run(&["block", "create", "big", "--size-mib", "16"]).await.fails_with(5, "block quota by 8 MiB");
    let created = setup.run(&["block", "create", "disk", "--size-mib", "4", "--json"]).await.json();
    let id = created["id"].as_str().unwrap().to_string();
    let listed = setup.run(&["block", "list"]).await.ok().stdout;
    assert!(listed.contains("disk") && listed.contains(&id), "{listed}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.img");
    std::fs::write(&file, b"seed data").unwrap();
    let too_big = dir.path().join("big.img");
    std::fs::write(&too_big, vec![0u8; 4 * 1024 * 1024 + 1]).unwrap();
    setup.run(&["block", "upload", &id, too_big.to_str().unwrap()]).await.fails_with(3, "payload-too-large");
    // Uploading waits until the agent wrote it.
    let upload = setup.spawn(&["block", "upload", &id, file.to_str().unwrap(), "--json"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let a = agent
            .post("/api/v1/agent/assignments", json!({"generation": 0, "wait_secs": 0}))
            .await
            .expect(200);
        if a.body["block_devices"][0]["content_version"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the upload never reached the agent: {}", a.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!upload.is_finished(), "the CLI returned before the agent wrote the upload");
    agent
        .post(&format!("/api/v1/agent/block-devices/{id}/report"), json!({"applied_version": 1}))
        .await
        .expect(204);
    let uploaded = upload.await.unwrap().json();
    assert_eq!(uploaded["upload_pending"], false);

    // Downloading: the agent sends its copy; the CLI verifies it against the named SHA-256.
    let output = dir.path().join("copy.img");
    let download = setup.spawn(&["block", "download", &id, "-o", output.to_str().unwrap(), "--json"]);
    loop {
        let a = agent
            .post("/api/v1/agent/assignments", json!({"generation": 0, "wait_secs": 0}))
            .await
            .expect(200);
        if a.body["block_devices"][0]["export_requested"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no copy was asked for: {}", a.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let copy = b"the device as the agent has it".to_vec();
    let sent = agent
        .request(reqwest::Method::PUT, &format!("/api/v1/agent/block-devices/{id}/export/1"))
        .header("x-petrel-sha256", hex::encode(Sha256::digest(&copy)))
        .body(copy.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 204);
    let downloaded = download.await.unwrap().json();
    assert_eq!(downloaded["sha256"], hex::encode(Sha256::digest(&copy)));
    assert_eq!(std::fs::read(&output).unwrap(), copy);

    setup.run(&["block", "delete", &id]).await.ok();
    setup.run(&["block", "show", &id]).await.fails_with(4, "not-found");
}
