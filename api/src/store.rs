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
/// a download at a few hundred MB/s. A multiple of [`DIRECT_ALIGN`].
const READ_CHUNK: usize = 1024 * 1024;

/// A staging file nobody wrote to for this long belongs to an upload whose process died.
pub const STAGING_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes staging files (`*.part`) untouched for `idle`: what a killed process left behind.
/// Files still being written are younger (a replica sharing the directory keeps its own).
pub fn remove_abandoned(staging: &Path, idle: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(staging) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let abandoned = entry.file_name().to_string_lossy().ends_with(".part")
            && entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > idle);
        if abandoned && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl BlobStore {
    /// `location` is a directory (local store) or `s3://bucket[/prefix]` (credentials and
    /// endpoint from the standard `AWS_*` environment variables).
    pub fn open(location: &str, staging: &Path) -> Result<BlobStore, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(staging).map_err(io(staging))?;
        remove_abandoned(staging, STAGING_IDLE);
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

/// Reads in flight per download: the disk works on the next chunk while this one is sent.
const READS_AHEAD: usize = 2;

/// A local file's `range` as a stream of [`READ_CHUNK`] chunks, read on the blocking pool a
/// few chunks ahead. Reads bypass the page cache (`O_DIRECT`) where the file system allows:
/// artifacts are large and read once in a while, and filling the cache with them cost more
/// than the disk read (see [`DirectFile`]).
fn file_chunks(
    file: std::fs::File,
    path: PathBuf,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, Result<bytes::Bytes, object_store::Error>> {
    use std::os::unix::fs::OpenOptionsExt;
    let direct = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&path).ok();
    let aligned = direct.is_some();
    let file = Arc::new(direct.unwrap_or(file));
    let failed = move |source: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(StoreError::Io { path: path.clone(), source }),
    };
    // Direct reads start on a block boundary; the bytes before `range.start` are cut off.
    let first = if aligned { range.start / DIRECT_ALIGN as u64 * DIRECT_ALIGN as u64 } else { range.start };
    let end = range.end;
    let offsets = (first..end).step_by(READ_CHUNK);
    futures_util::stream::iter(offsets)
        .map(move |at| {
            let file = file.clone();
            tokio::task::spawn_blocking(move || read_chunk(&file, at, aligned))
        })
        .buffered(READS_AHEAD)
        .map(move |joined| {
            let (at, chunk) = joined.map_err(std::io::Error::other).and_then(|r| r).map_err(&failed)?;
            let from = range.start.saturating_sub(at) as usize;
            let to = ((end - at) as usize).min(chunk.len());
            if to < from {
                return Err(failed(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(chunk.slice(from..to))
        })
        .boxed()
}

/// Up to [`READ_CHUNK`] bytes at `at` (fewer at the end of the file), into a block-aligned
/// buffer when `aligned`.
fn read_chunk(file: &std::fs::File, at: u64, aligned: bool) -> std::io::Result<(u64, bytes::Bytes)> {
    use std::os::unix::fs::FileExt;
    let pad = if aligned { DIRECT_ALIGN } else { 0 };
    let mut storage = vec![0u8; READ_CHUNK + pad];
    let start = if aligned { storage.as_ptr().align_offset(DIRECT_ALIGN) } else { 0 };
    let mut filled = 0;
    while filled < READ_CHUNK {
        let n = file.read_at(&mut storage[start + filled..start + READ_CHUNK], at + filled as u64)?;
        filled += n;
        // A short direct read is the end of the file (and the next offset would be unaligned).
        if n == 0 || (aligned && filled % DIRECT_ALIGN != 0) {
            break;
        }
    }
    Ok((at, bytes::Bytes::from(storage).slice(start..start + filled)))
}

/// Chunks are handed to the hashing and writing threads in batches of about this many bytes:
/// one hand-over per network chunk (often 16 KiB) would cost more than the work it hands over.
const STAGING_BATCH: usize = 1024 * 1024;
/// Batches in flight per thread: bounds what a slow disk lets pile up in memory.
const STAGING_DEPTH: usize = 4;

type Batch = Arc<[bytes::Bytes]>;

/// A staging file written and hashed as the body arrives. Receiving (TLS), hashing and writing
/// each run on a thread of their own, so an upload goes at the pace of the slowest of the three,
/// not of their sum. The caller removes the file (it may be dropped half-written).
pub struct Staging {
    pending: Vec<bytes::Bytes>,
    pending_len: usize,
    written: u64,
    to_hasher: tokio::sync::mpsc::Sender<Batch>,
    to_writer: tokio::sync::mpsc::Sender<Batch>,
    hasher: tokio::task::JoinHandle<[u8; 32]>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    path: PathBuf,
}

impl Staging {
    pub fn create(path: &Path) -> Result<Staging, StoreError> {
        use sha2::Digest;
        let io = |source| StoreError::Io { path: path.to_path_buf(), source };
        let mut file = DirectFile::create(path).map_err(io)?;
        let (to_hasher, mut hasher_rx) = tokio::sync::mpsc::channel::<Batch>(STAGING_DEPTH);
        let (to_writer, mut writer_rx) = tokio::sync::mpsc::channel::<Batch>(STAGING_DEPTH);
        let hasher = tokio::task::spawn_blocking(move || {
            let mut hash = sha2::Sha256::new();
            while let Some(batch) = hasher_rx.blocking_recv() {
                batch.iter().for_each(|chunk| hash.update(chunk));
            }
            hash.finalize().into()
        });
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(batch) = writer_rx.blocking_recv() {
                batch.iter().try_for_each(|chunk| file.write(chunk))?;
            }
            file.finish()
        });
        Ok(Staging {
            pending: Vec::new(),
            pending_len: 0,
            written: 0,
            to_hasher,
            to_writer,
            hasher,
            writer,
            path: path.to_path_buf(),
        })
    }

    /// Bytes accepted so far.
    pub fn bytes_so_far(&self) -> u64 {
        self.written
    }

    pub async fn push(&mut self, chunk: bytes::Bytes) -> Result<(), StoreError> {
        self.written += chunk.len() as u64;
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= STAGING_BATCH { self.hand_over().await } else { Ok(()) }
    }

    async fn hand_over(&mut self) -> Result<(), StoreError> {
        let batch: Batch = std::mem::take(&mut self.pending).into();
        self.pending_len = 0;
        // A closed channel means the thread ended early: the writer on an I/O error, which
        // `finish` reports.
        let hashed = self.to_hasher.send(batch.clone()).await.is_ok();
        let written = self.to_writer.send(batch).await.is_ok();
        if hashed && written {
            return Ok(());
        }
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        match (&mut self.writer).await {
            Ok(Err(e)) => Err(io(e)),
            Ok(Ok(())) => Err(io(std::io::Error::other("the staging writer stopped early"))),
            Err(e) => Err(io(std::io::Error::other(e))),
        }
    }

    /// Waits until everything is on disk (synced); the SHA-256 and size of what was pushed.
    pub async fn finish(mut self) -> Result<([u8; 32], u64), StoreError> {
        if !self.pending.is_empty() {
            let batch: Batch = std::mem::take(&mut self.pending).into();
            let _ = self.to_hasher.send(batch.clone()).await;
            let _ = self.to_writer.send(batch).await;
        }
        drop(self.to_hasher);
        drop(self.to_writer);
        let joined = |e: tokio::task::JoinError| std::io::Error::other(e);
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        self.writer.await.map_err(joined).and_then(|r| r).map_err(io)?;
        let sha = self.hasher.await.map_err(joined).map_err(io)?;
        Ok((sha, self.written))
    }
}

/// Block alignment for `O_DIRECT`: a multiple of every device's logical block size.
const DIRECT_ALIGN: usize = 4096;
const DIRECT_BUFFER: usize = 1024 * 1024;

/// A file written past the page cache (`O_DIRECT`) where the file system allows it. Uploads
/// are written once and read rarely; through the page cache each fresh page costs an
/// allocation (and, on virtual machines, often a host fault), which capped uploads at about a
/// quarter of the disk's speed. Data goes through one aligned buffer; the last, partial block
/// is written padded and the file then cut to its length.
struct DirectFile {
    file: std::fs::File,
    /// `DIRECT_BUFFER` bytes starting at an aligned address inside `storage`.
    storage: Vec<u8>,
    start: usize,
    filled: usize,
    len: u64,
}

impl DirectFile {
    fn create(path: &Path) -> std::io::Result<DirectFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |flags| {
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).custom_flags(flags).open(path)
        };
        // tmpfs and some others refuse O_DIRECT: then the page cache it is.
        let file = match open(libc::O_DIRECT) {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0)?,
            Err(e) => return Err(e),
        };
        let storage = vec![0u8; DIRECT_BUFFER + DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        Ok(DirectFile { file, storage, start, filled: 0, len: 0 })
    }

    fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(DIRECT_BUFFER - self.filled);
            let at = self.start + self.filled;
            self.storage[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            self.len += n as u64;
            data = &data[n..];
            if self.filled == DIRECT_BUFFER {
                self.flush_buffer()?;
            }
        }
        Ok(())
    }

    /// Writes the buffer, padded to whole blocks (only the last write is ever padded).
    fn flush_buffer(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        let padded = self.filled.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        self.storage[self.start + self.filled..self.start + padded].fill(0);
        self.file.write_all(&self.storage[self.start..self.start + padded])?;
        self.filled = 0;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        if self.filled > 0 {
            self.flush_buffer()?;
            self.file.set_len(self.len)?;
        }
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    async fn read_range(path: &Path, range: std::ops::Range<u64>) -> Vec<u8> {
        let file = std::fs::File::open(path).unwrap();
        let mut stream = file_chunks(file, path.to_path_buf(), range);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn staging_writes_and_hashes_any_length_and_chunks_read_back_any_range() {
        use sha2::Digest;
        // Direct I/O where /tmp is a disk file system; the buffered fallback on tmpfs.
        let dir = tempfile::tempdir().unwrap();
        // Lengths around the block and buffer sizes, where padding and cutting happen.
        for len in [0, 1, 4095, 4097, DIRECT_BUFFER, 3 * DIRECT_BUFFER + 123] {
            let data = pattern(len);
            let path = dir.path().join(format!("f{len}"));
            let mut staging = Staging::create(&path).unwrap();
            // Uneven network chunks.
            for piece in data.chunks(10_007) {
                staging.push(bytes::Bytes::copy_from_slice(piece)).await.unwrap();
            }
            let (sha, size) = staging.finish().await.unwrap();
            assert_eq!(size, len as u64);
            assert_eq!(sha[..], sha2::Sha256::digest(&data)[..]);
            assert_eq!(std::fs::read(&path).unwrap(), data, "length {len}");
            assert_eq!(read_range(&path, 0..len as u64).await, data, "whole file of {len}");
            if len > 5000 {
                let (from, to) = (4999u64, len as u64 - 7);
                assert_eq!(
                    read_range(&path, from..to).await,
                    data[from as usize..to as usize],
                    "range of {len}"
                );
            }
        }
    }
}
