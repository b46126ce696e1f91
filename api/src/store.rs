//! The artifact store: content-addressed blobs (key = SHA-256) in any `object_store` backend —
//! local files under the data directory by default (two-hex fan-out, as builder-web), or an
//! S3-compatible service.
//!
//! Uploads are streamed to a staging file while hashing; only a verified file is put into the
//! store, so a blob's key always matches its content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
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

impl BlobStore {
    /// `location` is a directory (local store) or `s3://bucket[/prefix]` (credentials and
    /// endpoint from the standard `AWS_*` environment variables).
    pub fn open(location: &str, staging: &Path) -> Result<BlobStore, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(staging).map_err(io(staging))?;
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
                (Arc::new(LocalFileSystem::new_with_prefix(dir)?), String::new())
            };
        Ok(BlobStore { inner, prefix, staging: staging.to_path_buf() })
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

    /// Stores a verified staged file under its hash, streaming it in parts.
    pub async fn put_file(&self, sha256: &[u8], file: &Path) -> Result<(), StoreError> {
        let io = |source| StoreError::Io { path: file.to_path_buf(), source };
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let size = f.metadata().await.map_err(io)?.len();
        let key = self.key(sha256);
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

    /// Stores bytes already in memory (small artifacts, builder's ASN.1 uploads).
    pub async fn put_bytes(&self, sha256: &[u8], bytes: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put(&self.key(sha256), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The blob's bytes as a stream of chunks.
    pub async fn get(
        &self,
        sha256: &[u8],
    ) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes, object_store::Error>> + use<>, StoreError>
    {
        let result = self.inner.get(&self.key(sha256)).await?;
        Ok(result.into_stream())
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
