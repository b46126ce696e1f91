//! Request extractors whose failures are problem+json answers naming the offending field.
//!
//! actix' own `web::Json` and `web::Query` answer with plain-text errors that do not say which
//! field is wrong; these read the same input through `serde_path_to_error` instead.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use petrel_wire::FieldError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::server::AppState;

/// A JSON body of type `T`: `Content-Type: application/json`, at most `max_json_bytes`, unknown
/// fields refused (by the types' `deny_unknown_fields`).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit =
            req.app_data::<web::Data<AppState>>().map(|s| s.config.max_json_bytes).unwrap_or(64 * 1024);
        let content_type_ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            })
            .unwrap_or(false);
        let declared_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::UnsupportedMediaType(
                    "the body must be JSON, sent with `Content-Type: application/json`".into(),
                ));
            }
            if declared_length.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| ApiError::BadRequest {
                    code: "body-unreadable",
                    detail: "the request body could not be read".into(),
                    errors: vec![],
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(Json)
        })
    }
}

/// An optional JSON body: no body at all (no `Content-Type`, no length) is `T::default()`;
/// anything else is read as [`Json`], with the same errors.
#[derive(Debug)]
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for JsonOrEmpty<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::trim);
        let empty = !headers.contains_key(header::CONTENT_TYPE)
            && !headers.contains_key(header::TRANSFER_ENCODING)
            && length.is_none_or(|n| n == "0");
        if empty {
            return Box::pin(async { Ok(JsonOrEmpty(T::default())) });
        }
        let json = Json::<T>::from_request(req, payload);
        Box::pin(async move { json.await.map(|Json(v)| JsonOrEmpty(v)) })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the JSON body is larger than {limit} bytes"))
}

/// PostgreSQL's text cannot hold NUL, and no field of the API needs it: a string with one is
/// refused up front, naming the field (it would otherwise fail deep in a query).
fn nul_error(field: String) -> ApiError {
    ApiError::Validation {
        detail: format!("invalid field `{field}`: must not contain NUL characters"),
        errors: vec![FieldError::new(field, "must not contain NUL characters")],
    }
}

/// Whether the JSON text escapes a NUL (`\u0000` after an even number of backslashes; raw
/// control characters are not valid JSON).
fn escapes_nul(body: &[u8]) -> bool {
    body.windows(6)
        .enumerate()
        .any(|(i, w)| w == b"\\u0000" && body[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0)
}

/// The path (`lines[2].text`, a key) of the first string holding a NUL.
fn nul_path(value: &serde_json::Value, path: &str) -> Option<String> {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(|| path.to_string()),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| nul_path(v, &format!("{path}[{i}]")))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') { Some(join(&k.replace('\0', "\\u0000"))) } else { nul_path(v, &join(k)) }
        }),
        _ => None,
    }
}

/// Deserialises JSON, turning serde's error into a field-level problem.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if escapes_nul(body)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(path) = nul_path(&value, "")
    {
        return Err(nul_error(if path.is_empty() { "body".into() } else { path }));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end().map_err(|e| ApiError::BadRequest {
                code: "malformed-json",
                detail: format!("the body is not valid JSON: {e}"),
                errors: vec![],
            })?;
            Ok(v)
        }
        Err(err) => {
            let inner = err.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::BadRequest {
                    code: "malformed-json",
                    detail: format!("the body is not valid JSON: {inner}"),
                    errors: vec![],
                });
            }
            let message = inner.to_string();
            let field = field_of(&err.path().to_string(), &message);
            Err(ApiError::Validation {
                detail: format!("invalid field `{field}`: {}", strip_position(&message)),
                errors: vec![FieldError::new(field, strip_position(&message))],
            })
        }
    }
}

/// The field a serde error is about: its path, or for unknown/missing fields the name serde
/// quotes in its message (appended to the path of the containing object).
fn field_of(path: &str, message: &str) -> String {
    let quoted = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (path, quoted) {
        // For unknown fields the path already ends at the offending key.
        (p, Some(name)) if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
        (".", Some(name)) | ("", Some(name)) => name.to_string(),
        (p, Some(name)) => format!("{p}.{name}"),
        (".", None) | ("", None) => "body".to_string(),
        (p, None) => p.to_string(),
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Query parameters of type `T`, unknown parameters refused.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(Query))
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    if let Some((key, _)) =
        form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(nul_error(key.replace('\0', "%00")));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|err| {
        let message = err.inner().to_string();
        let path = err.path().to_string();
        let field = field_of(&path, &message);
        let field = if field == "body" { "query".to_string() } else { field };
        ApiError::Validation {
            detail: format!("invalid query parameter `{field}`: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    })
}

/// `web::Path` failures: find the path segment that does not parse and name it.
pub fn path_error(err: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    let bad = req
        .match_info()
        .iter()
        .find(|(name, value)| name.ends_with("_id") && uuid::Uuid::parse_str(value).is_err())
        .map(|(name, _)| name.to_string());
    let api_error = match bad {
        Some(name) => ApiError::field(name, "must be a UUID"),
        None => ApiError::BadRequest {
            code: "bad-path",
            detail: format!("the URL path is invalid: {err}"),
            errors: vec![],
        },
    };
    api_error.into()
}
