//! The agent's side of the API: HTTPS pinned to the API's CA, the agent credential on every
//! request, and errors sorted into "try again later" and "the API said no".

use std::path::Path;
use std::time::Duration;

use petrel_wire::builds::NewConsoleLine;
use petrel_wire::deployments::{
    AgentConsole, AgentHeartbeat, Assignments, AssignmentsRequest, BlockReport, DeploymentStats,
    EnrollRequest, Enrolled, StateReport,
};
use petrel_wire::http::{ApiHttp, error_chain};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::reconcile::Control;

pub use petrel_wire::http::ClientError;

/// The header naming a body's SHA-256 (hex), both ways.
const SHA256_HEADER: &str = "x-petrel-sha256";

/// How long the server holds an assignments long-poll (at most 60 s by the protocol).
pub const ASSIGNMENTS_WAIT_SECS: i32 = 30;

#[derive(Clone)]
pub struct ApiClient {
    http: ApiHttp,
}

impl ApiClient {
    /// A client trusting only `ca_pem` (the API's CA). `credential` is absent only to enroll.
    pub fn new(base: &str, ca_pem: &[u8], credential: Option<String>) -> Result<ApiClient, ClientError> {
        let agent = concat!("petrel-agent/", env!("CARGO_PKG_VERSION"));
        Ok(ApiClient { http: ApiHttp::new(base, Some(ca_pem), credential, agent)? })
    }

    async fn post(&self, path: &str, body: &impl Serialize, timeout: Duration) -> Result<(), ClientError> {
        self.http.post(path, body, timeout).await
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        self.http.json(Method::POST, path, body, timeout).await
    }

    /// Trades a one-time enrollment token for the agent's credential.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<Enrolled, ClientError> {
        self.post_json("/agents/enroll", request, Duration::from_secs(30)).await
    }

    pub async fn heartbeat(&self, heartbeat: &AgentHeartbeat) -> Result<(), ClientError> {
        self.post("/agent/heartbeat", heartbeat, Duration::from_secs(20)).await
    }

    /// The assignments when the server's generation differs from `generation`, else None
    /// after the long-poll's wait.
    pub async fn assignments(&self, generation: i64) -> Result<Option<Assignments>, ClientError> {
        let body = AssignmentsRequest { generation, wait_secs: Some(ASSIGNMENTS_WAIT_SECS) };
        let timeout = Duration::from_secs(ASSIGNMENTS_WAIT_SECS as u64 + 30);
        let response = self
            .http
            .send(self.http.request(Method::POST, "/agent/assignments", timeout).json(&body))
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| ClientError::Unavailable(format!("unreadable assignments: {e}")))
    }

    /// Streams the image into `dest` (the caller checks its SHA-256).
    pub async fn download_image(&self, sha256: &str, dest: &Path) -> Result<(), ClientError> {
        let local = |e: std::io::Error| ClientError::Local(format!("{}: {e}", dest.display()));
        let request =
            self.http.request(Method::GET, &format!("/agent/images/{sha256}"), Duration::from_secs(600));
        let mut response = self.http.send(request).await?;
        let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ClientError::Unavailable(format!("the download broke off: {}", error_chain(&e))))?
        {
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.sync_all().await.map_err(local)
    }

    /// Streams a block device's pending upload into `dest`, refusing more than `capacity`
    /// bytes or a body whose SHA-256 differs from the one the API names.
    pub async fn block_content(&self, id: Uuid, dest: &Path, capacity: u64) -> Result<(), ClientError> {
        let local = |e: std::io::Error| ClientError::Local(format!("{}: {e}", dest.display()));
        let request = self.http.request(
            Method::GET,
            &format!("/agent/block-devices/{id}/content"),
            Duration::from_secs(3600),
        );
        let mut response = self.http.send(request).await?;
        let named = response
            .headers()
            .get(SHA256_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Unavailable(format!("the upload came without {SHA256_HEADER}")))?;
        let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ClientError::Unavailable(format!("the download broke off: {}", error_chain(&e))))?
        {
            written += chunk.len() as u64;
            if written > capacity {
                return Err(ClientError::Local(format!(
                    "the upload is larger than the device ({capacity} bytes)"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.sync_all().await.map_err(local)?;
        let got = hex::encode(hasher.finalize());
        if got != named {
            return Err(ClientError::Local(format!("the upload named {named} has SHA-256 {got}")));
        }
        Ok(())
    }

    pub async fn report_block(&self, id: Uuid, report: &BlockReport) -> Result<(), ClientError> {
        self.post(&format!("/agent/block-devices/{id}/report"), report, Duration::from_secs(20)).await
    }

    /// Sends the file at `path` as copy `number` of a block device.
    pub async fn export_block(
        &self,
        id: Uuid,
        number: i64,
        path: &Path,
        sha256: &str,
    ) -> Result<(), ClientError> {
        let local = |e: std::io::Error| ClientError::Local(format!("{}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(local)?;
        let size = file.metadata().await.map_err(local)?.len();
        let request = self
            .http
            .request(
                Method::PUT,
                &format!("/agent/block-devices/{id}/export/{number}"),
                Duration::from_secs(3600),
            )
            .header(SHA256_HEADER, sha256)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::from(file));
        self.http.send(request).await.map(drop)
    }

    pub async fn state(&self, deployment: Uuid, report: &StateReport) -> Result<(), ClientError> {
        self.post(&format!("/agent/deployments/{deployment}/state"), report, Duration::from_secs(20)).await
    }

    pub async fn console(&self, deployment: Uuid, lines: &[NewConsoleLine]) -> Result<(), ClientError> {
        let body = AgentConsole { lines: lines.to_vec() };
        self.post(&format!("/agent/deployments/{deployment}/console"), &body, Duration::from_secs(20)).await
    }
}

impl Control for ApiClient {
    async fn fetch_image(&self, sha256: &str, dest: &Path) -> Result<(), ClientError> {
        self.download_image(sha256, dest).await
    }

    async fn report_state(&self, deployment: Uuid, report: &StateReport) -> Result<(), ClientError> {
        self.state(deployment, report).await
    }

    async fn send_console(&self, deployment: Uuid, lines: &[NewConsoleLine]) -> Result<(), ClientError> {
        self.console(deployment, lines).await
    }

    async fn send_stats(&self, deployment: Uuid, stats: &DeploymentStats) -> Result<(), ClientError> {
        self.post(&format!("/agent/deployments/{deployment}/stats"), stats, Duration::from_secs(20)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_is_a_local_error() {
        assert!(matches!(ApiClient::new("https://x", b"not a pem", None), Err(ClientError::Local(_))));
    }
}
