//! Talking to the API: same-origin fetches (the session cookie goes along), the CSRF token on
//! changes, and problem+json errors turned into messages per field.

use std::cell::RefCell;

use gloo_net::http::{Request, RequestBuilder, Response};
use petrel_wire::{Page, Problem};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

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

/// The body of a successful GET. Not generic: each answer type only adds its parsing.
pub async fn get_text(path: &str) -> Result<String, ApiError> {
    let response = finish(Request::get(path).send().await).await?;
    response.text().await.map_err(ApiError::network)
}

pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(ApiError::network)
}

/// A page of a list: the page itself is parsed once for every list type (its items kept as raw
/// JSON), then each item as a `T`, so a list costs the wasm only its item's parser.
pub fn parse_page<T: DeserializeOwned>(text: &str) -> Result<Page<T>, ApiError> {
    let (raw, next_cursor) = parse_raw_page(text)?;
    let items = raw.iter().map(|item| parse::<T>(item.get())).collect::<Result<Vec<T>, ApiError>>()?;
    Ok(Page { items, next_cursor })
}

fn parse_raw_page(text: &str) -> Result<(Vec<Box<RawValue>>, Option<String>), ApiError> {
    let page: Page<Box<RawValue>> = parse(text)?;
    Ok((page.items, page.next_cursor))
}

/// [`get`] of one page of a list (see [`parse_page`]).
pub async fn get_page<T: DeserializeOwned>(path: &str) -> Result<Page<T>, ApiError> {
    parse_page(&get_text(path).await?)
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    parse(&get_text(path).await?)
}

/// [`get`] of an owned URL, for resources whose future must not borrow.
pub async fn fetch<T: DeserializeOwned>(url: String) -> Result<T, ApiError> {
    get(&url).await
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
    let body = serde_json::to_string(body).map_err(ApiError::network)?;
    parse(&send_text(builder, Some(body)).await?)
}

/// Sends a change (with the CSRF token, and a JSON body if any) and returns the answer's body.
async fn send_text(builder: RequestBuilder, body: Option<String>) -> Result<String, ApiError> {
    let builder = with_csrf(builder);
    let request = match body {
        Some(body) => builder.header("content-type", "application/json").body(body),
        None => builder.build(),
    };
    let response = finish(request.map_err(ApiError::network)?.send().await).await?;
    response.text().await.map_err(ApiError::network)
}

/// A POST without a body whose answer is JSON (e.g. "rebuild": 202 and the queued build).
pub async fn post_for<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    parse(&send_text(Request::post(path), None).await?)
}

/// A request whose answer has no body (204).
pub async fn send_empty(method: &str, path: &str) -> Result<(), ApiError> {
    let builder = match method {
        "DELETE" => Request::delete(path),
        _ => Request::post(path),
    };
    finish(with_csrf(builder).send().await).await.map(|_| ())
}

/// PUTs raw bytes (a block device's contents) with their hex SHA-256 in `X-Petrel-Sha256`;
/// the answer (202 and the device) is not needed.
pub async fn upload(path: &str, sha256: &str, body: js_sys::ArrayBuffer) -> Result<(), ApiError> {
    let builder = with_csrf(Request::put(path))
        .header("content-type", "application/octet-stream")
        .header("x-petrel-sha256", sha256);
    let request = builder.body(body).map_err(ApiError::network)?;
    finish(request.send().await).await.map(|_| ())
}

/// Percent-encodes a path segment or query value (everything but RFC 3986's unreserved
/// characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An artifact's download path: each segment of its path encoded, the slashes kept.
pub fn file_url(build: uuid::Uuid, path: &str) -> String {
    let encoded: Vec<String> = path.split('/').map(encode).collect();
    format!("/api/v1/builds/{build}/files/{}", encoded.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_paths_and_values() {
        assert_eq!(encode("a b&c/é"), "a%20b%26c%2F%C3%A9");
        assert_eq!(encode("mirage-crypto_1.2~x"), "mirage-crypto_1.2~x");
        let id = uuid::Uuid::nil();
        assert_eq!(
            file_url(id, "sbom/hello & co.json"),
            format!("/api/v1/builds/{id}/files/sbom/hello%20%26%20co.json")
        );
    }
}
