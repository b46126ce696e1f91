//! Results kept on disk until the API accepts them. A finished build is moved here whole
//! (metadata, artifacts, recorded inputs) before the upload starts, so neither an API outage
//! nor a worker restart loses it. Entries appear atomically (written aside, then renamed).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use petrel_wire::builds::{Build, OpenUpload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::client::{ApiClient, ClientError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub job_id: Uuid,
    pub meta: OpenUpload,
    pub artifacts: Vec<SpooledArtifact>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledArtifact {
    /// The artifact's path in the build.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Where an artifact's bytes come from when spooling.
pub enum Source {
    /// A file to move into the spool (the build's output).
    File(PathBuf),
    Bytes(Vec<u8>),
}

pub struct Spool {
    root: PathBuf,
}

impl Spool {
    pub fn open(root: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(root)?;
        set_private(root)?;
        Ok(Spool { root: root.to_path_buf() })
    }

    fn entry(&self, build_id: Uuid) -> PathBuf {
        self.root.join(build_id.to_string())
    }

    /// The stored bytes of a spooled entry's `index`th artifact.
    pub fn file(&self, build_id: Uuid, index: usize) -> PathBuf {
        self.entry(build_id).join("files").join(index.to_string())
    }

    /// Keeps a finished build's result; returns what was kept.
    pub fn store(
        &self,
        build_id: Uuid,
        job_id: Uuid,
        meta: OpenUpload,
        files: Vec<(String, Source)>,
    ) -> std::io::Result<Pending> {
        let partial = self.root.join(format!("{build_id}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(partial.join("files"))?;
        let mut artifacts = Vec::with_capacity(files.len());
        for (index, (path, source)) in files.into_iter().enumerate() {
            let target = partial.join("files").join(index.to_string());
            match source {
                Source::File(from) => {
                    if std::fs::rename(&from, &target).is_err() {
                        std::fs::copy(&from, &target)?;
                    }
                }
                Source::Bytes(bytes) => std::fs::write(&target, bytes)?,
            }
            let (sha256, size) = hash_file(&target)?;
            artifacts.push(SpooledArtifact { path, sha256, size });
        }
        let pending = Pending { job_id, meta, artifacts };
        let mut f = std::fs::File::create(partial.join("result.json"))?;
        f.write_all(&serde_json::to_vec_pretty(&pending).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&partial, self.entry(build_id))?;
        Ok(pending)
    }

    /// Every kept result, oldest first; half-written entries are removed.
    pub fn pending(&self) -> std::io::Result<Vec<(Uuid, Pending)>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") {
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            let Ok(build_id) = name.parse::<Uuid>() else { continue };
            let Ok(bytes) = std::fs::read(entry.path().join("result.json")) else { continue };
            match serde_json::from_slice::<Pending>(&bytes) {
                Ok(p) => found.push((entry.metadata()?.modified()?, build_id, p)),
                Err(e) => tracing::warn!(build = %build_id, "unreadable spooled result: {e}"),
            }
        }
        found.sort_by_key(|(modified, _, _)| *modified);
        Ok(found.into_iter().map(|(_, id, p)| (id, p)).collect())
    }

    pub fn remove(&self, build_id: Uuid) {
        let _ = std::fs::remove_dir_all(self.entry(build_id));
    }

    /// Sends a kept result: opens (or re-opens) the upload, sends the artifacts the API does
    /// not have yet, finalizes. Every step may be repeated after a failure.
    pub async fn deliver(
        &self,
        client: &ApiClient,
        build_id: Uuid,
        pending: &Pending,
    ) -> Result<Build, ClientError> {
        let mut meta = pending.meta.clone();
        meta.build_id = Some(build_id);
        let upload = client.open_upload(pending.job_id, &meta).await?;
        for (index, artifact) in pending.artifacts.iter().enumerate() {
            let present =
                upload.artifacts.iter().any(|a| a.path == artifact.path && a.sha256 == artifact.sha256);
            if !present {
                client
                    .put_artifact(
                        upload.id,
                        &artifact.path,
                        &self.file(build_id, index),
                        &artifact.sha256,
                        artifact.size,
                    )
                    .await?;
            }
        }
        client.finalize(upload.id).await
    }
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Results may hold a tenant's unpublished binaries: only the worker's user reads them.
fn set_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use petrel_wire::builds::BuildResult;

    #[test]
    fn stored_results_come_back_whole_and_partial_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let output = dir.path().join("out.bin");
        std::fs::write(&output, b"hello").unwrap();
        let meta = OpenUpload {
            platform: "debian-12-x86_64".into(),
            build_id: None,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            result: BuildResult::Exited { code: 0 },
            script: None,
            worker: None,
            timed_out: false,
        };
        let build = Uuid::new_v4();
        let kept = spool
            .store(
                build,
                Uuid::new_v4(),
                meta,
                vec![
                    ("bin/out.bin".into(), Source::File(output.clone())),
                    ("x".into(), Source::Bytes(b"y".to_vec())),
                ],
            )
            .unwrap();
        assert!(!output.exists(), "the output is moved, not copied");
        assert_eq!(kept.artifacts[0].sha256, hex::encode(Sha256::digest(b"hello")));
        assert_eq!(kept.artifacts[1].size, 1);
        std::fs::create_dir_all(dir.path().join(format!("{}.partial", Uuid::new_v4()))).unwrap();
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0, build);
        assert_eq!(std::fs::read(spool.file(build, 0)).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the kept entry remains");
        spool.remove(build);
        assert!(spool.pending().unwrap().is_empty());
    }
}
