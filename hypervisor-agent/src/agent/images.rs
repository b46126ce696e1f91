//! The image cache: `<state dir>/images/<sha256>`, each file checked against its name.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::client::ClientError;
use super::reconcile::Control;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("{0:?} is not a SHA-256 (64 lowercase hex digits)")]
    BadName(String),
    #[error("fetching image {sha256}: {source}")]
    Fetch { sha256: String, source: ClientError },
    #[error("the image fetched as {want} has SHA-256 {got}")]
    Mismatch { want: String, got: String },
    #[error("image cache {path}: {source}")]
    Io { path: String, source: io::Error },
}

impl ImageError {
    /// Worth trying again later (the API was unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ImageError::Fetch { source, .. } if source.is_retryable())
    }
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
}

/// A partial download, removed unless it was renamed into place (also when the download's
/// future is dropped because the deployment was stopped meanwhile).
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl ImageCache {
    /// Creates the directory; left-over partial downloads of an earlier run are removed.
    pub fn open(dir: &Path) -> Result<ImageCache, ImageError> {
        let io = |source| ImageError::Io { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".part") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(ImageCache { dir: dir.to_owned() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a verified image, fetched through `control` when missing or damaged.
    pub async fn get<C: Control>(&self, control: &C, sha256: &str) -> Result<PathBuf, ImageError> {
        if !is_sha256(sha256) {
            return Err(ImageError::BadName(sha256.to_owned()));
        }
        let path = self.dir.join(sha256);
        let io = |source| ImageError::Io { path: path.display().to_string(), source };
        match hash_file(&path).await {
            Ok(got) if got == sha256 => {
                touch(&path);
                return Ok(path);
            }
            Ok(got) => {
                tracing::warn!(%sha256, %got, "a cached image was damaged; fetching it again");
                tokio::fs::remove_file(&path).await.map_err(io)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        static N: AtomicU64 = AtomicU64::new(0);
        let partial = Partial(self.dir.join(format!(
            "{sha256}.{}.{}.part",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )));
        control
            .fetch_image(sha256, &partial.0)
            .await
            .map_err(|source| ImageError::Fetch { sha256: sha256.to_owned(), source })?;
        let got = hash_file(&partial.0).await.map_err(io)?;
        if got != sha256 {
            return Err(ImageError::Mismatch { want: sha256.to_owned(), got });
        }
        tokio::fs::rename(&partial.0, &path).await.map_err(io)?;
        Ok(path)
    }

    /// Removes cached images that no assignment uses and none used for `unused_for`: a
    /// redeployment, or a rollback to the image an update replaced, finds it still here.
    pub fn prune(&self, keep: &HashSet<String>, unused_for: std::time::Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let idle = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|used| used.elapsed().ok())
                .is_none_or(|idle| idle >= unused_for);
            if is_sha256(&name) && !keep.contains(&name) && idle {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => tracing::debug!(sha256 = %name, "removed an unused image"),
                    Err(e) => tracing::warn!(sha256 = %name, "cannot remove an unused image: {e}"),
                }
            }
        }
    }
}

/// Marks a cached image as just used (its modification time), for [`ImageCache::prune`].
fn touch(path: &Path) {
    let now = std::time::SystemTime::now();
    if let Err(e) = std::fs::File::options().write(true).open(path).and_then(|f| f.set_modified(now)) {
        tracing::debug!(path = %path.display(), "cannot mark an image as used: {e}");
    }
}

/// Lowercase hex SHA-256 of a file, hashed off the async threads.
pub async fn hash_file(path: &Path) -> io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_names() {
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256(&"AB".repeat(32)));
        assert!(!is_sha256("../../etc/passwd"));
        assert!(!is_sha256(&"a".repeat(63)));
    }
}
