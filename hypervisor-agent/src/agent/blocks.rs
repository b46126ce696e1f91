//! The block devices this host keeps: `<state dir>/blocks/<id>`, plain files of whole MiB
//! (as albatross' `<dbdir>/block/<name>`). They outlive the agent and its restarts; a file goes
//! only when the API no longer lists its device.
//!
//! A device's file is made (zeroed, sparse) as soon as it is assigned, before any deployment
//! that uses it starts. Uploads are written into a copy that replaces the file in one rename, so
//! a crash leaves the old contents or the new, never a mix. Neither uploads nor copies for
//! downloads touch a device a running unikernel uses (the API refuses them too).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use petrel_wire::deployments::{AgentBlockDevice, BlockReport};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::client::{ApiClient, ClientError};

const MIB: u64 = 1024 * 1024;

pub struct BlockStore {
    dir: PathBuf,
    /// The last upload written and copy sent per device: a stale assignment does not redo them.
    written: HashMap<Uuid, i64>,
    exported: HashMap<Uuid, i64>,
}

impl BlockStore {
    /// Creates the directory; partial uploads of an earlier run are removed.
    pub fn open(dir: &Path) -> io::Result<BlockStore> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".part") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(BlockStore { dir: dir.to_owned(), written: HashMap::new(), exported: HashMap::new() })
    }

    /// The file backing a block device.
    pub fn path(dir: &Path, id: Uuid) -> PathBuf {
        dir.join(id.to_string())
    }

    /// Makes the file of every assigned device that has none yet: zeroed, of its size.
    pub fn create_missing(&self, devices: &[AgentBlockDevice]) {
        for device in devices {
            let path = Self::path(&self.dir, device.id);
            if path.exists() {
                continue;
            }
            if let Err(e) = create_zeroed(&path, device.size_mib as u64 * MIB) {
                tracing::error!(block_device = %device.id, "creating {}: {e}", path.display());
            }
        }
    }

    /// Writes pending uploads and sends wanted copies of the devices no running unikernel uses
    /// (`in_use`). Failures the API should know of are reported; an unreachable API leaves the
    /// work for the next pass.
    pub async fn sync(&mut self, client: &ApiClient, devices: &[AgentBlockDevice], in_use: &HashSet<Uuid>) {
        for device in devices {
            let id = device.id;
            let pending_upload = device.content_version > device.applied_version
                && self.written.get(&id).is_none_or(|v| *v < device.content_version);
            let pending_export = device.export_requested > device.export_version
                && self.exported.get(&id).is_none_or(|v| *v < device.export_requested);
            if !pending_upload && !pending_export {
                continue;
            }
            if in_use.contains(&id) {
                // Only a copy can be asked for meanwhile (the API refuses uploads to attached devices).
                if pending_export {
                    let report = BlockReport {
                        failed_export: Some(device.export_requested),
                        message: Some("a running unikernel uses the block device".into()),
                        ..Default::default()
                    };
                    if self.report(client, id, &report).await {
                        self.exported.insert(id, device.export_requested);
                    }
                }
                continue;
            }
            if pending_upload {
                let version = device.content_version;
                let report = match self.write_upload(client, device).await {
                    Ok(()) => {
                        tracing::info!(block_device = %id, version, "upload written");
                        BlockReport { applied_version: Some(version), ..Default::default() }
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(block_device = %id, "upload: {e}; trying again later");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(block_device = %id, "upload not written: {e}");
                        BlockReport {
                            failed_version: Some(version),
                            message: Some(e.to_string()),
                            ..Default::default()
                        }
                    }
                };
                if self.report(client, id, &report).await {
                    self.written.insert(id, version);
                }
            }
            if pending_export {
                let number = device.export_requested;
                let path = Self::path(&self.dir, id);
                match export(client, id, number, &path).await {
                    Ok(()) => {
                        tracing::info!(block_device = %id, number, "copy sent");
                        self.exported.insert(id, number);
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(block_device = %id, "copy: {e}; trying again later")
                    }
                    Err(e) => {
                        let report = BlockReport {
                            failed_export: Some(number),
                            message: Some(e.to_string()),
                            ..Default::default()
                        };
                        if self.report(client, id, &report).await {
                            self.exported.insert(id, number);
                        }
                    }
                }
            }
        }
    }

    /// Whether the report arrived (or was refused for good: nothing to retry).
    async fn report(&self, client: &ApiClient, id: Uuid, report: &BlockReport) -> bool {
        match client.report_block(id, report).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(block_device = %id, "report: {e}");
                !e.is_retryable()
            }
        }
    }

    /// Fetches the upload into `<id>.part`, checks it, zero-fills it to the device's size and
    /// renames it over the device's file.
    async fn write_upload(&self, client: &ApiClient, device: &AgentBlockDevice) -> Result<(), ClientError> {
        let path = Self::path(&self.dir, device.id);
        let part = path.with_extension("part");
        let capacity = device.size_mib as u64 * MIB;
        let result = async {
            client.block_content(device.id, &part, capacity).await?;
            let local = |e: io::Error| ClientError::Local(format!("{}: {e}", part.display()));
            let file = std::fs::OpenOptions::new().write(true).open(&part).map_err(local)?;
            file.set_len(capacity).and_then(|()| file.sync_all()).map_err(local)?;
            std::fs::rename(&part, &path).map_err(|e| ClientError::Local(format!("{}: {e}", path.display())))
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result
    }

    /// Deletes the files of devices the API no longer lists (never one a unikernel uses).
    pub fn prune(&mut self, devices: &[AgentBlockDevice], in_use: &HashSet<Uuid>) {
        let keep: HashSet<String> = devices.iter().map(|d| d.id.to_string()).collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(id) = name.parse::<Uuid>() else { continue };
            if keep.contains(&name) || in_use.contains(&id) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(block_device = %id, "deleted"),
                Err(e) => tracing::warn!(block_device = %id, "deleting: {e}"),
            }
            self.written.remove(&id);
            self.exported.remove(&id);
        }
    }
}

/// A zeroed file of `size` bytes without writing them (sparse), made under a temporary name.
fn create_zeroed(path: &Path, size: u64) -> io::Result<()> {
    let part = path.with_extension("part");
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&part)?;
    file.set_len(size)?;
    file.sync_all()?;
    std::fs::rename(&part, path)
}

/// Hashes the device's file, then sends it as copy `number`.
async fn export(client: &ApiClient, id: Uuid, number: i64, path: &Path) -> Result<(), ClientError> {
    let local = |e: io::Error| ClientError::Local(format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(local)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = file.read(&mut buf).await.map_err(local)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha256 = hex::encode(hasher.finalize());
    client.export_block(id, number, path, &sha256).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_devices_are_zeroed_files_of_their_size_and_unlisted_ones_go() {
        let dir = std::env::temp_dir().join(format!("petrel-blocks-{}", std::process::id()));
        let mut store = BlockStore::open(&dir).unwrap();
        let device = |id, size_mib| AgentBlockDevice {
            id,
            size_mib,
            content_version: 0,
            applied_version: 0,
            export_requested: 0,
            export_version: 0,
        };
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        store.create_missing(&[device(a, 2), device(b, 1)]);
        let bytes = std::fs::read(BlockStore::path(&dir, a)).unwrap();
        assert_eq!(bytes.len(), 2 * 1024 * 1024);
        assert!(bytes.iter().all(|b| *b == 0));
        // An existing file keeps its contents.
        std::fs::write(BlockStore::path(&dir, b), b"data").unwrap();
        store.create_missing(&[device(b, 1)]);
        assert_eq!(std::fs::read(BlockStore::path(&dir, b)).unwrap(), b"data");
        // b is no longer listed but in use: kept; a is gone.
        store.prune(&[], &HashSet::from([b]));
        assert!(!BlockStore::path(&dir, a).exists());
        assert!(BlockStore::path(&dir, b).exists());
        store.prune(&[], &HashSet::new());
        assert!(!BlockStore::path(&dir, b).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
