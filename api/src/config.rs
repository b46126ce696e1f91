//! The API's configuration: defaults, then an optional TOML file, then `PETREL_*` environment
//! variables, then command-line flags. Every option is documented by `petrel-api --help`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// A secret string (database URL with password, initial admin password): never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every option, each one optional: the layers are merged field by field.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A TOML file with any of these options (snake_case keys, e.g. `data_dir = "/var/lib/petrel"`).
    #[arg(long, env = "PETREL_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Where the embedded PostgreSQL cluster, the TLS CA and the artifact store live.
    /// [default: ./.petrel]
    #[arg(long, env = "PETREL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address and port to serve on. [default: 127.0.0.1:8443]
    #[arg(long, env = "PETREL_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// PostgreSQL server to use instead of the embedded cluster (also read from DATABASE_URL).
    #[arg(long, env = "PETREL_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Connections in the database pool. [default: 16]
    #[arg(long, env = "PETREL_DB_MAX_CONNECTIONS", value_name = "N")]
    pub db_max_connections: Option<u32>,

    /// PEM certificate chain to serve; without it a local CA and certificate are generated.
    #[arg(long, env = "PETREL_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "PETREL_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Extra DNS names or IP addresses for the generated server certificate (comma-separated).
    /// localhost, 127.0.0.1, ::1 and the host name are always included.
    #[arg(long, env = "PETREL_TLS_SAN", value_name = "NAMES", value_delimiter = ',')]
    pub tls_san: Option<Vec<String>>,

    /// Serve plain HTTP (only behind a TLS-terminating proxy); requires an explicit --listen.
    #[arg(long, env = "PETREL_PLAIN_HTTP", value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub plain_http: Option<bool>,

    /// Take the client address from X-Forwarded-For (only behind a trusted proxy). [default: false]
    #[arg(long, env = "PETREL_TRUST_FORWARDED_FOR", value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub trust_forwarded_for: Option<bool>,

    /// The URL people and workers reach this server at, for printed links.
    /// [default: https://localhost:<port>]
    #[arg(long, env = "PETREL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Browser sessions expire after this many seconds without use. [default: 43200]
    #[arg(long, env = "PETREL_SESSION_TTL_SECS", value_name = "SECS")]
    pub session_ttl_secs: Option<u64>,

    /// Name of the administrator created on first start. [default: admin]
    #[arg(long, env = "PETREL_ADMIN_USERNAME", value_name = "NAME")]
    pub admin_username: Option<String>,

    /// Password of that administrator; generated and written to <data-dir>/initial-admin-password
    /// when not given.
    #[arg(long, env = "PETREL_ADMIN_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub admin_password: Option<Secret>,

    /// Failed logins per account within the window before logins are refused. [default: 5]
    #[arg(long, env = "PETREL_LOGIN_MAX_FAILURES_PER_USER", value_name = "N")]
    pub login_max_failures_per_user: Option<u32>,

    /// Failed logins per client address within the window. [default: 20]
    #[arg(long, env = "PETREL_LOGIN_MAX_FAILURES_PER_IP", value_name = "N")]
    pub login_max_failures_per_ip: Option<u32>,

    /// The login rate-limit window in seconds. [default: 900]
    #[arg(long, env = "PETREL_LOGIN_WINDOW_SECS", value_name = "SECS")]
    pub login_window_secs: Option<u64>,

    /// Largest JSON request body in bytes. [default: 1048576]
    #[arg(long, env = "PETREL_MAX_JSON_BYTES", value_name = "BYTES")]
    pub max_json_bytes: Option<usize>,

    /// Directory of the built SPA (index.html and assets). [default: frontend/dist if present]
    #[arg(long, env = "PETREL_FRONTEND_DIR", value_name = "DIR")]
    pub frontend_dir: Option<PathBuf>,

    /// Where artifacts are stored: a directory, or s3://bucket[/prefix] with the standard AWS_*
    /// variables for credentials and endpoint. [default: <data-dir>/artifacts]
    #[arg(long, env = "PETREL_ARTIFACT_STORE", value_name = "DIR|URL")]
    pub artifact_store: Option<String>,

    /// Largest artifact in bytes. [default: 4294967296]
    #[arg(long, env = "PETREL_MAX_ARTIFACT_BYTES", value_name = "BYTES")]
    pub max_artifact_bytes: Option<u64>,

    /// Largest build (all its artifacts) in bytes. [default: 17179869184]
    #[arg(long, env = "PETREL_MAX_BUILD_BYTES", value_name = "BYTES")]
    pub max_build_bytes: Option<u64>,

    /// Unfinished uploads are discarded after this many seconds. [default: 86400]
    #[arg(long, env = "PETREL_UPLOAD_TTL_SECS", value_name = "SECS")]
    pub upload_ttl_secs: Option<u64>,

    /// A worker's hold on a claimed build lasts this many seconds unless renewed by a
    /// heartbeat; then the build is queued again. [default: 60]
    #[arg(long, env = "PETREL_WORKER_LEASE_SECS", value_name = "SECS")]
    pub worker_lease_secs: Option<u64>,

    /// Also run one build worker on this machine (`petrel-worker`, found next to this
    /// binary), registered as the shared worker `local`, with its files in <data-dir>/local-worker.
    #[arg(long, env = "PETREL_LOCAL_WORKER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub local_worker: Option<bool>,

    /// Also run one KVM agent on this machine (`petrel-agent`, next to this binary) when
    /// /dev/kvm is usable, with the bridge `petrel0` (created when missing), its files in
    /// <data-dir>/local-agent.
    #[arg(long, env = "PETREL_LOCAL_AGENT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub local_agent: Option<bool>,

    /// Log lines as human-readable text or JSON. [default: text]
    #[arg(long, env = "PETREL_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid option {option}: {message}")]
    Invalid { option: &'static str, message: String },
    #[error("cannot determine the current directory: {0}")]
    CurrentDir(std::io::Error),
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum Database {
    /// Petrel runs its own cluster under `<data_dir>/postgres`.
    Embedded,
    External(Secret),
}

#[derive(Debug, Clone)]
pub enum Tls {
    /// Generate (once) a local CA and a server certificate for these extra names.
    Generated {
        extra_names: Vec<String>,
    },
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    PlainHttp,
}

#[derive(Debug, Clone)]
pub struct LoginLimits {
    pub max_failures_per_user: u32,
    pub max_failures_per_ip: u32,
    pub window: Duration,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database: Database,
    pub db_max_connections: u32,
    pub tls: Tls,
    pub trust_forwarded_for: bool,
    pub public_url: Option<String>,
    pub session_ttl: Duration,
    pub admin_username: String,
    pub admin_password: Option<Secret>,
    pub login_limits: LoginLimits,
    pub max_json_bytes: usize,
    pub frontend_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    pub artifact_store: String,
    pub max_artifact_bytes: u64,
    pub max_build_bytes: u64,
    pub upload_ttl: Duration,
    pub worker_lease: Duration,
    pub local_worker: bool,
    pub local_agent: bool,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

impl Settings {
    /// Reads the TOML file named by `path`.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })
    }

    /// Field by field, `self` wins over `lower`.
    pub fn over(self, lower: Settings) -> Settings {
        Settings {
            config: self.config.or(lower.config),
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            database_url: self.database_url.or(lower.database_url),
            db_max_connections: self.db_max_connections.or(lower.db_max_connections),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_san: self.tls_san.or(lower.tls_san),
            plain_http: self.plain_http.or(lower.plain_http),
            trust_forwarded_for: self.trust_forwarded_for.or(lower.trust_forwarded_for),
            public_url: self.public_url.or(lower.public_url),
            session_ttl_secs: self.session_ttl_secs.or(lower.session_ttl_secs),
            admin_username: self.admin_username.or(lower.admin_username),
            admin_password: self.admin_password.or(lower.admin_password),
            login_max_failures_per_user: self
                .login_max_failures_per_user
                .or(lower.login_max_failures_per_user),
            login_max_failures_per_ip: self.login_max_failures_per_ip.or(lower.login_max_failures_per_ip),
            login_window_secs: self.login_window_secs.or(lower.login_window_secs),
            max_json_bytes: self.max_json_bytes.or(lower.max_json_bytes),
            frontend_dir: self.frontend_dir.or(lower.frontend_dir),
            artifact_store: self.artifact_store.or(lower.artifact_store),
            max_artifact_bytes: self.max_artifact_bytes.or(lower.max_artifact_bytes),
            max_build_bytes: self.max_build_bytes.or(lower.max_build_bytes),
            upload_ttl_secs: self.upload_ttl_secs.or(lower.upload_ttl_secs),
            worker_lease_secs: self.worker_lease_secs.or(lower.worker_lease_secs),
            local_worker: self.local_worker.or(lower.local_worker),
            local_agent: self.local_agent.or(lower.local_agent),
            log_format: self.log_format.or(lower.log_format),
        }
    }

    /// Merges `self` (flags and environment, as clap read them) over the file it names and
    /// `DATABASE_URL`, then applies the defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let from_file = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let generic_database_url = Settings {
            database_url: std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()).map(Secret),
            ..Settings::default()
        };
        self.over(generic_database_url).over(from_file).into_config()
    }

    fn into_config(self) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().map_err(ConfigError::CurrentDir)?;
        let absolute = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
        let data_dir = absolute(self.data_dir.unwrap_or_else(|| PathBuf::from(".petrel")));
        let plain_http = self.plain_http.unwrap_or(false);
        if plain_http && self.listen.is_none() {
            return Err(ConfigError::Invalid {
                option: "--plain-http",
                message: "plain HTTP is served only on an address given explicitly with --listen".into(),
            });
        }
        let listen = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let tls = match (plain_http, self.tls_cert, self.tls_key) {
            (true, Some(_), _) => {
                return Err(ConfigError::Invalid {
                    option: "--plain-http",
                    message: "cannot be combined with --tls-cert".into(),
                });
            }
            (true, None, _) => Tls::PlainHttp,
            (false, Some(cert), Some(key)) => Tls::Files { cert: absolute(cert), key: absolute(key) },
            (false, _, _) => Tls::Generated { extra_names: self.tls_san.unwrap_or_default() },
        };
        let database = match self.database_url {
            Some(url) => Database::External(url),
            None => Database::Embedded,
        };
        let admin_username = self.admin_username.unwrap_or_else(|| "admin".into());
        if !crate::validate::is_username(&admin_username) {
            return Err(ConfigError::Invalid {
                option: "--admin-username",
                message: "1 to 64 characters of A-Z a-z 0-9 . _ -".into(),
            });
        }
        if let Some(p) = &self.admin_password
            && let Err(message) = crate::validate::password(p.expose())
        {
            return Err(ConfigError::Invalid { option: "--admin-password", message });
        }
        let frontend_dir = self.frontend_dir.map(absolute).or_else(|| {
            let default = cwd.join("frontend/dist");
            default.join("index.html").is_file().then_some(default)
        });
        let artifact_store =
            self.artifact_store.unwrap_or_else(|| data_dir.join("artifacts").to_string_lossy().into_owned());
        Ok(Config {
            artifact_store,
            max_artifact_bytes: self.max_artifact_bytes.unwrap_or(4 << 30).max(1),
            max_build_bytes: self.max_build_bytes.unwrap_or(16 << 30).max(1),
            upload_ttl: Duration::from_secs(self.upload_ttl_secs.unwrap_or(86_400).max(60)),
            worker_lease: Duration::from_secs(self.worker_lease_secs.unwrap_or(60).clamp(2, 3600)),
            local_worker: self.local_worker.unwrap_or(false),
            local_agent: self.local_agent.unwrap_or(false),
            data_dir,
            listen,
            database,
            db_max_connections: self.db_max_connections.unwrap_or(16).max(2),
            tls,
            trust_forwarded_for: self.trust_forwarded_for.unwrap_or(false),
            public_url: self.public_url,
            session_ttl: Duration::from_secs(self.session_ttl_secs.unwrap_or(12 * 3600).max(60)),
            admin_username,
            admin_password: self.admin_password,
            login_limits: LoginLimits {
                max_failures_per_user: self.login_max_failures_per_user.unwrap_or(5).max(1),
                max_failures_per_ip: self.login_max_failures_per_ip.unwrap_or(20).max(1),
                window: Duration::from_secs(self.login_window_secs.unwrap_or(900).max(1)),
            },
            max_json_bytes: self.max_json_bytes.unwrap_or(1024 * 1024).max(1024),
            frontend_dir,
            log_format: self.log_format.unwrap_or(LogFormat::Text),
        })
    }
}

impl Config {
    /// A configuration for tests and embedding: defaults, the given data directory and database,
    /// port 0 on loopback.
    pub fn for_data_dir(data_dir: PathBuf, database: Database) -> Config {
        let mut config = Settings {
            data_dir: Some(data_dir),
            listen: Some("127.0.0.1:0".parse().expect("valid address")),
            ..Settings::default()
        }
        .into_config()
        .expect("defaults are valid");
        config.database = database;
        config
    }

    /// The local worker's files (`--local-worker`).
    pub fn local_worker_dir(&self) -> PathBuf {
        self.data_dir.join("local-worker")
    }

    /// The local agent's state directory (`--local-agent`).
    pub fn local_agent_dir(&self) -> PathBuf {
        self.data_dir.join("local-agent")
    }

    pub fn local_worker_credential(&self) -> PathBuf {
        self.local_worker_dir().join("credential")
    }

    /// The URL printed for people and used in links.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let scheme = if matches!(self.tls, Tls::PlainHttp) { "http" } else { "https" };
        let host = if bound.ip().is_loopback() || bound.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            bound.ip().to_string()
        };
        format!("{scheme}://{host}:{}", bound.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings {
            database_url: Some(Secret::new("postgres://u:hunter2@db/petrel")),
            admin_password: Some(Secret::new("hunter2hunter2")),
            ..Settings::default()
        };
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let file: Settings = toml::from_str("listen = \"127.0.0.1:9000\"\nsession_ttl_secs = 600\n").unwrap();
        let flags = Settings { listen: Some("127.0.0.1:9100".parse().unwrap()), ..Settings::default() };
        let config = flags.over(file).into_config().unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.session_ttl, Duration::from_secs(600));
        assert_eq!(config.admin_username, "admin");
        assert!(matches!(config.tls, Tls::Generated { .. }));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
    }

    #[test]
    fn plain_http_needs_an_explicit_address() {
        let s = Settings { plain_http: Some(true), ..Settings::default() };
        assert!(matches!(s.into_config(), Err(ConfigError::Invalid { option: "--plain-http", .. })));
    }
}
