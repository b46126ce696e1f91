//! Talking to the API: same-origin fetches (the session cookie goes along), the CSRF token on
//! changes, and problem+json errors turned into messages per field.

use std::cell::RefCell;

use gloo_net::http::{Request, RequestBuilder, Response};
use petrel_wire::Problem;
use serde::Serialize;
use serde::de::DeserializeOwned;

thread_local! {
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
}

pub fn set_csrf(token: Option<String>) {
    CSRF.with(|c| *c.borrow_mut() = token);
}

/// What went wrong with a request, for people.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub problem: Option<Problem>,
    pub message: String,
}

impl ApiError {
    fn network(e: impl std::fmt::Display) -> Self {
        ApiError { status: 0, problem: None, message: format!("cannot reach Petrel: {e}") }
    }

    /// The message for one field, if the API named it.
    pub fn field(&self, name: &str) -> Option<String> {
        self.problem.as_ref()?.errors.iter().find(|e| e.field == name).map(|e| e.message.clone())
    }

    /// The session ended (expired, signed out elsewhere, password changed).
    pub fn is_unauthenticated(&self) -> bool {
        self.status == 401
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

async fn finish(response: Result<Response, gloo_net::Error>) -> Result<Response, ApiError> {
    let response = response.map_err(ApiError::network)?;
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let problem: Option<Problem> = serde_json::from_str(&text).ok();
    let message = match &problem {
        Some(p) => p.detail.clone(),
        None => format!("the server answered {status}"),
    };
    Err(ApiError { status, problem, message })
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let response = finish(Request::get(path).send().await).await?;
    response.json().await.map_err(ApiError::network)
}

fn with_csrf(builder: RequestBuilder) -> RequestBuilder {
    match CSRF.with(|c| c.borrow().clone()) {
        Some(token) => builder.header(petrel_wire::CSRF_HEADER, &token),
        None => builder,
    }
}

/// POST/PUT with a JSON body and a JSON answer.
pub async fn send<B: Serialize, T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: &B,
) -> Result<T, ApiError> {
    let builder = match method {
        "PUT" => Request::put(path),
        _ => Request::post(path),
    };
    let request = with_csrf(builder).json(body).map_err(ApiError::network)?;
    let response = finish(request.send().await).await?;
    response.json().await.map_err(ApiError::network)
}

/// A request whose answer has no body (204).
pub async fn send_empty(method: &str, path: &str) -> Result<(), ApiError> {
    let builder = match method {
        "DELETE" => Request::delete(path),
        _ => Request::post(path),
    };
    finish(with_csrf(builder).send().await).await.map(|_| ())
}
