//! Petrel's own PostgreSQL cluster, for single-machine use without `DATABASE_URL`.
//!
//! The cluster lives in `<data-dir>/postgres`, listens only on a Unix socket in a private
//! directory (no TCP), and is started with the system's `initdb`/`pg_ctl`. PostgreSQL refuses to
//! run as root, so when Petrel runs as root the cluster belongs to the `postgres` system user.
//! A cluster left running by a killed Petrel is adopted on the next start.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;
const SUPERUSER: &str = "petrel";
pub const DATABASE: &str = "petrel";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found; install them \
         (Debian: apt-get install postgresql) or set DATABASE_URL"
    )]
    NoBinaries,
    #[error(
        "running as root, the embedded PostgreSQL must run as the system user `postgres`, which \
         does not exist (Debian's postgresql package creates it)"
    )]
    NoPostgresUser,
    #[error(
        "the embedded PostgreSQL runs as user `postgres`, which cannot reach {0}; choose a \
         --data-dir whose parent directories are world-searchable (e.g. under /var/lib or /srv)"
    )]
    Unreachable(PathBuf),
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot create the database: {0}")]
    CreateDatabase(sqlx::Error),
}

/// Who runs the cluster's processes.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

#[derive(Debug)]
pub struct EmbeddedPostgres {
    root: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
}

/// How the cluster trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on: the default for real data.
    Durable,
    /// fsync off: for throw-away test clusters only.
    Ephemeral,
}

impl EmbeddedPostgres {
    /// Prepares (initdb on first use) and starts the cluster in `root`, or adopts it if it is
    /// already running; then makes sure the `petrel` database exists.
    pub async fn start(root: &Path, durability: Durability) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::NoBinaries)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let run_as = if unsafe { libc::geteuid() } == 0 { Some(postgres_user()?) } else { None };
        let pg = EmbeddedPostgres { root: root.to_path_buf(), bin_dir, run_as };
        pg.prepare_dirs()?;
        if !pg.data_dir().join("PG_VERSION").exists() {
            pg.initdb(durability)?;
        }
        if !pg.is_running() {
            pg.pg_ctl_start(durability)?;
        }
        pg.ensure_database().await?;
        Ok(pg)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Connection options for a database of this cluster.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// A libpq-style URL for tools such as psql.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@localhost:{SOCKET_PORT}/{database}?host={}",
            self.socket_dir().display()
        )
    }

    /// Stops the cluster (fast shutdown: open transactions roll back, committed data stays).
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl stop",
            self.command("pg_ctl").arg("stop").arg("-D").arg(&data).args(["-m", "fast", "-w", "-t", "60"]),
        )?;
        tracing::info!("embedded PostgreSQL stopped: {}", String::from_utf8_lossy(&out.stdout).trim());
        Ok(())
    }

    fn prepare_dirs(&self) -> Result<(), EmbeddedError> {
        for dir in [self.root.clone(), self.data_dir(), self.socket_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| EmbeddedError::Io { path: dir.clone(), source })?;
            // Only the cluster's owner may read its files or reach its socket (auth is "trust"
            // on that socket, so the directory's permissions are the access control).
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|source| EmbeddedError::Io { path: dir.clone(), source })?;
            if let Some(user) = self.run_as {
                std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid))
                    .map_err(|source| EmbeddedError::Io { path: dir.clone(), source })?;
            }
        }
        if self.run_as.is_some() {
            // The cluster's user must be able to walk down to its directory.
            let reachable = self.command("test").arg("-x").arg(&self.root).status().map(|s| s.success());
            if !matches!(reachable, Ok(true)) {
                return Err(EmbeddedError::Unreachable(self.root.clone()));
            }
        }
        Ok(())
    }

    fn initdb(&self, durability: Durability) -> Result<(), EmbeddedError> {
        tracing::info!(dir = %self.data_dir().display(), "initialising the embedded PostgreSQL cluster");
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(self.data_dir()).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]);
        if durability == Durability::Ephemeral {
            cmd.arg("--no-sync");
        }
        self.run("initdb", &mut cmd)?;
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn pg_ctl_start(&self, durability: Durability) -> Result<(), EmbeddedError> {
        let mut options = format!(
            "-k {} -p {SOCKET_PORT} -c listen_addresses='' -c unix_socket_permissions=0700",
            shell_quote(&self.socket_dir())
        );
        if durability == Durability::Ephemeral {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        options.push_str(" -c max_connections=200");
        let log = self.log_file();
        self.run(
            "pg_ctl start",
            self.command("pg_ctl")
                .arg("start")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options]),
        )
        .map_err(|e| match e {
            EmbeddedError::Command { what, detail } => {
                EmbeddedError::Command { what, detail: format!("{detail}\n{}", tail_of(&log)) }
            }
            other => other,
        })?;
        Ok(())
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let mut conn =
            self.connect_options("postgres").connect().await.map_err(EmbeddedError::CreateDatabase)?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE)
            .fetch_one(&mut conn)
            .await
            .map_err(EmbeddedError::CreateDatabase)?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
                .execute(&mut conn)
                .await
                .map_err(EmbeddedError::CreateDatabase)?;
        }
        conn.close().await.map_err(EmbeddedError::CreateDatabase)?;
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let path = if program == "test" { PathBuf::from("test") } else { self.bin_dir.join(program) };
        let mut cmd = Command::new(path);
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some(user) = self.run_as {
            cmd.uid(user.uid).gid(user.gid).current_dir("/");
        }
        cmd
    }

    fn run(&self, what: &str, cmd: &mut Command) -> Result<Output, EmbeddedError> {
        let out =
            cmd.output().map_err(|e| EmbeddedError::Command { what: what.into(), detail: e.to_string() })?;
        if !out.status.success() {
            return Err(EmbeddedError::Command {
                what: what.into(),
                detail: format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(out)
    }
}

/// `PETREL_PG_BIN_DIR`, else the newest `/usr/lib/postgresql/<v>/bin`, else `initdb` on PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |d: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|t| d.join(t).is_file());
    if let Some(dir) = std::env::var_os("PETREL_PG_BIN_DIR").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_tools(d))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has_tools(d))
}

fn postgres_user() -> Result<RunAs, EmbeddedError> {
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam gets a valid NUL-terminated string; the returned record is read at once,
    // before any other call that could overwrite its static storage (we are in startup code).
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(EmbeddedError::NoPostgresUser);
    }
    // SAFETY: non-null pointer from getpwnam to a valid passwd record.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(RunAs { uid, gid })
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn tail_of(log: &Path) -> String {
    std::fs::read_to_string(log)
        .map(|s| {
            s.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        })
        .unwrap_or_default()
}
