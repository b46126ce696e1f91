//! Streaming transfers with a progress bar (on a terminal) and SHA-256 verification: a download
//! is written to `<file>.part`, hashed on the way, and renamed only when the hash matches; an
//! upload is hashed first (the API wants the hash up front) and then streamed.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::CliError;

const CHUNK: usize = 1 << 20;

fn bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {bytes} {bytes_per_sec}").expect("a valid template"),
        ),
    };
    bar.with_message(what.to_string())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Other(anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes `body` to `target`, verifying its SHA-256 against `expected` (hex) when given;
/// returns the hex SHA-256 and size.
pub async fn download<S, E>(
    mut body: S,
    len: Option<u64>,
    target: &Path,
    expected: Option<&str>,
) -> Result<(String, u64), CliError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::error::Error,
{
    let partial = PathBuf::from(format!("{}.part", target.display()));
    let mut file = tokio::fs::File::create(&partial).await.map_err(io(&partial))?;
    let progress = bar(len, &format!("{}", target.display()));
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let result: Result<(), CliError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| CliError::Unreachable(crate::error::error_chain(&e)))?;
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(io(&partial))?;
            size += chunk.len() as u64;
            progress.set_position(size);
        }
        file.sync_all().await.map_err(io(&partial))
    }
    .await;
    progress.finish_and_clear();
    let sha = hex::encode(hash.finalize());
    let verified = match (&result, expected) {
        (Err(_), _) => result,
        (Ok(()), Some(expected)) if expected != sha => {
            Err(CliError::Verify(format!("{} has SHA-256 {sha}, expected {expected}", target.display())))
        }
        (Ok(()), _) => Ok(()),
    };
    if let Err(e) = verified {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, target).await.map_err(io(target))?;
    Ok((sha, size))
}

/// The hex SHA-256 and size of a file.
pub async fn hash_file(path: &Path) -> Result<(String, u64), CliError> {
    let mut file = tokio::fs::File::open(path).await.map_err(io(path))?;
    let len = file.metadata().await.map_err(io(path))?.len();
    let progress = bar(Some(len), &format!("hashing {}", path.display()));
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(io(path))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
        progress.set_position(size);
    }
    progress.finish_and_clear();
    Ok((hex::encode(hash.finalize()), size))
}

/// A file as a streaming request body, advancing a progress bar.
pub async fn file_body(path: &Path, len: u64) -> Result<reqwest::Body, CliError> {
    let file = tokio::fs::File::open(path).await.map_err(io(path))?;
    let progress = bar(Some(len), &format!("uploading {}", path.display()));
    let stream = futures_util::stream::unfold((file, progress), |(mut file, progress)| async move {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => {
                progress.finish_and_clear();
                None
            }
            Ok(n) => {
                buf.truncate(n);
                progress.inc(n as u64);
                Some((Ok::<_, std::io::Error>(buf), (file, progress)))
            }
            Err(e) => Some((Err(e), (file, progress))),
        }
    });
    Ok(reqwest::Body::wrap_stream(stream))
}
