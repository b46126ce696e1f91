//! The HTTPS side shared by Petrel's machine clients (worker, agent): a client pinned to the
//! API's CA, a credential on every request, and errors sorted into "try again later" and "the
//! API said no" (with the problem's code). Behind the `http` feature: the SPA does not need it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Problem;

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

    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client builder that trusts only `ca_pem` (the API's CA) when given, else the system roots;
/// also for clients that add their own settings (the CLI's generated client).
pub fn pinned_client(ca_pem: Option<&[u8]>, user_agent: &str) -> Result<reqwest::ClientBuilder, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(user_agent);
    if let Some(pem) = ca_pem {
        // Parsed here: reqwest would take a PEM without a certificate and trust nothing.
        let cas = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::Local(format!("the CA: {}", error_chain(&e))))?;
        if cas.is_empty() {
            return Err(ClientError::Local("the CA file holds no PEM certificate".into()));
        }
        builder = builder.tls_built_in_root_certs(false);
        for ca in cas {
            builder = builder.add_root_certificate(ca);
        }
    }
    Ok(builder)
}

/// An HTTPS client of one Petrel API.
#[derive(Clone)]
pub struct ApiHttp {
    http: reqwest::Client,
    base: String,
    credential: Option<String>,
}

impl ApiHttp {
    /// Trusts only `ca_pem` (the API's CA) when given, else the system roots. `credential` is
    /// sent as `Authorization: Bearer` on every request.
    pub fn new(
        base: &str,
        ca_pem: Option<&[u8]>,
        credential: Option<String>,
        user_agent: &str,
    ) -> Result<ApiHttp, ClientError> {
        let http =
            pinned_client(ca_pem, user_agent)?.build().map_err(|e| ClientError::Local(error_chain(&e)))?;
        Ok(ApiHttp { http, base: base.trim_end_matches('/').to_string(), credential })
    }

    /// A request to `/api/v1{path}`.
    pub fn request(&self, method: Method, path: &str, timeout: Duration) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}/api/v1{path}", self.base)).timeout(timeout);
        match &self.credential {
            Some(credential) => request.bearer_auth(credential),
            None => request,
        }
    }

    /// Sends; a non-success answer becomes the matching [`ClientError`].
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = execute(request).await.map_err(|e| ClientError::Unavailable(error_chain(&e)))?;
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

    /// A JSON request answered with JSON.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let response = self.send(self.request(method, path, timeout).json(body)).await?;
        response.json().await.map_err(|e| ClientError::Unavailable(format!("an unreadable answer: {e}")))
    }

    /// A JSON POST answered without a body (204).
    pub async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.send(self.request(Method::POST, path, timeout).json(body)).await.map(drop)
    }
}

#[cfg(not(feature = "telemetry"))]
async fn execute(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    request.send().await
}

/// Sends within a client span whose context goes along as `traceparent` (when traces are
/// exported), so the API's span of this request is its child.
#[cfg(feature = "telemetry")]
async fn execute(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    use tracing::Instrument;
    if !crate::telemetry::traces_enabled() {
        return request.send().await;
    }
    let (client, request) = request.build_split();
    let mut request = request?;
    let url = request.url();
    let span = tracing::info_span!(
        "http.client",
        otel.name = %request.method(),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %request.method(),
        url.full = format_args!("{}://{}{}", url.scheme(), url.authority(), url.path()),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
    );
    for (name, value) in crate::telemetry::inject(&span) {
        if let (Ok(name), Ok(value)) =
            (reqwest::header::HeaderName::try_from(name), reqwest::header::HeaderValue::try_from(value))
        {
            request.headers_mut().insert(name, value);
        }
    }
    let result = client.execute(request).instrument(span.clone()).await;
    match &result {
        Ok(response) => {
            span.record("http.response.status_code", response.status().as_u16());
            if response.status().is_server_error() {
                span.record("otel.status_code", "error");
            }
        }
        Err(_) => {
            span.record("otel.status_code", "error");
        }
    }
    result
}

/// reqwest's errors hide their cause (a refused connection, a certificate) in the chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
        assert_eq!(refused.code(), Some("not-found"));
        assert!(!ClientError::Local("x".into()).is_retryable());
    }

    #[test]
    fn a_bad_ca_is_a_local_error() {
        assert!(matches!(
            ApiHttp::new("https://x", Some(b"not a pem"), None, "t"),
            Err(ClientError::Local(_))
        ));
    }
}
