//! The CLI's failures and their exit codes (documented in `petrel --help`).

pub use petrel_wire::http::error_chain;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered with an error (problem+json).
    #[error("{detail} ({status} {code}){}", fields_text(.fields))]
    Api { status: u16, code: String, detail: String, fields: Vec<(String, String)> },
    #[error("cannot reach the API: {0}")]
    Unreachable(String),
    #[error(
        "not logged in: run `petrel login --url https://... --token ...` (or set PETREL_URL and PETREL_TOKEN)"
    )]
    NotLoggedIn,
    #[error("verification failed: {0}")]
    Verify(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn fields_text(fields: &[(String, String)]) -> String {
    fields.iter().map(|(field, message)| format!("\n  {field}: {message}")).collect()
}

/// Exit codes: 0 success, 1 other failure, 2 bad usage, 3 refused by the API (4xx other than
/// below), 4 not found, 5 not authenticated or not allowed, 6 API unreachable or failing (5xx),
/// 7 a download's or upload's SHA-256 did not verify.
pub const EXIT_CODES: &str = "Exit codes: 0 success, 1 other failure, 2 bad usage, 3 refused by the API (4xx), \
                              4 not found, 5 not signed in or not allowed, 6 API unreachable or failing (5xx), \
                              7 SHA-256 verification failed.";

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { status: 404, .. } => 4,
            CliError::Api { status: 401 | 403, .. } | CliError::NotLoggedIn => 5,
            CliError::Api { status: 500.., .. } | CliError::Unreachable(_) => 6,
            CliError::Api { .. } => 3,
            CliError::Verify(_) => 7,
            CliError::Usage(_) => 2,
            CliError::Other(_) => 1,
        }
    }

    /// An error answer given as the raw response (routes whose errors the client does not parse).
    pub async fn from_response(response: reqwest::Response) -> CliError {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        problem(status, &body)
    }
}

fn problem(status: u16, body: &Value) -> CliError {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let fields = body
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| errors.iter().map(|e| (cell(e, "field"), cell(e, "message"))).collect())
        .unwrap_or_default();
    CliError::Api {
        status,
        code: text("code").unwrap_or_else(|| "unexpected-response".into()),
        detail: text("detail").unwrap_or_else(|| format!("the API answered {status}")),
        fields,
    }
}

fn cell(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_str).unwrap_or("?").to_string()
}

impl<E: serde::Serialize> From<progenitor_client::Error<E>> for CliError {
    fn from(error: progenitor_client::Error<E>) -> CliError {
        use progenitor_client::Error;
        match error {
            Error::ErrorResponse(response) => {
                let status = response.status().as_u16();
                problem(status, &serde_json::to_value(response.into_inner()).unwrap_or(Value::Null))
            }
            Error::UnexpectedResponse(response) => problem(response.status().as_u16(), &Value::Null),
            Error::CommunicationError(e) | Error::ResponseBodyError(e) | Error::InvalidUpgrade(e) => {
                CliError::Unreachable(error_chain(&e))
            }
            Error::InvalidResponsePayload(_, e) => {
                CliError::Other(anyhow::anyhow!("the API's answer does not match its contract: {e}"))
            }
            Error::InvalidRequest(message) => CliError::Usage(message),
            Error::Custom(message) => CliError::Other(anyhow::anyhow!(message)),
        }
    }
}

impl From<reqwest::Error> for CliError {
    fn from(e: reqwest::Error) -> CliError {
        CliError::Unreachable(error_chain(&e))
    }
}
