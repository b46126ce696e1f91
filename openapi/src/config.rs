//! What `petrel login` remembers: the API's URL, the token and the CA to trust, in
//! `$XDG_CONFIG_HOME/petrel/config.json` (else `~/.config/petrel/`), readable by its owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Stored {
    pub url: String,
    pub token: String,
    /// PEM of the CA that signs the API's certificate; the system's roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no home directory: set HOME or XDG_CONFIG_HOME")]
    NoHome,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a petrel configuration ({source}); run `petrel login` again")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

pub fn path() -> Result<PathBuf, ConfigError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or(ConfigError::NoHome)?).join(".config"),
    };
    Ok(base.join("petrel").join("config.json"))
}

/// The stored configuration, or `None` before the first login.
pub fn load() -> Result<Option<Stored>, ConfigError> {
    let path = path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|source| ConfigError::Corrupt { path, source })
}

/// Writes the configuration with mode 0600, replacing the old one atomically.
pub fn save(stored: &Stored) -> Result<PathBuf, ConfigError> {
    let path = path()?;
    let io = |source| ConfigError::Io { path: path.clone(), source };
    let dir = path.parent().expect("the config file has a directory");
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    let staged = dir.join(".config.json.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staged)
        .map_err(io)?;
    // An older file created with another mode keeps it on reopen: set it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    file.write_all(serde_json::to_string_pretty(stored).expect("config serializes").as_bytes())
        .map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&staged, &path).map_err(io)?;
    Ok(path)
}

pub fn remove() -> Result<bool, ConfigError> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ConfigError::Io { path, source }),
    }
}
