//! Support for Petrel's black-box tests: a real PostgreSQL cluster shared by the test run with
//! one fresh database per test, the real API served over real HTTPS, and HTTP clients.
//!
//! The cluster lives in `$PETREL_TEST_PG_DIR` (default `/tmp/petrel-test-pg-<uid>`); the first
//! test to need it starts it, and `scripts/test.sh` stops and removes it after the run. Each
//! test's database is a copy of a template migrated once per set of migrations.

pub mod browser;
pub mod client;
pub mod faults;
pub mod otlp;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use petrel_api::config::{Config, Database};
use petrel_api::db::embedded::{Durability, EmbeddedPostgres};
use petrel_api::server::{self, Server};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

pub use client::{Api, Client};

/// Serialises cluster start-up and template creation across test processes.
const TEMPLATE_LOCK: i64 = 0x7065_7472_656c_0002;

pub fn cluster_dir() -> PathBuf {
    std::env::var_os("PETREL_TEST_PG_DIR").map(PathBuf::from).unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions.
        PathBuf::from(format!("/tmp/petrel-test-pg-{}", unsafe { libc::getuid() }))
    })
}

/// The shared test cluster, started on first use.
pub async fn cluster() -> EmbeddedPostgres {
    let dir = cluster_dir();
    std::fs::create_dir_all(dir.parent().unwrap_or(Path::new("/tmp"))).expect("cluster parent dir");
    let lock_path = dir.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("cluster lock file");
    // SAFETY: flock on a file descriptor we own; it is released when `lock` is dropped.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", lock_path.display());
    let pg = EmbeddedPostgres::start(&dir, Durability::Ephemeral)
        .await
        .unwrap_or_else(|e| panic!("cannot start the test PostgreSQL cluster in {}: {e}", dir.display()));
    drop(lock);
    pg
}

/// A database of its own for one test, migrated to the newest schema.
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let pg = cluster().await;
        let template = template_name();
        let mut admin = pg.connect_options("postgres").connect().await.expect("connect to the test cluster");
        admin.execute(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})").as_str()).await.expect("lock");
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("query templates");
        if !exists {
            let building = format!("{template}_building");
            admin.execute(format!("DROP DATABASE IF EXISTS {building}").as_str()).await.expect("drop");
            admin.execute(format!("CREATE DATABASE {building}").as_str()).await.expect("create template");
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(pg.connect_options(&building))
                .await
                .expect("connect to template");
            petrel_api::db::migrate(&pool).await.expect("migrate template");
            pool.close().await;
            admin
                .execute(format!("ALTER DATABASE {building} RENAME TO {template}").as_str())
                .await
                .expect("publish template");
        }
        admin.execute(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})").as_str()).await.expect("unlock");
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name} TEMPLATE {template}").as_str())
            .await
            .expect("create test database");
        admin.close().await.ok();
        let options = pg.connect_options(&name);
        let pool =
            PgPoolOptions::new().max_connections(8).connect_with(options.clone()).await.expect("connect");
        TestDb { name, options, pool }
    }

    /// An empty database (no migrations), for the migration tests.
    pub async fn empty() -> TestDb {
        let pg = cluster().await;
        let mut admin = pg.connect_options("postgres").connect().await.expect("connect to the test cluster");
        let name = format!("e_{}", uuid::Uuid::new_v4().simple());
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        admin.close().await.ok();
        let options = pg.connect_options(&name);
        let pool =
            PgPoolOptions::new().max_connections(4).connect_with(options.clone()).await.expect("connect");
        TestDb { name, options, pool }
    }
}

/// The template's name changes whenever a migration does.
fn template_name() -> String {
    let mut hash = Sha256::new();
    for m in petrel_api::db::MIGRATOR.iter() {
        hash.update(m.version.to_le_bytes());
        hash.update(&*m.checksum);
    }
    format!("tpl_{}", &hex::encode(hash.finalize())[..16])
}

/// The API served over HTTPS on a free port, on its own database and data directory.
pub struct TestServer {
    pub server: Server,
    /// The configuration it runs with (listening on its bound address, for restarts).
    pub config: Config,
    pub db: TestDb,
    pub data_dir: tempfile::TempDir,
    pub ca_pem: Vec<u8>,
    pub admin_password: String,
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with a configuration adjusted by `adjust` (the data directory and database are
    /// the test's own).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let db = TestDb::new().await;
        let data_dir = tempfile::Builder::new().prefix("petrel-test-").tempdir().expect("tempdir");
        let mut config = Config::for_data_dir(data_dir.path().to_path_buf(), Database::Embedded);
        config.admin_password = Some(petrel_api::config::Secret::new(ADMIN_PASSWORD));
        adjust(&mut config);
        petrel_api::bootstrap::ensure_first_admin(&db.pool, &config).await.expect("bootstrap");
        let server = server::start(config.clone(), db.pool.clone()).await.expect("start server");
        config.listen = server.addr;
        let ca_pem = match &server.local_ca {
            Some(ca) => std::fs::read(&ca.cert_path).expect("read CA"),
            None => Vec::new(),
        };
        TestServer { server, config, db, data_dir, ca_pem, admin_password: ADMIN_PASSWORD.into() }
    }

    /// Stops the server; `resume` starts it again on the same address, CA and database.
    pub async fn pause(&mut self) -> Paused {
        let placeholder =
            server::start(self.config_on_any_port(), self.db.pool.clone()).await.expect("placeholder");
        let running = std::mem::replace(&mut self.server, placeholder);
        running.stop().await;
        // The placeholder only held the slot; it must not answer in the real one's place.
        Paused
    }

    pub async fn resume(&mut self, _: Paused) {
        let restarted =
            server::start(self.config.clone(), self.db.pool.clone()).await.expect("restart server");
        let placeholder = std::mem::replace(&mut self.server, restarted);
        placeholder.stop().await;
    }

    fn config_on_any_port(&self) -> Config {
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url, path)
    }

    /// A client that trusts this server's CA (and nothing else) and keeps cookies.
    pub fn client(&self) -> Client {
        Client::new(&self.server.url, &self.ca_pem)
    }

    /// A client signed in as the first administrator.
    pub async fn admin(&self) -> Client {
        let mut c = self.client();
        c.login("admin", &self.admin_password).await.expect("admin login");
        c
    }
}

/// A stopped [`TestServer`] (see [`TestServer::pause`]).
pub struct Paused;

/// A binary of the workspace, built next to this test's executable (`scripts/test.sh` builds
/// them before the run).
/// The processes whose command line contains every one of `needles`: e.g. a test's own tender,
/// found by the path of its image under that test's agent directory.
pub fn processes_running(needles: &[&str]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            needles.iter().all(|n| cmdline.contains(n)).then_some(pid)
        })
        .collect()
}

pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe.parent().and_then(Path::parent).map(|d| d.join(name)).expect("target dir");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// Polls `path` until it answers 200 (background work such as visualizations), for at most a
/// minute; returns that answer.
pub async fn eventually(client: &Client, path: &str) -> client::Resp {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = client.get(path).await;
        if r.status == 200 {
            return r;
        }
        assert!(
            r.status == 409 && std::time::Instant::now() < deadline,
            "{path} never became ready: {} {}",
            r.status,
            r.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs `f` on a thread of its own in a new network namespace with loopback up and a bridge
/// `br0` at `<subnet>.1/24`. Processes and threads started from that thread share the
/// namespace; the test cluster is reached over its Unix socket, so PostgreSQL still answers.
/// Needs root (CAP_NET_ADMIN), as CI has.
pub fn in_netns<T: Send>(subnet: &str, f: impl FnOnce() -> T + Send) -> T {
    let sh = |args: &[&str]| {
        let out = std::process::Command::new(args[0]).args(&args[1..]).output().expect("run ip");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            // SAFETY: unshare only changes this thread's namespace membership.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET) (tests run as root): {}",
                std::io::Error::last_os_error()
            );
            sh(&["ip", "link", "set", "lo", "up"]);
            sh(&["ip", "link", "add", "br0", "type", "bridge"]);
            sh(&["ip", "addr", "add", &format!("{subnet}.1/24"), "dev", "br0"]);
            sh(&["ip", "link", "set", "br0", "up"]);
            f()
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
