//! The worker's side of the API: HTTPS pinned to the API's CA, the worker credential on every
//! request, and errors sorted into "try again later" and "the API said no".

use std::path::Path;
use std::time::Duration;

use petrel_wire::builds::{Artifact, Build, ConsoleChunk, NewConsoleLine, OpenUpload, Upload};
use petrel_wire::http::ApiHttp;
use petrel_wire::workers::{Claim, ClaimRequest, Lease, RebuildRequest, RebuildVerdict, Worker, WorkerHello};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use petrel_wire::http::ClientError;

#[derive(Clone)]
pub struct ApiClient {
    http: ApiHttp,
}

/// Long-polls wait this long at most; the request timeout must outlast them.
const CLAIM_WAIT_SECS: i32 = 30;

impl ApiClient {
    /// A client that trusts only `ca_pem` (the API's CA) when given, else the system roots.
    pub fn new(base: &str, ca_pem: Option<&[u8]>, credential: String) -> Result<ApiClient, ClientError> {
        let agent = concat!("petrel-worker/", env!("CARGO_PKG_VERSION"));
        Ok(ApiClient { http: ApiHttp::new(base, ca_pem, Some(credential), agent)? })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        self.http.json(method, path, body, timeout).await
    }

    pub async fn hello(&self, hello: &WorkerHello) -> Result<Worker, ClientError> {
        self.json(Method::POST, "/worker/hello", hello, Duration::from_secs(30)).await
    }

    /// Waits up to the long-poll's time for a build of `platform`.
    pub async fn claim(&self, platform: &str) -> Result<Option<Claim>, ClientError> {
        let body = ClaimRequest { platform: platform.to_string(), wait_secs: Some(CLAIM_WAIT_SECS) };
        let timeout = Duration::from_secs(CLAIM_WAIT_SECS as u64 + 30);
        let response =
            self.http.send(self.http.request(Method::POST, "/worker/claim", timeout).json(&body)).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| ClientError::Unavailable(format!("an unreadable claim: {e}")))
    }

    pub async fn heartbeat(&self, build_id: Uuid) -> Result<Lease, ClientError> {
        self.json(Method::POST, &format!("/worker/builds/{build_id}/heartbeat"), &(), Duration::from_secs(15))
            .await
    }

    pub async fn console(&self, build_id: Uuid, lines: Vec<NewConsoleLine>) -> Result<(), ClientError> {
        let body = ConsoleChunk { lines };
        self.http.post(&format!("/worker/builds/{build_id}/console"), &body, Duration::from_secs(30)).await
    }

    pub async fn claim_rebuild(&self, build_id: Uuid) -> Result<Claim, ClientError> {
        self.json(Method::POST, "/worker/rebuilds", &RebuildRequest { build_id }, Duration::from_secs(30))
            .await
    }

    pub async fn verdict(&self, rebuild_id: Uuid) -> Result<RebuildVerdict, ClientError> {
        let request = self.http.request(
            Method::GET,
            &format!("/worker/verdicts/{rebuild_id}"),
            Duration::from_secs(30),
        );
        let response = self.http.send(request).await?;
        response.json().await.map_err(|e| ClientError::Unavailable(format!("an unreadable verdict: {e}")))
    }

    /// Opens (or, on a retry, re-opens) the upload of a claimed build.
    pub async fn open_upload(&self, job_id: Uuid, meta: &OpenUpload) -> Result<Upload, ClientError> {
        self.json(Method::POST, &format!("/jobs/{job_id}/uploads"), meta, Duration::from_secs(60)).await
    }

    /// Streams one file as an artifact, declaring its hash.
    pub async fn put_artifact(
        &self,
        upload_id: Uuid,
        path: &str,
        file: &Path,
        sha256: &str,
        size: u64,
    ) -> Result<Artifact, ClientError> {
        let opened = tokio::fs::File::open(file)
            .await
            .map_err(|e| ClientError::Local(format!("{}: {e}", file.display())))?;
        let body =
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(opened, 256 * 1024));
        let encoded: String = path.split('/').map(encode_segment).collect::<Vec<_>>().join("/");
        let request = self
            .http
            .request(
                Method::PUT,
                &format!("/uploads/{upload_id}/artifacts/{encoded}"),
                Duration::from_secs(3600),
            )
            .header("x-petrel-sha256", sha256)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let response = self.http.send(request).await?;
        response.json().await.map_err(|e| ClientError::Unavailable(format!("an unreadable answer: {e}")))
    }

    pub async fn finalize(&self, upload_id: Uuid) -> Result<Build, ClientError> {
        self.json(Method::POST, &format!("/uploads/{upload_id}/finalize"), &(), Duration::from_secs(300))
            .await
    }
}

/// Percent-encodes one path segment (artifact names may hold spaces, `#`, `?` ...).
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'=' | b',' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("hello.hvt"), "hello.hvt");
        assert_eq!(encode_segment("a b#?%"), "a%20b%23%3F%25");
    }
}
