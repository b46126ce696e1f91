//! The agent's side of the API: HTTPS pinned to the API's CA, the agent credential on every
//! request, and errors sorted into "try again later" and "the API said no".

use std::path::Path;
use std::time::Duration;

use petrel_wire::Problem;
use petrel_wire::builds::NewConsoleLine;
use petrel_wire::deployments::{
    AgentConsole, AgentHeartbeat, Assignments, AssignmentsRequest, EnrollRequest, Enrolled, StateReport,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::reconcile::Control;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API could not be reached or answered 5xx/429: worth retrying.
    #[error("the API is unavailable: {0}")]
    Unavailable(String),
    /// The API refused the request for good (4xx).
    #[error("the API answered {status}: {detail}")]
    Refused { status: u16, code: String, detail: String },
    /// Something on this side (the CA file, a local file).
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::Unavailable(_))
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How long the server holds an assignments long-poll (at most 60 s by the protocol).
pub const ASSIGNMENTS_WAIT_SECS: i32 = 30;

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    credential: Option<String>,
}

impl ApiClient {
    /// A client trusting only `ca_pem` (the API's CA). `credential` is absent only to enroll.
    pub fn new(base: &str, ca_pem: &[u8], credential: Option<String>) -> Result<ApiClient, ClientError> {
        // Parsed here: reqwest would take a PEM without a certificate and trust nothing.
        let cas = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| ClientError::Local(format!("the CA: {}", error_chain(&e))))?;
        if cas.is_empty() {
            return Err(ClientError::Local("the CA file holds no PEM certificate".into()));
        }
        let mut builder = reqwest::Client::builder().use_rustls_tls().tls_built_in_root_certs(false);
        for ca in cas {
            builder = builder.add_root_certificate(ca);
        }
        let http = builder
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("petrel-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Local(error_chain(&e)))?;
        Ok(ApiClient { http, base: base.trim_end_matches('/').to_string(), credential })
    }

    fn request(&self, method: Method, path: &str, timeout: Duration) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}/api/v1{path}", self.base)).timeout(timeout);
        match &self.credential {
            Some(credential) => request.bearer_auth(credential),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unavailable(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ClientError::Unavailable(format!("HTTP {status}")));
        }
        let problem: Option<Problem> = response.json().await.ok();
        Err(match problem {
            Some(p) => ClientError::Refused { status: status.as_u16(), code: p.code, detail: p.detail },
            None => ClientError::Refused {
                status: status.as_u16(),
                code: "unknown".into(),
                detail: status.to_string(),
            },
        })
    }

    /// A POST whose answer has no body (204).
    async fn post(&self, path: &str, body: &impl Serialize, timeout: Duration) -> Result<(), ClientError> {
        self.send(self.request(Method::POST, path, timeout).json(body)).await.map(drop)
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let response = self.send(self.request(Method::POST, path, timeout).json(body)).await?;
        response.json().await.map_err(|e| ClientError::Unavailable(format!("an unreadable answer: {e}")))
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
        let response =
            self.send(self.request(Method::POST, "/agent/assignments", timeout).json(&body)).await?;
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
        let request = self.request(Method::GET, &format!("/agent/images/{sha256}"), Duration::from_secs(600));
        let mut response = self.send(request).await?;
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
}

/// reqwest's errors hide their cause (a refused connection, a certificate) in the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_and_refused() {
        assert!(ClientError::Unavailable("HTTP 503".into()).is_retryable());
        let refused = ClientError::Refused { status: 404, code: "not-found".into(), detail: "gone".into() };
        assert!(!refused.is_retryable());
        assert_eq!(refused.status(), Some(404));
        assert!(!ClientError::Local("x".into()).is_retryable());
    }

    #[test]
    fn a_bad_ca_is_a_local_error() {
        assert!(matches!(ApiClient::new("https://x", b"not a pem", None), Err(ClientError::Local(_))));
    }
}
