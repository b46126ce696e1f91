//! The artifact store: content-addressed blobs (key = SHA-256) in any `object_store` backend —
//! local files under the data directory by default (two-hex fan-out, as builder-web), or an
//! S3-compatible service.
//!
//! Uploads are streamed to a staging file while hashing; only a verified file is put into the
//! store, so a blob's key always matches its content. With the local store the verified file is
//! renamed into place (no second copy); reads stream the file in large chunks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{GetResultPayload, ObjectStore, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store: {0}")]
    Backend(#[from] object_store::Error),
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid artifact store URL {0:?}: use a directory path or s3://bucket[/prefix]")]
    BadUrl(String),
}

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The same store when it is local files, for renaming staged files into place.
    local: Option<Arc<LocalFileSystem>>,
    prefix: String,
    /// Where uploads are staged before they are verified.
    pub staging: PathBuf,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({}, prefix {:?})", self.inner, self.prefix)
    }
}

/// Parts above this size go up in several requests.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Reads of local blobs: object_store's own stream reads 8 KiB per blocking task, which caps
/// a download at a few hundred MB/s; this is what one chunk in flight costs in memory.
const READ_CHUNK: usize = 256 * 1024;

impl BlobStore {
    /// `location` is a directory (local store) or `s3://bucket[/prefix]` (credentials and
    /// endpoint from the standard `AWS_*` environment variables).
    pub fn open(location: &str, staging: &Path) -> Result<BlobStore, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(staging).map_err(io(staging))?;
        let mut local = None;
        let (inner, prefix): (Arc<dyn ObjectStore>, String) =
            if let Some(rest) = location.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(StoreError::BadUrl(location.into()));
                }
                let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
                (Arc::new(s3), prefix.trim_matches('/').to_string())
            } else if location.contains("://") {
                return Err(StoreError::BadUrl(location.into()));
            } else {
                let dir = Path::new(location);
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                let fs = Arc::new(LocalFileSystem::new_with_prefix(dir)?);
                local = Some(fs.clone());
                (fs, String::new())
            };
        Ok(BlobStore { inner, local, prefix, staging: staging.to_path_buf() })
    }

    fn key(&self, sha256: &[u8]) -> StorePath {
        let hex = hex::encode(sha256);
        let name = format!("{}/{hex}", &hex[..2]);
        if self.prefix.is_empty() {
            StorePath::from(name)
        } else {
            StorePath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Stores a verified staged file under its hash: a local store renames it into place (the
    /// file is gone afterwards), other stores stream it up in parts (the file stays).
    pub async fn put_file(&self, sha256: &[u8], file: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::Io { path: file.to_path_buf(), source };
        let key = self.key(sha256);
        if let Some(local) = &self.local
            && Self::rename_into(local, &key, file).await?
        {
            return Ok(());
        }
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let size = f.metadata().await.map_err(io)?.len();
        if size as usize <= PART_SIZE {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf).await.map_err(io)?;
            self.inner.put(&key, PutPayload::from(buf)).await?;
            return Ok(());
        }
        let upload = self.inner.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = f.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(2).await?;
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// Renames `file` to where the local store keeps `key`, then makes the rename durable.
    /// False when the two are on different file systems (the caller copies instead).
    async fn rename_into(local: &LocalFileSystem, key: &StorePath, file: &Path) -> Result<bool, StoreError> {
        let target = local.path_to_filesystem(key)?;
        let file = file.to_path_buf();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        tokio::task::spawn_blocking(move || {
            let dir = target.parent().expect("a blob's path has a parent");
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            match std::fs::rename(&file, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => return Ok(false),
                Err(e) => return Err(io(&target)(e)),
            }
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
            Ok(true)
        })
        .await
        .map_err(|e| StoreError::Io { path: PathBuf::new(), source: std::io::Error::other(e) })?
    }

    /// Stores bytes already in memory (small artifacts, builder's ASN.1 uploads).
    pub async fn put_bytes(&self, sha256: &[u8], bytes: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put(&self.key(sha256), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The blob's bytes as a stream of chunks.
    pub async fn get(
        &self,
        sha256: &[u8],
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, object_store::Error>>, StoreError> {
        let result = self.inner.get(&self.key(sha256)).await?;
        match result.payload {
            GetResultPayload::File(file, path) => Ok(file_chunks(file, path, result.range)),
            GetResultPayload::Stream(stream) => Ok(stream),
        }
    }

    /// The whole blob in memory (for small inputs such as `opam-switch`).
    pub async fn read_all(&self, sha256: &[u8], limit: usize) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let mut stream = self.get(sha256).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    pub async fn delete(&self, sha256: &[u8]) -> Result<(), StoreError> {
        match self.inner.delete(&self.key(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn exists(&self, sha256: &[u8]) -> Result<bool, StoreError> {
        match self.inner.head(&self.key(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// A local file's `range` as a stream of [`READ_CHUNK`] chunks, each read on the blocking pool.
fn file_chunks(
    file: std::fs::File,
    path: PathBuf,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, Result<bytes::Bytes, object_store::Error>> {
    use std::io::{Read, Seek, SeekFrom};
    let failed = move |source: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(StoreError::Io { path: path.clone(), source }),
    };
    futures_util::stream::try_unfold((Some(file), range.start), move |(file, at)| {
        let failed = failed.clone();
        let end = range.end;
        async move {
            let Some(mut file) = file.filter(|_| at < end) else { return Ok(None) };
            let len = (end - at).min(READ_CHUNK as u64) as usize;
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len];
                file.seek(SeekFrom::Start(at))?;
                file.read_exact(&mut buf)?;
                Ok::<_, std::io::Error>((file, buf))
            })
            .await
            .map_err(|e| failed(std::io::Error::other(e)))?;
            let (file, buf) = read.map_err(failed)?;
            Ok(Some((bytes::Bytes::from(buf), (Some(file), at + len as u64))))
        }
    })
    .boxed()
}
